//! Scenario generators: the kernel's own selftest matrices
//! (`tools/testing/selftests/mm/cow.c` and `gup_longterm.c`) and its
//! hugetlb selftests (`hugetlb-madvise.c`, `map_hugetlb.c`,
//! `hugepage-mmap.c`, `hugepage-mremap.c`, `hugepage-shm.c`,
//! `hugetlb_fault_after_madv.c`), `mkdirty.c`, `madv_populate.c`,
//! `map_populate.c`, `map_fixed_noreplace.c` and `mremap_dontunmap.c`, test
//! by test,
//! in the selftests' order and with their descriptions, as scenario text.
//!
//! A generated [`SelfTest`] is an ordinary scenario plus a little metadata
//! saying how the selftest would judge each failed check: a setup check that
//! fails is a SKIP with the selftest's reason ("MADV_PAGEOUT did not work, is
//! swap enabled?"), a failed comparison is a FAIL — or an XFAIL where the
//! selftest marks it so. Because they are plain scenarios they run on any
//! backend, and `--emit-scenarios` writes them out for `cowlab run`.
//! docs/selftests.md is the reading of the kernel sources behind this.
//!
//! [`random`] generates the other kind: random scenarios for differential
//! fuzzing, written so that both the model and a kernel can run them.
// The rules' docs point at the private functions that carry them: they
// are read with `cargo doc --document-private-items`, where those links
// resolve.
#![allow(rustdoc::private_intra_doc_links)]
#![forbid(unsafe_code)]

mod builder;
pub mod cow;
pub mod gup_longterm;
pub mod hugepage_mremap;
pub mod hugepage_shm;
pub mod hugetlb_fault_after_madv;
pub mod hugetlb_madvise;
pub mod ktap;
pub mod madv_populate;
pub mod map_fixed_noreplace;
pub mod map_hugetlb;
pub mod map_populate;
pub mod mkdirty;
pub mod mremap_dontunmap;
pub mod random;
pub mod workloads;

use scenario::report::{Entry, Report, Status};
use serde::Serialize;
use std::fmt;
use std::sync::{Arc, OnceLock};

/// The kernel selftests, by the names of their binaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Suite {
    Cow,
    GupLongterm,
    HugetlbMadvise,
    MapHugetlb,
    HugepageMmap,
    HugepageMremap,
    HugepageShm,
    HugetlbFaultAfterMadv,
    Mkdirty,
    MadvPopulate,
    MapPopulate,
    MapFixedNoreplace,
    MremapDontunmap,
}

impl Suite {
    /// The hugetlb selftests (hugetlb-madvise.c, map_hugetlb.c,
    /// hugepage-mmap.c, hugepage-mremap.c, hugepage-shm.c,
    /// hugetlb_fault_after_madv.c).
    pub const HUGETLB: [Suite; 6] = [
        Suite::HugetlbMadvise,
        Suite::MapHugetlb,
        Suite::HugepageMmap,
        Suite::HugepageMremap,
        Suite::HugepageShm,
        Suite::HugetlbFaultAfterMadv,
    ];

    pub const ALL: [Suite; 13] = [
        Suite::Cow,
        Suite::GupLongterm,
        Suite::HugetlbMadvise,
        Suite::MapHugetlb,
        Suite::HugepageMmap,
        Suite::HugepageMremap,
        Suite::HugepageShm,
        Suite::HugetlbFaultAfterMadv,
        Suite::Mkdirty,
        Suite::MadvPopulate,
        Suite::MapPopulate,
        Suite::MapFixedNoreplace,
        Suite::MremapDontunmap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Suite::Cow => "cow",
            Suite::GupLongterm => "gup_longterm",
            Suite::HugetlbMadvise => "hugetlb-madvise",
            Suite::MapHugetlb => "map_hugetlb",
            Suite::HugepageMmap => "hugepage-mmap",
            Suite::HugepageMremap => "hugepage-mremap",
            Suite::HugepageShm => "hugepage-shm",
            Suite::HugetlbFaultAfterMadv => "hugetlb_fault_after_madv",
            Suite::Mkdirty => "mkdirty",
            Suite::MadvPopulate => "madv_populate",
            Suite::MapPopulate => "map_populate",
            Suite::MapFixedNoreplace => "map_fixed_noreplace",
            Suite::MremapDontunmap => "mremap_dontunmap",
        }
    }

    pub fn parse(s: &str) -> Option<Suite> {
        Suite::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// What the selftests detect on the machine they run on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// PMD size (0: no THP).
    pub pmd_size: u64,
    /// THP sizes with a per-size `enabled` file, ascending.
    pub thp_sizes: Vec<u64>,
    /// hugetlb page sizes, in /sys/kernel/mm/hugepages readdir order.
    pub hugetlb_sizes: Vec<u64>,
    /// The default huge page size (`Hugepagesize` of /proc/meminfo; 0:
    /// none), what the hugetlb selftests use.
    pub default_hugetlb: u64,
    /// Built with liburing (adds the io_uring cases).
    pub liburing: bool,
    /// `/tmp` is tmpfs (else a disk filesystem with dirty tracking).
    pub tmp_is_tmpfs: bool,
    /// The kernel tracks soft-dirty bits (CONFIG_MEM_SOFT_DIRTY: new
    /// VMAs show `sd` in /proc/PID/smaps, what `softdirty_supported()`
    /// looks for).
    pub soft_dirty: bool,
}

impl Config {
    /// This machine: 4 KiB pages, mTHP 16 KiB … 2 MiB, hugetlb 2 MiB and
    /// 1 GiB (2 MiB the default), liburing, `/tmp` on ext4, no
    /// CONFIG_MEM_SOFT_DIRTY.
    pub fn this_machine() -> Config {
        Config {
            pmd_size: 2 << 20,
            thp_sizes: (2..=9).map(|o| 4096u64 << o).collect(),
            hugetlb_sizes: vec![2 << 20, 1 << 30],
            default_hugetlb: 2 << 20,
            liburing: true,
            tmp_is_tmpfs: false,
            soft_dirty: false,
        }
    }
}

/// How a failed check is judged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "message", rename_all = "snake_case")]
pub enum Verdict {
    /// `ok N # SKIP <name>`, after `# <reason>`.
    Skip(String),
    /// `ok N # SKIP <reason>`: the raw skip some runners print instead of
    /// the name.
    RawSkip(String),
    /// `not ok N <name>`, after `# <message>` (if any).
    Fail(String),
    /// `ok N # XFAIL <name>`, after `# <message>`.
    Xfail(String),
}

/// One test of a selftest, as a scenario.
#[derive(Clone, Debug, Serialize)]
pub struct SelfTest {
    pub suite: Suite,
    /// The selftest's own test number (1-based).
    pub number: usize,
    /// The selftest's description, e.g. `vmsplice() + unmap in child ... with
    /// hugetlb (2048 kB)`.
    pub description: String,
    /// Scenario text.
    pub scenario: String,
    /// Line → verdict when a check on that line fails. A failing check on a
    /// line not listed is a plain FAIL.
    pub verdicts: Vec<(usize, Verdict)>,
    /// The same test with its gup_test pin replaced by a system call that
    /// pins with the same flags and whose observation is the same
    /// (docs/selftests.md §4.6), for a backend without gup_test.
    pub program_pins: Option<ProgramPins>,
}

/// A selftest's scenario with program-level pins instead of gup_test's,
/// written when first asked for: only a backend without gup_test (the
/// live kernel) and `--emit-scenarios` read it, and writing every one up
/// front added a quarter to the text a model run generates.
#[derive(Clone)]
pub struct ProgramPins {
    write: Arc<dyn Fn() -> Written + Send + Sync>,
    written: Arc<OnceLock<Written>>,
}

/// A scenario's text and its line → verdict list.
type Written = (String, Vec<(usize, Verdict)>);

impl ProgramPins {
    /// The variant `write` writes (once, when first read).
    pub(crate) fn new(write: impl Fn() -> Written + Send + Sync + 'static) -> ProgramPins {
        ProgramPins { write: Arc::new(write), written: Arc::new(OnceLock::new()) }
    }

    fn written(&self) -> &Written {
        self.written.get_or_init(|| (self.write)())
    }

    /// Scenario text.
    pub fn scenario(&self) -> &str {
        &self.written().0
    }

    /// Line → verdict, as [`SelfTest::verdicts`].
    pub fn verdicts(&self) -> &[(usize, Verdict)] {
        &self.written().1
    }
}

impl fmt::Debug for ProgramPins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProgramPins").field("scenario", &self.scenario()).field("verdicts", &self.verdicts()).finish()
    }
}

impl Serialize for ProgramPins {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("ProgramPins", 2)?;
        st.serialize_field("scenario", self.scenario())?;
        st.serialize_field("verdicts", self.verdicts())?;
        st.end()
    }
}

/// The outcome of one test, in kselftest's terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Xfail,
    Xpass,
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Xfail => "xfail",
            Outcome::Xpass => "xpass",
            Outcome::Skip => "skip",
        })
    }
}

/// A judged test: outcome, the `# …` lines before the result line, and
/// whether the result line carries the reason instead of the name.
#[derive(Clone, Debug, Serialize)]
pub struct Judged {
    pub outcome: Outcome,
    pub messages: Vec<String>,
    pub raw: Option<String>,
    /// The test livelocked: on a kernel it would hang until kselftest's
    /// timeout killed it (outcome `Fail`, KTAP `# TIMEOUT`).
    pub hung: bool,
}

/// Runs one test on a backend and judges it as the selftest would: a
/// backend without gup_test runs the program-level variant where there is
/// one.
pub fn run(test: &SelfTest, backend: &mut dyn scenario::Backend, opts: &scenario::RunOptions) -> Result<(Judged, Report), String> {
    let variant;
    let test = match backend.lacks(scenario::backend::Feature::Gup) {
        Some(_) if test.program_pins.is_some() => {
            variant = test.with_program_pins();
            &variant
        }
        _ => test,
    };
    let loaded = scenario::load(&test.file_name(), &test.scenario)
        .map_err(|(src, ds)| ds.iter().map(|d| d.render(&src)).collect::<Vec<_>>().join("\n"))?;
    let report = scenario::run_loaded(&loaded, backend, opts)
        .map_err(|ds| ds.iter().map(|d| d.render(&loaded.source)).collect::<Vec<_>>().join("\n"))?;
    Ok((test.judge(&report), report))
}

/// Generates a suite for a machine.
pub fn generate(suite: Suite, cfg: &Config) -> Vec<SelfTest> {
    match suite {
        Suite::Cow => cow::generate(cfg),
        Suite::GupLongterm => gup_longterm::generate(cfg),
        Suite::HugetlbMadvise => hugetlb_madvise::generate(cfg),
        Suite::MapHugetlb => map_hugetlb::generate_map_hugetlb(cfg),
        Suite::HugepageMmap => map_hugetlb::generate_hugepage_mmap(cfg),
        Suite::HugepageMremap => hugepage_mremap::generate(cfg),
        Suite::HugepageShm => hugepage_shm::generate(cfg),
        Suite::HugetlbFaultAfterMadv => hugetlb_fault_after_madv::generate(cfg),
        Suite::Mkdirty => mkdirty::generate(cfg),
        Suite::MadvPopulate => madv_populate::generate(cfg),
        Suite::MapPopulate => map_populate::generate(),
        Suite::MapFixedNoreplace => map_fixed_noreplace::generate(),
        Suite::MremapDontunmap => mremap_dontunmap::generate(),
    }
}

impl SelfTest {
    /// A file name for `--emit-scenarios`: `cow-0161-vmsplice-unmap-in-child-with-hugetlb-2048-kb.cow`.
    /// The description becomes a slug: letters and digits in lower case,
    /// every run of anything else one `-`, none at either end. Written in
    /// place (every run names its scenario with this).
    pub fn file_name(&self) -> String {
        use std::fmt::Write as _;
        let mut name = String::with_capacity(self.description.len() + 32);
        let _ = write!(name, "{}-{:04}-", self.suite.name(), self.number);
        let slug = name.len();
        // By bytes: a multi-byte character's bytes are none of them ASCII,
        // so they make one `-` as the character would.
        for c in self.description.bytes() {
            if c.is_ascii_alphanumeric() {
                name.push(char::from(c.to_ascii_lowercase()));
            } else if name.len() > slug && !name.ends_with('-') {
                name.push('-');
            }
        }
        if name.len() > slug && name.ends_with('-') {
            name.pop();
        }
        name.push_str(".cow");
        name
    }

    /// This test as a backend without gup_test runs it: its program-level
    /// variant, if it has one, as the scenario.
    pub fn with_program_pins(&self) -> SelfTest {
        match &self.program_pins {
            Some(p) => SelfTest { scenario: p.scenario().to_string(), verdicts: p.verdicts().to_vec(), program_pins: None, ..self.clone() },
            None => self.clone(),
        }
    }

    /// Judges a run of this test's scenario the way the selftest would.
    pub fn judge(&self, report: &Report) -> Judged {
        if report.status == Status::Skip {
            let why = report.skip_reason.clone().unwrap_or_default();
            // The scenario needs what the backend lacks: for pins that is
            // the selftests' gup_test.
            let reason = if why.contains("GUP") { "gup_test not available".to_string() } else { why };
            return Judged { outcome: Outcome::Skip, messages: vec![reason], raw: None, hung: false };
        }
        // A livelocked step hangs the test where it stands: no later
        // check would ever be reached.
        let livelocked = scenario::backend::Failure::Livelock.to_string();
        let livelock = report.entries.iter().find_map(|e| match e {
            Entry::Step(s) if s.result == livelocked => Some(s),
            _ => None,
        });
        let first_failed = report.checks().find(|c| c.status == Status::Fail);
        if let Some(s) = livelock.filter(|s| first_failed.is_none_or(|c| c.line >= s.line)) {
            return Judged {
                outcome: Outcome::Fail,
                messages: vec![format!(
                    "livelock at line {}: `{}` retries its fault forever on a kernel; kselftest's timeout ends the test",
                    s.line, s.text
                )],
                raw: None,
                hung: true,
            };
        }
        let Some(failed) = first_failed else {
            return Judged { outcome: Outcome::Pass, messages: vec![], raw: None, hung: false };
        };
        let verdict = self.verdicts.iter().find(|(l, _)| *l == failed.line).map(|(_, v)| v.clone());
        let detail = failed.detail.clone().unwrap_or_default();
        match verdict {
            Some(Verdict::Skip(m)) => Judged { outcome: Outcome::Skip, messages: vec![m], raw: None, hung: false },
            Some(Verdict::RawSkip(m)) => Judged { outcome: Outcome::Skip, messages: vec![], raw: Some(m), hung: false },
            Some(Verdict::Xfail(m)) => Judged { outcome: Outcome::Xfail, messages: vec![m], raw: None, hung: false },
            Some(Verdict::Fail(m)) => {
                Judged { outcome: Outcome::Fail, messages: [m].into_iter().filter(|m| !m.is_empty()).collect(), raw: None, hung: false }
            }
            None => Judged {
                outcome: Outcome::Fail,
                messages: vec![format!("line {}: {} — {detail}", failed.line, failed.text)],
                raw: None,
                hung: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(description: &str) -> String {
        let t = SelfTest {
            suite: Suite::Cow,
            number: 161,
            description: description.into(),
            scenario: String::new(),
            verdicts: vec![],
            program_pins: None,
        };
        t.file_name()
    }

    /// Letters and digits in lower case, every run of anything else one
    /// `-`, none at either end (a multi-byte character is one run).
    #[test]
    fn file_names_are_slugs_of_the_description() {
        assert_eq!(
            named("vmsplice() + unmap in child ... with hugetlb (2048 kB)"),
            "cow-0161-vmsplice-unmap-in-child-with-hugetlb-2048-kb.cow"
        );
        assert_eq!(named("  ...Leading, trailing!! "), "cow-0161-leading-trailing.cow");
        assert_eq!(named("a—b×c"), "cow-0161-a-b-c.cow");
        assert_eq!(named("ÄÖ"), "cow-0161-.cow");
        assert_eq!(named(""), "cow-0161-.cow");
        assert_eq!(named("MiXeD_Case42"), "cow-0161-mixed-case42.cow");
    }
}
