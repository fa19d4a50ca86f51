//! The hugetlb selftests (hugetlb-madvise, map_hugetlb, hugepage-mmap,
//! hugepage-mremap, hugepage-shm, hugetlb_fault_after_madv) as generated:
//! their plans, and that their checks judge as the C programs do.

use scenario::model::ModelBackend;
use scenario::RunOptions;
use suites::{Config, Outcome, SelfTest, Suite};

const HUGETLB_SUITES: [Suite; 6] = Suite::HUGETLB;

fn judge(t: &SelfTest) -> suites::Judged {
    let mut be = ModelBackend::new().with_self_check(true);
    suites::run(t, &mut be, &RunOptions::default()).unwrap_or_else(|e| panic!("{}: {e}", t.description)).0
}

#[test]
fn plans_follow_the_programs() {
    let cfg = Config::this_machine();
    let plans: Vec<usize> = HUGETLB_SUITES.iter().map(|s| suites::generate(*s, &cfg).len()).collect();
    assert_eq!(plans, [6, 1, 1, 1, 1, 1]);
    let madvise = suites::generate(Suite::HugetlbMadvise, &cfg);
    assert_eq!(madvise[3].description, "MADV_DONTNEED on private mapping of hugetlb file");
    // Every validate_free_pages() of the C program is one expectation.
    let checks: usize = madvise.iter().map(|t| t.scenario.lines().filter(|l| l.starts_with("expect hugetlb 2M free ==")).count()).sum();
    assert_eq!(checks, 25);
    let none = Config { default_hugetlb: 0, hugetlb_sizes: vec![], ..cfg };
    assert!(HUGETLB_SUITES.iter().all(|s| suites::generate(*s, &none).is_empty()), "no huge pages, no tests");
}

#[test]
fn every_test_passes_on_the_model_as_on_a_correct_6_18_kernel() {
    for s in HUGETLB_SUITES {
        for t in suites::generate(s, &Config::this_machine()) {
            let j = judge(&t);
            assert_eq!(j.outcome, Outcome::Pass, "{} {}: {:?}", s.name(), t.description, j.messages);
        }
    }
}

/// Without the hole punch the private copies stay allocated, and the C
/// program's check at line 252 says so.
#[test]
fn a_missing_punch_fails_where_the_c_program_does() {
    let mut t = suites::generate(Suite::HugetlbMadvise, &Config::this_machine()).remove(3);
    t.scenario = t.scenario.replace("P: fallocate F 20M punch_hole", "# (no punch)");
    let j = judge(&t);
    assert_eq!(j.outcome, Outcome::Fail);
    assert_eq!(j.messages, ["Unexpected number of free huge pages line 252"]);
}

/// Too small a pool: the programs' own skip reasons.
#[test]
fn a_short_pool_skips_with_the_programs_reason() {
    let cfg = Config::this_machine();
    let mut t = suites::generate(Suite::HugetlbMadvise, &cfg).remove(0);
    t.scenario = t.scenario.replace("hugetlb 2M pages=20", "hugetlb 2M pages=19");
    let j = judge(&t);
    assert_eq!((j.outcome, j.messages), (Outcome::Skip, vec!["Not enough free huge pages to test, exiting!".to_string()]));
    let mut t = suites::generate(Suite::HugetlbFaultAfterMadv, &cfg).remove(0);
    t.scenario = t.scenario.replace("hugetlb 2M pages=1", "hugetlb 2M pages=2");
    assert_eq!(judge(&t).outcome, Outcome::Skip, "exactly one free page or the program skips");
    let mut t = suites::generate(Suite::HugepageShm, &cfg).remove(0);
    t.scenario = t.scenario.replace("hugetlb 2M pages=128", "hugetlb 2M pages=127");
    let j = judge(&t);
    assert_eq!((j.outcome, j.messages), (Outcome::Fail, vec!["shmget: Cannot allocate memory".to_string()]), "shmget reserves it all");
}
