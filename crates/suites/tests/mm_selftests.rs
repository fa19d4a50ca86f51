//! mkdirty.c, madv_populate.c, map_populate.c, map_fixed_noreplace.c and
//! mremap_dontunmap.c as generated: their plans, descriptions and KTAP
//! lines as the C sources print them (docs/selftests.md), and the model's
//! verdict on every test, invariants checked after every step.

use scenario::model::ModelBackend;
use scenario::RunOptions;
use suites::{ktap, Config, Judged, Outcome, SelfTest, Suite};

const SUITES: [Suite; 5] = [Suite::Mkdirty, Suite::MadvPopulate, Suite::MapPopulate, Suite::MapFixedNoreplace, Suite::MremapDontunmap];

fn run(t: &SelfTest) -> Judged {
    let mut be = ModelBackend::new().with_self_check(true);
    let (j, report) = suites::run(t, &mut be, &RunOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", t.description));
    assert!(report.checks().all(|c| c.text != "model invariants"), "{}: {}", t.description, report.render(false));
    j
}

#[test]
fn plans_follow_the_c_tests() {
    let cfg = Config::this_machine();
    let n = |s| suites::generate(s, &cfg).len();
    // mkdirty: 2 + 3 with a PMD size + 1 with userfaultfd.
    assert_eq!(n(Suite::Mkdirty), 6);
    // madv_populate: 16, and 5 soft-dirty tests only with CONFIG_MEM_SOFT_DIRTY.
    assert_eq!(n(Suite::MadvPopulate), 16);
    assert_eq!(n(Suite::MapPopulate), 2);
    assert_eq!(n(Suite::MapFixedNoreplace), 9);
    assert_eq!(n(Suite::MremapDontunmap), 5);
    assert_eq!(suites::generate(Suite::MadvPopulate, &Config { soft_dirty: true, ..cfg.clone() }).len(), 21);
    assert_eq!(suites::generate(Suite::Mkdirty, &Config { pmd_size: 0, ..cfg }).len(), 3);
    for s in SUITES {
        for (i, t) in suites::generate(s, &Config::this_machine()).iter().enumerate() {
            assert_eq!(t.number, i + 1, "{}", s.name());
        }
    }
}

#[test]
fn descriptions_are_the_c_tests_own() {
    let cfg = Config { soft_dirty: true, ..Config::this_machine() };
    let d = |s, n: usize| suites::generate(s, &cfg)[n - 1].description.clone();
    assert!(suites::generate(Suite::Mkdirty, &cfg).iter().all(|t| t.description == "SIGSEGV generated, page not modified"));
    assert_eq!(d(Suite::MadvPopulate, 2), "MADV_POPULATE_WRITE with PROT_READ");
    assert_eq!(d(Suite::MadvPopulate, 9), "MADV_POPULATE_READ with holes at the beginning");
    assert_eq!(d(Suite::MadvPopulate, 16), "write range is populated");
    assert_eq!(d(Suite::MadvPopulate, 21), "range is softdirty after MADV_POPULATE_WRITE ");
    assert_eq!(d(Suite::MapPopulate, 1), "MAP_POPULATE COW private page");
    assert_eq!(d(Suite::MapFixedNoreplace, 5), "mmap() 2*PAGE_SIZE  at base+(3*PAGE_SIZE)");
    assert_eq!(d(Suite::MapFixedNoreplace, 9), "Base Address unmap() successful");
    assert_eq!(d(Suite::MremapDontunmap, 5), "mremap_dontunmap_partial_mapping_overwrite");
}

#[test]
fn ktap_prints_the_info_and_run_lines_the_c_tests_print() {
    let cfg = Config::this_machine();
    let tests = suites::generate(Suite::Mkdirty, &cfg);
    let results: Vec<_> = tests.iter().map(|t| (t, run(t))).collect();
    let out = ktap::render(Suite::Mkdirty, &ktap::preamble(Suite::Mkdirty, &cfg), &results);
    let want = "# [INFO] detected THP size: 2048 KiB\nTAP version 13\n1..6\n\
        # [INFO] PTRACE write access\nok 1 SIGSEGV generated, page not modified\n\
        # [INFO] PTRACE write access to THP\nok 2 SIGSEGV generated, page not modified\n\
        # [INFO] Page migration\nok 3 SIGSEGV generated, page not modified\n\
        # [INFO] Page migration of THP\nok 4 SIGSEGV generated, page not modified\n\
        # [INFO] PTE-mapping a THP\nok 5 SIGSEGV generated, page not modified\n\
        # [INFO] UFFDIO_COPY\nok 6 SIGSEGV generated, page not modified\n\
        # Totals: pass:6 fail:0 xfail:0 xpass:0 skip:0 error:0\n";
    assert_eq!(out, want);
    let tests = suites::generate(Suite::MadvPopulate, &cfg);
    let results: Vec<_> = tests.iter().map(|t| (t, run(t))).collect();
    let out = ktap::render(Suite::MadvPopulate, &ktap::preamble(Suite::MadvPopulate, &cfg), &results);
    assert!(out.starts_with("TAP version 13\n1..16\n# [RUN] test_prot_read\nok 1 MADV_POPULATE_READ with PROT_READ\n"), "{out}");
    assert!(out.contains("ok 4 MADV_POPULATE_WRITE with PROT_WRITE\n# [RUN] test_holes\nok 5 "), "{out}");
    assert_eq!(out.matches("# [RUN] ").count(), 5, "{out}");
    // The summary groups by those lines.
    let sum = ktap::summary(Suite::MadvPopulate, &results);
    assert!(sum.lines().any(|l| l.starts_with("[RUN] test_holes") && l.split_whitespace().nth(2) == Some("6")), "{sum}");
}

/// On a correct 6.18 kernel every test of these five passes, the soft-dirty
/// tests included where the kernel tracks soft-dirty bits.
#[test]
fn every_test_passes_on_the_model() {
    let cfg = Config { soft_dirty: true, ..Config::this_machine() };
    for s in SUITES {
        for t in suites::generate(s, &cfg) {
            let j = run(&t);
            assert_eq!(j.outcome, Outcome::Pass, "{} {} {}: {:?}", s.name(), t.number, t.description, j.messages);
        }
    }
}

/// The checks can fail: a scenario whose write through /proc/self/mem did
/// not leave the page read-only, or whose DONTUNMAP source were unmapped,
/// is judged FAIL with the C test's message.
#[test]
fn a_broken_step_is_judged_with_the_c_tests_message() {
    let cfg = Config::this_machine();
    let mut t = suites::generate(Suite::Mkdirty, &cfg).remove(0);
    // The same test in a writable mapping: the store succeeds.
    t.scenario = t.scenario.replace("mmap 4K private anon r", "mmap 4K private anon rw");
    let j = run(&t);
    assert_eq!(j.outcome, Outcome::Fail);
    assert!(j.messages[0].contains("expect SIGSEGV"), "{:?}", j.messages);
    let mut t = suites::generate(Suite::MremapDontunmap, &cfg).remove(0);
    t.scenario = t.scenario.replace(" dontunmap", "");
    let j = run(&t);
    assert_eq!((j.outcome, j.messages.as_slice()), (Outcome::Fail, &["source should have no ptes".to_string()][..]));
}
