//! `race { }` blocks in scenario files: the setup runs, each operation of
//! the block races, the expectations after it are judged at the end of
//! every interleaving.

use explore::check::{explore, Options, Report};
use scenario::RunOptions;

const SETUP: &str = "task P\nP: A = mmap 8K\nP: write A fill 0x11\nrace {\nP: fork C\nP: h = pin_user_pages_fast A 8K FOLL_WRITE\n}\n";

fn run(text: &str, knobs: &[(&str, &str)]) -> Report {
    let l = scenario::load("race.cow", text).unwrap_or_else(|(src, d)| panic!("{}", d.iter().map(|d| d.render(&src)).collect::<String>()));
    let opts = RunOptions { profile: None, knobs: knobs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() };
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
