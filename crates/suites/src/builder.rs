//! Scenario text with line-addressed verdicts.

use crate::Verdict;

/// Sizes as the scenario language writes them.
pub(crate) fn sz(n: u64) -> String {
    scenario::ast::fmt_size(n)
}

#[derive(Default)]
pub(crate) struct Text {
    lines: Vec<String>,
    verdicts: Vec<(usize, Verdict)>,
}

impl Text {
    pub fn line(&mut self, s: impl Into<String>) -> &mut Self {
        self.lines.push(s.into());
        self
    }

    /// The 1-based number of the last line added.
    pub fn last_line(&self) -> usize {
        self.lines.len()
    }

    /// A line whose failure the selftest judges as `v`.
    pub fn judged(&mut self, s: impl Into<String>, v: Verdict) -> &mut Self {
        self.lines.push(s.into());
        self.verdicts.push((self.lines.len(), v));
        self
    }

    /// Adds an operation line and returns its step number (operation lines
    /// are numbered from 1 in file order; settings, task declarations,
    /// comments and standalone `expect` lines are not steps).
    pub fn step(&mut self, s: impl Into<String>) -> usize {
        self.lines.push(s.into());
        self.lines.iter().filter(|l| is_step(l)).count()
    }

    pub fn finish(self) -> (String, Vec<(usize, Verdict)>) {
        let mut s = self.lines.join("\n");
        s.push('\n');
        (s, self.verdicts)
    }
}

fn is_step(line: &str) -> bool {
    match line.split_once(": ") {
        Some((task, rest)) => {
            !task.is_empty() && task.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !rest.trim_start().starts_with("expect")
        }
        None => false,
    }
}
