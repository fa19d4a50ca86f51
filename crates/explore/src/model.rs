//! A race as a stateright [`Model`]: the state is the whole model kernel
//! plus where each task stands; an action is "task i takes its next atomic
//! step"; the properties are checked in every state the checker reaches.
//!
//! # Properties
//!
//! - `invariants`: [`Kernel::check_invariants_holding`] with the references
//!   the half-done machines hold. It is not checked while fork is between
//!   its two halves of one PTE copy (AE cleared, the parent's entry not yet
//!   write-protected): copy_present_pte() holds the page-table locks across
//!   them, and no lock-taking path can see that state — only GUP-fast can,
//!   which is what the other properties judge.
//! - `pin-mapped`: a page GUP-fast or slow GUP takes is mapped by the
//!   caller at that address when it is taken.
//! - `pin-exclusive`: a FOLL_PIN that succeeded on an anonymous page holds a
//!   page that is anon-exclusive and mapped by no other process, and the
//!   pinner maps either that page at the pinned address or nothing there
//!   (it may unmap; it must never silently see another page).
//! - `no-freed`: no pinned or otherwise held folio is freed.
//! - `private-memory`: what a process reads from its private anonymous
//!   memory is what it (or its parent before fork) wrote there last —
//!   never bytes another process wrote to its own copy.
//! - `no-deadlock`: some task can move while any is unfinished.
//! - `expect[i]`: a scenario's expectations after a `race { }` block, once
//!   every task is done (`expect-some[i]` for `in some interleaving`).

use crate::task::{step, LockMode, Machine, Op, Outcome, TaskSpec};
use mm::{FolioId, GupHandle, Kernel, Pid, PAGE_SIZE};
use stateright::{Model, Property};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A check a scenario wants to hold once every task of the race is done.
pub type EndCheck = Arc<dyn Fn(&Kernel, &[Machine]) -> Result<(), String> + Send + Sync>;

/// An expectation after a race: must it hold in every interleaving, or in
/// at least one?
#[derive(Clone)]
pub struct Expectation {
    pub text: String,
    pub in_some: bool,
    pub check: EndCheck,
}

/// One race: the kernel as the setup left it, and the racing tasks.
#[derive(Clone)]
pub struct Race {
    pub name: String,
    pub init: Kernel,
    pub tasks: Vec<TaskSpec>,
    /// Readers' names of the tasks' processes.
    pub names: BTreeMap<Pid, String>,
    /// Page addresses the summary and the memory property look at.
    pub watch: Vec<u64>,
    pub expectations: Vec<Expectation>,
    /// States to start from instead of [`Race::initial`] (one shard of a
    /// split exploration starts from its share of a BFS frontier).
    pub roots: Vec<State>,
    /// Set by the first broken state the checker judges. stateright keeps
    /// the last path it saw for a broken `always` property, not the first;
    /// the properties report only the first broken state, which a
    /// single-threaded BFS reaches by a shortest path.
    pub(crate) claimed: Claim,
}

/// See [`Race::claimed`]; each exploration starts with a fresh one.
#[derive(Clone, Default)]
pub(crate) struct Claim(Arc<std::sync::atomic::AtomicBool>);

impl Claim {
    /// True for the first caller only.
    fn first(&self) -> bool {
        !self.0.swap(true, std::sync::atomic::Ordering::SeqCst)
    }
}

/// A successful GUP the race made.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PinRecord {
    pub task: usize,
    pub pid: Pid,
    pub start: u64,
    pub pin: bool,
    pub handle: GupHandle,
}

/// A property found broken, and why.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Broken {
    pub property: String,
    pub message: String,
}

/// One state of the exploration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub k: Kernel,
    pub m: Vec<Machine>,
    pub pins: Vec<PinRecord>,
    /// The bytes each process must see in its private pages (one fill byte
    /// per page; absent while a write or zap of the page is under way).
    pub expect: BTreeMap<(Pid, u64), u8>,
    pub broken: Option<Broken>,
}

impl Race {
    /// The state before any task moved.
    pub fn initial(&self) -> State {
        let mut k = self.init.clone();
        k.set_event_log(false);
        let mut expect = BTreeMap::new();
        for &pid in self.names.keys() {
            for &a in &self.watch {
                if let Some(b) = page_bytes(&k, pid, a).and_then(|c| c.single_byte()) {
                    expect.insert((pid, a), b);
                }
            }
        }
        let mut s = State { k, m: vec![Machine::NotStarted; self.tasks.len()], pins: Vec::new(), expect, broken: None };
        s.broken = self.judge(&s, &[]);
        s
    }

    /// Tasks that may take a step now.
    pub fn enabled(&self, s: &State) -> Vec<usize> {
        if s.broken.is_some() {
            return Vec::new();
        }
        (0..self.tasks.len()).filter(|&i| self.may_step(s, i)).collect()
    }

    fn may_step(&self, s: &State, i: usize) -> bool {
        let m = &s.m[i];
        if m.is_done() {
            return false;
        }
        if let Some((mm, mode)) = m.lock_wanted(&s.k, &self.tasks[i]) {
            let clash = s.m.iter().enumerate().any(|(j, o)| {
                j != i
                    && o.lock_held(&s.k, &self.tasks[j])
                        .is_some_and(|(mm2, mode2)| mm2 == mm && (mode == LockMode::Write || mode2 == LockMode::Write))
            });
            if clash {
                return false;
            }
        }
        if let Some(lock) = m.hugetlb_lock_wanted(&s.k, &self.tasks[i]) {
            if s.m.iter().enumerate().any(|(j, o)| j != i && o.hugetlb_lock_held(&s.k, &self.tasks[j]) == Some(lock)) {
                return false;
            }
        }
        if let Some(mm) = m.ptl_wanted(&s.k, &self.tasks[i]) {
            if s.m.iter().enumerate().any(|(j, o)| j != i && o.ptl_held(&s.k, &self.tasks[j]) == Some(mm)) {
                return false;
            }
        }
        // An IPI waits for every CPU that runs with interrupts off.
        !(m.waits_for_irqs() && s.m.iter().enumerate().any(|(j, o)| j != i && o.irqs_disabled()))
    }

    /// Task `i` takes one step.
    pub fn advance(&self, s: &State, i: usize) -> State {
        let mut n = s.clone();
        let spec = &self.tasks[i];
        let before = gup_pages(&n.k, &n.m[i]);
        if matches!(n.m[i], Machine::NotStarted) {
            self.forget_expectations(&mut n, spec);
        }
        step(&mut n.k, spec, &mut n.m[i]);
        let mut taken: Vec<(u64, FolioId, u64)> = Vec::new();
        let start = match spec.op {
            Op::GupFast { addr, .. } => addr,
            _ => 0,
        };
        let after = gup_pages(&n.k, &n.m[i]);
        if after.len() > before.len() {
            for (j, &(f, p)) in after.iter().enumerate().skip(before.len()) {
                taken.push((start + j as u64 * PAGE_SIZE, f, p));
            }
        }
        if let (Machine::Done(o), false) = (n.m[i].clone(), s.m[i].is_done()) {
            self.finished(&mut n, i, o);
        }
        let pid = spec.pid;
        n.broken = self.judge(&n, &taken.iter().map(|&(a, f, p)| (pid, a, f, p)).collect::<Vec<_>>());
        n
    }

    /// Bookkeeping when task `i` finishes with `o`.
    fn finished(&self, n: &mut State, i: usize, o: Outcome) {
        let spec = &self.tasks[i];
        match (&spec.op, o) {
            (Op::GupFast { addr, flags, .. }, Outcome::Pinned(h)) => {
                n.pins.push(PinRecord { task: i, pid: spec.pid, start: *addr, pin: flags.pin, handle: h });
            }
            (Op::Fork, Outcome::Forked(c)) => {
                let inherited: Vec<(u64, u8)> = n.expect.iter().filter(|((p, _), _)| *p == spec.pid).map(|((_, a), b)| (*a, *b)).collect();
                for (a, b) in inherited {
                    n.expect.insert((c, a), b);
                }
            }
            (Op::Write { fill, .. }, Outcome::Ok) => {
                for a in spec.op.pages() {
                    n.expect.insert((spec.pid, a), *fill);
                }
            }
            (Op::DontNeed { .. }, Outcome::Ok) => {
                for a in spec.op.pages() {
                    n.expect.insert((spec.pid, a), 0);
                }
            }
            _ => {}
        }
    }

    /// A write or a zap makes the old contents of its pages void until it
    /// is done.
    fn forget_expectations(&self, n: &mut State, spec: &TaskSpec) {
        if matches!(spec.op, Op::Write { .. } | Op::DontNeed { .. }) {
            for a in spec.op.pages() {
                n.expect.remove(&(spec.pid, a));
            }
        }
    }

    /// The first property `s` breaks, given the pages the last step took.
    fn judge(&self, s: &State, taken: &[(Pid, u64, FolioId, u64)]) -> Option<Broken> {
        let broke = |property: &str, message: String| Some(Broken { property: property.into(), message });
        let k = &s.k;
        let name = |p: Pid| self.names.get(&p).cloned().unwrap_or_else(|| format!("pid {}", p.0));
        let mut held: Vec<(FolioId, u64, bool)> = Vec::new();
        for m in &s.m {
            held.extend(m.held());
        }
        for &(f, _, _) in &held {
            if k.folios.get(f).freed {
                return broke("no-freed", format!("folio#{} is held by a half-done path but was freed", f.0));
            }
        }
        if !s.m.iter().any(Machine::in_pte_lock_window) {
            if let Err(e) = k.check_invariants_holding(&held) {
                return broke("invariants", e.0);
            }
        }
        for &(pid, addr, f, page) in taken {
            let Some(mm) = k.task_mm(pid) else { continue };
            let now = k.mm(mm).pt.lookup(addr).and_then(|l| l.page_for(addr).filter(|_| l.entry.present().is_some()));
            if now != Some((f, page)) {
                return broke(
                    "pin-mapped",
                    format!(
                        "{} took page {page} of folio#{} for {addr:#x}, but {addr:#x} {}",
                        name(pid),
                        f.0,
                        match now {
                            None => "maps nothing there any more".to_string(),
                            Some((g, q)) => format!("maps page {q} of folio#{}", g.0),
                        }
                    ),
                );
            }
        }
        for r in &s.pins {
            let Some(pages) = k.gup_pages_of(r.handle) else { continue };
            for (j, (f, page)) in pages.iter().enumerate() {
                let addr = r.start + j as u64 * PAGE_SIZE;
                let fo = k.folios.get(f);
                if fo.freed {
                    return broke("no-freed", format!("folio#{} pinned by {} at {addr:#x} was freed", f.0, name(r.pid)));
                }
                if !r.pin || !fo.is_anon() {
                    continue;
                }
                let who = name(r.pid);
                if !(fo.page_ae(if fo.hugetlb.is_some() { 0 } else { page }) || fo.page_ae(0)) {
                    return broke(
                        "pin-exclusive",
                        format!("{who} pinned page {page} of folio#{} ({addr:#x}) but it is not anon-exclusive: it may be shared", f.0),
                    );
                }
                // The truth from the page tables, not the kernel's own
                // (approximate, for large folios) bookkeeping.
                let mut mms: Vec<mm::MmId> = k
                    .pids()
                    .filter_map(|p| k.task_mm(p))
                    .filter(|&m| k.mm(m).pt.leaves(0, mm::TASK_SIZE).iter().any(|l| l.entry.present().is_some_and(|p| p.folio == f)))
                    .collect();
                mms.dedup();
                let shared = if fo.is_large() { mms.len() > 1 } else { fo.mapcount > 1 };
                if shared {
                    return broke("pin-exclusive", format!("{who}'s pinned page {page} of folio#{} is mapped by another process too", f.0));
                }
                let Some(mm) = k.task_mm(r.pid) else { continue };
                if let Some(l) = k.mm(mm).pt.lookup(addr) {
                    match l.page_for(addr) {
                        Some(now) if now == (f, page) => {}
                        Some((g, q)) => {
                            return broke(
                                "pin-exclusive",
                                format!(
                                    "{who} pinned page {page} of folio#{} at {addr:#x} but now maps page {q} of folio#{} there: its writes no longer reach the pinned page",
                                    f.0, g.0
                                ),
                            )
                        }
                        None => {
                            return broke(
                                "pin-exclusive",
                                format!("{who}'s pinned page {page} of folio#{} at {addr:#x} was swapped out", f.0),
                            )
                        }
                    }
                }
            }
        }
        for (&(pid, addr), &b) in &s.expect {
            if let Some(c) = page_bytes(k, pid, addr) {
                if c.single_byte() != Some(b) {
                    let seen = c.single_byte().map_or("mixed bytes".to_string(), |x| format!("{x:#04x}"));
                    return broke(
                        "private-memory",
                        format!("{} reads {seen} at {addr:#x}, but what it last wrote there was {b:#04x}", name(pid)),
                    );
                }
            }
        }
        if s.m.iter().any(|m| !m.is_done()) && !(0..self.tasks.len()).any(|i| self.may_step(s, i)) {
            return broke("no-deadlock", "no task can move, but some are not done".into());
        }
        if s.m.iter().all(Machine::is_done) {
            for (i, e) in self.expectations.iter().enumerate().filter(|(_, e)| !e.in_some) {
                if let Err(why) = (e.check)(k, &s.m) {
                    return broke(&format!("expect[{i}]"), format!("`{}`: {why}", e.text));
                }
            }
        }
        None
    }
}

/// The bytes of the page `pid` maps at `addr`, if a present page.
pub fn page_bytes(k: &Kernel, pid: Pid, addr: u64) -> Option<mm::Contents> {
    let mm = k.task_mm(pid)?;
    let leaf = k.mm(mm).pt.lookup(addr)?;
    let p = leaf.entry.present()?;
    let (f, page) = leaf.page_for(addr)?;
    let fo = k.folios.get(f);
    if p.special || fo.is_zero() {
        return Some(mm::Contents::zeroed(PAGE_SIZE));
    }
    Some(fo.page_data(page))
}

/// The pages a GUP machine (or the handle it became) holds.
fn gup_pages(k: &Kernel, m: &Machine) -> Vec<(FolioId, u64)> {
    match m {
        Machine::Gup(g) => g.pages.iter().collect(),
        Machine::Done(Outcome::Pinned(h)) => k.gup_pages_of(*h).map(|p| p.iter().collect()).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The names of the properties, in the order they are judged.
pub const PROPERTIES: &[&str] = &["no-freed", "invariants", "pin-mapped", "pin-exclusive", "private-memory", "no-deadlock"];

/// Whether the property `is_it` names holds in `s` as far as the checker is
/// to know: only the first broken state of an exploration counts.
fn holds(r: &Race, s: &State, is_it: impl Fn(&str) -> bool) -> bool {
    match &s.broken {
        Some(b) if is_it(&b.property) => !r.claimed.first(),
        _ => true,
    }
}

fn holds_no_freed(r: &Race, s: &State) -> bool {
    holds(r, s, |p| p == "no-freed")
}
fn holds_invariants(r: &Race, s: &State) -> bool {
    holds(r, s, |p| p == "invariants")
}
fn holds_pin_mapped(r: &Race, s: &State) -> bool {
    holds(r, s, |p| p == "pin-mapped")
}
fn holds_pin_exclusive(r: &Race, s: &State) -> bool {
    holds(r, s, |p| p == "pin-exclusive")
}
fn holds_private_memory(r: &Race, s: &State) -> bool {
    holds(r, s, |p| p == "private-memory")
}
fn holds_no_deadlock(r: &Race, s: &State) -> bool {
    holds(r, s, |p| p == "no-deadlock")
}
fn holds_expectations(r: &Race, s: &State) -> bool {
    holds(r, s, |p| p.starts_with("expect["))
}
fn some_expectation_met(r: &Race, s: &State) -> bool {
    s.m.iter().all(Machine::is_done)
        && s.broken.is_none()
        && r.expectations.iter().filter(|e| e.in_some).all(|e| (e.check)(&s.k, &s.m).is_ok())
}

/// Name of the `sometimes` property for `expect … in some interleaving`.
pub const SOME_INTERLEAVING: &str = "expect-in-some-interleaving";

impl Model for Race {
    type State = State;
    type Action = usize;

    fn init_states(&self) -> Vec<State> {
        if self.roots.is_empty() {
            vec![self.initial()]
        } else {
            self.roots.clone()
        }
    }

    fn actions(&self, s: &State, actions: &mut Vec<usize>) {
        actions.extend(self.enabled(s));
    }

    fn next_state(&self, s: &State, i: usize) -> Option<State> {
        Some(self.advance(s, i))
    }

    fn format_action(&self, i: &usize) -> String {
        format!("T{i}")
    }

    /// What the web explorer shows for a step: the task and the kernel
    /// function it plays.
    fn format_step(&self, s: &State, i: usize) -> Option<String> {
        Some(format!("T{i} {}", s.m[i].next_func(&self.tasks[i].op)))
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut p = vec![
            Property::always("no-freed", holds_no_freed),
            Property::always("invariants", holds_invariants),
            Property::always("pin-mapped", holds_pin_mapped),
            Property::always("pin-exclusive", holds_pin_exclusive),
            Property::always("private-memory", holds_private_memory),
            Property::always("no-deadlock", holds_no_deadlock),
        ];
        if self.expectations.iter().any(|e| !e.in_some) {
            p.push(Property::always("expect", holds_expectations));
        }
        if self.expectations.iter().any(|e| e.in_some) {
            p.push(Property::sometimes(SOME_INTERLEAVING, some_expectation_met));
        }
        p
    }
}
