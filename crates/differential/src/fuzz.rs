//! The fuzz campaign: random scenarios ([`suites::random`]) on the model
//! and on this kernel.
//!
//! [`campaign`] runs cases from a seeded generator through
//! [`crate::diff`]; a case whose diff shows a divergence no
//! docs/divergences.md entry explains (see [`crate::known`]) is shrunk to a
//! minimal scenario, with proptest's value trees doing the shrinking, and
//! written out.

use crate::diff::{diff_loaded, DiffResult, Divergence};
use live::{LiveBackend, LiveOptions};
use proptest::strategy::{Strategy, ValueTree};
use scenario::backend::{Backend, Setting};
use scenario::model::ModelBackend;
use scenario::report::{Entry, Status};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use suites::random::{case, render, runner, Case, HPAGE, MAX_HUGETLB_PAGES};

/// How one case came out.
#[derive(Clone, Debug)]
pub enum Verdict {
    Agree,
    /// Divergences, every one explained by docs/divergences.md.
    Documented(DiffResult),
    /// One backend could not run it (a hugetlb pool the kernel could not
    /// fill, the live backend could not start …).
    Skipped(String),
    /// The live side failed for a reason of its own (the task agent refused
    /// a range it uses itself, a step ran out of time): says nothing about
    /// mm rules.
    Inconclusive(String),
    /// Divergences no entry explains.
    Diverged(DiffResult),
    /// The model alone panicked or broke an invariant.
    ModelBug(String),
    /// The renderer wrote a scenario the checker rejects: a fuzzer bug.
    BadRender(String),
}

impl Verdict {
    /// What shrinking must preserve, and what tells findings apart: one
    /// per undocumented divergence; none for outcomes that are not
    /// findings.
    pub fn signatures(&self) -> Vec<String> {
        match self {
            Verdict::Diverged(r) => r.undocumented().map(signature).collect(),
            Verdict::ModelBug(_) => vec!["model bug".into()],
            Verdict::BadRender(_) => vec!["scenario the checker rejects".into()],
            _ => vec![],
        }
    }

    /// A finding: worth shrinking and writing out.
    pub fn is_finding(&self) -> bool {
        !self.signatures().is_empty()
    }
}

/// One divergence reduced to what stays the same while a scenario shrinks
/// (region and step numbers change; the kind of observation and, where
/// short, the two sides' values do not).
pub fn signature(d: &Divergence) -> String {
    if d.what == "data read" {
        return "data read".into();
    }
    let kind = if d.what.contains(" vs ") {
        "page identity"
    } else if d.what.starts_with("page ") {
        "pagemap"
    } else if d.what.starts_with("hugetlb ") {
        "hugetlb pool"
    } else if d.what.starts_with("task ") {
        "task state"
    } else {
        d.what.as_str()
    };
    // "ok, region #3": which region number depends on what came before.
    let plain = |s: &str| match s.find("region #") {
        Some(i) => format!("{}region", &s[..i]),
        None => s.to_string(),
    };
    format!("{kind}: model {} / kernel {}", plain(&d.model), plain(&d.kernel))
}

/// The model alone, with invariants checked after every step, on the
/// `machine` it is compared with ([`scenario::RunOptions::machine`]): a
/// panic or a broken invariant is a model bug whatever the kernel does.
pub fn model_bug(l: &scenario::Loaded, machine: &[(String, String)]) -> Option<String> {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut m = ModelBackend::new().with_self_check(true);
        scenario::run_loaded(l, &mut m, &scenario::RunOptions { machine: machine.to_vec(), ..Default::default() })
    }));
    let report = match run {
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            return Some(format!("the model panicked: {msg}"));
        }
        Ok(Err(d)) => return Some(format!("the model refused the scenario: {}", d.first().map(|d| d.to_string()).unwrap_or_default())),
        Ok(Ok(r)) => r,
    };
    report.entries.iter().find_map(|e| match e {
        Entry::Step(s) => s
            .checks
            .iter()
            .find(|c| c.text == "model invariants" && c.status == Status::Fail)
            .map(|c| format!("[{}] {}: model invariants: {}", s.step, s.text, c.detail.clone().unwrap_or_default())),
        _ => None,
    })
}

/// Runs one case: the model alone first (cheap, and a model panic must not
/// take the campaign down), then both backends through the diff.
pub fn evaluate(c: &Case, live: &LiveOptions) -> Verdict {
    let text = render(c);
    let l = match scenario::load("fuzz.cow", &text) {
        Ok(l) => l,
        Err((src, ds)) => return Verdict::BadRender(ds.iter().map(|d| d.render(&src)).collect()),
    };
    // The kernel's backend first, for its machine (protection keys or not),
    // which the model runs on.
    let mut be = match LiveBackend::new(live.clone()) {
        Ok(b) => b,
        Err(e) => return Verdict::Skipped(e),
    };
    if let Some(bug) = model_bug(&l, &be.machine()) {
        return Verdict::ModelBug(bug);
    }
    let mut model = ModelBackend::new();
    let mut r = diff_loaded(&l, &mut model, &mut be);
    if let Some(why) = &r.skipped {
        return Verdict::Skipped(why.clone());
    }
    if let Some(d) = r.divergences.iter().find(|d| d.kernel.starts_with("backend error:")) {
        return Verdict::Inconclusive(format!("{}: {}", d.at, d.kernel));
    }
    // The only standalone expectations generated are `present` checks,
    // whose page facts the diff compares (and labels) directly: their
    // pass/fail adds nothing to a finding.
    r.divergences.retain(|d| !d.at.starts_with("line "));
    if r.undocumented().next().is_some() {
        Verdict::Diverged(r)
    } else if !r.divergences.is_empty() {
        Verdict::Documented(r)
    } else {
        Verdict::Agree
    }
}

/// Whether this machine can run a campaign: root, the live backend starts,
/// its kernel is the model's default profile, and the kernel can fill a
/// pool of [`MAX_HUGETLB_PAGES`] 2M pages. `Err` is the one-line reason.
pub fn preflight(live: &LiveOptions) -> Result<(), String> {
    let mut be = LiveBackend::new(live.clone())?;
    if be.profile() != scenario::DEFAULT_PROFILE {
        return Err(format!("this machine runs {}, the model's default profile is {}", be.profile(), scenario::DEFAULT_PROFILE));
    }
    be.set(&Setting::HugetlbPool { size: HPAGE, pages: MAX_HUGETLB_PAGES, overcommit: None })
        .map_err(|e| format!("cannot reserve {MAX_HUGETLB_PAGES} 2M hugetlb pages: {e}"))?;
    let p = be.pool(HPAGE)?;
    if p.total < MAX_HUGETLB_PAGES as i64 {
        return Err(format!("the kernel could reserve only {} of {MAX_HUGETLB_PAGES} 2M hugetlb pages", p.total));
    }
    Ok(())
}

/// A campaign's bounds.
#[derive(Clone, Debug)]
pub struct Options {
    pub cases: u32,
    pub seed: u64,
    /// Where minimal scenarios are written.
    pub out_dir: PathBuf,
    /// Runs spent shrinking one finding.
    pub max_shrink_iters: u32,
    /// Runs of the minimal scenario, to say how reliably it shows.
    pub reruns: u32,
    pub live: LiveOptions,
}

/// A divergence written out as a minimal scenario.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Case number in the campaign (0-based).
    pub case: u32,
    pub signature: String,
    /// The minimal scenario file, or why it could not be written.
    pub path: Result<PathBuf, String>,
    /// Reruns of the minimal scenario that showed it again, of `reruns`.
    pub reproduced: u32,
    pub reruns: u32,
}

impl Finding {
    /// Shown by every rerun. A divergence that comes and goes depends on
    /// the kernel's allocator or on teardown still running from an earlier
    /// case (io_uring releases its buffers from a workqueue after the
    /// process is gone), not on a rule: it is written out for a human but
    /// does not fail the campaign.
    pub fn is_stable(&self) -> bool {
        self.reproduced == self.reruns
    }
}

/// What a campaign saw.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub cases: u32,
    pub agreed: u32,
    /// Cases whose every divergence is documented.
    pub documented: u32,
    pub skipped: u32,
    pub inconclusive: u32,
    /// Failing cases whose divergence was already found in this campaign.
    pub repeats: u32,
    pub findings: Vec<Finding>,
    /// Why cases were skipped or inconclusive, with counts.
    pub reasons: std::collections::BTreeMap<String, u32>,
    pub elapsed: Duration,
}

/// Runs `o.cases` cases from the generator seeded with `o.seed` (the same
/// seed gives the same cases), shrinks and writes out each new finding,
/// and reports progress lines through `log`.
pub fn campaign(o: &Options, mut log: impl FnMut(&str)) -> Summary {
    let start = Instant::now();
    let mut runner = runner(o.seed);
    let strategy = case();
    let mut s = Summary::default();
    let mut found: Vec<String> = Vec::new();
    for i in 0..o.cases {
        let tree = match strategy.new_tree(&mut runner) {
            Ok(t) => t,
            Err(e) => {
                log(&format!("fuzz: the generator failed: {e}"));
                break;
            }
        };
        s.cases += 1;
        let v = evaluate(&tree.current(), &o.live);
        match &v {
            Verdict::Agree => s.agreed += 1,
            Verdict::Documented(_) => s.documented += 1,
            Verdict::Skipped(why) => {
                s.skipped += 1;
                *s.reasons.entry(format!("skipped: {why}")).or_default() += 1;
            }
            Verdict::Inconclusive(why) => {
                s.inconclusive += 1;
                *s.reasons.entry(format!("inconclusive: {why}")).or_default() += 1;
            }
            Verdict::Diverged(_) | Verdict::ModelBug(_) | Verdict::BadRender(_) => {
                let sigs = v.signatures();
                match sigs.iter().find(|x| !found.contains(x)) {
                    None => {
                        s.repeats += 1;
                        log(&format!("fuzz: case {i}: again: {}", sigs[0]));
                    }
                    Some(sig) => {
                        log(&format!("fuzz: case {i}: {sig}; shrinking"));
                        let f = shrink_and_write(o, i, tree, v.clone(), sig, &mut log);
                        log(&format!(
                            "fuzz: case {i}: {} (shown again in {} of {} reruns)",
                            match &f.path {
                                Ok(p) => format!("minimal scenario written to {}", p.display()),
                                Err(e) => e.clone(),
                            },
                            f.reproduced,
                            f.reruns
                        ));
                        found.extend(sigs);
                        s.findings.push(f);
                    }
                }
            }
        }
        if (i + 1) % 100 == 0 && i + 1 < o.cases {
            log(&format!("fuzz: {}/{} cases, {} findings, {:.0} s", i + 1, o.cases, s.findings.len(), start.elapsed().as_secs_f64()));
        }
    }
    s.elapsed = start.elapsed();
    s
}

/// proptest's shrinking loop (simplify while the failure persists,
/// complicate when it goes away), with the failure pinned to `sig` so a
/// shrink cannot wander off to another divergence; identical renderings
/// are run once.
fn shrink(o: &Options, mut tree: impl ValueTree<Value = Case>, first: Verdict, sig: &str) -> (Case, Verdict, u32) {
    let mut best = tree.current();
    let mut best_v = first;
    // Rendering → the verdict if it showed the failure, None if not.
    let mut seen: std::collections::HashMap<String, Option<Verdict>> = std::collections::HashMap::new();
    let mut runs = 0;
    if !tree.simplify() {
        return (best, best_v, runs);
    }
    while runs < o.max_shrink_iters {
        let c = tree.current();
        let text = render(&c);
        let failed = match seen.get(&text) {
            Some(v) => v.clone(),
            None => {
                runs += 1;
                let v = Some(evaluate(&c, &o.live)).filter(|v| v.signatures().iter().any(|x| x == sig));
                seen.insert(text, v.clone());
                v
            }
        };
        if let Some(v) = failed {
            best = c;
            best_v = v;
            if !tree.simplify() {
                break;
            }
        } else if !tree.complicate() {
            break;
        }
    }
    (best, best_v, runs)
}

fn shrink_and_write(
    o: &Options,
    i: u32,
    tree: impl ValueTree<Value = Case>,
    first: Verdict,
    sig: &str,
    log: &mut impl FnMut(&str),
) -> Finding {
    let (min, v, runs) = shrink(o, tree, first, sig);
    log(&format!("fuzz: case {i}: shrunk in {runs} runs to {} operations", min.ops.len()));
    let reproduced = (0..o.reruns).filter(|_| evaluate(&min, &o.live).signatures().iter().any(|x| x == sig)).count() as u32;
    let mut text = format!(
        "# cowlab fuzz --seed {}: case {i}, shrunk in {runs} runs; shown again in {reproduced} of {} reruns.\n# {sig}\n",
        o.seed, o.reruns
    );
    let detail = match &v {
        Verdict::Diverged(r) => r.render(),
        Verdict::ModelBug(m) | Verdict::BadRender(m) => m.clone(),
        _ => String::new(),
    };
    for l in detail.lines() {
        let _ = writeln!(text, "#   {l}");
    }
    text.push_str(&render(&min));
    let path = write_finding(&o.out_dir, &format!("seed{}-case{i}.cow", o.seed), &text);
    Finding { case: i, signature: sig.to_string(), path, reproduced, reruns: o.reruns }
}

fn write_finding(dir: &Path, name: &str, text: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        /// The model side of a campaign: no panic, no broken invariant
        /// (checked after every step).
        #[test]
        fn the_model_runs_every_case_keeping_its_invariants(c in case()) {
            let l = scenario::load("fuzz.cow", &render(&c)).map_err(|(src, ds)| {
                TestCaseError::fail(ds.iter().map(|d| d.render(&src)).collect::<String>())
            })?;
            if let Some(bug) = model_bug(&l, &[]) {
                prop_assert!(false, "{}\n--- scenario:\n{}", bug, render(&c));
            }
        }
    }

    #[test]
    fn signatures_ignore_step_numbers_but_keep_values() {
        let d = |at: &str, what: &str, m: &str, k: &str| Divergence {
            at: at.into(),
            what: what.into(),
            model: m.into(),
            kernel: k.into(),
            known: None,
        };
        assert_eq!(
            signature(&d("[3] P: write R0 fill 0x01 expect any", "outcome", "ok", "SIGSEGV")),
            signature(&d("[9] C1: write R4+4K 4K fill 0x07 expect any", "outcome", "ok", "SIGSEGV"))
        );
        assert_ne!(signature(&d("[3] x", "outcome", "ok", "SIGSEGV")), signature(&d("[3] x", "outcome", "ok", "SIGBUS")));
        assert_eq!(signature(&d("[3] x", "data read", "0x00×4096", "0x01×4096")), "data read");
    }
}
