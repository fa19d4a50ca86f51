//! `race { }` blocks in scenario files: the setup runs, each operation of
//! the block races, the expectations after it are judged at the end of
//! every interleaving.

use explore::check::{explore, Options, Report};
use scenario::RunOptions;

const SETUP: &str = "task P\nP: A = mmap 8K\nP: write A fill 0x11\nrace {\nP: fork C\nP: h = pin_user_pages_fast A 8K FOLL_WRITE\n}\n";

fn run(text: &str, knobs: &[(&str, &str)]) -> Report {
    let l = scenario::load("race.cow", text).unwrap_or_else(|(src, d)| panic!("{}", d.iter().map(|d| d.render(&src)).collect::<String>()));
    let opts = RunOptions { knobs: knobs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Default::default() };
    explore(&explore::file::race_of(&l, &opts).unwrap(), Options::default())
}

#[test]
fn expectations_hold_in_every_interleaving_with_the_checks_on() {
    let r = run(&format!("{SETUP}expect A in P anon_exclusive\nexpect A in C anon_exclusive in some interleaving\n"), &[]);
    assert!(r.ok(), "{:?}", r.counterexample);
    assert_eq!(r.some_interleaving, Some(true));
    assert!(r.unique_states > 100);
}

#[test]
fn the_file_finds_the_fork_race_without_write_protect_seq() {
    let r = run(&format!("{SETUP}expect A in P anon_exclusive\n"), &[("gup_fast_seqcount", "off")]);
    let c = r.counterexample.expect("the race");
    assert_eq!((c.property.as_str(), c.steps.len()), ("pin-exclusive", 11));
}

#[test]
fn an_expectation_broken_in_one_interleaving_is_a_counterexample() {
    // When GUP-fast pins first, fork copies the pinned page for the child,
    // whose copy is exclusive; when fork goes first, the child keeps the
    // shared original, which is not.
    let r = run(&format!("{SETUP}expect A in C anon_exclusive\n"), &[]);
    let c = r.counterexample.expect("an interleaving where C's page is shared");
    assert_eq!(c.property, "expect[0]");
    assert!(c.message.contains("anon_exclusive"), "{}", c.message);
}

#[test]
fn an_existential_expectation_no_interleaving_meets_fails() {
    let r = run(&format!("{SETUP}expect A in P not present in some interleaving\n"), &[]);
    assert_eq!(r.some_interleaving, Some(false));
    assert!(!r.ok());
}

/// hugetlb_fault_after_madv.c: every interleaving of a store and
/// MADV_DONTNEED of P's only huge page. 6.18 frees the zapped page before
/// it lets the fault in, so no store ends in SIGBUS and a store after the
/// zap faults a page in again; with the old order (the VMA lock dropped
/// before the free) the fault in between finds the pool empty.
#[test]
fn hugetlb_fault_after_dontneed_never_sigbuses_in_6_18() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/race-hugetlb-fault-vs-dontneed.cow")).unwrap();
    let r = run(&text, &[]);
    assert!(r.ok(), "{:?}", r.counterexample);
    assert_eq!(r.some_interleaving, Some(true));
    let r = run(&text, &[("hugetlb_zap_free_first", "off")]);
    let c = r.counterexample.expect("the window between the zap's unlock and its free");
    assert_eq!(c.property, "expect[0]");
    assert!(c.message.contains("killed by SIGBUS"), "{}", c.message);
}
