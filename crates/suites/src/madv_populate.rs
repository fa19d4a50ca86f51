//! `tools/testing/selftests/mm/madv_populate.c` as scenarios
//! (docs/selftests.md, "madv_populate.c").
//!
//! The C test runs its functions one after another in one process, each
//! function several numbered checks on one 2 MiB private anonymous
//! mapping. Here each check is a scenario of its own: the function's steps
//! up to that check, the earlier checks' calls made with `expect any` (in
//! the C test a failed check does not stop the function), then the check.

use crate::builder::Text;
use crate::{Config, SelfTest, Suite, Verdict};

/// One function of the C test: its name and its numbered checks.
struct Function {
    name: &'static str,
    /// Set-up lines before the first check (after `task P`).
    setup: &'static [&'static str],
    /// (description, the step or expectation the check judges, and for a
    /// call the same call without judging it, as later checks replay it).
    checks: &'static [(&'static str, &'static str, Option<&'static str>)],
}

const SIZE_MAP_RW: &str = "P: A = mmap 2M private anon rw";

const FUNCTIONS: &[Function] = &[
    Function {
        name: "test_prot_read",
        setup: &["P: A = mmap 2M private anon r"],
        checks: &[
            ("MADV_POPULATE_READ with PROT_READ", "P: madvise A populate_read", Some("P: madvise A populate_read expect any")),
            ("MADV_POPULATE_WRITE with PROT_READ", "P: madvise A populate_write expect EINVAL", None),
        ],
    },
    Function {
        name: "test_prot_write",
        setup: &["P: A = mmap 2M private anon w"],
        checks: &[
            (
                "MADV_POPULATE_READ with PROT_WRITE",
                "P: madvise A populate_read expect EINVAL",
                Some("P: madvise A populate_read expect any"),
            ),
            ("MADV_POPULATE_WRITE with PROT_WRITE", "P: madvise A populate_write", None),
        ],
    },
    Function {
        name: "test_holes",
        setup: &[SIZE_MAP_RW, "P: munmap A+4K 4K"],
        checks: &[
            (
                "MADV_POPULATE_READ with holes in the middle",
                "P: madvise A populate_read expect ENOMEM",
                Some("P: madvise A populate_read expect any"),
            ),
            (
                "MADV_POPULATE_WRITE with holes in the middle",
                "P: madvise A populate_write expect ENOMEM",
                Some("P: madvise A populate_write expect any"),
            ),
            (
                "MADV_POPULATE_READ with holes at the end",
                "P: madvise A 8K populate_read expect ENOMEM",
                Some("P: madvise A 8K populate_read expect any"),
            ),
            (
                "MADV_POPULATE_WRITE with holes at the end",
                "P: madvise A 8K populate_write expect ENOMEM",
                Some("P: madvise A 8K populate_write expect any"),
            ),
            (
                "MADV_POPULATE_READ with holes at the beginning",
                "P: madvise A+4K 4K populate_read expect ENOMEM",
                Some("P: madvise A+4K 4K populate_read expect any"),
            ),
            ("MADV_POPULATE_WRITE with holes at the beginning", "P: madvise A+4K 4K populate_write expect ENOMEM", None),
        ],
    },
    Function {
        name: "test_populate_read",
        setup: &[SIZE_MAP_RW],
        checks: &[
            ("read range initially not populated", "expect A..A+2M in P not present", None),
            ("MADV_POPULATE_READ", "P: madvise A populate_read", Some("P: madvise A populate_read expect any")),
            ("read range is populated", "expect A..A+2M in P present", None),
        ],
    },
    Function {
        name: "test_populate_write",
        setup: &[SIZE_MAP_RW],
        checks: &[
            ("write range initially not populated", "expect A..A+2M in P not present", None),
            ("MADV_POPULATE_WRITE", "P: madvise A populate_write", Some("P: madvise A populate_write expect any")),
            ("write range is populated", "expect A..A+2M in P present", None),
        ],
    },
    Function {
        name: "test_softdirty",
        setup: &[SIZE_MAP_RW, "P: clear_soft_dirty"],
        checks: &[
            ("cleared range is not softdirty", "expect A..A+2M in P not soft_dirty", None),
            ("softdirty MADV_POPULATE_READ", "P: madvise A populate_read", Some("P: madvise A populate_read expect any")),
            ("range is not softdirty after MADV_POPULATE_READ", "expect A..A+2M in P not soft_dirty", None),
            ("softdirty MADV_POPULATE_WRITE", "P: madvise A populate_write", Some("P: madvise A populate_write expect any")),
            // The C test's description ends in a space.
            ("range is softdirty after MADV_POPULATE_WRITE ", "expect A..A+2M in P soft_dirty", None),
        ],
    },
];

/// Generates madv_populate.c's tests in its order: 16, and 5 more where
/// the kernel tracks soft-dirty bits (`softdirty_supported()`).
pub fn generate(cfg: &Config) -> Vec<SelfTest> {
    let mut out = Vec::new();
    for f in FUNCTIONS.iter().filter(|f| f.name != "test_softdirty" || cfg.soft_dirty) {
        for (k, (desc, check, _)) in f.checks.iter().enumerate() {
            let mut t = Text::default();
            // The line the function prints first (the KTAP renderer reads it).
            t.line(format_args!("# [RUN] {}", f.name));
            t.line("# Generated by `cowlab selftest` from tools/testing/selftests/mm/madv_populate.c.");
            t.line("task P");
            for s in f.setup {
                t.line(*s);
            }
            for (_, _, replay) in &f.checks[..k] {
                if let Some(r) = replay {
                    t.line(*r);
                }
            }
            t.judged(*check, Verdict::Fail(String::new()));
            let (scenario, verdicts) = t.finish();
            out.push(SelfTest {
                suite: Suite::MadvPopulate,
                number: out.len() + 1,
                description: desc.to_string(),
                scenario,
                verdicts,
                program_pins: None,
            });
        }
    }
    out
}
