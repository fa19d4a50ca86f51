//! What a run produced, and its two renderings: a trace an mm developer can
//! follow, and JSON with stable field names (one document per scenario).

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Fail,
    Skip,
    /// A scenario marked `xfail` that failed, as expected (a whole
    /// scenario's status only, never a check's).
    Xfail,
    /// A scenario marked `xfail` that passed (a whole scenario's status
    /// only).
    Xpass,
}

impl Status {
    pub fn mark(self) -> &'static str {
        match self {
            Status::Pass | Status::Xpass => "✓",
            Status::Fail | Status::Xfail => "✗",
            Status::Skip => "-",
        }
    }

    /// A scenario's result as the trace's last line says it.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
            Status::Xfail => "XFAIL",
            Status::Xpass => "XPASS",
        }
    }

    /// Whether a scenario with this status fails a run (exit 1): a failed
    /// expectation, or an XPASS (as kselftest's `ksft_finished()` counts it).
    pub fn fails_run(self) -> bool {
        matches!(self, Status::Fail | Status::Xpass)
    }
}

/// One judged expectation (inline or standalone).
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub line: usize,
    pub column: usize,
    pub text: String,
    pub status: Status,
    /// What was observed (always for failures, often for passes).
    pub detail: Option<String>,
}

/// One executed operation.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    pub step: usize,
    pub line: usize,
    pub task: String,
    pub text: String,
    /// "ok", "ok, 0x7f…", "SIGBUS", "EINVAL", "not run".
    pub result: String,
    /// What the kernel did, one decision per line.
    pub kernel: Vec<String>,
    /// Counter changes of the pages the step touched.
    pub deltas: Vec<String>,
    pub checks: Vec<Check>,
    /// The whole state after the step, when the backend was asked for it
    /// (`ModelBackend::with_state_views`): what `cowlab run --html` draws.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<mm::view::StateView>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    Setting { line: usize, text: String, error: Option<String> },
    Task { line: usize, text: String, task: String },
    Step(StepReport),
    Expect(Check),
}

#[derive(Clone, Debug, Serialize)]
pub struct KnobSetting {
    pub knob: String,
    pub value: String,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// The version of the JSON trace ([`Report::to_json`]); docs/trace-format.md
/// describes it. Bumped when a field changes meaning or goes away.
pub const TRACE_VERSION: u32 = 1;

/// The result of running one scenario file.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// [`TRACE_VERSION`] (serialised first, so readers can check it).
    pub trace_version: u32,
    pub file: String,
    pub backend: String,
    pub profile: String,
    pub knobs: Vec<KnobSetting>,
    /// pass: every expectation held; fail: one did not; skip: the backend
    /// cannot run this scenario (see `skip_reason`); for a scenario marked
    /// `xfail`, xfail instead of fail and xpass instead of pass.
    pub status: Status,
    pub skip_reason: Option<String>,
    /// The reason of the scenario's `xfail` marker, if it has one.
    pub xfail: Option<String>,
    pub entries: Vec<Entry>,
    pub summary: Summary,
    /// The scenario's name of each backend task id (the model's pid).
    pub task_names: std::collections::BTreeMap<u32, String>,
}

impl Report {
    /// All checks, in order (borrowed where they lie: the runner and the
    /// selftest judge walk them for every test).
    pub fn checks(&self) -> impl Iterator<Item = &Check> {
        self.entries.iter().flat_map(|e| {
            let (of_step, expect): (&[Check], _) = match e {
                Entry::Step(s) => (&s.checks, None),
                Entry::Expect(c) => (&[], Some(c)),
                _ => (&[], None),
            };
            of_step.iter().chain(expect)
        })
    }

    /// Computes the summary and the overall status.
    pub fn finish(&mut self) {
        let mut s = Summary::default();
        for c in self.checks() {
            match c.status {
                Status::Pass | Status::Xpass => s.passed += 1,
                Status::Fail | Status::Xfail => s.failed += 1,
                Status::Skip => s.skipped += 1,
            }
        }
        self.status = match (s.failed > 0, self.xfail.is_some()) {
            (true, false) => Status::Fail,
            (true, true) => Status::Xfail,
            (false, false) => Status::Pass,
            (false, true) => Status::Xpass,
        };
        self.summary = s;
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The human trace. `quiet`: only failures and the result line.
    pub fn render(&self, quiet: bool) -> String {
        let mut out = self.render_head(quiet);
        for e in &self.entries {
            out.push_str(&self.render_entry(e, quiet));
        }
        out.push_str(&self.render_tail());
        out
    }

    /// The trace's first lines: file, backend, profile, knobs, the xfail
    /// marker. Known before the first step runs, so a streaming caller
    /// prints it first.
    pub fn render_head(&self, quiet: bool) -> String {
        if quiet {
            return String::new();
        }
        let knobs = if self.knobs.is_empty() {
            String::new()
        } else {
            let k: Vec<String> = self.knobs.iter().map(|k| format!("{}={}", k.knob, k.value)).collect();
            format!(", {}", k.join(" "))
        };
        let mut out = format!("== {} ({} backend, {}{knobs})\n", self.file, self.backend, self.profile);
        if let Some(r) = &self.xfail {
            out.push_str(&format!("    xfail: expected to fail ({r})\n"));
        }
        out
    }

    fn check_line(&self, c: &Check, indent: &str) -> String {
        let mut s = format!("{indent}{} {}", c.status.mark(), c.text);
        if let Some(d) = &c.detail {
            s.push_str(&format!("  — {d}"));
        }
        if c.status == Status::Fail {
            s.push_str(&format!("  ({}:{}:{})", self.file, c.line, c.column));
        }
        s.push('\n');
        s
    }

    /// The lines of one entry; an entry never changes once the run has
    /// added it, so a streaming caller prints each as it comes.
    pub fn render_entry(&self, e: &Entry, quiet: bool) -> String {
        let mut out = String::new();
        match e {
            Entry::Setting { text, error, .. } => {
                if !quiet {
                    out.push_str(&format!("    {text}\n"));
                    if let Some(e) = error {
                        out.push_str(&format!("        refused: {e}\n"));
                    }
                }
            }
            Entry::Task { text, .. } => {
                if !quiet {
                    out.push_str(&format!("    {text}\n"));
                }
            }
            Entry::Step(s) => {
                if quiet {
                    for c in s.checks.iter().filter(|c| c.status == Status::Fail) {
                        out.push_str(&format!("[{}] {}\n", s.step, s.text));
                        out.push_str(&self.check_line(c, "      "));
                    }
                    return out;
                }
                let head = format!("[{}] {}", s.step, s.text);
                out.push_str(&format!("{head:<48} → {}\n", s.result));
                for k in &s.kernel {
                    out.push_str(&format!("      {k}\n"));
                }
                for d in &s.deltas {
                    out.push_str(&format!("      Δ {d}\n"));
                }
                for c in &s.checks {
                    out.push_str(&self.check_line(c, "      "));
                }
            }
            Entry::Expect(c) => {
                if !quiet || c.status == Status::Fail {
                    out.push_str(&self.check_line(c, "    "));
                }
            }
        }
        out
    }

    /// The result line, once the run is over.
    pub fn render_tail(&self) -> String {
        let s = &self.summary;
        let counts = format!("{} passed, {} failed, {} skipped", s.passed, s.failed, s.skipped);
        let reason = self.xfail.as_deref().unwrap_or("");
        match self.status {
            Status::Skip => format!("SKIP {}: {}\n", self.file, self.skip_reason.as_deref().unwrap_or("")),
            Status::Pass | Status::Fail => format!("{} {}: {counts}\n", self.status.word(), self.file),
            Status::Xfail => format!("XFAIL {}: {reason}: {counts}\n", self.file),
            Status::Xpass => format!("XPASS {}: marked xfail ({reason}) but every expectation held: {counts}\n", self.file),
        }
    }
}
