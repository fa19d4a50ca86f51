//! Kernel profiles: the replay table of docs/history.md is what
//! `cowlab selftest --profile X --format summary` prints now, the powerpc
//! hugepd profiles hang exactly the tests the April 2024 report saw hang,
//! and `cowlab history` places each change at the release that made it.

mod common;

use common::{cowlab, root, text};
use std::process::Output;

/// The totals line of one suite in a summary (the lines after the suite's
/// name, up to its `total`), as "pass / fail / xfail / xpass / skip".
fn totals(summary: &str, suite: &str) -> Option<String> {
    let mut lines = summary.lines().skip_while(|l| *l != suite);
    lines.find_map(|l| l.strip_prefix("total")).map(|l| l.split_whitespace().collect::<Vec<_>>().join(" / "))
}

#[test]
fn the_replay_table_of_docs_history_is_current() {
    let doc = std::fs::read_to_string(root().join("docs/history.md")).expect("docs/history.md");
    let names = mm::policy::profile_names();
    let runs: Vec<Output> = std::thread::scope(|s| {
        let hs: Vec<_> = names.iter().map(|n| s.spawn(move || cowlab(&["selftest", "--profile", n, "--format", "summary"]))).collect();
        hs.into_iter().map(|h| h.join().expect("the run's thread")).collect()
    });
    for (name, o) in names.iter().zip(&runs) {
        let out = text(&o.stdout);
        let (Some(cow), Some(gup)) = (totals(&out, "cow"), totals(&out, "gup_longterm")) else { panic!("{name}: {out}") };
        let row = format!("| `{name}` | {cow} | {gup} |");
        assert!(
            doc.lines().any(|l| l == row),
            "docs/history.md is stale: its replay table lacks `{row}` (regenerate the row with `cowlab selftest --profile {name} --format summary`)"
        );
    }
}

/// The `not ok` lines of a gup_longterm run.
fn failures(profile: &str) -> Vec<String> {
    let o = cowlab(&["selftest", "gup_longterm", "--profile", profile]);
    text(&o.stdout).lines().filter(|l| l.starts_with("not ok")).map(str::to_string).collect()
}

#[test]
fn powerpc_hugepd_before_the_fix_hangs_the_ro_longterm_pins_of_shared_hugetlb_only() {
    let hung = failures("linux-6.10-rc-ppc-hugepd");
    assert_eq!(hung.len(), 4, "{hung:#?}");
    for l in &hung {
        assert!(l.contains("R/O longterm GUP") && l.contains("in MAP_SHARED file mapping"), "{l}");
        assert!(l.contains("with memfd hugetlb"), "{l}");
        assert!(l.ends_with("# TIMEOUT"), "{l}");
    }
    // The rest of the run is the same as on x86 6.18 and on the fixed 6.10.
    let whole = |p: &str| text(&cowlab(&["selftest", "gup_longterm", "--profile", p]).stdout);
    let rc = whole("linux-6.10-rc-ppc-hugepd");
    let fixed = whole("linux-6.10-ppc-hugepd");
    assert_eq!(fixed, whole("linux-6.18"));
    let results = |out: &str| -> Vec<String> {
        out.lines().filter(|l| l.starts_with("ok ") || l.starts_with("not ok ")).map(str::to_string).collect()
    };
    let (rc, fixed) = (results(&rc), results(&fixed));
    assert_eq!(rc.len(), fixed.len());
    let differ: Vec<(&String, &String)> = rc.iter().zip(&fixed).filter(|(a, b)| a != b).collect();
    assert_eq!(differ.len(), 4, "{differ:#?}");
    for (hung, passed) in differ {
        assert!(hung.contains(passed.trim_start_matches("ok ")) && hung.starts_with("not ok"), "{hung} / {passed}");
    }
    assert!(failures("linux-6.10-ppc-hugepd").is_empty());
}

/// The outcome marks per profile of the expectation at `line` of a
/// `cowlab history` run over every x86 profile.
fn marks(file: &str, line: &str) -> String {
    let o = cowlab(&["history", file]);
    let out = text(&o.stdout);
    let start = out.find(&format!("line {line}:")).unwrap_or_else(|| panic!("no line {line} in {out}"));
    out[start..].lines().skip(1).take_while(|l| l.starts_with("    linux-")).map(|l| l.trim().to_string()).collect::<Vec<_>>().join(", ")
}

#[test]
fn history_places_each_fix_at_its_release() {
    let out = text(&cowlab(&["history", "examples/cve-2020-29374-vmsplice-child-unmap.cow"]).stdout);
    assert!(
        out.contains(
            "== examples/cve-2020-29374-vmsplice-child-unmap.cow: linux-5.7 → linux-5.8 → linux-5.9 → linux-5.11 → linux-5.18 → linux-5.19 → linux-6.14 → linux-6.18"
        ),
        "{out}"
    );
    // CVE-2020-29374: leaks on 5.7 only; 5.8's forced COW closed it.
    assert_eq!(
        marks("examples/cve-2020-29374-vmsplice-child-unmap.cow", "22"),
        "linux-5.7  ✗, linux-5.8  ✓, linux-5.9  ✓, linux-5.11 ✓, linux-5.18 ✓, linux-5.19 ✓, linux-6.14 ✓, linux-6.18 ✓"
    );
    assert!(out.contains("changed at linux-5.8 (from linux-5.7): 17839856fd58"), "{out}");
    // A page pinned before fork: the child gets a copy from 5.9 on
    // (70e806e4e645), whatever 5.8 did for reads.
    let out = text(&cowlab(&["history", "examples/io-uring-fixed-buffer-then-fork.cow"]).stdout);
    let changes: Vec<&str> = out.lines().filter(|l| l.contains("changed at")).collect();
    assert!(!changes.is_empty(), "{out}");
    for c in &changes {
        assert!(c.contains("changed at linux-5.9 (from linux-5.8)") && c.contains("70e806e4e645"), "{c}");
    }
    // A pinned hugetlb page: the child gets a copy only from 5.12
    // (4eae4efa2c29); before, the parent's write copies away from the ring.
    let out = text(&cowlab(&["history", "examples/hugetlb-pinned-at-fork-child-gets-copy.cow"]).stdout);
    let changes: Vec<&str> = out.lines().filter(|l| l.contains("changed at")).collect();
    assert_eq!(changes.len(), 2, "{out}");
    for c in &changes {
        assert!(c.contains("changed at linux-5.18 (from linux-5.11): 4eae4efa2c29"), "{c}");
    }
    // PTE-mapped mTHP reuse after the child exits: 6.15 (1da190f4d0a6).
    let out = text(&cowlab(&["history", "examples/mthp-fork-child-exits-parent-reuses.cow"]).stdout);
    let changes: Vec<&str> = out.lines().filter(|l| l.contains("changed at")).collect();
    assert!(!changes.is_empty(), "{out}");
    for c in &changes {
        assert!(c.contains("changed at linux-6.18 (from linux-6.14): 1da190f4d0a6"), "{c}");
    }
    // A skipped range names every commit in it.
    let out = text(&cowlab(&["history", "--profiles", "linux-5.7,linux-5.9", "examples/cve-2020-29374-vmsplice-child-unmap.cow"]).stdout);
    assert!(out.contains("changed at linux-5.9 (from linux-5.7): 17839856fd58"), "{out}");
    assert!(out.contains("70e806e4e645"), "{out}");
    // powerpc hugepd: the pin livelocks before Peter Xu's fix, later steps never run.
    let o = cowlab(&[
        "history",
        "--profiles",
        "linux-6.10-rc-ppc-hugepd,linux-6.10-ppc-hugepd",
        "examples/hugepd-ro-longterm-pin-shared-hugetlb.cow",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(out.contains("    linux-6.10-rc-ppc-hugepd ✗ livelock\n    linux-6.10-ppc-hugepd    ✓ (ran, no expectation)\n"), "{out}");
    assert!(out.contains("    linux-6.10-rc-ppc-hugepd ✗ not run\n    linux-6.10-ppc-hugepd    ✓\n"), "{out}");
    // R/O pins of shared pages unshare from 5.19 on.
    let out = text(&cowlab(&["history", "examples/ro-pin-shared-page-unshares.cow"]).stdout);
    assert!(out.contains("changed at linux-5.19 (from linux-5.18): 6c287605fd56"), "{out}");
}

#[test]
fn an_unknown_profile_gets_the_list_and_exit_2() {
    let list = mm::policy::profile_names().join(", ");
    for args in [
        &["history", "--profiles", "linux-9", "examples/cve-2020-29374-vmsplice-child-unmap.cow"][..],
        &["selftest", "gup_longterm", "--profile", "linux-9"][..],
        &["run", "--profile", "linux-9", "examples/cve-2020-29374-vmsplice-child-unmap.cow"][..],
    ] {
        let o = cowlab(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let e = text(&o.stderr);
        assert!(e.contains("linux-9") && e.contains(&list), "{args:?}: {e}");
    }
}

#[test]
fn profiles_state_every_knob_and_knobs_state_every_default() {
    let out = text(&cowlab(&["profiles"]).stdout);
    assert!(!out.contains('?'), "{out}");
    let knob_lines: Vec<&str> = out.lines().filter(|l| l.starts_with("    knobs: ")).collect();
    assert_eq!(knob_lines.len(), mm::policy::PROFILE_INFO.len());
    for l in &knob_lines {
        for k in mm::policy::KNOBS {
            assert!(l.contains(&format!(" {}=", k.name)) || l.starts_with(&format!("    knobs: {}=", k.name)), "{} missing: {l}", k.name);
        }
    }
    assert!(out.contains("linux-5.8 [x86]\n    knobs: anon_reuse=mapcount "), "{out}");
    assert!(out.contains(" gup_cow_break=on "), "{out}");
    assert!(out.contains("linux-6.10-rc-ppc-hugepd [powerpc-hugepd]"), "{out}");
    let out = text(&cowlab(&["knobs"]).stdout);
    assert!(!out.contains("default: ?"), "{out}");
    assert!(out.contains("gup_fast_pmd_recheck\n    values:  on, off\n    default: on (linux-6.18)\n"), "{out}");
    assert!(out.contains("hugepd\n    values:  off, vma, no_vma\n    default: off (linux-6.18)\n"), "{out}");
}
