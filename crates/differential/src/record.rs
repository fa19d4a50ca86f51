//! Recording what one backend does while it runs a scenario.
//!
//! A [`Recorder`] wraps a backend and sees every call the runner makes and
//! every observation it takes. Records are keyed so that they line up
//! across backends although addresses and PFNs differ: places are
//! `(task, region, offset)` with regions numbered in the order
//! `mmap`/`mremap` returned them, tasks in order of creation, and page
//! identity is kept as raw PFNs only to be compared as a relation (which
//! observed places share a frame) by the diff.

use scenario::backend::*;
use std::collections::BTreeMap;

/// What one backend call ended with, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok(String),
    Data(Vec<(u8, u64)>),
    Errno(String),
    Signal(String),
    Backend(String),
}

impl Outcome {
    fn is_failure(&self) -> bool {
        matches!(self, Outcome::Errno(_) | Outcome::Signal(_) | Outcome::Backend(_))
    }

    /// The outcome as the diff's table shows it.
    pub fn show(&self) -> String {
        match self {
            Outcome::Ok(s) => s.clone(),
            Outcome::Data(runs) => show_runs(runs),
            Outcome::Errno(e) | Outcome::Signal(e) => e.clone(),
            Outcome::Backend(m) => format!("backend error: {m}"),
        }
    }
}

fn show_runs(runs: &[(u8, u64)]) -> String {
    let mut parts: Vec<String> = runs.iter().take(4).map(|(b, l)| format!("0x{b:02x}×{l}")).collect();
    if runs.len() > 4 {
        parts.push(format!("… ({} runs)", runs.len()));
    }
    if parts.is_empty() {
        "(no data)".into()
    } else {
        parts.join(" ")
    }
}

/// A place both backends can name: (task, region, offset in the region).
pub type Place = (usize, usize, u64);

/// The pagemap-level facts both backends report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub present: bool,
    pub swapped: bool,
    pub zero_page: bool,
    pub thp: bool,
    pub hugetlb: bool,
    pub exclusive: bool,
}

/// Everything observed during one step's backend calls and until the next
/// step.
#[derive(Clone, Debug, Default)]
pub struct CallRec {
    pub task: usize,
    pub outcome: Option<Outcome>,
    pub pages: BTreeMap<Place, (Option<Facts>, Option<u64>)>,
    pub pools: BTreeMap<u64, PoolObs>,
    pub tasks: Vec<TaskObs>,
}

/// A backend that records what passes through it.
pub struct Recorder<'a> {
    inner: &'a mut dyn Backend,
    regions: Vec<(u64, u64)>,
    tasks: Vec<TaskId>,
    /// The regions each task (by index) can name: those it mapped and those
    /// it had when it was forked. An address in a task is placed in one of
    /// these only; where another task's region lies in this task depends on
    /// each backend's address allocator, not on an mm rule.
    sees: Vec<Vec<usize>>,
    hugetlb_sizes: Vec<u64>,
    /// SysV shm segment id → the length an attach maps.
    shm_lens: BTreeMap<u64, u64>,
    /// One record per step that reached the backend. A step may make
    /// several calls (`mmap … align=` is an mmap and up to two munmaps,
    /// and whether the head munmap happens depends on where the kernel put
    /// the mapping), so calls are grouped by step: the runner takes the
    /// trace exactly once after each step's calls, which closes the group.
    pub calls: Vec<CallRec>,
    /// A call of the current step has been recorded.
    in_step: bool,
    /// The region the current step's first call mapped: munmaps of its
    /// head or tail in the same step (the alignment trim) shrink it, so
    /// places are offsets from the aligned start on both backends.
    step_region: Option<usize>,
    /// Observations before the first call.
    pub initial: CallRec,
}

impl<'a> Recorder<'a> {
    pub fn new(inner: &'a mut dyn Backend) -> Recorder<'a> {
        Recorder {
            inner,
            regions: Vec::new(),
            tasks: Vec::new(),
            sees: Vec::new(),
            hugetlb_sizes: Vec::new(),
            shm_lens: BTreeMap::new(),
            calls: Vec::new(),
            in_step: false,
            step_region: None,
            initial: CallRec::default(),
        }
    }

    fn task_index(&self, t: TaskId) -> usize {
        self.tasks.iter().position(|x| *x == t).unwrap_or(usize::MAX)
    }

    fn place(&self, task: TaskId, addr: u64) -> Place {
        let t = self.task_index(task);
        let seen = self.sees.get(t).map(Vec::as_slice).unwrap_or_default();
        let found = self.regions.iter().enumerate().rev().find(|(i, (a, l))| seen.contains(i) && addr >= *a && addr < a.saturating_add(*l));
        match found.map(|(i, _)| i) {
            Some(i) => (t, i, addr - self.regions[i].0),
            None => (t, usize::MAX, addr),
        }
    }

    fn current(&mut self) -> &mut CallRec {
        match self.calls.last_mut() {
            Some(c) => c,
            None => &mut self.initial,
        }
    }

    /// Cuts `[addr, addr+len)` off the head or the tail of region `i`.
    fn trim_region(&mut self, i: usize, addr: u64, len: u64) {
        let Some((a, l)) = self.regions.get_mut(i) else { return };
        if addr == *a && len <= *l {
            *a += len;
            *l -= len;
        } else if addr.checked_add(len) == a.checked_add(*l) && addr >= *a {
            *l = addr - *a;
        }
    }

    fn note_huge(&mut self, s: u64) {
        if !self.hugetlb_sizes.contains(&s) {
            self.hugetlb_sizes.push(s);
        }
    }
}

impl Backend for Recorder<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn lacks(&self, f: Feature) -> Option<String> {
        self.inner.lacks(f)
    }
    fn configure(&mut self, profile: &str, knobs: &[(String, String)]) -> Result<(), ConfigError> {
        self.inner.configure(profile, knobs)
    }
    fn machine(&self) -> Vec<(String, String)> {
        self.inner.machine()
    }
    fn set(&mut self, s: &Setting) -> Result<(), String> {
        if let Setting::HugetlbPool { size, .. } = s {
            self.note_huge(*size);
        }
        self.inner.set(s)
    }
    fn spawn(&mut self) -> Result<TaskId, String> {
        let t = self.inner.spawn()?;
        self.tasks.push(t);
        self.sees.push(Vec::new());
        Ok(t)
    }
    fn call(&mut self, task: TaskId, call: &Call) -> Result<Ret, Failure> {
        match call {
            Call::Mmap(m) => {
                if let Some(h) = m.hugetlb {
                    self.note_huge(h)
                }
            }
            Call::Memfd { hugetlb: Some(h), .. } | Call::Shmget { hugetlb: Some(h), .. } => self.note_huge(*h),
            _ => {}
        }
        let r = self.inner.call(task, call);
        // What an attach of the segment maps: its size in whole pages.
        if let (Call::Shmget { size, hugetlb }, Ok(Ret::Shm(id))) = (call, &r) {
            let unit = hugetlb.unwrap_or(4096).max(4096);
            self.shm_lens.insert(*id, size.div_ceil(unit) * unit);
        }
        if let (true, Some(i), Call::Munmap { addr, len }, Ok(_)) = (self.in_step, self.step_region, call, &r) {
            self.trim_region(i, *addr, *len);
        }
        let mut rec = CallRec { task: self.task_index(task), ..CallRec::default() };
        rec.outcome = Some(match &r {
            Ok(Ret::Addr(a)) if !self.in_step || self.step_region.is_none() => {
                let len = match call {
                    Call::Mmap(m) => {
                        let unit = m.hugetlb.unwrap_or(4096).max(4096);
                        m.len.div_ceil(unit) * unit
                    }
                    Call::Mremap { new_len, .. } => *new_len,
                    Call::Shmat { shm } => self.shm_lens.get(shm).copied().unwrap_or(0),
                    _ => 0,
                };
                self.regions.push((*a, len));
                self.step_region = Some(self.regions.len() - 1);
                let ti = self.task_index(task);
                if let Some(s) = self.sees.get_mut(ti) {
                    s.push(self.regions.len() - 1);
                }
                Outcome::Ok(format!("ok, region #{}", self.regions.len() - 1))
            }
            Ok(Ret::Task(t)) => {
                let inherited = self.sees.get(self.task_index(task)).cloned().unwrap_or_default();
                self.tasks.push(*t);
                self.sees.push(inherited);
                Outcome::Ok(format!("ok, task #{}", self.tasks.len() - 1))
            }
            Ok(Ret::Data(c)) => Outcome::Data(c.byte_runs()),
            Ok(Ret::Count(n)) => Outcome::Ok(format!("ok, {n} bytes")),
            Ok(_) => Outcome::Ok("ok".into()),
            Err(Failure::Errno(e)) => Outcome::Errno(e.clone()),
            Err(Failure::Signal(s)) => Outcome::Signal(s.clone()),
            Err(Failure::Backend(m)) => Outcome::Backend(m.clone()),
            Err(Failure::Livelock) => Outcome::Signal("livelock".into()),
        });
        for s in self.hugetlb_sizes.clone() {
            if self.inner.lacks(Feature::HugetlbPool).is_none() {
                if let Ok(p) = self.inner.pool(s) {
                    rec.pools.insert(s, p);
                }
            }
        }
        for t in self.tasks.clone() {
            if let Ok(s) = self.inner.task_state(t) {
                rec.tasks.push(s);
            }
        }
        match self.calls.last_mut().filter(|_| self.in_step) {
            // A later call of the same step: the step's outcome is its first
            // failure, the state is what the last call left.
            Some(c) => {
                if c.outcome.as_ref().is_none_or(|o| !o.is_failure()) && rec.outcome.as_ref().is_some_and(Outcome::is_failure) {
                    c.outcome = rec.outcome;
                }
                c.pools = rec.pools;
                c.tasks = rec.tasks;
            }
            None => {
                self.calls.push(rec);
                self.in_step = true;
            }
        }
        r
    }
    fn page(&mut self, task: TaskId, addr: u64) -> Result<Option<PageObs>, String> {
        let r = self.inner.page(task, addr);
        if let Ok(p) = &r {
            let key = self.place(task, addr);
            let facts = p.as_ref().map(|p| Facts {
                present: p.present,
                swapped: p.swapped,
                zero_page: p.zero_page,
                thp: p.thp,
                hugetlb: p.hugetlb,
                exclusive: p.exclusive,
            });
            let pfn = p.as_ref().and_then(|p| p.pfn);
            self.current().pages.insert(key, (facts, pfn));
        }
        r
    }
    fn folio(&mut self, task: TaskId, addr: u64) -> Result<Option<FolioObs>, String> {
        self.inner.folio(task, addr)
    }
    fn pool(&mut self, size: u64) -> Result<PoolObs, String> {
        self.inner.pool(size)
    }
    fn task_state(&mut self, task: TaskId) -> Result<TaskObs, String> {
        self.inner.task_state(task)
    }
    fn take_trace(&mut self) -> Vec<TraceLine> {
        self.in_step = false;
        self.step_region = None;
        self.inner.take_trace()
    }
    fn self_check(&mut self) -> Result<(), String> {
        self.inner.self_check()
    }
}
