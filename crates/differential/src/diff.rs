//! Differential runs: the same scenario on two backends, compared.
//!
//! Each backend runs inside a [`Recorder`]; the two records line up
//! step by step (see [`crate::record`] for how places are named so that
//! they do). Only observations both backends can make are compared: a
//! `None` on either side (model-only counters, a skipped expectation) is
//! not a divergence. Each divergence is labelled with the
//! docs/divergences.md entry that explains it, if [`crate::known`] has one.

use crate::known::{self, Known};
use crate::record::{CallRec, Facts, Outcome, Place, Recorder};
use scenario::backend::*;
use scenario::report::{Entry, Report, Status};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One difference between the backends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// `[5] C: read p 64K`, `line 12`, …
    pub at: String,
    pub what: String,
    pub model: String,
    pub kernel: String,
    /// The docs/divergences.md entry that explains it, if one does.
    pub known: Option<Known>,
}

/// The result of one differential run.
#[derive(Clone, Debug)]
pub struct DiffResult {
    pub file: String,
    /// Why the comparison did not happen (a backend skipped the scenario).
    pub skipped: Option<String>,
    pub divergences: Vec<Divergence>,
}

impl DiffResult {
    /// Divergences no docs/divergences.md entry explains.
    pub fn undocumented(&self) -> impl Iterator<Item = &Divergence> {
        self.divergences.iter().filter(|d| d.known.is_none())
    }

    /// The side-by-side table.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if let Some(why) = &self.skipped {
            let _ = writeln!(s, "{}: skipped: {why}", self.file);
            return s;
        }
        if self.divergences.is_empty() {
            let _ = writeln!(s, "{}: model and kernel agree", self.file);
            return s;
        }
        let documented = self.divergences.iter().filter(|d| d.known.is_some()).count();
        let _ = match documented {
            0 => writeln!(s, "{}: {} divergence(s)", self.file, self.divergences.len()),
            n => writeln!(s, "{}: {} divergence(s), {n} documented", self.file, self.divergences.len()),
        };
        let w0 = self.divergences.iter().map(|d| d.at.chars().count()).max().unwrap_or(4).clamp(4, 44);
        let w1 = self.divergences.iter().map(|d| d.what.chars().count()).max().unwrap_or(11).clamp(11, 30);
        let w2 = self.divergences.iter().map(|d| d.model.chars().count()).max().unwrap_or(5).clamp(5, 36);
        let _ = writeln!(s, "  {:w0$}  {:w1$}  {:w2$}  kernel", "step", "observation", "model");
        for d in &self.divergences {
            let label = d.known.map(|k| format!("  ({k})")).unwrap_or_default();
            let _ = writeln!(s, "  {:w0$}  {:w1$}  {:w2$}  {}{label}", clip(&d.at, w0), clip(&d.what, w1), clip(&d.model, w2), d.kernel);
        }
        s
    }
}

fn clip(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Step number → (header text, index of its call), for steps that reached
/// the backend.
fn step_calls(r: &Report) -> BTreeMap<usize, (String, usize)> {
    let mut out = BTreeMap::new();
    let mut k = 0;
    for e in &r.entries {
        if let Entry::Step(s) = e {
            if s.result == "not run" {
                continue;
            }
            out.insert(s.step, (format!("[{}] {}", s.step, s.text), k));
            k += 1;
        }
    }
    out
}

fn facts_text(f: &Option<Facts>) -> String {
    match f {
        None => "not mapped".into(),
        Some(f) => {
            let mut v = Vec::new();
            for (on, n) in [
                (f.present, "present"),
                (f.swapped, "swapped"),
                (f.zero_page, "zero_page"),
                (f.thp, "thp"),
                (f.hugetlb, "hugetlb"),
                (f.exclusive, "exclusive"),
            ] {
                if on {
                    v.push(n);
                }
            }
            if v.is_empty() {
                "not present".into()
            } else {
                v.join(" ")
            }
        }
    }
}

/// Names a place for humans: `A+4K in C` when the report lets us, else
/// `region #1+4K in task #2`.
fn place_text(p: &Place, names: &Names) -> String {
    let task = names.tasks.get(p.0).cloned().unwrap_or_else(|| format!("task #{}", p.0));
    let region = names.regions.get(p.1).cloned().unwrap_or_else(|| format!("region #{}", p.1));
    place_name(&region, p.2, &task)
}

/// `A in C`, `A+4K in C`: one spelling for recorded places and for the
/// places expectations name, so that the two can be matched.
fn place_name(region: &str, off: u64, task: &str) -> String {
    if off == 0 {
        format!("{region} in {task}")
    } else {
        format!("{region}+{} in {task}", scenario::ast::fmt_size(off))
    }
}

/// Task and region names in creation order, from the scenario text.
#[derive(Default)]
pub struct Names {
    pub tasks: Vec<String>,
    pub regions: Vec<String>,
    /// The scenario sets up a 1 GiB hugetlb pool (docs/divergences.md §1).
    pub pool_1g: bool,
    /// Tasks that register io_uring buffers (docs/divergences.md §29).
    pub ring_owners: Vec<String>,
    /// The scenario pages anon memory out to zram (`set swap=zram` and a
    /// `madvise … pageout`: docs/divergences.md §22).
    pub zram_swap: bool,
    /// Line of each standalone pagemap expectation (`expect A in P
    /// exclusive`) → the place it looks at, spelled as [`place_name`] does.
    pub page_expects: BTreeMap<usize, String>,
}

/// Task and region names in the order the runner creates them.
pub fn names_of(l: &scenario::Loaded) -> Names {
    use scenario::ast::{Expectation, ItemKind, Op};
    let mut n = Names::default();
    let (mut zram, mut pageout) = (false, false);
    for it in &l.scenario.items {
        match &it.kind {
            ItemKind::Task(t) => n.tasks.push(t.value.clone()),
            ItemKind::Hugetlb { size, .. } if size.value == 1 << 30 => n.pool_1g = true,
            ItemKind::Set { knob, value } if knob.value == "swap" => zram = value.value == "zram",
            ItemKind::Expect(Expectation::Page { loc, .. }) => {
                n.page_expects.insert(it.line, place_name(&loc.name.value, loc.off(), &loc.task.value));
            }
            ItemKind::Step(s) => match &s.op {
                Op::Fork(c) => n.tasks.push(c.value.clone()),
                Op::IoUringRegister { .. } => n.ring_owners.push(s.task.value.clone()),
                Op::Mmap(_) | Op::Mremap { .. } => {
                    n.regions.push(s.bind.as_ref().map(|b| b.value.clone()).unwrap_or_else(|| "(unnamed)".into()))
                }
                Op::Madvise(_, a) if a.value == scenario::ast::Advice::Pageout => pageout = true,
                _ => {}
            },
            _ => {}
        }
    }
    n.zram_swap = zram && pageout;
    n
}

/// Compares two recorded runs of the same scenario.
pub fn compare(names: &Names, model: (&Report, &Recorder<'_>), live: (&Report, &Recorder<'_>)) -> Vec<Divergence> {
    let mut out = Vec::new();
    let (mr, mrec) = model;
    let (lr, lrec) = live;
    let ms = step_calls(mr);
    let ls = step_calls(lr);
    let mut steps: Vec<usize> = ms.keys().chain(ls.keys()).copied().collect();
    steps.sort();
    steps.dedup();
    let dv = |at: &str, what: String, m: String, k: String| Divergence { at: at.to_string(), what, model: m, kernel: k, known: None };
    let label = |d: Divergence, k: Option<Known>| Divergence { known: k, ..d };
    for n in steps {
        let (m, l) = (ms.get(&n), ls.get(&n));
        let at = m.or(l).map(|x| x.0.clone()).unwrap_or_default();
        let (Some(m), Some(l)) = (m, l) else {
            out.push(dv(
                &at,
                "ran".into(),
                if m.is_some() { "ran" } else { "not run" }.into(),
                if l.is_some() { "ran" } else { "not run" }.into(),
            ));
            continue;
        };
        let (Some(mc), Some(lc)) = (mrec.calls.get(m.1), lrec.calls.get(l.1)) else { continue };
        if mc.outcome != lc.outcome {
            let show = |o: &Option<Outcome>| o.as_ref().map(Outcome::show).unwrap_or_default();
            let what = match (&mc.outcome, &lc.outcome) {
                (Some(Outcome::Data(_)), Some(Outcome::Data(_))) => "data read",
                _ => "outcome",
            };
            out.push(dv(&at, what.into(), show(&mc.outcome), show(&lc.outcome)));
        }
        // Pagemap facts of places both observed.
        for (p, (mf, _)) in &mc.pages {
            if let Some((lf, _)) = lc.pages.get(p) {
                if mf != lf {
                    let d = dv(&at, format!("page {}", place_text(p, names)), facts_text(mf), facts_text(lf));
                    out.push(label(d, known::pagemap_facts(mf, lf, names.pool_1g, names.zram_swap)));
                }
            }
        }
        // Page identity as a relation among places both observed.
        let common: Vec<&Place> = mc.pages.keys().filter(|p| lc.pages.contains_key(*p)).collect();
        for (i, a) in common.iter().enumerate() {
            for b in &common[i + 1..] {
                let same = |c: &CallRec| match (c.pages[*a].1, c.pages[*b].1) {
                    (Some(x), Some(y)) => Some(x == y),
                    _ => None,
                };
                if let (Some(x), Some(y)) = (same(mc), same(lc)) {
                    if x != y {
                        let t = |s: bool| if s { "same page" } else { "different pages" }.to_string();
                        out.push(dv(&at, format!("{} vs {}", place_text(a, names), place_text(b, names)), t(x), t(y)));
                    }
                }
            }
        }
        for (size, mp) in &mc.pools {
            if let Some(lp) = lc.pools.get(size) {
                if mp != lp {
                    let f = |p: &PoolObs| format!("total {} free {} resv {} surp {}", p.total, p.free, p.resv, p.surp);
                    let d = dv(&at, format!("hugetlb {} pool", scenario::ast::fmt_size(*size)), f(mp), f(lp));
                    // A task that registered buffers has ended on the kernel.
                    let owner_gone =
                        names.tasks.iter().zip(&lc.tasks).any(|(t, st)| *st != TaskObs::Running && names.ring_owners.contains(t));
                    out.push(label(d, known::pool_while_ring_teardown_runs(mp, lp, owner_gone)));
                }
            }
        }
        for (i, (a, b)) in mc.tasks.iter().zip(lc.tasks.iter()).enumerate() {
            if a != b {
                let t = names.tasks.get(i).cloned().unwrap_or_else(|| format!("task #{i}"));
                out.push(dv(&at, format!("task {t}"), format!("{a:?}").to_lowercase(), format!("{b:?}").to_lowercase()));
            }
        }
    }
    // Expectations judged on both sides. A standalone expectation is
    // judged after the step before it, on what that step's record holds.
    type Judged = (Status, String, Option<String>, Option<String>);
    let checks = |r: &Report| -> BTreeMap<(usize, usize), Judged> {
        let mut m = BTreeMap::new();
        let mut after: Option<String> = None;
        for e in &r.entries {
            match e {
                Entry::Step(s) => {
                    if s.result != "not run" {
                        after = Some(format!("[{}] {}", s.step, s.text));
                    }
                    for c in &s.checks {
                        m.insert((c.line, c.column), (c.status, c.text.clone(), c.detail.clone(), None));
                    }
                }
                Entry::Expect(c) => {
                    m.insert((c.line, c.column), (c.status, c.text.clone(), c.detail.clone(), after.clone()));
                }
                _ => {}
            }
        }
        m
    };
    let (mc, lc) = (checks(mr), checks(lr));
    for (k, (ms, text, md, after)) in &mc {
        if let Some((ls, _, ld, _)) = lc.get(k) {
            if *ms != Status::Skip && *ls != Status::Skip && ms != ls {
                let show = |s: &Status, d: &Option<String>| match d {
                    Some(d) => format!("{s:?} ({d})").to_lowercase(),
                    None => format!("{s:?}").to_lowercase(),
                };
                let d = dv(&format!("line {}", k.0), text.clone(), show(ms, md), show(ls, ld));
                let cause = caused_by_documented(&out, names.page_expects.get(&k.0), after.as_deref());
                out.push(label(d, cause));
            }
        }
    }
    out
}

/// A pagemap expectation judged differently because the page it looks at
/// differs as a documented entry explains (and in nothing else, or that
/// entry would not match) fails or passes for that entry's reason: the
/// label of the page's divergence in the record the expectation was judged
/// on. `place`: what the expectation looks at, if it is a pagemap
/// expectation; `after`: the step whose record that is.
fn caused_by_documented(found: &[Divergence], place: Option<&String>, after: Option<&str>) -> Option<Known> {
    let (place, after) = (place?, after?);
    let what = format!("page {place}");
    found.iter().find(|d| d.at == after && d.what == what).and_then(|d| d.known)
}

/// Runs one loaded scenario on `model` and `live` and compares.
pub fn diff_loaded(l: &scenario::Loaded, model: &mut dyn Backend, live: &mut dyn Backend) -> DiffResult {
    let file = l.source.name.clone();
    let opts = scenario::RunOptions::default();
    // The model runs on the kernel's machine: what its CPU has (protection
    // keys) unless the scenario sets it, which then skips on the kernel.
    let model_opts = scenario::RunOptions { machine: live.machine(), ..Default::default() };
    let names = names_of(l);
    // The kernel first: the live backend's processes and settings are
    // released before the (possibly slow) model run.
    let mut lrec = Recorder::new(live);
    let lreport = match scenario::run_loaded(l, &mut lrec, &opts) {
        Ok(r) => r,
        Err(d) => {
            let msg = d.first().map(|d| d.to_string()).unwrap_or_default();
            return DiffResult { file, skipped: Some(format!("live: {msg}")), divergences: vec![] };
        }
    };
    let mut mrec = Recorder::new(model);
    let mreport = match scenario::run_loaded(l, &mut mrec, &model_opts) {
        Ok(r) => r,
        Err(d) => {
            let msg = d.first().map(|d| d.to_string()).unwrap_or_default();
            return DiffResult { file, skipped: Some(format!("model: {msg}")), divergences: vec![] };
        }
    };
    for r in [&mreport, &lreport] {
        if r.status == Status::Skip {
            return DiffResult {
                file,
                skipped: Some(r.skip_reason.clone().unwrap_or_else(|| format!("the {} backend skipped it", r.backend))),
                divergences: vec![],
            };
        }
    }
    // A setting the kernel refused (pool allocation failed) says nothing
    // about mm rules: like kselftest, skip.
    for e in &lreport.entries {
        if let Entry::Setting { text, error: Some(err), .. } = e {
            return DiffResult { file, skipped: Some(format!("the kernel refused `{text}`: {err}")), divergences: vec![] };
        }
    }
    let mut divergences = compare(&names, (&mreport, &mrec), (&lreport, &lrec));
    if names.pool_1g && divergences.iter().any(|d| d.known.is_none()) && kernel_skipped_pud_fork(l, &names, &model_opts, &lreport, &lrec) {
        for d in divergences.iter_mut().filter(|d| d.known.is_none()) {
            d.known = Some(known::PUD_FORK_SKIPPED);
        }
    }
    DiffResult { file, skipped: None, divergences }
}

/// Did the kernel take 6.18's "fork skips the 1 GiB entry" path (§1)? It
/// did if it agrees with the model run with `hugetlb_pud_fork=skip` in
/// everything but documented details (on the kernel's machine, `base`).
fn kernel_skipped_pud_fork(
    l: &scenario::Loaded,
    names: &Names,
    base: &scenario::RunOptions,
    lreport: &Report,
    lrec: &Recorder<'_>,
) -> bool {
    let opts = scenario::RunOptions { knobs: vec![("hugetlb_pud_fork".into(), "skip".into())], ..base.clone() };
    let mut model = scenario::model::ModelBackend::new();
    let mut rec = Recorder::new(&mut model);
    match scenario::run_loaded(l, &mut rec, &opts) {
        Ok(report) => compare(names, (&report, &rec), (lreport, lrec)).iter().all(|d| d.known.is_some()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scenario::model::ModelBackend;

    #[test]
    fn model_against_itself_has_no_divergence() {
        let text = "task P\nP: A = mmap 8K\nP: write A fill 0x11\nP: fork C\nC: write A 4K fill 0x22\nexpect A in P different page from A in C\nexpect A+4K in P same page as A+4K in C\nP: read A expect fill 0x11\n";
        let l = scenario::load("t.cow", text).map_err(|_| "parse").unwrap();
        let (mut a, mut b) = (ModelBackend::new(), ModelBackend::new());
        let r = diff_loaded(&l, &mut a, &mut b);
        assert!(r.skipped.is_none());
        assert!(r.divergences.is_empty(), "{}", r.render());
    }

    /// C maps R1 after the fork, then P maps R2 at the same address (the
    /// model's allocator gives both mms the same layout): C's observations
    /// there are places of R1, the region C can name, never of R2.
    #[test]
    fn a_task_observes_only_regions_it_can_name() {
        let text =
            "task P\nP: fork C\nC: R1 = mmap 4K\nC: write R1 fill 0x11\nP: R2 = mmap 4K\nP: write R2 fill 0x22\nexpect R1 in C present\n";
        let l = scenario::load("t.cow", text).map_err(|_| "parse").unwrap();
        let mut m = ModelBackend::new();
        let mut rec = Recorder::new(&mut m);
        scenario::run_loaded(&l, &mut rec, &scenario::RunOptions::default()).unwrap();
        let places: Vec<Place> = rec.calls.iter().flat_map(|c| c.pages.keys().copied()).collect();
        assert!(places.contains(&(1, 0, 0)), "C's page of R1 observed: {places:?}");
        assert!(!places.iter().any(|p| p.0 == 1 && p.1 == 1), "C cannot name R2: {places:?}");
        assert!(!places.iter().any(|p| p.0 == 0 && p.1 == 0), "P cannot name R1: {places:?}");
    }

    #[test]
    fn a_different_rule_shows_as_divergence() {
        // The pre-5.8 mapcount rule leaks into the pipe; 6.18 does not.
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/cve-2020-29374-vmsplice-child-unmap.cow"))
            .unwrap();
        let l = scenario::load("cve.cow", &text).map_err(|_| "parse").unwrap();
        // run_loaded configures with the file's profile, so the other side
        // is a wrapper that forces the old rule.
        let mut old = Twisted { model: ModelBackend::new(), profile: Some("linux-5.7"), flip: |_| false };
        let mut a = ModelBackend::new();
        let r = diff_loaded(&l, &mut a, &mut old);
        assert!(r.divergences.iter().any(|d| d.what == "data read"), "{}", r.render());
        let text = r.render();
        assert!(text.contains("0x00×4096") && text.contains("0xff×4096"), "{text}");
    }

    /// The model under another profile than the scenario's, and with
    /// pagemap's exclusive bit inverted where `flip` says: a stand-in for a
    /// kernel that differs from the model in a known way.
    struct Twisted {
        model: ModelBackend,
        profile: Option<&'static str>,
        flip: fn(&PageObs) -> bool,
    }

    impl Backend for Twisted {
        fn name(&self) -> &str {
            "twisted"
        }
        fn lacks(&self, f: Feature) -> Option<String> {
            self.model.lacks(f)
        }
        fn configure(&mut self, p: &str, k: &[(String, String)]) -> Result<(), ConfigError> {
            self.model.configure(self.profile.unwrap_or(p), k)
        }
        fn set(&mut self, s: &Setting) -> Result<(), String> {
            self.model.set(s)
        }
        fn spawn(&mut self) -> Result<TaskId, String> {
            self.model.spawn()
        }
        fn call(&mut self, t: TaskId, c: &Call) -> Result<Ret, Failure> {
            self.model.call(t, c)
        }
        fn page(&mut self, t: TaskId, a: u64) -> Result<Option<PageObs>, String> {
            let mut p = self.model.page(t, a)?;
            if let Some(p) = p.as_mut().filter(|p| (self.flip)(p)) {
                p.exclusive = !p.exclusive;
            }
            Ok(p)
        }
        fn folio(&mut self, t: TaskId, a: u64) -> Result<Option<FolioObs>, String> {
            self.model.folio(t, a)
        }
        fn pool(&mut self, s: u64) -> Result<PoolObs, String> {
            self.model.pool(s)
        }
        fn task_state(&mut self, t: TaskId) -> Result<TaskObs, String> {
            self.model.task_state(t)
        }
        fn take_trace(&mut self) -> Vec<TraceLine> {
            self.model.take_trace()
        }
        fn self_check(&mut self) -> Result<(), String> {
            self.model.self_check()
        }
    }

    fn diff_flipped(text: &str, flip: fn(&PageObs) -> bool) -> DiffResult {
        let l = scenario::load("t.cow", text).map_err(|_| "parse").unwrap();
        let mut kernel = Twisted { model: ModelBackend::new(), profile: None, flip };
        diff_loaded(&l, &mut ModelBackend::new(), &mut kernel)
    }

    /// Issue 10: an expectation that fails on one side only because of a
    /// documented difference carries that entry's label too, so a run whose
    /// every difference is documented has nothing undocumented.
    #[test]
    fn an_expectation_failing_for_a_documented_reason_is_labelled_with_it() {
        let text = "hugetlb 1G pages=1\ntask P\nP: A = mmap 1G private anon hugetlb=1G\nP: write A fill 0x11\n\
            expect A in P hugetlb\nexpect A in P exclusive\nexpect A+4K in P exclusive\n";
        let r = diff_flipped(text, |p| p.hugetlb);
        assert!(r.skipped.is_none(), "{}", r.render());
        let rows: Vec<(&str, &str)> = r.divergences.iter().map(|d| (d.at.as_str(), d.what.as_str())).collect();
        assert_eq!(
            rows,
            [
                ("[2] P: write A fill 0x11", "page A in P"),
                ("[2] P: write A fill 0x11", "page A+4K in P"),
                ("line 6", "expect A in P exclusive"),
                ("line 7", "expect A+4K in P exclusive"),
            ],
            "{}",
            r.render()
        );
        assert!(r.divergences.iter().all(|d| d.known == Some(known::PAGEMAP_PUD_EXCLUSIVE)), "{}", r.render());
        assert_eq!(r.undocumented().count(), 0);
    }

    #[test]
    fn an_expectation_failing_for_an_undocumented_reason_stays_unlabelled() {
        let text = "thp all never\ntask P\nP: A = mmap 4K\nP: write A fill 0x11\nexpect A in P exclusive\n";
        let r = diff_flipped(text, |p| p.present);
        let rows: Vec<(&str, Option<Known>)> = r.divergences.iter().map(|d| (d.what.as_str(), d.known)).collect();
        assert_eq!(rows, [("page A in P", None), ("expect A in P exclusive", None)], "{}", r.render());
    }
}
