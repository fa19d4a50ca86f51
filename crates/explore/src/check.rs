//! Running the checker and reading its answer: statistics, the shortest
//! counterexample replayed with the kernel's event log on, shards and the
//! merge of their result files.

use crate::model::{Race, State, SOME_INTERLEAVING};
use crate::task::{Machine, Outcome};
use mm::{Kernel, Pid};
use serde::{Deserialize, Serialize};
use stateright::{Checker, HasDiscoveries, Model};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Instant;

/// How to explore.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Checker threads. With more than one, stateright's BFS no longer
    /// promises the shortest counterexample.
    pub threads: usize,
    /// `(i, n)`: explore only shard `i` of `n`.
    pub shard: Option<(usize, usize)>,
}

impl Default for Options {
    fn default() -> Self {
        Options { threads: 1, shard: None }
    }
}

/// One step of a counterexample.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Step {
    pub task: usize,
    /// The kernel function the step played.
    pub func: String,
    /// What the kernel logged during the step.
    pub events: Vec<String>,
    /// What changed: `what: before → after`.
    pub changes: Vec<String>,
    /// The whole state after the step, for the step-through page
    /// (`cowlab explore --html`); not part of the JSON result.
    #[serde(skip)]
    pub state: Option<mm::view::StateView>,
}

/// A property broken, with the interleaving that breaks it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Counterexample {
    pub property: String,
    pub message: String,
    pub steps: Vec<Step>,
}

/// What one exploration (or a merge of shards) found.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Report {
    pub race: String,
    /// The policy knobs as `name=value`, those off the 6.18 default first.
    pub policy: String,
    /// One header per task: `T0 P: fork()`.
    pub tasks: Vec<String>,
    pub shards: Vec<String>,
    pub threads: usize,
    /// States generated (with repeats) and distinct states.
    pub states: usize,
    pub unique_states: usize,
    pub max_depth: usize,
    pub seconds: f64,
    pub counterexample: Option<Counterexample>,
    /// For `expect … in some interleaving`: whether one was found.
    pub some_interleaving: Option<bool>,
}

impl Report {
    /// No property broken (and the `in some interleaving` expectations met).
    pub fn ok(&self) -> bool {
        self.counterexample.is_none() && self.some_interleaving != Some(false)
    }
}

/// Explores `race` and reports.
pub fn explore(race: &Race, opts: Options) -> Report {
    let t0 = Instant::now();
    let mut race = race.clone();
    race.claimed = Default::default();
    let mut prefix_states = 0;
    let mut prefix_unique = 0;
    let mut prefix_depth = 0;
    let mut prefixes: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    let mut early: Option<Vec<usize>> = None;
    if let Some((i, n)) = opts.shard {
        let f = frontier(&race, n);
        prefix_depth = f.depth;
        if i == 0 {
            prefix_states = f.states;
            prefix_unique = f.unique;
        }
        early = f.broken;
        for (k, (s, path)) in f.states_at_depth.into_iter().enumerate() {
            if k % n == i {
                prefixes.insert(fingerprint(&s), path);
                race.roots.push(s);
            }
        }
    }
    let some_wanted = race.expectations.iter().any(|e| e.in_some);
    let (states, unique, depth, path) = if opts.shard.is_some() && race.roots.is_empty() {
        (0, 0, 0, None)
    } else {
        let checker = race.clone().checker().threads(opts.threads.max(1)).finish_when(HasDiscoveries::AnyFailures).spawn_bfs().join();
        let mut failure = None;
        for (name, path) in checker.discoveries() {
            if name == SOME_INTERLEAVING {
                continue;
            }
            let actions = path.into_actions();
            if failure.as_ref().is_none_or(|f: &Vec<usize>| actions.len() < f.len()) {
                failure = Some(actions);
            }
        }
        let found_some = checker.discovery(SOME_INTERLEAVING).is_some();
        let fail_path = failure.map(|actions| {
            // The path starts at one of this shard's roots; put its prefix in front.
            let root = race.roots.iter().find(|r| {
                let mut s = (*r).clone();
                for &a in &actions {
                    s = race.advance(&s, a);
                }
                s.broken.is_some()
            });
            let mut full = root.and_then(|r| prefixes.get(&fingerprint(r)).cloned()).unwrap_or_default();
            full.extend(actions);
            full
        });
        let path = fail_path.map(|p| (p, found_some)).or(Some((Vec::new(), found_some)));
        (checker.state_count(), checker.unique_state_count(), checker.max_depth(), path)
    };
    let (fail, found_some) = match path {
        Some((p, found)) => (if p.is_empty() { None } else { Some(p) }, found),
        None => (None, false),
    };
    let fail = match (fail, early) {
        (Some(a), Some(b)) => Some(if b.len() < a.len() { b } else { a }),
        (a, b) => a.or(b),
    };
    let counterexample = fail.map(|actions| replay(&race, &actions));
    Report {
        race: race.name.clone(),
        policy: policy_text(&race.init),
        tasks: headers(&race),
        shards: opts.shard.map(|(i, n)| vec![format!("{i}/{n}")]).unwrap_or_default(),
        threads: opts.threads.max(1),
        states: states + prefix_states,
        unique_states: unique + prefix_unique,
        max_depth: depth + prefix_depth,
        seconds: t0.elapsed().as_secs_f64(),
        counterexample,
        some_interleaving: some_wanted.then_some(found_some),
    }
}

/// The profile and the knobs set away from it.
fn policy_text(k: &Kernel) -> String {
    let base = mm::Policy::profile(&k.policy.profile).unwrap_or_default();
    let changed: Vec<String> = mm::policy::KNOBS
        .iter()
        .filter_map(|knob| {
            let now = k.policy.get(knob.name)?;
            (base.get(knob.name) != Some(now)).then(|| format!("{}={now}", knob.name))
        })
        .collect();
    if changed.is_empty() {
        format!("{} (every check on)", k.policy.profile)
    } else {
        format!("{} with {}", k.policy.profile, changed.join(", "))
    }
}

/// The task headers: `T0 P: fork()`.
pub fn headers(race: &Race) -> Vec<String> {
    race.tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!("T{i} {}: {}", race.names.get(&t.pid).cloned().unwrap_or_else(|| format!("pid {}", t.pid.0)), t.op.describe())
        })
        .collect()
}

fn fingerprint(s: &State) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

struct Frontier {
    /// The distinct states first reached at `depth`, with the actions that
    /// reach them, in a stable order.
    states_at_depth: Vec<(State, Vec<usize>)>,
    depth: usize,
    states: usize,
    unique: usize,
    /// A broken property met before the frontier.
    broken: Option<Vec<usize>>,
}

/// Breadth-first from the start until a level holds enough states to
/// share among `n` shards (or the space ends). Every shard computes the
/// same frontier; shard 0 counts the states before it.
fn frontier(race: &Race, n: usize) -> Frontier {
    let init = race.initial();
    let mut seen: HashSet<u64> = HashSet::from([fingerprint(&init)]);
    let mut level = vec![(init, Vec::new())];
    let (mut states, mut unique, mut depth) = (1, 1, 0);
    let mut broken = None;
    while level.len() < n.saturating_mul(4) {
        let mut next = Vec::new();
        let mut finished = Vec::new();
        for (s, path) in &level {
            if s.broken.is_some() {
                if broken.is_none() {
                    broken = Some(path.clone());
                }
                continue;
            }
            let acts = race.enabled(s);
            if acts.is_empty() {
                finished.push((s.clone(), path.clone()));
            }
            for a in acts {
                let t = race.advance(s, a);
                states += 1;
                if seen.insert(fingerprint(&t)) {
                    let mut p = path.clone();
                    p.push(a);
                    next.push((t, p));
                }
            }
        }
        if next.is_empty() {
            break;
        }
        unique += next.len();
        depth += 1;
        // Finished states stay in the frontier so their checks are not lost.
        next.extend(finished);
        level = next;
    }
    // The frontier states are counted again by the shard that explores them.
    states -= level.len().min(states);
    unique -= level.len().min(unique);
    level.sort_by_key(|(s, _)| fingerprint(s));
    Frontier { states_at_depth: level, depth, states, unique, broken }
}

/// Merges shard reports of one race: counts add up, the shortest
/// counterexample wins. Shards may reach a few states through different
/// prefixes, so the merged unique count can exceed a single run's.
pub fn merge(reports: &[Report]) -> Result<Report, String> {
    let first = reports.first().ok_or("nothing to merge")?;
    let mut out = first.clone();
    let mut shards: BTreeSet<String> = first.shards.iter().cloned().collect();
    for r in &reports[1..] {
        if r.race != first.race || r.policy != first.policy {
            return Err(format!("cannot merge {} ({}) with {} ({})", r.race, r.policy, first.race, first.policy));
        }
        out.states += r.states;
        out.unique_states += r.unique_states;
        out.max_depth = out.max_depth.max(r.max_depth);
        out.seconds += r.seconds;
        if let Some(c) = &r.counterexample {
            if out.counterexample.as_ref().is_none_or(|o| c.steps.len() < o.steps.len()) {
                out.counterexample = Some(c.clone());
            }
        }
        out.some_interleaving = match (out.some_interleaving, r.some_interleaving) {
            (Some(a), Some(b)) => Some(a || b),
            (a, b) => a.or(b),
        };
        shards.extend(r.shards.iter().cloned());
    }
    out.shards = shards.into_iter().collect();
    Ok(out)
}

/// Re-runs `actions` from the start with the kernel's event log on, and
/// describes each step.
pub fn replay(race: &Race, actions: &[usize]) -> Counterexample {
    let mut s = race.initial();
    s.k.set_event_log(true);
    s.k.take_events();
    let mut names = race.names.clone();
    let mut steps = Vec::new();
    for &a in actions {
        let func = s.m[a].next_func(&race.tasks[a].op).to_string();
        let before = summary(race, &s, &names);
        let mut n = race.advance(&s, a);
        let events = n.k.take_events().iter().map(ToString::to_string).collect();
        let child = match &n.m[a] {
            Machine::Fork(f) => Some(f.child),
            Machine::Done(Outcome::Forked(c)) => Some(*c),
            _ => None,
        };
        if let Some(c) = child.filter(|c| !names.contains_key(c)) {
            let parent = names.get(&race.tasks[a].pid).cloned().unwrap_or_default();
            let name = if names.values().any(|v| v == "C") { format!("{parent}'s child") } else { "C".to_string() };
            names.insert(c, name);
        }
        let after = summary(race, &n, &names);
        let mut changes = Vec::new();
        for (key, v) in &after {
            match before.get(key) {
                Some(old) if old == v => {}
                Some(old) => changes.push(format!("{key}: {old} → {v}")),
                None => changes.push(format!("{key}: {v}")),
            }
        }
        for (key, old) in &before {
            if !after.contains_key(key) {
                changes.push(format!("{key}: {old} → gone"));
            }
        }
        steps.push(Step { task: a, func, events, changes, state: Some(n.k.view()) });
        s = n;
    }
    let b = s.broken.clone().unwrap_or(crate::model::Broken { property: "none".into(), message: "the path breaks nothing".into() });
    Counterexample { property: b.property, message: b.message, steps }
}

/// What a reader needs to follow a race: the watched entries of every
/// process, their folios' counters, write_protect_seq, the pins.
fn summary(race: &Race, s: &State, names: &BTreeMap<Pid, String>) -> BTreeMap<String, String> {
    let k = &s.k;
    let mut out = BTreeMap::new();
    let mut folios = BTreeSet::new();
    let name = |p: Pid| names.get(&p).cloned().unwrap_or_else(|| format!("pid {}", p.0));
    for pid in k.pids().collect::<Vec<_>>() {
        let Some(mm) = k.task_mm(pid) else { continue };
        let m = k.mm(mm);
        out.insert(format!("{} write_protect_seq", name(pid)), m.write_protect_seq.to_string());
        for &a in &race.watch {
            let detached = m.pt.pmd_val(a) == mm::pgtable::PmdVal::None && m.pt.lookup(a).is_some();
            let v = match m.pt.lookup(a) {
                None => "none".to_string(),
                Some(l) => match l.entry {
                    mm::pgtable::Entry::Swap { slot, exclusive, .. } => {
                        format!("swap entry {}{}", slot.0, if exclusive { " (exclusive)" } else { "" })
                    }
                    mm::pgtable::Entry::Present(p) => {
                        let (f, page) = l.page_for(a).expect("present");
                        if !p.special {
                            folios.insert(f);
                        }
                        let what = if p.special { "zero page".to_string() } else { format!("folio#{} page {page}", f.0) };
                        format!("{}{what} {}", if detached { "(PMD cleared) " } else { "" }, if p.write { "rw" } else { "ro" })
                    }
                },
            };
            out.insert(format!("{} PTE {a:#x}", name(pid)), v);
        }
    }
    for r in &s.pins {
        if let Some(pages) = k.gup_pages_of(r.handle) {
            let list: Vec<String> = pages.iter().map(|(f, p)| format!("folio#{} page {p}", f.0)).collect();
            folios.extend(pages.iter().map(|(f, _)| f));
            out.insert(format!("{} {} (T{})", name(r.pid), if r.pin { "pins" } else { "holds" }, r.task), list.join(", "));
        }
    }
    for m in &s.m {
        folios.extend(m.held().into_iter().map(|(f, _, _)| f));
    }
    for f in folios {
        let fo = k.folios.get(f);
        let v = if fo.freed {
            "freed".to_string()
        } else {
            let ae: String = (0..fo.nr_pages().min(2)).map(|p| if fo.page_ae(p) { '1' } else { '0' }).collect();
            let pins = if fo.is_large() { format!(" pincount {}", fo.pincount) } else { String::new() };
            format!("refcount {} mapcount {}{pins} AE {ae}", fo.refcount, fo.mapcount)
        };
        out.insert(format!("folio#{}", f.0), v);
    }
    out
}

/// The counterexample as columns, one per task, a step per row with the
/// state change under it, then the property broken.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!("race {} under {}\n", r.race, r.policy));
    let shards = if r.shards.is_empty() { String::new() } else { format!(", shards {}", r.shards.join(" ")) };
    let stats = format!(
        "{} states explored, {} unique, depth {}, {:.3} s, {} thread(s){shards}",
        r.states, r.unique_states, r.max_depth, r.seconds, r.threads
    );
    let Some(c) = &r.counterexample else {
        out.push_str(&format!("no violation: every interleaving explored ({stats})\n"));
        if let Some(found) = r.some_interleaving {
            out.push_str(if found {
                "expect … in some interleaving: met\n"
            } else {
                "expect … in some interleaving: NOT met in any interleaving\n"
            });
        }
        return out;
    };
    out.push_str(&format!("VIOLATION of {} after {} steps ({stats})\n\n", c.property, c.steps.len()));
    for t in &r.tasks {
        out.push_str(&format!("  {t}\n"));
    }
    out.push('\n');
    let width = 38usize;
    let cols = r.tasks.len();
    let cell = |t: &str| {
        let t: String = t.chars().take(width).collect();
        format!("{t:<width$}")
    };
    out.push_str("step | ");
    out.push_str(&r.tasks.iter().map(|t| cell(t.split(':').next().unwrap_or(t))).collect::<Vec<_>>().join(" | "));
    out.push('\n');
    out.push_str(&format!("-----+-{}\n", vec!["-".repeat(width); cols].join("-+-")));
    for (n, st) in c.steps.iter().enumerate() {
        let row: Vec<String> = (0..cols).map(|i| cell(if i == st.task { &st.func } else { "" })).collect();
        out.push_str(&format!("{:>4} | {}\n", n + 1, row.join(" | ")));
        for e in &st.events {
            out.push_str(&format!("     |   {e}\n"));
        }
        for ch in &st.changes {
            out.push_str(&format!("     |   {ch}\n"));
        }
    }
    out.push_str(&format!("\nbroken: {}: {}\n", c.property, c.message));
    out
}
