//! `cowlab history FILE`: a scenario under every profile in release order;
//! per expectation, its outcome per profile, the first profile where it
//! changed and the commits that profile stands for.
use super::{load, EXIT_USAGE};
use mm::policy::PROFILE_INFO;
use scenario::report::{Entry, Report, Status};
use scenario::RunOptions;

/// Run a scenario under every kernel profile, oldest first, and show where
/// each expectation's outcome changed and which commits changed it (exit 0:
/// every expectation held on the newest profile; 2: usage error).
#[derive(clap::Args)]
pub struct Args {
    /// Profiles to use, comma-separated, oldest first (default: every x86
    /// profile; the powerpc hugepd ones are named explicitly).
    #[arg(long, value_name = "A,B")]
    profiles: Option<String>,
    /// Scenario files (.cow).
    #[arg(required = true)]
    files: Vec<String>,
}

/// One judged thing of a report: its source line, text, and outcome mark.
fn judged(r: &Report) -> Vec<(usize, String, String)> {
    let mut v = Vec::new();
    for e in &r.entries {
        match e {
            Entry::Step(s) => {
                for c in &s.checks {
                    let mark = if c.status == Status::Fail && !s.result.starts_with("ok") {
                        format!("✗ {}", s.result)
                    } else {
                        c.status.mark().to_string()
                    };
                    v.push((c.line, format!("[{}] {} — {}", s.step, s.text, c.text), mark));
                }
            }
            Entry::Expect(c) => v.push((c.line, c.text.clone(), c.status.mark().to_string())),
            _ => {}
        }
    }
    v
}

/// The mark of a step a profile's run did not judge: it succeeded there
/// without an expectation (only a failed step, or one never reached, is
/// judged without one), where another profile's run failed it or stopped
/// before it.
const NOT_JUDGED: &str = "✓ (ran, no expectation)";

/// The commits a change from profile `prev` to `cur` stands for: those of
/// `cur` and of every profile of its line between the two in release
/// order (when `--profiles` skips some).
fn commits_between(prev: &str, cur: &str) -> Vec<String> {
    let pos = |n: &str| PROFILE_INFO.iter().position(|p| p.name == n);
    let (Some(i), Some(j)) = (pos(prev), pos(cur)) else { return Vec::new() };
    let from = if i < j { i + 1 } else { j };
    PROFILE_INFO[from..=j]
        .iter()
        .filter(|p| p.arch == PROFILE_INFO[j].arch)
        .flat_map(|p| p.commits.iter().map(|(id, t, rel)| format!("{id} \"{t}\" ({rel})")))
        .collect()
}

pub fn main(a: Args) -> u8 {
    let names: Vec<String> = match &a.profiles {
        Some(p) => p.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect(),
        None => PROFILE_INFO.iter().filter(|i| i.arch == "x86").map(|i| i.name.to_string()).collect(),
    };
    let known: Vec<&str> = PROFILE_INFO.iter().map(|i| i.name).collect();
    if let Some(bad) = names.iter().find(|n| !known.contains(&n.as_str())) {
        eprintln!("cowlab: unknown profile `{bad}`; profiles are: {}", known.join(", "));
        return EXIT_USAGE;
    }
    if names.is_empty() {
        eprintln!("cowlab: --profiles names no profile; profiles are: {}", known.join(", "));
        return EXIT_USAGE;
    }
    let mut usage = false;
    let mut failed = false;
    for f in &a.files {
        let Some(l) = load(f) else {
            usage = true;
            continue;
        };
        let choices = names.iter().map(|n| (n.as_str(), RunOptions { profile: Some(n.clone()), ..Default::default() }));
        let Some(reports) = super::run_each_choice(f, &l, choices, false) else {
            usage = true;
            continue;
        };
        let runs: Vec<Vec<(usize, String, String)>> = reports.iter().map(judged).collect();
        println!("== {f}: {}", names.join(" → "));
        // The judged things of every run, by source line: a step that fails
        // on one profile is judged there ("livelock", later steps "not
        // run") where it has no expectation elsewhere. A line's mark on a
        // profile is its first failure there, else its first mark.
        let mut lines: Vec<usize> = runs.iter().flatten().map(|(l, _, _)| *l).collect();
        lines.sort_unstable();
        lines.dedup();
        let width = names.iter().map(String::len).max().unwrap_or(0);
        for line in &lines {
            let at = |r: &Vec<(usize, String, String)>| r.iter().filter(|(l, _, _)| l == line).cloned().collect::<Vec<_>>();
            let text = runs.iter().rev().find_map(|r| at(r).into_iter().next()).map(|(_, t, _)| t).unwrap_or_default();
            let marks: Vec<String> = runs
                .iter()
                .map(|r| {
                    let here = at(r);
                    let worst = here.iter().find(|(_, _, m)| m.starts_with('✗')).or(here.first());
                    worst.map_or_else(|| NOT_JUDGED.to_string(), |(_, _, m)| m.clone())
                })
                .collect();
            println!("line {line}: {text}");
            for (n, m) in names.iter().zip(&marks) {
                println!("    {n:<width$} {m}");
            }
            let changes: Vec<usize> = (1..marks.len()).filter(|&k| marks[k] != marks[k - 1]).collect();
            if changes.is_empty() {
                println!("    same on every profile");
            }
            for k in changes {
                let commits = commits_between(&names[k - 1], &names[k]);
                println!(
                    "    changed at {} (from {}): {}",
                    names[k],
                    names[k - 1],
                    if commits.is_empty() { "no commit recorded for this profile".to_string() } else { commits.join("; ") }
                );
            }
            failed |= marks.last().is_some_and(|m| m.starts_with('✗'));
        }
    }
    super::exit_code(usage, failed)
}
