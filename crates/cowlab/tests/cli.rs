//! The `cowlab run` / `cowlab check` command line: exit codes, positions in
//! errors, JSON shape, overrides.

mod common;

use common::{cowlab, root, text};
use std::process::Command;

const CVE: &str = "examples/cve-2020-29374-vmsplice-child-unmap.cow";

fn all_examples() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| format!("examples/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".cow"))
        .collect();
    v.sort();
    v
}

#[test]
fn run_all_examples_exits_0() {
    let ex = all_examples();
    let mut args = vec!["run", "--quiet"];
    args.extend(ex.iter().map(|s| s.as_str()));
    let o = cowlab(&args);
    assert_eq!(o.status.code(), Some(0), "{}{}", text(&o.stdout), text(&o.stderr));
    assert_eq!(text(&o.stdout).lines().filter(|l| l.starts_with("PASS ")).count(), ex.len());
}

#[test]
fn cve_leaks_with_the_mapcount_knob_and_exits_1() {
    let o = cowlab(&["run", CVE]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(out.contains("wp_can_reuse_anon_folio: refcount 2 → copy"), "{out}");
    assert!(out.contains("✓ expect fill 0x00"), "{out}");

    let o = cowlab(&["run", "--set", "anon_reuse=mapcount", CVE]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.contains("reuse_swap_page: mapcount rule (pre-5.8): mapcount 1 + swap references 0 → reuse"), "{out}");
    assert!(out.contains("✗ expect fill 0x00"), "{out}");
    assert!(out.contains(&format!("({CVE}:22:21)")), "{out}");
}

#[test]
fn json_is_one_document_per_scenario_with_stable_fields() {
    let o = cowlab(&["run", "--json", CVE, "examples/zero-page-pins.cow"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    let docs: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).expect("each line is a JSON document")).collect();
    assert_eq!(docs.len(), 2);
    let d = &docs[0];
    for k in ["file", "backend", "profile", "knobs", "status", "skip_reason", "entries", "summary"] {
        assert!(d.get(k).is_some(), "missing {k}: {d}");
    }
    assert_eq!(d["status"], "pass");
    assert_eq!(d["profile"], "linux-6.18");
    let steps: Vec<&serde_json::Value> = d["entries"].as_array().unwrap().iter().filter(|e| e["type"] == "step").collect();
    assert_eq!(steps.len(), 8);
    for k in ["step", "line", "task", "text", "result", "kernel", "deltas", "checks"] {
        assert!(steps[0].get(k).is_some(), "step lacks {k}");
    }
    assert_eq!(steps[7]["checks"][0]["status"], "pass");
    assert_eq!(steps[7]["checks"][0]["text"], "expect fill 0x00");
}

#[test]
fn check_validates_without_running() {
    let o = cowlab(&["check", CVE]);
    assert_eq!(o.status.code(), Some(0));
    assert!(text(&o.stdout).contains("ok (8 steps)"));
}

#[test]
fn bad_inputs_exit_2_with_positions() {
    let dir = root().join("crates/scenario/tests/bad");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| format!("crates/scenario/tests/bad/{}", e.unwrap().file_name().to_string_lossy()))
        .collect();
    files.sort();
    for f in &files {
        let want = std::fs::read(root().join(f)).unwrap();
        let first = text(&want).lines().next().unwrap_or("").to_string();
        let pos = first.trim_start_matches("# expect-error: ").split(' ').next().unwrap().to_string();
        for cmd in ["check", "run"] {
            let o = cowlab(&[cmd, f]);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{cmd} {f}: {err}");
            assert!(err.starts_with(&format!("{f}:{pos}: error: ")), "{cmd} {f}: {err}");
            assert!(err.contains('^'), "{err}");
            assert!(!err.contains("panicked"), "{err}");
        }
    }
}

#[test]
fn usage_errors_exit_2() {
    // No files.
    assert_eq!(cowlab(&["run"]).status.code(), Some(2));
    // Not KNOB=VALUE.
    assert_eq!(cowlab(&["run", "--set", "anon_reuse", CVE]).status.code(), Some(2));
    // Unknown knob and value.
    let o = cowlab(&["run", "--set", "anon_reuse=bogus", CVE]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("anon_exclusive, refcount, mapcount"), "{}", text(&o.stderr));
    let o = cowlab(&["run", "--set", "nope=1", CVE]);
    assert_eq!(o.status.code(), Some(2));
    // Unknown profile.
    let o = cowlab(&["run", "--profile", "linux-0.01", CVE]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unknown profile `linux-0.01`"), "{}", text(&o.stderr));
    // Missing file.
    assert_eq!(cowlab(&["check", "no/such/file.cow"]).status.code(), Some(2));
    // Unknown subcommand.
    assert_eq!(cowlab(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn profile_and_knob_errors_in_the_file_point_at_the_line() {
    let dir = std::env::temp_dir().join(format!("cowlab-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("p.cow");
    std::fs::write(&f, "profile linux-0.01\ntask P\n").unwrap();
    let o = cowlab(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("p.cow:1:9: error: unknown profile"), "{}", text(&o.stderr));
    std::fs::write(&f, "set anon_reuse=sometimes\ntask P\n").unwrap();
    let o = cowlab(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("p.cow:1:5: error: knob `anon_reuse` takes one of"), "{}", text(&o.stderr));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A reader that closes the pipe at once: cowlab stops writing and exits
/// with 141 (what a shell reports for SIGPIPE), with nothing on stderr.
#[test]
fn a_closed_pipe_ends_quietly() {
    for args in [&["check", CVE][..], &["run", CVE], &["selftest", "gup_longterm", "--format", "summary"]] {
        // The reading end is closed before cowlab starts.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = Command::new(env!("CARGO_BIN_EXE_cowlab")).args(args).current_dir(root()).stdout(writer).output().expect("cowlab runs");
        assert_eq!(o.status.code(), Some(141), "{args:?}: {}", text(&o.stderr));
        assert_eq!(text(&o.stderr), "", "{args:?}");
    }
}

/// `cowlab run` prints each step as the run makes it: the first step's
/// line is out while a long step after it is still running, and the whole
/// streamed trace is the report's `render()`.
#[test]
fn run_prints_each_step_as_it_runs() {
    use std::io::{BufRead, BufReader};
    let dir = std::env::temp_dir().join(format!("cowlab-stream-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("long.cow");
    // Step 2 faults in 4 GiB of pages one by one before the OOM killer
    // ends it: seconds even in a release build.
    std::fs::write(&file, "set overcommit_memory=1\ntask P\nP: A = mmap 4K\nP: B = mmap 1024G\nP: write B fill 1 expect SIGKILL\n")
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cowlab"))
        .args(["run"])
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("cowlab runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while !seen.last().is_some_and(|l: &String| l.starts_with("[2] ")) {
        seen.push(lines.next().expect("a line before the end").unwrap());
    }
    let running = child.try_wait().unwrap().is_none();
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    assert!(running, "the run had ended before its first steps were read: {seen:#?}");
    assert!(seen[0].starts_with("== ") && seen.iter().any(|l| l.starts_with("[1] P: A = mmap 4K")), "{seen:#?}");

    let o = cowlab(&["run", CVE]);
    let l = scenario::load(CVE, &std::fs::read_to_string(root().join(CVE)).unwrap()).ok().unwrap();
    let r = scenario::run_loaded(&l, &mut scenario::model::ModelBackend::new(), &scenario::RunOptions::default()).unwrap();
    assert_eq!(text(&o.stdout), r.render(false));
}

/// A step that runs long shows a progress line on stderr only when asked
/// (`--progress always`) or when stderr is a terminal: captured output, as
/// here, carries no trace of it, and forcing it changes nothing on stdout.
#[test]
fn progress_line_only_on_a_terminal_or_when_forced() {
    let dir = std::env::temp_dir().join(format!("cowlab-progress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("long.cow");
    // Step 2 (line 3) stores to 262,144 pages: seconds in a debug build, most of a
    // second in a release one (the line shows after 0.3 s).
    std::fs::write(&file, "task T0\nT0: A = mmap 1G\nT0: write A fill 1\n").unwrap();
    let run = |extra: &[&str]| Command::new(env!("CARGO_BIN_EXE_cowlab")).arg("run").args(extra).arg(&file).output().expect("cowlab runs");
    let auto = run(&[]);
    let forced = run(&["--progress", "always"]);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(auto.status.code(), Some(0), "{}", text(&auto.stderr));
    assert_eq!(text(&auto.stderr), "", "nothing on a captured stderr");
    assert!(!auto.stdout.contains(&0x1b) && !auto.stdout.contains(&b'\r'), "{}", text(&auto.stdout));
    assert_eq!(forced.stdout, auto.stdout, "the progress line never reaches stdout");
    let err = text(&forced.stderr);
    let drawn: Vec<&str> = err.split("\r\x1b[2K").filter(|l| !l.is_empty()).collect();
    assert!(!drawn.is_empty(), "a line was drawn: {err:?}");
    assert!(drawn.iter().all(|l| l.starts_with("[2] T0: write A fill 1  ") && l.ends_with(" pages")), "{drawn:?}");
    assert!(err.ends_with("\r\x1b[2K"), "erased at the end of the step: {err:?}");
}

/// Output to a full disk is one line on stderr and exit status 2.
#[test]
fn a_full_disk_is_one_error_line() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else { return };
    let o = Command::new(env!("CARGO_BIN_EXE_cowlab")).args(["run", CVE]).current_dir(root()).stdout(full).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(text(&o.stderr).lines().count(), 1, "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("cannot write the output"));
}

#[test]
fn run_on_a_directory_runs_its_files_and_prints_a_total() {
    let o = cowlab(&["run", "--quiet", "examples"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let n = all_examples().len();
    assert!(out.ends_with(&format!("total: {n} files: {n} passed, 0 failed, 0 skipped, 0 not run (errors)\n")), "{out}");
}

/// `selftest --emit-scenarios` then `run` on every file it wrote gives
/// each test the selftest's own verdict: the hugetlb vmsplice tests that
/// cow.c reports as XFAIL carry the `xfail` marker (exit 0), the rest
/// pass; under the refcount reuse rule the marked tests pass and report
/// XPASS (exit 1).
#[test]
fn emitted_scenarios_give_the_selftests_verdicts() {
    let dir = std::env::temp_dir().join(format!("cowlab-emit-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let o = cowlab(&["selftest", "--format", "json", "--emit-scenarios", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let mut verdict = std::collections::BTreeMap::new();
    for l in text(&o.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let key = format!("{}-{:04}", v["suite"].as_str().unwrap(), v["number"].as_u64().unwrap());
        verdict.insert(key, v["outcome"].as_str().unwrap().to_uppercase());
    }
    let o = cowlab(&["run", "--quiet", d]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let mut seen = std::collections::BTreeSet::new();
    let mut xfail = 0;
    for l in out.lines().filter(|l| !l.starts_with("total:") && !l.starts_with(['[', ' '])) {
        let (status, rest) = l.split_once(' ').unwrap();
        let file = std::path::Path::new(rest.split(": ").next().unwrap()).file_name().unwrap().to_string_lossy().into_owned();
        // `SUITE-NNNN-description.cow` (suite names may hold dashes).
        let (key, v) = verdict.iter().find(|(k, _)| file.starts_with(&format!("{k}-"))).unwrap_or_else(|| panic!("{file}: no such test"));
        assert_eq!(status, v, "{file}: `cowlab run` says {status}, the selftest {v}");
        seen.insert(key.clone());
        xfail += usize::from(status == "XFAIL");
    }
    assert_eq!(seen.len(), verdict.len(), "every test was emitted and run");
    assert_eq!(xfail, 8, "{out}");
    let marked: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| std::fs::read_to_string(p).unwrap().contains("\nxfail \"Leak from "))
        .collect();
    assert_eq!(marked.len(), 8);
    let o = cowlab(&["run", "--quiet", "--set", "hugetlb_reuse=refcount", marked[0].to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stdout));
    assert!(text(&o.stdout).starts_with("XPASS "), "{}", text(&o.stdout));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn endless_and_empty_inputs() {
    let o = cowlab(&["check", "/dev/zero"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("larger than 16 MiB"), "{}", text(&o.stderr));
    let dir = std::env::temp_dir().join(format!("cowlab-cli-forms-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("comments.cow");
    std::fs::write(&f, "# only a comment\r# and another, CR line ends\r").unwrap();
    let o = cowlab(&["run", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("checks nothing"), "{}", text(&o.stderr));
    let o = cowlab(&["check", f.to_str().unwrap()]);
    assert!(text(&o.stdout).contains("checks nothing"), "{}", text(&o.stdout));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn run_html_draws_one_page_and_compare_draws_a_column_per_choice() {
    let dir = std::env::temp_dir().join(format!("cowlab-html-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let one = dir.join("one.html");
    let o = cowlab(&["run", "--quiet", "--html", one.to_str().unwrap(), CVE]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let page = std::fs::read_to_string(&one).unwrap();
    assert_eq!(page.matches("<section class=\"step\"").count(), 8);
    let two = dir.join("two.html");
    let o = cowlab(&["run", "--compare", "anon_reuse=anon_exclusive,mapcount", "--html", two.to_str().unwrap(), CVE]);
    // The pre-5.8 rule leaks, so not every choice met the expectations.
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let page = std::fs::read_to_string(&two).unwrap();
    assert_eq!(page.matches("<h3>anon_reuse=anon_exclusive</h3>").count(), 8);
    assert_eq!(page.matches("<h3>anon_reuse=mapcount</h3>").count(), 8);
    assert!(page.contains("<li class=\"check fail\">"), "the leak shows as a failed expectation");
    let o = cowlab(&["run", "--html", one.to_str().unwrap(), CVE, CVE]);
    assert_eq!(o.status.code(), Some(2), "--html draws one scenario");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn explore_html_draws_the_counterexample_a_column_per_task() {
    let out = std::env::temp_dir().join(format!("cowlab-race-{}.html", std::process::id()));
    let o = cowlab(&["explore", "--race", "fork-vs-gup-fast", "--set", "gup_fast_seqcount=off", "--html", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "a property is broken: {}", text(&o.stderr));
    let page = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    // The shortest interleaving has 11 steps; each section shows both tasks.
    assert_eq!(page.matches("<section class=\"step\"").count(), 11);
    assert_eq!(page.matches("<h3>T0 P: fork()</h3>").count(), 11);
    assert_eq!(page.matches("<h3>T1 P: pin_user_pages_fast(").count(), 11);
    assert!(page.contains("property pin-exclusive"), "the broken property is the last step's failed check");
    assert!(page.contains("try_grab_folio_fast"));
}

/// A process with THP disabled (prctl PR_SET_THP_DISABLE; here set by
/// the allocator, mimalloc, when MIMALLOC_ALLOW_THP=0) passes the flag to
/// every task it starts: the live backend refuses to start rather than
/// report the kernel's missing THPs as divergences. Live-kernel test: the
/// backend refuses before it changes anything, but a broken guard would run.
#[test]
fn live_backend_refuses_when_thp_is_disabled_for_the_process() {
    if let Some(skip) = live::live_tests_skip() {
        println!("{skip}");
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if !status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")) {
        println!("skip: not root (the live backend checks root first)");
        return;
    }
    let o = Command::new(env!("CARGO_BIN_EXE_cowlab"))
        .args(["run", "--backend", "live", CVE])
        .env("MIMALLOC_ALLOW_THP", "0")
        .current_dir(root())
        .output()
        .expect("cowlab runs");
    let out = text(&o.stdout);
    assert!(out.contains("the live backend cannot start: THP is disabled for this process"), "{out}{}", text(&o.stderr));
}
