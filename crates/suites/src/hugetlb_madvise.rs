//! `tools/testing/selftests/mm/hugetlb-madvise.c` as scenarios
//! (docs/selftests.md, "hugetlb-madvise").
//!
//! The C program is one run that exits 0, 1 or KSFT_SKIP; its comments
//! divide it into sections, each of which leaves the pool as it found it.
//! Each section is one generated test here, with the C's checks in the
//! C's order: `validate_free_pages()` is an expectation on HugePages_Free
//! of the default huge page size whose failure prints the C's message with
//! the C's line number, and a madvise the C expects to fail may fail with
//! any errno, as `if (!ret)` judges.

use crate::builder::{at, sz, Text};
use crate::{Config, SelfTest, Suite, Verdict};

/// MIN_FREE_PAGES: fewer free pages and the C program skips.
const MIN_FREE: u64 = 20;
/// NR_HUGE_PAGES: the pages each section maps or allocates.
const NR: u64 = 10;
const BASE: u64 = 4096;
const SKIP: &str = "Not enough free huge pages to test, exiting!";

/// The sections, in the C's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    Validity,
    Alignment,
    AnonPrivate,
    FilePrivate,
    FileShared,
    SharedAndPrivate,
}

impl Section {
    const ALL: [Section; 6] =
        [Section::Validity, Section::Alignment, Section::AnonPrivate, Section::FilePrivate, Section::FileShared, Section::SharedAndPrivate];

    fn description(self) -> &'static str {
        match self {
            Section::Validity => "validity of MADV_DONTNEED addr and length arguments",
            Section::Alignment => "alignment of MADV_DONTNEED addr and length arguments",
            Section::AnonPrivate => "MADV_DONTNEED on anonymous private mapping",
            Section::FilePrivate => "MADV_DONTNEED on private mapping of hugetlb file",
            Section::FileShared => "MADV_DONTNEED and MADV_REMOVE on shared mapping of hugetlb file",
            Section::SharedAndPrivate => "MADV_REMOVE on shared and private mapping of hugetlb file",
        }
    }
}

/// The generator's state: the text and the page size.
struct Gen<'a> {
    t: &'a mut Text,
    h: u64,
}

impl Gen<'_> {
    /// `validate_free_pages(exp)` at C line `line`.
    fn free(&mut self, exp: u64, line: u32) {
        self.t.judged(
            format!("expect hugetlb {} free == {exp}", sz(self.h)),
            Verdict::Fail(format!("Unexpected number of free huge pages line {line}")),
        );
    }

    /// `write_fault_pages()`: stores the page index as an unsigned long at
    /// the start of each huge page.
    fn write_fault(&mut self, region: &str) {
        self.write_fault_at(region, 0);
    }

    /// `read_fault_pages()`: loads an unsigned long from each huge page.
    fn read_fault(&mut self, region: &str) {
        for i in 0..NR {
            self.t.line(format_args!("P: read {} 8", at(region, i * self.h)));
        }
    }

    /// A madvise the C requires to succeed (`perror("madvise"); exit(1)`).
    fn madvise(&mut self, range: String, advice: &str) {
        self.t.judged(format_args!("P: madvise {range} {advice}"), Verdict::Fail("madvise".into()));
    }

    /// A madvise the C requires to fail, with its message if it succeeds.
    fn madvise_fails(&mut self, range: String, message: &str) {
        self.t.judged(format_args!("P: madvise {range} dontneed expect one of EINVAL, ENOMEM, EFAULT"), Verdict::Fail(message.into()));
    }

    fn mmap(&mut self, name: &str, what: String) {
        self.t.judged(format_args!("P: {name} = mmap {} {what}", sz(NR * self.h)), Verdict::Fail("mmap".into()));
    }

    fn fallocate(&mut self, punch: bool) {
        let p = if punch { " punch_hole" } else { "" };
        self.t.judged(format_args!("P: fallocate F {}{p}", sz(NR * self.h)), Verdict::Fail("fallocate".into()));
    }

    fn section(&mut self, s: Section) {
        let (h, f) = (self.h, MIN_FREE);
        let all = sz(NR * h);
        let hs = sz(h);
        match s {
            Section::Validity => {
                // NR + 2 pages, the first and last unmapped again: nothing
                // is mapped just before or after the NR pages at A+h.
                self.t.judged(format_args!("P: A = mmap {} private anon hugetlb={hs}", sz((NR + 2) * h)), Verdict::Fail("mmap".into()));
                self.t.judged(format_args!("P: munmap A {hs}"), Verdict::Fail("munmap".into()));
                self.t.judged(format_args!("P: munmap A+{} {hs}", sz((NR + 1) * h)), Verdict::Fail("munmap".into()));
                self.write_fault_at("A", h);
                self.free(f - NR, 113);
                self.madvise_fails(format!("A+{:#x} {all}", h - BASE), "Unexpected success of madvise call with invalid addr line 120");
                self.madvise_fails(
                    format!("A+{hs} {:#x}", NR * h + BASE),
                    "Unexpected success of madvise call with invalid length line 129",
                );
                self.t.line(format_args!("P: munmap A+{hs} {all}"));
            }
            Section::Alignment => {
                self.mmap("B", format!("private anon hugetlb={hs}"));
                self.write_fault("B");
                self.free(f - NR, 147);
                self.madvise_fails(
                    format!("B+{} {:#x}", sz(BASE), NR * h - BASE),
                    "Unexpected success of madvise call with unaligned start address 155",
                );
                // The length is rounded down to whole huge pages.
                self.madvise(format!("B {:#x}", (NR - 1) * h + BASE), "dontneed");
                self.free(f - 1, 168);
                self.t.line("P: munmap B");
                self.free(f, 171);
            }
            Section::AnonPrivate => {
                self.mmap("C", format!("private anon hugetlb={hs}"));
                self.write_fault("C");
                self.free(f - NR, 185);
                self.madvise("C".into(), "dontneed");
                self.free(f, 193);
                self.t.line("P: munmap C");
            }
            Section::FilePrivate => {
                self.fallocate(false);
                self.free(f - NR, 204);
                self.mmap("D", "private file F".into());
                self.read_fault("D");
                self.free(f - NR, 216);
                self.madvise("D".into(), "dontneed");
                self.free(f - NR, 223);
                self.write_fault("D");
                self.free(f - 2 * NR, 227);
                self.madvise("D".into(), "dontneed");
                self.free(f - NR, 234);
                self.write_fault("D");
                self.free(f - 2 * NR, 238);
                // The punch frees the private copies too, as it always has.
                self.fallocate(true);
                self.free(f, 252);
                self.t.line("P: munmap D");
            }
            Section::FileShared => {
                self.fallocate(false);
                self.free(f - NR, 263);
                self.mmap("E", "shared file F".into());
                self.write_fault("E");
                self.free(f - NR, 275);
                self.madvise("E".into(), "dontneed");
                self.free(f - NR, 282);
                self.madvise("E".into(), "remove");
                self.free(f, 293);
                self.t.line("P: munmap E");
            }
            Section::SharedAndPrivate => {
                self.fallocate(false);
                self.free(f - NR, 303);
                self.mmap("G", "shared file F".into());
                self.write_fault("G");
                self.free(f - NR, 315);
                self.mmap("H", "private file F".into());
                self.read_fault("H");
                self.free(f - NR, 327);
                self.write_fault("H");
                self.free(f - 2 * NR, 331);
                self.madvise("G".into(), "dontneed");
                self.free(f - 2 * NR, 338);
                self.madvise("H".into(), "dontneed");
                self.free(f - NR, 345);
                self.write_fault("H");
                self.free(f - 2 * NR, 349);
                self.madvise("G".into(), "remove");
                self.free(f, 360);
                self.t.line("P: munmap G");
                self.t.line("P: munmap H");
            }
        }
    }

    /// `write_fault_pages()` at `region + off` (the first section's pages
    /// start one huge page into its mapping).
    fn write_fault_at(&mut self, region: &str, off: u64) {
        for i in 0..NR {
            let le: Vec<String> = i.to_le_bytes().iter().map(|b| format!("{b:02x}")).collect();
            self.t.line(format_args!("P: write {} bytes {}", at(region, off + i * self.h), le.join(" ")));
        }
    }
}

/// Generates hugetlb-madvise.c's sections as tests (none without a
/// default huge page size: the C program then exits 1 before any check).
pub fn generate(cfg: &Config) -> Vec<SelfTest> {
    let h = cfg.default_hugetlb;
    if h == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for s in Section::ALL {
        let desc = s.description().to_string();
        let mut t = Text::default();
        t.line(format_args!("# hugetlb-madvise.c: {desc}"));
        t.line("# Generated by `cowlab selftest` from tools/testing/selftests/mm/hugetlb-madvise.c.");
        t.judged(format_args!("hugetlb {} pages={MIN_FREE}", sz(h)), Verdict::Skip(SKIP.into()));
        t.line("task P");
        t.judged(format_args!("expect hugetlb {} free >= {MIN_FREE}", sz(h)), Verdict::Skip(SKIP.into()));
        // The C program's memfd_create(argv[0], MFD_HUGETLB), opened
        // before the first section; the file sections find it empty.
        t.judged(format_args!("P: F = memfd 0 hugetlb={} sparse", sz(h)), Verdict::Fail("memfd_create() failed".into()));
        Gen { t: &mut t, h }.section(s);
        t.line("P: close F");
        let (scenario, verdicts) = t.finish();
        out.push(SelfTest {
            suite: Suite::HugetlbMadvise,
            number: out.len() + 1,
            description: desc,
            scenario,
            verdicts,
            program_pins: None,
        });
    }
    out
}
