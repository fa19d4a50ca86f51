//! `cowlab diff [FILE…] [--suite NAME]`: every scenario on the model and on
//! the live kernel, divergences side by side.
use super::{load, EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use differential::diff::{diff_loaded, DiffResult};
use live::{LiveBackend, LiveOptions};
use scenario::model::ModelBackend;
use std::time::Duration;

/// Run scenarios on the model and on this machine's kernel and print every
/// divergence: step, observation, model, kernel, and the
/// docs/divergences.md entry that explains it, if one does (exit 0: none
/// that is undocumented, 1: some, 2: usage or parse error). Needs root;
/// without it every scenario is skipped with the reason.
#[derive(clap::Args)]
pub struct Args {
    /// Diff a selftest's generated scenarios: cow or gup_longterm.
    #[arg(long, value_name = "NAME")]
    suite: Option<String>,
    /// Only suite tests whose description contains this text.
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Seconds a single step may take on the live kernel.
    #[arg(long, default_value_t = 10)]
    step_timeout: u64,
    /// Print only scenarios that diverge (and a summary).
    #[arg(long)]
    quiet: bool,
    /// Scenario files (.cow).
    files: Vec<String>,
}

pub fn main(a: Args) -> u8 {
    let mut work: Vec<(String, scenario::Loaded)> = Vec::new();
    let mut usage = false;
    for f in &a.files {
        match load(f) {
            Some(l) => work.push((f.clone(), l)),
            None => usage = true,
        }
    }
    if let Some(s) = &a.suite {
        let Some(suite) = suites::Suite::parse(s) else {
            eprintln!("cowlab diff: unknown suite `{s}` (cow, gup_longterm)");
            return EXIT_USAGE;
        };
        for t in suites::generate(suite, &suites::Config::this_machine()) {
            if a.filter.as_ref().is_some_and(|f| !t.description.contains(f.as_str())) {
                continue;
            }
            // The kernel has no gup_test here: the tests that have a
            // program-level variant run that on both sides.
            let t = t.with_program_pins();
            let name = format!("{} {} {}", suite.name(), t.number, t.description);
            match scenario::load(&name, &t.scenario) {
                Ok(l) => work.push((name, l)),
                Err((src, ds)) => {
                    for d in ds {
                        eprint!("{}", d.render(&src));
                    }
                    usage = true;
                }
            }
        }
    }
    if usage {
        return EXIT_USAGE;
    }
    if work.is_empty() {
        eprintln!("cowlab diff: give scenario files or --suite NAME");
        return EXIT_USAGE;
    }
    let opts = LiveOptions { step_timeout: Duration::from_secs(a.step_timeout.max(1)), ..LiveOptions::default() };
    let (mut diverged, mut agreed, mut skipped, mut documented) = (0, 0, 0, 0);
    // One live backend per scenario: fresh processes, settings restored
    // between scenarios.
    for (name, l) in &work {
        let r = match LiveBackend::new(opts.clone()) {
            Ok(mut live) => {
                let profile = l
                    .scenario
                    .items
                    .iter()
                    .find_map(|i| match &i.kind {
                        scenario::ast::ItemKind::Profile(p) => Some(p.value.clone()),
                        _ => None,
                    })
                    .unwrap_or_else(|| scenario::DEFAULT_PROFILE.to_string());
                if profile != live.profile() {
                    DiffResult {
                        file: name.clone(),
                        skipped: Some(format!("profile {profile}: this machine runs {}", live.profile())),
                        divergences: vec![],
                    }
                } else {
                    let mut model = ModelBackend::new();
                    diff_loaded(l, &mut model, &mut live)
                }
            }
            Err(e) => DiffResult { file: name.clone(), skipped: Some(e), divergences: vec![] },
        };
        if r.skipped.is_some() {
            skipped += 1;
        } else if r.divergences.is_empty() {
            agreed += 1;
        } else if r.undocumented().next().is_none() {
            documented += 1;
        } else {
            diverged += 1;
        }
        if !a.quiet || !r.divergences.is_empty() {
            out!("{}", r.render());
        }
    }
    // A scenario whose every divergence is documented is counted apart and
    // does not fail the run: exit 1 means something nobody has explained.
    outln!("diff: {agreed} agree, {diverged} diverge, {documented} diverge only as documented, {skipped} skipped");
    if diverged > 0 {
        EXIT_FAIL
    } else {
        EXIT_OK
    }
}
