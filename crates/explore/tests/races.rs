//! The built-in races: with each historical check off the explorer finds
//! its race (property and length of the shortest interleaving); with every
//! check on it exhausts the interleavings and finds nothing.

use explore::check::{explore, merge, Options, Report};
use explore::races::BuiltIn;
use mm::Policy;

fn run(race: &str, off: &[&str], opts: Options) -> Report {
    let mut p = Policy::default();
    for k in off {
        p.set(k, "off").unwrap();
    }
    explore(&BuiltIn::by_name(race).unwrap().build(p), opts)
}

fn violation(race: &str, off: &[&str]) -> (String, usize) {
    let r = run(race, off, Options::default());
    let c = r.counterexample.unwrap_or_else(|| panic!("{race} with {off:?} off: no counterexample"));
    (c.property, c.steps.len())
}

#[test]
fn every_race_is_closed_with_every_check_on() {
    for b in explore::races::BUILT_IN {
        let r = run(b.name, &[], Options::default());
        assert!(r.ok(), "{}: {:?}", b.name, r.counterexample);
        assert!(r.unique_states > 40, "{}: only {} states: the race was not explored", b.name, r.unique_states);
    }
}

#[test]
fn fork_vs_gup_fast_needs_write_protect_seq() {
    assert_eq!(violation("fork-vs-gup-fast", &["gup_fast_seqcount"]), ("pin-exclusive".into(), 11));
}

#[test]
fn zap_vs_gup_fast_needs_the_pte_recheck() {
    assert_eq!(violation("zap-vs-gup-fast", &["gup_fast_recheck"]), ("pin-mapped".into(), 6));
}

#[test]
fn cow_vs_gup_fast_needs_the_ae_test() {
    assert_eq!(violation("cow-vs-gup-fast", &["gup_fast_ae_recheck"]), ("invariants".into(), 8));
}

#[test]
fn collapse_vs_gup_fast_needs_the_refcount_check() {
    assert_eq!(violation("collapse-vs-gup-fast", &["collapse_refcount_check"]), ("pin-exclusive".into(), 13));
}

#[test]
fn collapse_vs_gup_fast_needs_the_pmd_recheck_or_the_table_sync() {
    assert_eq!(violation("collapse-vs-gup-fast", &["gup_fast_pmd_recheck", "collapse_table_sync"]), ("pin-exclusive".into(), 11));
    // Either one alone closes the race: the IPI keeps the collapse from
    // isolating pages while a walker that saw the old PMD runs, and the
    // PMD recheck makes a walker that read it before back off.
    assert!(run("collapse-vs-gup-fast", &["gup_fast_pmd_recheck"], Options::default()).ok());
    assert!(run("collapse-vs-gup-fast", &["collapse_table_sync"], Options::default()).ok());
}

#[test]
fn swapout_vs_gup_fast_needs_the_clear_before_the_pin_check() {
    assert_eq!(violation("swapout-vs-gup-fast", &["swapout_clear_pte_first"]), ("invariants".into(), 12));
}

#[test]
fn shards_cover_the_whole_space_and_merge() {
    let whole = run("fork-vs-gup-fast", &[], Options::default());
    let parts: Vec<Report> = (0..3).map(|i| run("fork-vs-gup-fast", &[], Options { threads: 1, shard: Some((i, 3)) })).collect();
    let merged = merge(&parts).unwrap();
    assert!(merged.ok());
    assert_eq!(merged.shards, vec!["0/3", "1/3", "2/3"]);
    // Shards may meet a few states twice, never miss one.
    assert!(merged.unique_states >= whole.unique_states, "{} < {}", merged.unique_states, whole.unique_states);

    let parts: Vec<Report> =
        (0..2).map(|i| run("fork-vs-gup-fast", &["gup_fast_seqcount"], Options { threads: 1, shard: Some((i, 2)) })).collect();
    let c = merge(&parts).unwrap().counterexample.expect("one shard holds the race");
    assert_eq!((c.property.as_str(), c.steps.len()), ("pin-exclusive", 11));
}

#[test]
fn threads_find_the_same_answers() {
    assert!(run("zap-vs-gup-fast", &[], Options { threads: 2, shard: None }).ok());
    assert!(run("zap-vs-gup-fast", &["gup_fast_recheck"], Options { threads: 2, shard: None }).counterexample.is_some());
}

#[test]
fn the_counterexample_names_kernel_functions_and_changes() {
    let r = run("fork-vs-gup-fast", &["gup_fast_seqcount"], Options::default());
    let c = r.counterexample.as_ref().unwrap();
    let funcs: Vec<&str> = c.steps.iter().map(|s| s.func.as_str()).collect();
    for f in ["dup_mmap", "copy_present_pte", "gup_fast", "try_grab_folio_fast", "gup_fast_pte_range"] {
        assert!(funcs.contains(&f), "{f} missing from {funcs:?}");
    }
    // fork clears AE (folio_try_dup_anon_rmap) before GUP-fast grabs the
    // page, and the step that grabs it shows the pin's 1024 references.
    let dup = funcs.iter().position(|f| *f == "copy_present_pte").unwrap();
    assert!(c.steps[dup].changes.iter().any(|ch| ch.contains("AE 1") && ch.ends_with("AE 0")), "{:?}", c.steps[dup]);
    let grab = funcs.iter().position(|f| *f == "try_grab_folio_fast").unwrap();
    assert!(grab > dup && c.steps[grab].changes.iter().any(|ch| ch.contains("refcount 1025")), "{:?}", c.steps[grab]);
    let text = explore::check::render_text(&r);
    assert!(text.contains("T0 P") && text.contains("T1 P") && text.contains("broken: pin-exclusive"), "{text}");
}
