//! A livelocked selftest is a result: its KTAP line says TIMEOUT, as
//! kselftest's timeout would, and the run goes on to the next test.

use scenario::model::ModelBackend;
use scenario::RunOptions;
use suites::{ktap, Config, Outcome, Suite};

#[test]
fn a_livelocked_test_is_reported_as_a_timeout_and_the_run_continues() {
    let tests = suites::generate(Suite::Cow, &Config::this_machine());
    // Under the naive refcount rule the parent's write after the child's
    // unshare can neither reuse nor find a page: the fault retries forever.
    let opts = RunOptions {
        knobs: vec![("hugetlb_reuse".into(), "refcount_naive".into()), ("vmsplice".into(), "pin".into())],
        ..Default::default()
    };
    let picked: Vec<_> = tests.iter().filter(|t| t.number == 161 || t.number == 163).collect();
    assert_eq!(picked.len(), 2);
    let results: Vec<_> = picked
        .iter()
        .map(|t| {
            let mut be = ModelBackend::new();
            let (j, _) = suites::run(t, &mut be, &opts).expect("runs");
            (*t, j)
        })
        .collect();
    assert!(results[0].1.hung && results[0].1.outcome == Outcome::Fail);
    assert!(!results[1].1.hung);
    let out = ktap::render(Suite::Cow, &[], &results);
    assert!(out.contains("not ok 161 vmsplice() + unmap in child ... with hugetlb (2048 kB) # TIMEOUT\n"), "{out}");
    assert!(out.contains("# livelock at line 14: `P: write A 2M fill 0xff`"), "{out}");
    assert!(out.contains("\nok 163 "), "{out}");

    // Under 6.18's rule the same test is the known XFAIL, no timeout.
    let mut be = ModelBackend::new();
    let (j, _) = suites::run(picked[0], &mut be, &RunOptions::default()).expect("runs");
    assert_eq!((j.outcome, j.hung), (Outcome::Xfail, false));
}
