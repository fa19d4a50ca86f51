//! The `xfail "REASON"` marker: a marked scenario that fails is XFAIL, one
//! that passes is XPASS; the marker is a header line, checked like
//! `profile`.

use scenario::model::ModelBackend;
use scenario::report::{Report, Status};
use scenario::RunOptions;

fn run(text: &str, knobs: &[(&str, &str)]) -> Report {
    let l = scenario::load("x.cow", text).unwrap_or_else(|(src, ds)| panic!("{}", ds.iter().map(|d| d.render(&src)).collect::<String>()));
    let mut be = ModelBackend::new().with_self_check(true);
    let opts = RunOptions { knobs: knobs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), ..Default::default() };
    scenario::run_loaded(&l, &mut be, &opts).expect("runs")
}

fn errors(text: &str) -> String {
    match scenario::load("x.cow", text) {
        Ok(_) => String::new(),
        Err((src, ds)) => ds.iter().map(|d| d.render(&src)).collect(),
    }
}

/// CVE-2020-29374 under the pre-5.8 reuse rule leaks; under 6.18's it does not.
const LEAK: &str = "xfail \"the child sees the parent's write (reuse by mapcount)\"\n\
                    task P\nP: A = mmap 4K\nP: write A fill 0x00\nP: fork C\nC: p = pipe\n\
                    C: vmsplice p A 4K\nC: munmap A\nP: write A fill 0xff\nC: read p 4K expect fill 0x00\n";

#[test]
fn a_marked_scenario_that_fails_is_xfail_with_its_reason() {
    let r = run(LEAK, &[("anon_reuse", "mapcount")]);
    assert_eq!((r.status, r.summary.failed), (Status::Xfail, 1), "{}", r.render(false));
    assert_eq!(r.xfail.as_deref(), Some("the child sees the parent's write (reuse by mapcount)"));
    let text = r.render(false);
    assert!(text.contains("    xfail: expected to fail (the child sees the parent's write (reuse by mapcount))\n"), "{text}");
    assert!(
        text.ends_with("XFAIL x.cow: the child sees the parent's write (reuse by mapcount): 0 passed, 1 failed, 0 skipped\n"),
        "{text}"
    );
    assert!(r.to_json().contains(r#""status":"xfail""#));
}

#[test]
fn a_marked_scenario_that_passes_is_xpass() {
    let r = run(LEAK, &[]);
    assert_eq!((r.status, r.summary.passed), (Status::Xpass, 1), "{}", r.render(false));
    assert!(r
        .render(true)
        .starts_with("XPASS x.cow: marked xfail (the child sees the parent's write (reuse by mapcount)) but every expectation held"));
}

#[test]
fn without_the_marker_the_same_runs_fail_and_pass() {
    let plain = LEAK.split_once('\n').unwrap().1;
    assert_eq!(run(plain, &[("anon_reuse", "mapcount")]).status, Status::Fail);
    assert_eq!(run(plain, &[]).status, Status::Pass);
}

#[test]
fn the_marker_is_a_header_with_a_reason() {
    let e = errors("task P\nxfail \"late\"\nP: A = mmap 4K\n");
    assert!(e.contains("`xfail` must come before the first task"), "{e}");
    let e = errors("xfail \"one\"\nxfail \"two\"\ntask P\n");
    assert!(e.contains("already marked xfail") && e.contains("first marked at line 1"), "{e}");
    let e = errors("xfail \"  \"\ntask P\n");
    assert!(e.contains("an empty reason"), "{e}");
    let e = errors("xfail leaks\ntask P\n");
    assert!(e.contains("expected") && e.contains("the reason as a string"), "{e}");
    let e = errors("xfial \"x\"\n");
    assert!(e.contains("unknown statement `xfial`") && e.contains("xfail"), "{e}");
    assert_eq!(errors("# a known bug\nprofile linux-6.18\nxfail \"a \\\"quoted\\\" # not a comment\"\ntask P\nP: A = mmap 4K\n"), "");
}
