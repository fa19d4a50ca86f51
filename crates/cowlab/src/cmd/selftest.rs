//! `cowlab selftest`: the kernel's cow and gup_longterm selftests, run as
//! generated scenarios on the model, printed as kselftest prints them.
use super::{EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use scenario::RunOptions;
use suites::{ktap, Config, Judged, Outcome, SelfTest, Suite};

/// Run the kernel's mm selftest matrices (cow.c, gup_longterm.c) on the
/// model; exit 0 when no test is `not ok`.
#[derive(clap::Args)]
pub struct Args {
    /// Which suite: cow, gup_longterm or all.
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
    /// Also write every generated test as a scenario file into DIR.
    #[arg(long, value_name = "DIR")]
    emit_scenarios: Option<String>,
    /// Check the model's invariants after every step (slower).
    #[arg(long)]
    check_invariants: bool,
    /// Where to run: the model, or the kernel this machine boots (root; its
    /// hugetlb/THP settings are changed per test and restored).
    #[arg(long, default_value = "model", value_parser = ["model", "live"])]
    backend: String,
}

/// Runs one suite test by test, each on a fresh backend (for the live
/// kernel: fresh processes, settings restored between tests). A backend
/// that cannot start (not root, …) skips the test with its reason.
pub fn run_suite(tests: &[SelfTest], opts: &RunOptions, check_invariants: bool, live: bool) -> Result<Vec<Judged>, String> {
    tests
        .iter()
        .map(|t| {
            let r = if live {
                match live::LiveBackend::new(live::LiveOptions::default()) {
                    Ok(mut be) => suites::run(t, &mut be, opts),
                    Err(e) => return Ok(Judged { outcome: Outcome::Skip, messages: vec![e], raw: None }),
                }
            } else {
                let mut be = scenario::model::ModelBackend::new().with_self_check(check_invariants);
                suites::run(t, &mut be, opts)
            };
            r.map(|(j, _)| j).map_err(|e| format!("{}: {e}", t.description))
        })
        .collect()
}

pub fn main(a: Args) -> u8 {
    let selected: Vec<Suite> = match a.suite.as_str() {
        "all" => Suite::ALL.to_vec(),
        s => match Suite::parse(s) {
            Some(s) => vec![s],
            None => {
                eprintln!("cowlab: unknown suite `{s}`; suites are: cow, gup_longterm, all");
                return EXIT_USAGE;
            }
        },
    };
    let opts = RunOptions { profile: a.profile.clone(), knobs: a.set.clone() };
    let cfg = Config::this_machine();
    let mut any_fail = false;
    for suite in selected {
        let tests = suites::generate(suite, &cfg);
        if let Some(dir) = &a.emit_scenarios {
            if let Err(e) = emit(dir, &tests) {
                eprintln!("cowlab: {e}");
                return EXIT_USAGE;
            }
        }
        let judged = match run_suite(&tests, &opts, a.check_invariants, a.backend == "live") {
            Ok(j) => j,
            Err(e) => {
                eprintln!("cowlab: {e}");
                return EXIT_USAGE;
            }
        };
        any_fail |= judged.iter().any(|j| j.outcome == Outcome::Fail);
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
                    println!("{doc}");
                }
            }
            "summary" => print!("{}", ktap::summary(suite, &results)),
            _ => print!("{}", ktap::render(suite, &ktap::preamble(suite, &cfg), &results)),
        }
    }
    if any_fail {
        EXIT_FAIL
    } else {
        EXIT_OK
    }
}

fn emit(dir: &str, tests: &[SelfTest]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
    for t in tests {
        let path = std::path::Path::new(dir).join(t.file_name());
        std::fs::write(&path, &t.scenario).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
