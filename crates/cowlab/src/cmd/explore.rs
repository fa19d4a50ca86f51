//! `cowlab explore`: every interleaving of racing kernel paths, checked.
use super::run::parse_knob;
use super::{EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use explore::check::{explore, merge, render_text, Options, Report};
use explore::races::{BuiltIn, BUILT_IN};

/// Explore every interleaving of a race between kernel paths (GUP-fast
/// against fork, zap, the COW fault, THP collapse, swap-out) and check the
/// model's properties in every state; print the shortest counterexample as
/// one column per task (exit 0: none, 1: a property broken, 2: usage).
#[derive(clap::Args)]
pub struct Args {
    /// A scenario file with a `race { }` block.
    #[arg(value_name = "FILE", conflicts_with = "race")]
    file: Option<String>,
    /// A built-in race (`--list` names them).
    #[arg(long, value_name = "NAME")]
    race: Option<String>,
    /// List the built-in races and the checks that close them.
    #[arg(long)]
    list: bool,
    /// Switch a policy knob, e.g. --set gup_fast_seqcount=off.
    #[arg(long = "set", value_name = "KNOB=VALUE", value_parser = parse_knob)]
    set: Vec<(String, String)>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Checker threads (more than one may not give the shortest path).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Explore only shard I of N (I from 0), for spreading a large
    /// exploration over machines; merge the JSON results with --merge.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Write the result as JSON to this file (as well as printing it).
    #[arg(long, value_name = "FILE")]
    out: Option<String>,
    /// Merge shard result files (JSON) into one report.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    merge: Vec<String>,
    /// Also write the counterexample's step-through page (one column per
    /// task, the whole state after every step) to OUT.html.
    #[arg(long, value_name = "OUT.html")]
    html: Option<String>,
    /// Browse the state space in stateright's web explorer at ADDR
    /// (e.g. localhost:3000); runs until interrupted.
    #[arg(long, value_name = "ADDR")]
    serve: Option<String>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Json,
}

fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("`{s}` is not I/N with 0 <= I < N (e.g. 0/4)");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

pub fn main(a: Args) -> u8 {
    if a.list {
        for b in BUILT_IN {
            let breaks: Vec<String> = b.breaks.iter().map(|set| set.join("+") + "=off").collect();
            println!("{:<22} {}\n{:<22} found with: {}", b.name, b.about, "", breaks.join("; "));
        }
        return EXIT_OK;
    }
    if !a.merge.is_empty() {
        let mut reports = Vec::new();
        for f in &a.merge {
            let text = match std::fs::read_to_string(f) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("cowlab explore: cannot read {f}: {e}");
                    return EXIT_USAGE;
                }
            };
            match serde_json::from_str::<Report>(&text) {
                Ok(r) => reports.push(r),
                Err(e) => {
                    eprintln!("cowlab explore: {f} is not an explore result: {e}");
                    return EXIT_USAGE;
                }
            }
        }
        return match merge(&reports) {
            Ok(r) => emit(&a, &r, None),
            Err(e) => {
                eprintln!("cowlab explore: {e}");
                EXIT_USAGE
            }
        };
    }
    if let Some(f) = a.file.as_deref() {
        let Some(l) = super::load(f) else { return EXIT_USAGE };
        let opts = scenario::RunOptions { knobs: a.set.clone(), ..Default::default() };
        let race = match explore::file::race_of(&l, &opts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("cowlab explore: {f}: {e}");
                return EXIT_USAGE;
            }
        };
        if let Some(addr) = &a.serve {
            return serve(race, addr);
        }
        let r = explore(&race, Options { threads: a.threads, shard: a.shard });
        return emit(&a, &r, Some(&race));
    }
    let Some(name) = a.race.as_deref() else {
        eprintln!("cowlab explore: give a scenario FILE, --race NAME (see --list) or --merge FILES");
        return EXIT_USAGE;
    };
    let Some(b) = BuiltIn::by_name(name) else {
        let names: Vec<&str> = BUILT_IN.iter().map(|b| b.name).collect();
        eprintln!("cowlab explore: no built-in race `{name}`; races are: {}", names.join(", "));
        return EXIT_USAGE;
    };
    let mut policy = mm::Policy::default();
    for (k, v) in &a.set {
        if let Err(e) = policy.set(k, v) {
            eprintln!("cowlab explore: {e}");
            return EXIT_USAGE;
        }
    }
    let race = b.build(policy);
    if let Some(addr) = &a.serve {
        return serve(race, addr);
    }
    let r = explore(&race, Options { threads: a.threads, shard: a.shard });
    emit(&a, &r, Some(&race))
}

/// A counterexample as a scenario trace, so the one renderer draws it: a
/// step per kernel function played, in the column of the task that played
/// it, the broken property as the last step's failed check.
fn counterexample_trace(r: &Report, race: &explore::model::Race) -> Option<scenario::Report> {
    use scenario::report::{Check, Entry, StepReport, Summary};
    let c = r.counterexample.as_ref()?;
    let n = c.steps.len();
    let entries = c
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let checks = if i + 1 == n {
                vec![Check {
                    line: 0,
                    column: 0,
                    text: format!("property {}", c.property),
                    status: scenario::Status::Fail,
                    detail: Some(c.message.clone()),
                }]
            } else {
                Vec::new()
            };
            Entry::Step(StepReport {
                step: i + 1,
                line: 0,
                task: r.tasks.get(s.task).cloned().unwrap_or_default(),
                text: s.func.clone(),
                result: String::new(),
                kernel: s.events.clone(),
                deltas: s.changes.clone(),
                checks,
                state: s.state.clone(),
            })
        })
        .collect();
    let mut t = scenario::Report {
        trace_version: scenario::report::TRACE_VERSION,
        file: format!("race {}", r.race),
        backend: "model".into(),
        profile: r.policy.clone(),
        knobs: Vec::new(),
        status: scenario::Status::Fail,
        skip_reason: None,
        xfail: None,
        entries,
        summary: Summary::default(),
        task_names: race.names.iter().map(|(p, n)| (p.0, n.clone())).collect(),
    };
    t.finish();
    Some(t)
}

fn emit(a: &Args, r: &Report, race: Option<&explore::model::Race>) -> u8 {
    if let Some(out) = &a.html {
        let Some(trace) = race.and_then(|race| counterexample_trace(r, race)) else {
            eprintln!("cowlab explore: no counterexample to draw (--html draws the interleaving that breaks a property)");
            return if r.ok() { EXIT_OK } else { EXIT_USAGE };
        };
        let title = format!("race {} under {}", r.race, r.policy);
        if let Err(e) = std::fs::write(out, picture::page(&title, &[("model".to_string(), &trace)], picture::Columns::PerTask)) {
            eprintln!("cowlab explore: cannot write {out}: {e}");
            return EXIT_USAGE;
        }
    }
    let json = serde_json::to_string_pretty(r).expect("a report is plain data");
    if let Some(f) = &a.out {
        if let Err(e) = std::fs::write(f, &json) {
            eprintln!("cowlab explore: cannot write {f}: {e}");
            return EXIT_USAGE;
        }
    }
    match a.format {
        Format::Text => print!("{}", render_text(r)),
        Format::Json => println!("{json}"),
    }
    if r.ok() {
        EXIT_OK
    } else {
        EXIT_FAIL
    }
}

fn serve(race: explore::model::Race, addr: &str) -> u8 {
    use stateright::Model;
    println!("cowlab explore: state-space explorer for {} at http://{addr}/ (Ctrl-C to stop)", race.name);
    race.checker().serve(addr);
    EXIT_OK
}
