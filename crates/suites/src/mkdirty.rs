//! `tools/testing/selftests/mm/mkdirty.c` as scenarios (docs/selftests.md, "mkdirty.c").
//!
//! Every test places or dirties a page in a read-only private VMA by one of
//! the kernel paths that may set the entry dirty — a FOLL_FORCE write
//! through `/proc/self/mem`, page migration, PTE-mapping a THP,
//! UFFDIO_COPY — and then checks that a store by the task itself still
//! takes SIGSEGV: marking an entry dirty must never make it writable. The
//! C test catches the SIGSEGV and compares the byte; a scenario task dies
//! of it, and a store that faults has changed nothing, so the signal is
//! the whole verdict.

use crate::builder::{sz, Text};
use crate::{Config, SelfTest, Suite, Verdict};

const PAGE: u64 = 4096;
/// Every test's result line.
pub const DESCRIPTION: &str = "SIGSEGV generated, page not modified";
const NO_THP: &str = "Did not get a THP populated";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    PtraceWrite,
    PtraceWriteThp,
    PageMigration,
    PageMigrationThp,
    PteMappedThp,
    UffdioCopy,
}

impl Case {
    /// The `# [INFO] …` line the test prints before anything else.
    fn info(self) -> &'static str {
        match self {
            Case::PtraceWrite => "[INFO] PTRACE write access",
            Case::PtraceWriteThp => "[INFO] PTRACE write access to THP",
            Case::PageMigration => "[INFO] Page migration",
            Case::PageMigrationThp => "[INFO] Page migration of THP",
            Case::PteMappedThp => "[INFO] PTE-mapping a THP",
            Case::UffdioCopy => "[INFO] UFFDIO_COPY",
        }
    }
}

/// The tests `main()` runs, in order: the THP ones only with a PMD size.
fn cases(cfg: &Config) -> Vec<Case> {
    let thp = cfg.pmd_size != 0;
    let mut v = vec![Case::PtraceWrite];
    if thp {
        v.push(Case::PtraceWriteThp);
    }
    v.push(Case::PageMigration);
    if thp {
        v.extend([Case::PageMigrationThp, Case::PteMappedThp]);
    }
    v.push(Case::UffdioCopy);
    v
}

/// `mmap_thp_range()`: a THP-aligned range of the PMD size with
/// MADV_HUGEPAGE (the C test maps twice the size and uses the aligned
/// half; `align=` leaves the same aligned range).
fn thp_range(t: &mut Text, cfg: &Config, prot: &str) {
    let p = sz(cfg.pmd_size);
    t.line(format_args!("P: A = mmap {p} private anon {prot} align={p}"));
    t.judged("P: madvise A hugepage", Verdict::RawSkip("MADV_HUGEPAGE failed".into()));
}

fn thp_populated(t: &mut Text, cfg: &Config) {
    t.judged(format_args!("expect A+{} in P present", sz(cfg.pmd_size - PAGE)), Verdict::RawSkip(NO_THP.into()));
}

fn body(t: &mut Text, cfg: &Config, case: Case) {
    let write_failed = || Verdict::Fail("write() failed".into());
    t.line("task P");
    match case {
        Case::PtraceWrite => {
            t.line("P: A = mmap 4K private anon r");
            // The read maps the shared zero page.
            t.judged("P: read A 1 expect fill 0x00", Verdict::Fail("Memory not zero".into()));
            t.judged("P: proc_mem_write P A 1 fill 0x01 expect count 1", write_failed());
            t.judged("P: read A 1 expect fill 0x01", write_failed());
        }
        Case::PtraceWriteThp => {
            thp_range(t, cfg, "r");
            t.judged("P: proc_mem_write P A 1 fill 0x01 expect count 1", write_failed());
            t.judged("P: read A 1 expect fill 0x01", write_failed());
            thp_populated(t, cfg);
        }
        Case::PageMigration => {
            t.line("P: A = mmap 4K private anon");
            t.line("P: write A fill 0x01");
            t.judged("P: mprotect A r", Verdict::Fail("mprotect() failed".into()));
            t.judged("P: mbind A local move", Verdict::RawSkip("mbind() failed".into()));
        }
        Case::PageMigrationThp | Case::PteMappedThp => {
            thp_range(t, cfg, "rw");
            t.line("P: write A 4K fill 0x01");
            t.judged("P: mprotect A r", Verdict::Fail("mprotect() failed".into()));
            thp_populated(t, cfg);
            if case == Case::PageMigrationThp {
                t.judged("P: mbind A local move", Verdict::RawSkip("mbind() failed".into()));
            } else {
                // mprotect() of the last subpage splits the PMD.
                t.judged(format_args!("P: mprotect A+{} 4K rw", sz(cfg.pmd_size - PAGE)), Verdict::Fail("mprotect() failed".into()));
            }
        }
        Case::UffdioCopy => {
            t.line("P: A = mmap 4K private anon r");
            t.judged("P: uffdio_copy A fill 0x01", Verdict::Fail("UFFDIO_COPY failed".into()));
        }
    }
    // do_test_write_sigsegv(): the store must fault.
    t.line("P: write A 1 fill 0x02 expect SIGSEGV");
}

/// Generates mkdirty.c's tests in its order.
pub fn generate(cfg: &Config) -> Vec<SelfTest> {
    cases(cfg)
        .into_iter()
        .enumerate()
        .map(|(i, case)| {
            let mut t = Text::default();
            // The line the test prints first (the KTAP renderer reads it).
            t.line(format_args!("# {}", case.info()));
            t.line("# Generated by `cowlab selftest` from tools/testing/selftests/mm/mkdirty.c.");
            body(&mut t, cfg, case);
            let (scenario, verdicts) = t.finish();
            SelfTest { suite: Suite::Mkdirty, number: i + 1, description: DESCRIPTION.into(), scenario, verdicts, program_pins: None }
        })
        .collect()
}
