//! The kernel profiles in the race explorer: the profiles whose selftest
//! replays are identical differ in the GUP-fast races their releases left
//! open. Each race is found under the older profile and proved closed
//! under the newer one.

use explore::check::{explore, Options};
use explore::races::BuiltIn;
use mm::Policy;

/// Whether the explorer finds the built-in race `race` under `profile`.
fn race_found(race: &str, profile: &str) -> bool {
    let p = Policy::profile(profile).expect("a built-in profile");
    let r = explore(&BuiltIn::by_name(race).expect("a built-in race").build(p), Options::default());
    !r.ok()
}

#[test]
fn linux_5_9_races_fork_against_gup_fast_and_5_11_does_not() {
    // 57efa1fe5957 (write_protect_seq) came in 5.11.
    assert!(race_found("fork-vs-gup-fast", "linux-5.9"));
    assert!(!race_found("fork-vs-gup-fast", "linux-5.11"));
    assert!(!race_found("fork-vs-gup-fast", "linux-5.18"));
}

#[test]
fn linux_5_19_races_swapout_and_collapse_against_gup_fast_and_6_14_does_not() {
    // 088b8aa537c2 (6.0), 70cbc3cc78a9 (6.0) and 2ba99c5e0881 (6.1).
    for race in ["swapout-vs-gup-fast", "collapse-vs-gup-fast"] {
        assert!(race_found(race, "linux-5.19"), "{race}");
        assert!(!race_found(race, "linux-6.14"), "{race}");
        assert!(!race_found(race, "linux-6.18"), "{race}");
    }
}
