//! `cowlab selftest`: the kernel's cow and gup_longterm selftests, run as
//! generated scenarios on the model, printed as kselftest prints them.
use super::{EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use rayon::prelude::*;
use scenario::RunOptions;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use suites::{ktap, Config, Judged, Outcome, SelfTest, Suite};

/// Run the kernel's mm selftest matrices (cow.c, gup_longterm.c) on the
/// model; exit 0 when no test is `not ok`.
#[derive(clap::Args)]
pub struct Args {
    /// Which suite (cow, gup_longterm, mkdirty, madv_populate, …; the
    /// error message lists them) or all.
    #[arg(default_value = "all")]
    suite: String,
    /// Kernel profile to model.
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Override a policy knob, e.g. --set hugetlb_reuse=refcount.
    #[arg(long = "set", value_name = "KNOB=VALUE", value_parser = super::run::parse_knob)]
    set: Vec<(String, String)>,
    /// Output: ktap (as kselftest prints), json (one document per test), or
    /// summary (a table per suite and memory kind).
    #[arg(long, default_value = "ktap", value_parser = ["ktap", "json", "summary"])]
    format: String,
    /// Run only the tests whose description matches REGEX (e.g.
    /// "vmsplice.*hugetlb"); they keep their numbers.
    #[arg(long, value_name = "REGEX")]
    filter: Option<String>,
    /// Also write every generated test as a scenario file into DIR.
    #[arg(long, value_name = "DIR")]
    emit_scenarios: Option<String>,
    /// Also write every test's step-through page (cowlab run --html) into
    /// DIR: the test run once more on the model with the whole state drawn
    /// after every step.
    #[arg(long, value_name = "DIR")]
    emit_html: Option<String>,
    /// Check the model's invariants after every step (slower).
    #[arg(long)]
    check_invariants: bool,
    /// Where to run: the model, the kernel this machine boots (root; its
    /// hugetlb/THP settings are changed per test and restored), or both:
    /// the kernel's KTAP, then every test whose outcome differs between
    /// model and kernel, and both wall times with their ratio.
    #[arg(long, default_value = "model", value_parser = ["model", "live", "both"])]
    backend: String,
}

/// Runs tests one by one, each on a fresh backend, results in the
/// tests' order. On the model the tests are independent kernels, so they
/// run in parallel across cores; on the live kernel one after another
/// (fresh processes, settings restored between tests; the machine lock
/// allows one live run at a time). A live backend that cannot start (not
/// root, …) skips the test with its reason.
fn run_tests(tests: &[SelfTest], opts: &RunOptions, check_invariants: bool, live: bool) -> Vec<Result<Judged, String>> {
    let judged =
        |t: &SelfTest, r: Result<(Judged, scenario::Report), String>| r.map(|(j, _)| j).map_err(|e| format!("{}: {e}", t.description));
    if live {
        return tests
            .iter()
            .map(|t| match live::LiveBackend::new(live::LiveOptions::default()) {
                Ok(mut be) => judged(t, suites::run(t, &mut be, opts)),
                Err(e) => Ok(Judged { outcome: Outcome::Skip, messages: vec![e], raw: None, hung: false }),
            })
            .collect();
    }
    tests
        .par_iter()
        .map(|t| {
            let mut be = scenario::model::ModelBackend::new().with_self_check(check_invariants).with_trace(false);
            judged(t, suites::run(t, &mut be, opts))
        })
        .collect()
}

pub fn main(a: Args) -> u8 {
    let selected: Vec<Suite> = match a.suite.as_str() {
        "all" => Suite::ALL.to_vec(),
        s => match Suite::parse(s) {
            Some(s) => vec![s],
            None => {
                let names: Vec<&str> = Suite::ALL.iter().map(|s| s.name()).collect();
                eprintln!("cowlab: unknown suite `{s}`; suites are: {}, all", names.join(", "));
                return EXIT_USAGE;
            }
        },
    };
    let filter = match a.filter.as_deref().map(regex::Regex::new).transpose() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cowlab: --filter: {e}");
            return EXIT_USAGE;
        }
    };
    let opts = RunOptions { profile: a.profile.clone(), knobs: a.set.clone(), ..Default::default() };
    let cfg = Config::this_machine();
    // Generating a suite is pure and the model's tests are independent
    // kernels, so on the model alone every suite is generated and run at
    // once across the cores (a suite's tests start while a bigger suite is
    // still being generated, and no core waits at the end of a suite); the
    // results are then reported suite by suite as before. With the kernel
    // involved the suites run in turn, each timed.
    let model_only = a.backend == "model";
    let generated: Vec<_> = selected
        .par_iter()
        .map(|&suite| {
            let mut tests = suites::generate(suite, &cfg);
            if let Some(f) = &filter {
                tests.retain(|t| f.is_match(&t.description));
            }
            let judged = model_only.then(|| run_tests(&tests, &opts, a.check_invariants, false));
            (suite, tests, judged)
        })
        .collect();
    let mut any_fail = false;
    for (suite, tests, judged) in generated {
        if let Some(dir) = &a.emit_scenarios {
            if let Err(e) = emit(dir, &tests, &opts) {
                eprintln!("cowlab: {e}");
                return EXIT_USAGE;
            }
        }
        if let Some(dir) = &a.emit_html {
            if let Err(e) = emit_html(dir, &tests, &opts) {
                eprintln!("cowlab: {e}");
                return EXIT_USAGE;
            }
        }
        let timed = |live: bool| {
            let t0 = Instant::now();
            run_tests(&tests, &opts, a.check_invariants, live).into_iter().collect::<Result<Vec<_>, _>>().map(|j| (j, t0.elapsed()))
        };
        let model = match a.backend.as_str() {
            "both" => match timed(false) {
                Ok(m) => Some(m),
                Err(e) => {
                    eprintln!("cowlab: {e}");
                    return EXIT_USAGE;
                }
            },
            _ => None,
        };
        let ran = match judged {
            Some(results) => results.into_iter().collect::<Result<Vec<_>, _>>().map(|j| (j, Duration::ZERO)),
            None => timed(true),
        };
        let (judged, took) = match ran {
            Ok(j) => j,
            Err(e) => {
                eprintln!("cowlab: {e}");
                return EXIT_USAGE;
            }
        };
        any_fail |= judged.iter().any(|j| j.outcome == Outcome::Fail);
        let side_by_side = model.map(|(m, mt)| compare(suite, &tests, &m, mt, &judged, took));
        let results: Vec<(&SelfTest, Judged)> = tests.iter().zip(judged).collect();
        match a.format.as_str() {
            "json" => {
                for (t, j) in &results {
                    let doc = serde_json::json!({
                        "suite": suite.name(),
                        "number": t.number,
                        "description": t.description,
                        "outcome": j.outcome,
                        "messages": j.messages,
                    });
                    outln!("{doc}");
                }
            }
            "summary" => out!("{}", ktap::summary(suite, &results)),
            _ => out!("{}", ktap::render(suite, &ktap::preamble(suite, &cfg), &results)),
        }
        if let Some(c) = side_by_side {
            out!("{c}");
        }
    }
    if a.backend != "model" {
        // On stderr: KTAP on stdout stays what kselftest prints.
        for (size, (tried, filled)) in live::backend::COMPACTIONS.counts() {
            eprintln!(
                "cowlab: live: {} hugetlb pool short {tried} time(s); compact_memory then filled it {filled} time(s)",
                scenario::ast::fmt_size(size)
            );
        }
    }
    if any_fail {
        EXIT_FAIL
    } else {
        EXIT_OK
    }
}

/// Writes each test as a scenario file that runs as the selftest ran it:
/// the `profile` and `set` lines in force first (a `set` the scenario
/// makes itself stays where it is), an `xfail` marker with the selftest's
/// message on a test whose failure the selftest reports as XFAIL (so
/// `cowlab run` gives its verdict), and a comment above each check whose
/// failure the selftest counts as XFAIL or SKIP rather than FAIL.
fn emit(dir: &str, tests: &[SelfTest], opts: &RunOptions) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
    for t in tests {
        let path = std::path::Path::new(dir).join(t.file_name());
        std::fs::write(&path, emitted_scenario(t, &t.scenario, &t.verdicts, opts))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        // The variant a backend without gup_test runs, next to it.
        if let Some(p) = &t.program_pins {
            let path = path.with_extension("program-pins.cow");
            std::fs::write(&path, emitted_scenario(t, p.scenario(), p.verdicts(), opts))
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

fn emitted_scenario(t: &SelfTest, scenario: &str, verdicts: &[(usize, suites::Verdict)], opts: &RunOptions) -> String {
    let mut out = format!("# {} test {}: {}\n", t.suite.name(), t.number, t.description);
    if let Some(p) = &opts.profile {
        let _ = writeln!(out, "profile {p}");
    }
    for (k, v) in &opts.knobs {
        let _ = writeln!(out, "set {k}={v}");
    }
    if let Some((_, suites::Verdict::Xfail(m))) = verdicts.iter().find(|(_, v)| matches!(v, suites::Verdict::Xfail(_))) {
        let quoted = m.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = writeln!(out, "xfail \"{quoted}\"");
    }
    for (i, line) in scenario.lines().enumerate() {
        match verdicts.iter().find(|(l, _)| *l == i + 1).map(|(_, v)| v) {
            Some(suites::Verdict::Xfail(m)) => {
                let _ = writeln!(out, "# XFAIL in {}: a failure of the next line is expected ({m})", t.suite.name());
            }
            Some(suites::Verdict::Skip(m) | suites::Verdict::RawSkip(m)) => {
                let _ = writeln!(out, "# SKIP in {}: a failure of the next line skips the test ({m})", t.suite.name());
            }
            Some(suites::Verdict::Fail(_)) | None => {}
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

fn emit_html(dir: &str, tests: &[SelfTest], opts: &RunOptions) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
    for t in tests {
        let mut be = scenario::model::ModelBackend::new().with_state_views(true);
        let (_, report) = suites::run(t, &mut be, opts).map_err(|e| format!("{}: {e}", t.description))?;
        let title = format!("{} {} — {}", t.suite.name(), t.number, t.description);
        let page = picture::page(&title, &[("model".to_string(), &report)], picture::Columns::PerReport);
        let path = std::path::Path::new(dir).join(t.file_name().replace(".cow", ".html"));
        std::fs::write(&path, page).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The model's and the kernel's outcomes side by side: every test both ran
/// with a different outcome (a kernel SKIP is listed apart: a test this
/// machine cannot run), and both wall times with their ratio.
fn compare(suite: Suite, tests: &[SelfTest], model: &[Judged], model_took: Duration, live: &[Judged], live_took: Duration) -> String {
    let totals = |js: &[Judged]| {
        let n = |o: Outcome| js.iter().filter(|j| j.outcome == o).count();
        format!("pass {} fail {} xfail {} skip {}", n(Outcome::Pass), n(Outcome::Fail), n(Outcome::Xfail), n(Outcome::Skip))
    };
    let mut s = format!("# {} on the model and on this kernel\n", suite.name());
    let _ = writeln!(s, "#   model:  {} in {:.2} s", totals(model), model_took.as_secs_f64());
    let _ = writeln!(
        s,
        "#   kernel: {} in {:.2} s (×{:.0} the model's time)",
        totals(live),
        live_took.as_secs_f64(),
        live_took.as_secs_f64() / model_took.as_secs_f64().max(1e-9)
    );
    let differ: Vec<_> = tests
        .iter()
        .zip(model.iter().zip(live))
        .filter(|(_, (m, l))| m.outcome != l.outcome && l.outcome != Outcome::Skip && m.outcome != Outcome::Skip)
        .collect();
    let skipped = live.iter().zip(model).filter(|(l, m)| l.outcome == Outcome::Skip && m.outcome != Outcome::Skip).count();
    let _ = writeln!(s, "#   {} test(s) with different outcomes; {skipped} the kernel skipped here", differ.len());
    for (t, (m, l)) in differ {
        let _ = writeln!(s, "#     {} {}: model {}, kernel {}", t.number, t.description, m.outcome, l.outcome);
    }
    s
}
