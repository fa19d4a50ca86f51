//! Scenario text with line-addressed verdicts.

use crate::Verdict;

use std::fmt::Write as _;

/// Sizes as the scenario language writes them.
pub(crate) fn sz(n: u64) -> scenario::ast::Size {
    scenario::ast::Size(n)
}

/// A place in a region: `A`, `A+2M`.
pub(crate) fn at(region: &str, off: u64) -> String {
    if off == 0 {
        region.to_string()
    } else {
        format!("{region}+{}", sz(off))
    }
}

/// A scenario's text, written line by line into one buffer (a suite has
/// hundreds of tests of a dozen lines each: no `String` per line), with
/// the count of lines and of steps kept as it grows.
#[derive(Default)]
pub(crate) struct Text {
    text: String,
    lines: usize,
    steps: usize,
    verdicts: Vec<(usize, Verdict)>,
}

/// What a line is given as: text, or `format_args!(…)`, which is written
/// straight into the scenario in one formatting pass (through `{}` it
/// was a second pass, nested in a first one for every line).
pub(crate) trait LineText {
    fn write_to(self, out: &mut String);
}

impl LineText for &str {
    fn write_to(self, out: &mut String) {
        out.push_str(self);
    }
}

impl LineText for String {
    fn write_to(self, out: &mut String) {
        out.push_str(&self);
    }
}

impl LineText for std::fmt::Arguments<'_> {
    fn write_to(self, out: &mut String) {
        let _ = out.write_fmt(self);
    }
}

impl Text {
    /// Appends a line: a `&str`, a `String` or `format_args!(…)`.
    pub fn line(&mut self, s: impl LineText) -> &mut Self {
        let start = self.text.len();
        s.write_to(&mut self.text);
        self.text.push('\n');
        self.lines += 1;
        if is_step(&self.text[start..self.text.len() - 1]) {
            self.steps += 1;
        }
        self
    }

    /// The 1-based number of the last line added.
    pub fn last_line(&self) -> usize {
        self.lines
    }

    /// A line whose failure the selftest judges as `v`.
    pub fn judged(&mut self, s: impl LineText, v: Verdict) -> &mut Self {
        self.line(s);
        self.verdicts.push((self.lines, v));
        self
    }

    /// The last line added fails with `v`.
    pub fn verdict_last(&mut self, v: Verdict) -> &mut Self {
        self.verdicts.push((self.lines, v));
        self
    }

    /// Adds an operation line and returns its step number (operation lines
    /// are numbered from 1 in file order; settings, task declarations,
    /// comments and standalone `expect` lines are not steps).
    pub fn step(&mut self, s: impl LineText) -> usize {
        self.line(s);
        self.steps
    }

    pub fn finish(self) -> (String, Vec<(usize, Verdict)>) {
        (self.text, self.verdicts)
    }
}

/// `TASK: …` other than `TASK: expect …`. The task name runs up to the
/// first byte that cannot be in a name; the line is a step when `: `
/// follows it there (so it is the line's first `: `).
fn is_step(line: &str) -> bool {
    let task = line.bytes().position(|b| !(b.is_ascii_alphanumeric() || b == b'_')).unwrap_or(line.len());
    match line[task..].strip_prefix(": ") {
        Some(rest) => task > 0 && !rest.trim_start().starts_with("expect"),
        None => false,
    }
}

/// The selftests' data check over a hugetlb range, `write_bytes()` then
/// `read_bytes()`: the C programs store `(char)i` at every byte `i` and
/// compare it back. The model keeps page contents as runs of equal bytes,
/// in which a 256-byte ramp over 256 MiB has no compact form, so the
/// generated test stores one byte value per huge page instead (page `k`
/// gets `k + 1`) and reads each page back against it: the same question —
/// does every byte hold what was stored? — and a sharper one, since the
/// C's period-256 pattern cannot tell two huge pages apart if they were
/// the same memory (docs/selftests.md).
pub(crate) fn huge_pages_write_read(t: &mut Text, region: &str, len: u64, page: u64, mismatch: Verdict) {
    let nr = len / page;
    for k in 0..nr {
        t.line(format_args!("P: write {} {} fill {:#04x}", at(region, k * page), sz(page), page_byte(k)));
    }
    for k in 0..nr {
        t.judged(format_args!("P: read {} {} expect fill {:#04x}", at(region, k * page), sz(page), page_byte(k)), mismatch.clone());
    }
}

/// The byte [`huge_pages_write_read`] stores in huge page `k`.
fn page_byte(k: u64) -> u8 {
    ((k + 1) % 256) as u8
}
