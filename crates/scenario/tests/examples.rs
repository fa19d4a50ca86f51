//! Every scenario in examples/ runs on the model and all its expectations
//! hold; every reuse/copy decision in the traces is attributed to the kernel
//! function that made it. Plus the CVE-2020-29374 scenario under both anon
//! reuse rules.

use scenario::model::ModelBackend;
use scenario::report::{Entry, Report, Status};
use scenario::RunOptions;
use std::path::{Path, PathBuf};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn run(path: &Path, opts: &RunOptions) -> Report {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let l = match scenario::load(&name, &text) {
        Ok(l) => l,
        Err((src, ds)) => panic!("{}", ds.iter().map(|d| d.render(&src)).collect::<String>()),
    };
    let mut be = ModelBackend::new();
    scenario::run_loaded(&l, &mut be, opts).unwrap_or_else(|ds| panic!("{ds:?}"))
}

#[test]
fn all_examples_pass_on_the_model() {
    let mut files: Vec<_> = std::fs::read_dir(examples_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cow"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "examples went missing: {}", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let r = run(f, &RunOptions::default());
        if r.status != Status::Pass {
            failures.push(r.render(false));
        }
        // Every example checks something.
        assert!(r.summary.passed > 0, "{}: no expectation", r.file);
        // The header comment says what the kernel does.
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            text.lines().take_while(|l| l.starts_with('#')).count() >= 3,
            "{}: needs a header comment explaining the kernel rule",
            r.file
        );
        // Each reuse or copy decision names its function: `TASK: func …`.
        for e in &r.entries {
            if let Entry::Step(s) = e {
                for k in &s.kernel {
                    if k.contains("reuse") || k.contains("→ copy") {
                        let func = k.split(": ").nth(1).unwrap_or("");
                        let name = func.split([' ', ':']).next().unwrap_or("");
                        assert!(
                            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                            "{}: step {}: decision without a kernel function: {k}",
                            r.file,
                            s.step
                        );
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The six operational lines of the CVE: with the 6.18 rule the pipe keeps
/// the old bytes; with the pre-5.8 mapcount rule the parent's write leaks
/// into the child's pipe.
#[test]
fn cve_2020_29374_leaks_only_under_the_mapcount_rule() {
    let f = examples_dir().join("cve-2020-29374-vmsplice-child-unmap.cow");
    let ok = run(&f, &RunOptions::default());
    assert_eq!(ok.status, Status::Pass, "{}", ok.render(false));
    let copy = trace_of_step(&ok, 7);
    assert!(copy.iter().any(|l| l.contains("wp_can_reuse_anon_folio: refcount 2 → copy")), "{copy:?}");

    let opts = RunOptions { knobs: vec![("anon_reuse".into(), "mapcount".into())], ..Default::default() };
    let leak = run(&f, &opts);
    assert_eq!(leak.status, Status::Fail, "{}", leak.render(false));
    assert_eq!(leak.summary.failed, 1);
    let reuse = trace_of_step(&leak, 7);
    assert!(
        reuse.iter().any(|l| l.contains("reuse_swap_page: mapcount rule (pre-5.8): mapcount 1 + swap references 0 → reuse")),
        "{reuse:?}"
    );
    let failed: Vec<_> = leak.checks().filter(|c| c.status == Status::Fail).collect();
    assert_eq!(failed[0].text, "expect fill 0x00");
    assert!(failed[0].detail.as_deref().unwrap_or("").contains("fill 0xff"), "{:?}", failed[0]);

    // The refcount rule (5.9–5.18) also copies.
    let opts = RunOptions { knobs: vec![("anon_reuse".into(), "refcount".into())], ..Default::default() };
    assert_eq!(run(&f, &opts).status, Status::Pass);
    // And the pre-5.8 profile leaks like the knob.
    let opts = RunOptions { profile: Some("linux-5.7".into()), ..Default::default() };
    assert_eq!(run(&f, &opts).status, Status::Fail);
}

fn trace_of_step(r: &Report, n: usize) -> Vec<String> {
    r.entries
        .iter()
        .find_map(|e| match e {
            Entry::Step(s) if s.step == n => Some(s.kernel.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// `large_anon_reuse`: 6.15+ reuses the parent's page of a PTE-mapped mTHP
/// once the child has gone (the folio stays whole); with `never`, as up to
/// 6.14, the same write copies one page and the two expectations about the
/// page fail.
#[test]
fn mthp_reuse_after_fork_only_with_mm_id_bookkeeping() {
    let f = examples_dir().join("mthp-fork-child-exits-parent-reuses.cow");
    let ok = run(&f, &RunOptions::default());
    assert_eq!(ok.status, Status::Pass, "{}", ok.render(false));
    let opts = RunOptions { knobs: vec![("large_anon_reuse".into(), "never".into())], ..Default::default() };
    let old = run(&f, &opts);
    assert_eq!(old.status, Status::Fail, "{}", old.render(false));
    let failed: Vec<_> = old.checks().filter(|c| c.status == Status::Fail).map(|c| c.text.clone()).collect();
    assert_eq!(failed, ["expect A+4K in P thp", "expect A+4K in P unchanged since step 2"]);
    assert!(trace_of_step(&old, 5).iter().any(|l| l.contains("never reused before 6.15 → copy")), "{:?}", trace_of_step(&old, 5));
}
