//! `cowlab diff` exits 0 when model and kernel agree, expectations
//! included: the scenario of docs/divergences.md §2 (a PMD-mapped THP's
//! pagemap "exclusive" bit after the child's COW), which differed until the
//! model learnt to ask the PMD's first page as 6.18 does. The labelling of
//! documented differences on `expect` rows is tested without a kernel in
//! crates/differential (diff.rs), with §1's shape. Needs root and
//! `COWLAB_LIVE_TESTS=1` (the run changes THP settings); otherwise it prints
//! one line and passes.

use std::process::Command;

const SCENARIO: &str = "thp 2M always\ntask P\nP: A = mmap 2M private anon align=2M\nP: write A fill 0x11\nP: fork C\n\
    C: write A bytes 01\nP: read A 4K expect fill 0x11\nexpect A in P exclusive\nexpect A+4K in P exclusive\n";

#[test]
fn the_section_2_scenario_agrees_and_exits_0() {
    if let Some(skip) = live::live_tests_skip() {
        println!("{skip}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("cowlab-diff-documented-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("thp-exclusive.cow");
    std::fs::write(&file, SCENARIO).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cowlab")).args(["diff", "--step-timeout", "30"]).arg(&file).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("skipped: ") {
        println!("skip: {text}");
        return;
    }
    assert!(text.contains("model and kernel agree"), "§2 is back: {text}");
    assert!(text.contains("1 agree, 0 diverge, 0 diverge only as documented"), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
}
