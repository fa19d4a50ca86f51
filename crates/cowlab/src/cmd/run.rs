//! `cowlab run FILE…`: run scenarios on the model kernel (or on this
//! machine's kernel) and print the trace.
use super::{load, EXIT_USAGE};
use scenario::{RunOptions, Status};

/// Run scenarios on the model kernel, or with `--backend live` on the
/// kernel this machine boots (root; hugetlb/THP settings journaled and
/// restored); print each step, what the kernel did (the model's decisions,
/// the live kernel's log lines), counter deltas and the expectations (exit
/// 0: all held, or a scenario marked `xfail` failed; 1: one failed, or a
/// scenario marked `xfail` passed; 2: usage or parse error).
#[derive(clap::Args)]
pub struct Args {
    /// Only print failures and one result line per scenario.
    #[arg(long)]
    quiet: bool,
    /// One JSON document per scenario (one per line) instead of the trace:
    /// the versioned trace of docs/trace-format.md, with the whole state
    /// after every step.
    #[arg(long)]
    json: bool,
    /// Also write the step-through page (one self-contained HTML file:
    /// every step's state as a diagram) to OUT; needs exactly one file.
    #[arg(long, value_name = "OUT.html")]
    html: Option<String>,
    /// Kernel profile to model (overrides the file's `profile`).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Override a policy knob for this run, e.g. --set anon_reuse=mapcount.
    #[arg(long = "set", value_name = "KNOB=VALUE", value_parser = parse_knob)]
    set: Vec<(String, String)>,
    /// Where to run: the model, or the kernel this machine boots (what it
    /// cannot observe is skipped with the reason; a machine that cannot run
    /// live scenarios at all skips each file).
    #[arg(long, default_value = "model", value_parser = ["model", "live"])]
    backend: String,
    /// Seconds a single step may take on the live kernel (after that it
    /// counts as a livelock and its task is killed).
    #[arg(long, default_value_t = 10)]
    step_timeout: u64,
    /// Check the model's invariants after every step (slower: each check
    /// walks the whole modelled system; the tests always do it).
    #[arg(long)]
    check_invariants: bool,
    /// Show a step that runs for more than 0.3 s on standard error (its
    /// text, time so far and, on the model, pages handled so far), erased
    /// when it ends: `auto` when standard error is a terminal.
    #[arg(long, value_enum, default_value = "auto", value_name = "WHEN")]
    progress: crate::progress::When,
    /// Run each scenario once per value of one knob and print one trace with
    /// a column per value, e.g. --compare hugetlb_reuse=mapcount,refcount;
    /// rows where the outcome or the deciding kernel function differ are
    /// marked `≠` (exit 0 only when every value met every expectation).
    #[arg(long, value_name = "KNOB=V1,V2", conflicts_with_all = ["json", "compare_profiles"])]
    compare: Option<String>,
    /// The same, one column per profile: --compare-profiles linux-5.7,linux-6.18.
    #[arg(long, value_name = "A,B", conflicts_with_all = ["json"])]
    compare_profiles: Option<String>,
    /// Scenario files (.cow), or directories: every .cow file in them.
    #[arg(required = true)]
    files: Vec<String>,
}

pub fn parse_knob(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not KNOB=VALUE (e.g. anon_reuse=mapcount)")),
    }
}

/// The files named, a directory standing for the `.cow` files in it (in
/// name order, not recursing).
pub fn expand(args: &[String]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for a in args {
        let p = std::path::Path::new(a);
        if !p.is_dir() {
            out.push(a.clone());
            continue;
        }
        let rd = std::fs::read_dir(p).map_err(|e| format!("cowlab: cannot read the directory {a}: {e}"))?;
        let mut files: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|f| f.extension().is_some_and(|x| x == "cow") && f.is_file())
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        if files.is_empty() {
            return Err(format!("cowlab: no .cow files in {a}"));
        }
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

pub fn main(a: Args) -> u8 {
    let opts = RunOptions { profile: a.profile.clone(), knobs: a.set.clone(), ..Default::default() };
    let files = match expand(&a.files) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_USAGE;
        }
    };
    if a.html.is_some() && files.len() != 1 {
        eprintln!("cowlab run: --html draws one scenario; {} files were given", files.len());
        return EXIT_USAGE;
    }
    if a.compare.is_some() || a.compare_profiles.is_some() {
        let choices = match compare_choices(&a, &opts) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("cowlab: {e}");
                return EXIT_USAGE;
            }
        };
        return super::compare::main(&a.files, &choices, a.html.as_deref());
    }
    let progress = crate::progress::StepProgress::start(a.progress);
    let mut usage = false;
    let mut failed = false;
    // Files passed, failed, skipped, not run (errors), xfail, xpass.
    let mut totals = [0usize; 6];
    for f in &files {
        let Some(l) = load(f) else {
            usage = true;
            totals[3] += 1;
            continue;
        };
        let mut model;
        let mut kernel;
        let backend: &mut dyn scenario::backend::Backend = if a.backend == "live" {
            let lo =
                live::LiveOptions { step_timeout: std::time::Duration::from_secs(a.step_timeout.max(1)), ..live::LiveOptions::default() };
            match live::LiveBackend::new(lo) {
                Ok(b) => {
                    kernel = b;
                    &mut kernel
                }
                Err(e) => {
                    println!("SKIP {f}: the live backend cannot start: {e}");
                    continue;
                }
            }
        } else {
            model = scenario::model::ModelBackend::new().with_state_views(a.json || a.html.is_some()).with_self_check(a.check_invariants);
            &mut model
        };
        // The trace goes out entry by entry as the run makes it, so a long
        // scenario shows where it is; JSON is one document at the end.
        let mut started = false;
        let mut stream = |r: &scenario::Report, i: usize| {
            if a.json {
                return;
            }
            if !started {
                out!("{}", r.render_head(a.quiet));
                started = true;
            }
            out!("{}", r.render_entry(&r.entries[i], a.quiet));
        };
        let mut watch = Watch { progress: progress.as_ref(), entry: &mut stream };
        match scenario::run_loaded_observed(&l, backend, &opts, &mut watch) {
            Ok(report) => {
                if a.json {
                    outln!("{}", report.to_json());
                } else {
                    if !started {
                        out!("{}", report.render_head(a.quiet));
                    }
                    out!("{}", report.render_tail());
                }
                match report.status {
                    _ if l.checks_nothing() => {
                        eprintln!("cowlab: {f}: no operation and no expectation: this file checks nothing");
                        failed = true;
                        totals[1] += 1;
                    }
                    Status::Pass => totals[0] += 1,
                    Status::Fail => {
                        failed = true;
                        totals[1] += 1;
                    }
                    Status::Skip => totals[2] += 1,
                    Status::Xfail => totals[4] += 1,
                    // Status::fails_run: the marker is stale, or the bug
                    // it records is fixed.
                    Status::Xpass => {
                        failed = true;
                        totals[5] += 1;
                    }
                }
                if let Some(out) = &a.html {
                    if let Err(e) = std::fs::write(out, picture::report_page(&report)) {
                        eprintln!("cowlab run: cannot write {out}: {e}");
                        usage = true;
                    }
                }
            }
            Err(diags) => {
                for d in diags {
                    if d.span == scenario::Span::default() && !l.source.text.is_empty() {
                        // From the command line: no position in the file.
                        eprintln!("cowlab: {f}: error: {d}");
                        for n in &d.notes {
                            eprintln!("  note: {n}");
                        }
                    } else {
                        eprint!("{}", d.render(&l.source));
                    }
                }
                usage = true;
                totals[3] += 1;
            }
        }
    }
    if files.len() > 1 && !a.json {
        let [p, f, s, e, xf, xp] = totals;
        let expected = if xf + xp > 0 { format!(", {xf} xfail, {xp} xpass") } else { String::new() };
        outln!("total: {} files: {p} passed, {f} failed{expected}, {s} skipped, {e} not run (errors)", files.len());
    }
    super::exit_code(usage, failed)
}

/// What `run` does as a scenario goes: each entry is printed by `entry`;
/// a long step shows on the progress line meanwhile.
struct Watch<'a, F> {
    progress: Option<&'a crate::progress::StepProgress>,
    entry: F,
}

impl<F: FnMut(&scenario::Report, usize)> scenario::run::Observer for Watch<'_, F> {
    fn step_begins(&mut self, step: usize, text: &str, work: Option<mm::WorkCounter>) {
        if let Some(p) = self.progress {
            p.begin(step, text, work);
        }
    }

    fn step_ends(&mut self) {
        if let Some(p) = self.progress {
            p.end();
        }
    }

    fn entry(&mut self, report: &scenario::Report, i: usize) {
        (self.entry)(report, i)
    }
}

/// The runs `--compare` / `--compare-profiles` ask for: (column title,
/// options), each on top of `--profile` and `--set`.
fn compare_choices(a: &Args, base: &RunOptions) -> Result<Vec<(String, RunOptions)>, String> {
    let split = |v: &str| v.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect::<Vec<_>>();
    let out: Vec<(String, RunOptions)> = if let Some(c) = &a.compare {
        let Some((knob, values)) = c.split_once('=') else {
            return Err(format!("`{c}` is not KNOB=V1,V2 (e.g. hugetlb_reuse=mapcount,refcount)"));
        };
        split(values)
            .into_iter()
            .map(|v| {
                let mut o = base.clone();
                o.knobs.push((knob.to_string(), v.clone()));
                (format!("{knob}={v}"), o)
            })
            .collect()
    } else {
        split(a.compare_profiles.as_deref().unwrap_or(""))
            .into_iter()
            .map(|p| (p.clone(), RunOptions { profile: Some(p), knobs: base.knobs.clone(), ..Default::default() }))
            .collect()
    };
    if out.len() < 2 {
        return Err("--compare needs at least two choices".into());
    }
    Ok(out)
}
