//! `cowlab policy` and `cowlab run --compare`: the checked-in report is
//! what the command prints now, the thread's claims come out as measured,
//! errors are one line and exit 2, a failed policy keeps the others' rows.

mod common;

use common::{cowlab, root, text};

#[test]
fn the_checked_in_policy_lab_report_is_current_and_answers_every_claim() {
    let o = cowlab(&["policy", "--format", "markdown"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let now = text(&o.stdout);
    let file = std::fs::read_to_string(root().join("docs/policy-lab.md")).expect("docs/policy-lab.md");
    assert!(
        now == file,
        "docs/policy-lab.md is stale: regenerate it with `cargo run --release -- policy --format markdown > docs/policy-lab.md`"
    );
    // Twelve policies, each a row with numbers.
    assert_eq!(
        now.lines().filter(|l| l.strip_prefix("| ").and_then(|r| r.split(" | ").next()).is_some_and(|c| c.parse::<u32>().is_ok())).count(),
        12
    );
    // Every claim and expectation was measured (none lacks its policies),
    // and on this model each comes out as the thread said.
    let claims: Vec<&str> = now.lines().filter(|l| l.contains("| `cowlab policy")).collect();
    assert_eq!(claims.len(), 5, "{now}");
    for c in &claims {
        assert!(c.contains("| holds: "), "{c}");
    }
    assert!(now.contains("| mapcount + get: 8 cow XFAILs (today's kernel) | as expected: #1 has 8 XFAILs |"), "{now}");
    assert_eq!(now.matches("| as expected: ").count(), 4, "{now}");
    assert!(now.contains("`cow #161 vmsplice() + unmap in child ... with hugetlb (2048 kB)`: xfail in #1 #2;"), "{now}");
}

#[test]
fn unknown_knob_and_empty_product_are_one_line_usage_errors() {
    let o = cowlab(&["policy", "--vary", "hugetlb_rreuse=mapcount"]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("unknown knob `hugetlb_rreuse`; knobs are: anon_reuse,"), "{e}");
    assert!(o.stdout.is_empty());

    let o = cowlab(&["policy", "--vary", "vmsplice="]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("the product of the choices is empty"), "{e}");
}

#[test]
fn a_policy_that_cannot_run_does_not_hide_the_others() {
    let o = cowlab(&["policy", "--vary", "hugetlb_reuse=bogus,mapcount", "--format", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(e.contains("policy #1 (hugetlb_reuse=bogus): knob `hugetlb_reuse` takes one of: mapcount, refcount, refcount_naive"), "{e}");
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON document");
    let ps = doc["policies"].as_array().expect("policies");
    assert_eq!(ps.len(), 2);
    assert!(ps[0]["metrics"].is_null() && ps[0]["error"].is_string());
    assert_eq!(ps[1]["label"], "hugetlb_reuse=mapcount");
    assert_eq!(ps[1]["metrics"]["xfail"], 8);
    assert_eq!(ps[1]["metrics"]["pass"], 820);
}

#[test]
fn compare_prints_a_column_per_choice_and_marks_the_rows_that_differ() {
    let f = "examples/hugetlb-vmsplice-child-unmap-leaks-parent-write.cow";
    let o = cowlab(&["run", "--compare", "hugetlb_reuse=mapcount,refcount", f]);
    // refcount does not leak, so this scenario's leak expectation fails there.
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    let write = out.lines().find(|l| l.contains("[7] P: write A fill 0xff")).expect("the parent's write");
    assert!(write.starts_with('≠'), "{out}");
    assert!(write.contains("hugetlb_wp→reuse") && write.contains("hugetlb_wp→copy"), "{write}");
    let fork = out.lines().find(|l| l.contains("[3] P: fork C")).expect("the fork");
    assert!(fork.starts_with(' '), "{fork}");
    assert!(out.contains("4 row(s) differ"), "{out}");

    let o = cowlab(&["run", "--compare", "vmsplice=get,pin", "examples/cve-2020-29374-vmsplice-child-unmap.cow"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));

    let o = cowlab(&["run", "--compare-profiles", "linux-5.7,linux-6.18", "examples/cve-2020-29374-vmsplice-child-unmap.cow"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.lines().any(|l| l.starts_with('≠') && l.contains("do_wp_page→reuse") && l.contains("wp_page_copy→copy")), "{out}");

    let o = cowlab(&["run", "--compare", "hugetlb_reuse=mapcount,nope", f]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(text(&o.stderr).lines().count(), 1);
}

#[test]
fn knobs_and_profiles_list_values_defaults_and_commits() {
    let o = cowlab(&["knobs"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(out.contains("hugetlb_reuse\n    values:  mapcount, refcount, refcount_naive\n    default: mapcount (linux-6.18)\n"), "{out}");
    let o = cowlab(&["profiles"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(out.contains("linux-6.18 (default) [x86]\n    knobs: anon_reuse=anon_exclusive vmsplice=get hugetlb_reuse=mapcount"), "{out}");
    assert!(out.contains("linux-5.7 [x86]\n    knobs: anon_reuse=mapcount "), "{out}");
    assert!(out.contains("commit 70e806e4e645 \"mm: Do early cow for pinned pages during fork() for ptes\" (5.9)"), "{out}");
}
