//! The observations and outcomes added for real-kernel scenarios, on the
//! model: each form is judged both ways (a true statement passes, its
//! negation fails), so none of them can pass by default.

use scenario::model::ModelBackend;
use scenario::report::{Entry, Report, Status};
use scenario::RunOptions;

fn run(text: &str) -> Report {
    let l = scenario::load("t.cow", text).unwrap_or_else(|(src, ds)| panic!("{}", ds.iter().map(|d| d.render(&src)).collect::<String>()));
    let mut be = ModelBackend::new().with_self_check(true);
    scenario::run_loaded(&l, &mut be, &RunOptions::default()).expect("runs")
}

/// The status of every check, in order, with its text.
fn checks(r: &Report) -> Vec<(Status, String)> {
    r.checks().map(|c| (c.status, c.text.clone())).collect()
}

fn assert_pass(text: &str) -> Report {
    let r = run(text);
    assert_eq!(r.status, Status::Pass, "{}", r.render(false));
    assert_eq!(r.summary.skipped, 0, "{}", r.render(false));
    r
}

fn assert_fails(text: &str, failing: &str) {
    let r = run(text);
    let failed: Vec<String> = checks(&r).into_iter().filter(|(s, _)| *s == Status::Fail).map(|(_, t)| t).collect();
    assert!(failed.iter().any(|t| t.contains(failing)), "expected `{failing}` to fail, failures: {failed:?}\n{}", r.render(false));
}

const STEAL: &str = "hugetlb 2M pages=1\ntask P\nP: A = mmap 2M private anon hugetlb=2M\nP: write A fill 0x01\nP: fork C\n\
    P: write A fill 0x02\n";

#[test]
fn the_step_that_hits_a_stolen_hugetlb_page_logs_the_kernels_line() {
    let r = assert_pass(&format!(
        "{STEAL}expect no log\nC: read A 4K expect SIGBUS\nexpect log \"killed due to inadequate hugepage pool\"\n\
         expect no log \"segfault\"\nexpect C killed SIGBUS\n"
    ));
    // The exact line of mm/hugetlb.c, with the faulting task's pid.
    let step = r
        .entries
        .iter()
        .find_map(|e| match e {
            Entry::Step(s) if s.step == 5 => Some(s),
            _ => None,
        })
        .expect("step 5");
    assert!(
        step.kernel.iter().any(|k| k.starts_with("C: kernel log: PID ") && k.ends_with(" killed due to inadequate hugepage pool")),
        "{step:?}"
    );
    assert_fails(&format!("{STEAL}C: read A 4K expect SIGBUS\nexpect no log\n"), "expect no log");
    assert_fails(&format!("{STEAL}expect log \"inadequate\"\n"), "expect log");
    // Only the step just before: the owner's later read logs nothing.
    assert_fails(&format!("{STEAL}C: read A 4K expect SIGBUS\nP: read A 4K\nexpect log \"inadequate\"\n"), "expect log");
}

#[test]
fn vma_anon_pagecache_and_sparse_files() {
    let base = "task P\nP: F = memfd 8K sparse\nP: M = mmap 8K shared file F\nP: write M 4K fill 0x05\nP: B = mmap 4K\nP: write B fill 1\n";
    assert_pass(&format!(
        "{base}expect M in P pagecache\nexpect M in P not anon\nexpect B in P anon\nexpect B in P not pagecache\n\
         expect M+4K in P not present\nexpect M+4K in P mapped\nP: munmap M+4K 4K\nexpect M+4K in P not mapped\nexpect M in P mapped\n"
    ));
    assert_fails(&format!("{base}expect M in P anon\n"), "expect M in P anon");
    assert_fails(&format!("{base}expect M+4K in P not mapped\n"), "not mapped");
    // A sparse file has no pages: reading it faults nothing in but shows
    // zeros, and a sparse hugetlbfs file takes no huge page.
    assert_pass(
        "hugetlb 2M pages=1\ntask P\nP: G = memfd 4M hugetlb=2M sparse\nexpect hugetlb 2M free == 1\nexpect hugetlb 2M resv == 0\n\
         P: F = memfd 8K sparse\nP: read F expect fill 0x00\n",
    );
    assert_fails("hugetlb 2M pages=1\ntask P\nP: G = memfd 4M hugetlb=2M\n", "ok (every step");
}

#[test]
fn pmd_or_pte_mapped_and_per_page_mapcounts_of_a_thp() {
    let base = "thp 2M always\ntask P\nP: A = mmap 2M private anon align=2M\nP: write A fill 0x11\nP: fork C\nC: write A+4K bytes 01\n";
    assert_pass(&format!(
        "{base}expect A..A+2M in P pmd_mapped\nexpect A..A+2M in C pte_mapped\nexpect A in P mapcount == 512\n\
         expect A+4K in P page_mapcount == 1\nexpect A+8K..A+2M in C page_mapcount == 2\nexpect A+4K in C mapcount == 1\n"
    ));
    assert_fails(&format!("{base}expect A in C pmd_mapped\n"), "pmd_mapped");
    assert_fails(&format!("{base}expect A..A+2M in C page_mapcount == 2\n"), "page_mapcount");
    // A range failure names the first page where it does not hold.
    let r = run(&format!("{base}expect A..A+2M in C page_mapcount == 2\n"));
    let c = r.checks().find(|c| c.status == Status::Fail).expect("fails");
    assert_eq!(c.detail.as_deref(), Some("A+4K in C: page_mapcount is 1"), "{}", r.render(false));
}

#[test]
fn byte_counts_and_one_of() {
    let base = "task P\nP: A = mmap 8K\nP: write A fill 1\nP: p = pipe\n";
    assert_pass(&format!("{base}P: vmsplice p A 8K expect count 8K\nP: write p 3 fill 2 expect one of EAGAIN, count 3\n"));
    assert_fails(&format!("{base}P: vmsplice p A 8K expect count 4K\n"), "expect count 4K");
    assert_fails(&format!("{base}P: vmsplice p A 8K expect one of EFAULT, count 4K\n"), "one of");
    assert_pass(&format!("{base}P: munmap A+4K 4K\nP: vmsplice p A 8K expect one of EFAULT, count 4K\n"));
}

#[test]
fn livelock_is_an_outcome_and_ends_the_task() {
    // Under the refcount reuse rule an exact pool and a pipe's reference
    // make the owner's COW retry forever (crates/mm/tests/hugetlb.rs).
    let base = "set hugetlb_reuse=refcount\nhugetlb 2M pages=1\ntask P\nP: A = mmap 2M private anon hugetlb=2M\nP: write A fill 0\n\
        P: fork C\nC: p = pipe\nC: vmsplice p A 4K\n";
    assert_pass(&format!("{base}P: write A fill 0xff expect livelock\n"));
    assert_pass(&format!("{base}P: write A fill 0xff expect one of ok, livelock\nC: read p 4K expect fill 0\n"));
    assert_fails(&format!("{base}P: write A fill 0xff\n"), "ok (every step");
    assert_fails("task P\nP: A = mmap 4K\nP: write A fill 1 expect livelock\n", "expect livelock");
}

#[test]
fn exit_statuses() {
    assert_pass("task P\nP: fork C\nC: exit 7\nexpect C exited 7\nexpect C exited\nP: exit\nexpect P exited 0\n");
    assert_fails("task P\nP: fork C\nC: exit 7\nexpect C exited 6\n", "exited 6");
    assert_fails("task P\nP: fork C\nC: exit\nexpect C exited 1\n", "exited 1");
}

fn check_error(text: &str) -> String {
    match scenario::load("t.cow", text) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err((src, ds)) => ds.iter().map(|d| d.render(&src)).collect(),
    }
}

#[test]
fn new_forms_report_their_mistakes_with_positions() {
    let e = check_error("task P\nP: A = mmap 4K\nP: B = mmap 4K\nexpect A..B+4K in P present\n");
    assert!(e.starts_with("t.cow:4:11: error: a range ends in the region it starts in (`A`)"), "{e}");
    let e = check_error("task P\nP: A = mmap 8K\nexpect A+4K..A+4K in P present\n");
    assert!(e.starts_with("t.cow:3:16: error: the range ends at 4K but starts at 4K"), "{e}");
    let e = check_error("task P\nP: A = mmap 8K\nexpect A..A+12K in P present\n");
    assert!(e.starts_with("t.cow:3:13: error: the range ends past the end of `A` (8K)"), "{e}");
    let e = check_error("task P\nP: A = mmap 4K expect count 4K\n");
    assert!(e.starts_with("t.cow:2:23: error: `mmap` returns no byte count"), "{e}");
    let e = check_error("task P\nP: A = mmap 4K\nP: write A fill 1 expect count 4K\n");
    assert!(e.starts_with("t.cow:3:26: error: `write` returns no byte count"), "{e}");
    let e = check_error("task P\nexpect log \"x\"\n");
    assert!(e.starts_with("t.cow:2:12: error: `expect log` judges the log lines of the step before it"), "{e}");
    let e = check_error("task P\nP: exit 256\n");
    assert!(e.starts_with("t.cow:2:9: error: exit status 256 does not fit in 0..255"), "{e}");
    let e = check_error("task P\nP: A = mmap 4K\nP: read A expect one of ok, EBOGUS\n");
    assert!(e.starts_with("t.cow:3:29: error: `EBOGUS` is not an outcome"), "{e}");
    let e = check_error("task P\nP: A = mmap 4K\nexpect log\n");
    assert!(e.contains("t.cow:3:11: error:") && e.contains("a string like \"inadequate hugepage pool\""), "{e}");
    // `log` and `no` stay usable as region names.
    assert_pass("task P\nP: log = mmap 4K\nP: no = mmap 4K\nexpect log in P not present\nexpect no in P mapped\n");
}
