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

    /// A line whose failure the selftest judges as `v`.
    pub fn judged(&mut self, s: impl Into<String>, v: Verdict) -> &mut Self {
        self.lines.push(s.into());
        self.verdicts.push((self.lines.len(), v));
        self
    }

    pub fn finish(self) -> (String, Vec<(usize, Verdict)>) {
        let mut s = self.lines.join("\n");
        s.push('\n');
        (s, self.verdicts)
    }
}
