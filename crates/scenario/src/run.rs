//! Running a checked scenario on a [`Backend`].
//!
//! The runner executes statements in source order. For every operation it
//! resolves names to addresses and descriptors, observes the pages the
//! operation touches before and after (so the trace can show counter
//! deltas), collects what the kernel reported doing, and judges the
//! operation's outcome. Standalone expectations are judged where they stand.
//!
//! Outcome rule: an operation without `expect` must succeed — a scenario
//! where a step silently failed proves nothing. `expect any` opts out;
//! `expect SIGBUS`, `expect EINVAL` … demand that outcome.

use crate::ast::*;
use crate::backend::*;
use crate::check::{Checked, PAGE};
use crate::diag::{Diagnostic, Source, Span};
use crate::report::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The profile a scenario runs under when neither the file nor the command
/// line names one.
pub const DEFAULT_PROFILE: &str = "linux-6.18";

/// Command-line overrides.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Replaces the file's `profile`.
    pub profile: Option<String>,
    /// Applied after the file's `set` lines (so they win).
    pub knobs: Vec<(String, String)>,
    /// Machine knobs applied before the file's `set` lines: the machine a
    /// model run is compared with ([`crate::backend::Backend::machine`] of
    /// the live backend), so that a scenario that sets one itself keeps it.
    pub machine: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
enum Val {
    Region {
        addr: u64,
        len: u64,
    },
    Pipe {
        read: Fd,
        write: Fd,
    },
    File {
        fd: Fd,
        size: u64,
    },
    Ring {
        fd: Fd,
    },
    Pin {
        pin: PinId,
        len: u64,
        region: String,
        off: u64,
    },
    Hold(u64),
    /// A SysV shm segment and the length an attach maps.
    Shm {
        id: u64,
        len: u64,
    },
}

#[derive(Clone, Debug)]
struct TaskRt {
    id: TaskId,
    dead: Option<String>,
}

/// What the runner knows at run time.
#[derive(Default)]
struct Env {
    tasks: BTreeMap<String, TaskRt>,
    vals: BTreeMap<String, Val>,
    /// Who defined each name (the task's node in `lineage`), in which
    /// order.
    defined_by: BTreeMap<String, (usize, usize)>,
    lineage: crate::lineage::Lineage,
    names_of: BTreeMap<TaskId, String>,
    /// Registered fixed buffers per ring name.
    ring_bufs: BTreeMap<String, Vec<(u64, u64)>>,
    /// `changed since step N`: (step, place) → pfn then.
    snaps: BTreeMap<(usize, String), Option<u64>>,
    /// `expect same as step N`: what the read at step N returned.
    kept_reads: BTreeMap<usize, Contents>,
    /// Kernel log lines the latest step produced (`expect log`).
    last_log: Vec<String>,
}

impl Env {
    /// Can `task` use `name`: its own names, and up the chain of parents
    /// the names each one had when the line forked off (pins excepted: they
    /// belong to the task that took them).
    fn sees(&self, task: &str, name: &str) -> bool {
        let Some(&(owner, seq)) = self.defined_by.get(name) else { return false };
        self.lineage.sees(task, owner, seq, !matches!(self.vals.get(name), Some(Val::Pin { .. } | Val::Hold(_))))
    }

    /// The first live task, in the order the tasks were created (a parent
    /// before its children), that can use `name` and for which `pick`
    /// says yes: a step that moves a page away from its own task finds
    /// another mapping of the page (usually in the oldest task) without
    /// looking at every task.
    fn first_seer(&self, name: &str, mut pick: impl FnMut(&TaskRt) -> bool) -> Option<&TaskRt> {
        self.lineage
            .nodes
            .iter()
            .filter_map(|f| Some((f, self.tasks.get(&*f.name)?)))
            .find(|(f, t)| t.dead.is_none() && self.sees(&f.name, name) && pick(t))
            .map(|(_, t)| t)
    }
}

/// Things a step observed about one place, for deltas.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    page: Option<PageObs>,
    folio: Option<FolioObs>,
}

/// Runs one scenario. `Err` only for configuration errors the user must fix
/// (unknown profile or knob): those are usage errors, not failures.
pub fn run(src: &Source, sc: &Scenario, checked: &Checked, be: &mut dyn Backend, opts: &RunOptions) -> Result<Report, Vec<Diagnostic>> {
    run_env(src, sc, checked, be, opts, &mut |_: &Report, _: usize| {}).map(|(r, _)| r)
}

/// The names a run bound: tasks and regions. A driver that continues from
/// where a run stopped (the race explorer) resolves the rest with them.
#[derive(Clone, Debug, Default)]
pub struct Bindings {
    pub tasks: BTreeMap<String, TaskId>,
    pub regions: BTreeMap<String, (u64, u64)>,
    /// Which task defined each name, and when, and who forked whom: what
    /// decides which task may use which name.
    defined_by: BTreeMap<String, (usize, usize)>,
    lineage: crate::lineage::Lineage,
}

impl Env {
    fn bindings(&self) -> Bindings {
        Bindings {
            tasks: self.tasks.iter().filter(|(_, t)| t.dead.is_none()).map(|(n, t)| (n.clone(), t.id)).collect(),
            regions: self
                .vals
                .iter()
                .filter_map(|(n, v)| match v {
                    Val::Region { addr, len } => Some((n.clone(), (*addr, *len))),
                    _ => None,
                })
                .collect(),
            defined_by: self.defined_by.clone(),
            lineage: self.lineage.clone(),
        }
    }

    fn from_bindings(b: &Bindings) -> Env {
        let mut env = Env { defined_by: b.defined_by.clone(), lineage: b.lineage.clone(), ..Env::default() };
        for (n, &id) in &b.tasks {
            env.names_of.insert(id, n.clone());
            env.tasks.insert(n.clone(), TaskRt { id, dead: None });
        }
        for (n, &(addr, len)) in &b.regions {
            env.vals.insert(n.clone(), Val::Region { addr, len });
        }
        env
    }
}

/// Judges one expectation on a backend whose state a driver produced,
/// with the names in `b`.
pub fn judge(src: &Source, item: &Item, e: &Expectation, be: &mut dyn Backend, b: &Bindings) -> Check {
    expectation(src, item, e, be, &Env::from_bindings(b))
}

/// [`run`], also returning the names the run bound.
pub fn run_bound(
    src: &Source,
    sc: &Scenario,
    checked: &Checked,
    be: &mut dyn Backend,
    opts: &RunOptions,
) -> Result<(Report, Bindings), Vec<Diagnostic>> {
    run_observed(src, sc, checked, be, opts, &mut |_: &Report, _: usize| {})
}

/// What a driver watching a run is told as it goes.
pub trait Observer {
    /// Step number `step` (as the trace numbers it) with the text `text`
    /// starts; `work` counts the pages the backend handles while it runs,
    /// if the backend can say.
    fn step_begins(&mut self, _step: usize, _text: &str, _work: Option<mm::WorkCounter>) {}

    /// The step that began last has ended (its entry follows).
    fn step_ends(&mut self) {}

    /// Entry `i` of the report is complete (entries never change
    /// afterwards).
    fn entry(&mut self, report: &Report, i: usize);
}

/// A closure that only wants the entries.
impl<F: FnMut(&Report, usize)> Observer for F {
    fn entry(&mut self, report: &Report, i: usize) {
        self(report, i)
    }
}

/// [`run_bound`], telling `observer` when each step begins and ends and
/// handing it each entry of the report as soon as it is complete, so a
/// caller can print a long run as it goes. The report's head (file,
/// backend, profile, knobs) is set before the first call.
pub fn run_observed(
    src: &Source,
    sc: &Scenario,
    checked: &Checked,
    be: &mut dyn Backend,
    opts: &RunOptions,
    observer: &mut dyn Observer,
) -> Result<(Report, Bindings), Vec<Diagnostic>> {
    run_env(src, sc, checked, be, opts, observer).map(|(r, env)| (r, env.bindings()))
}

/// [`run_observed`] with the runner's own state at the end, from which a
/// caller that wants them takes the bindings (a plain [`run`] does not).
fn run_env(
    src: &Source,
    sc: &Scenario,
    checked: &Checked,
    be: &mut dyn Backend,
    opts: &RunOptions,
    observer: &mut dyn Observer,
) -> Result<(Report, Env), Vec<Diagnostic>> {
    let file_profile = sc.items.iter().find_map(|i| match &i.kind {
        ItemKind::Profile(p) => Some(p),
        _ => None,
    });
    let profile: &str = opts.profile.as_deref().or(file_profile.map(|p| p.value.as_str())).unwrap_or(DEFAULT_PROFILE);
    // Knobs: the machine's (a compared run's), the file's, then the command
    // line's; remember where each came from so an error can point at it.
    let mut knobs: Vec<(String, String)> = opts.machine.clone();
    let mut knob_spans: Vec<Option<Span>> = vec![None; knobs.len()];
    for i in &sc.items {
        if let ItemKind::Set { knob, value } = &i.kind {
            knobs.push((knob.value.clone(), value.value.clone()));
            knob_spans.push(Some(knob.span.to(value.span)));
        }
    }
    for k in &opts.knobs {
        knobs.push(k.clone());
        knob_spans.push(None);
    }
    let mut report = Report {
        trace_version: crate::report::TRACE_VERSION,
        file: src.name.clone(),
        backend: be.name().to_string(),
        profile: profile.to_string(),
        knobs: knobs.iter().map(|(k, v)| KnobSetting { knob: k.clone(), value: v.clone() }).collect(),
        status: Status::Pass,
        skip_reason: None,
        xfail: sc.items.iter().find_map(|i| match &i.kind {
            ItemKind::Xfail(r) => Some(r.value.clone()),
            _ => None,
        }),
        // About one entry per statement (a refused setting adds a second):
        // sized once, since entries are large and growing copies them all.
        entries: Vec::with_capacity(sc.items.len()),
        summary: Summary::default(),
        task_names: BTreeMap::new(),
    };

    // Operations the backend cannot perform make the whole scenario moot.
    // Rule knobs first: a backend without them cannot even be configured.
    // A knob naming the machine (the swap device kind) is one a live
    // backend can honour, so only kernel-rule knobs need a model.
    if knobs.iter().any(|(k, _)| !mm::policy::MACHINE_KNOBS.contains(&k.as_str())) {
        if let Some(why) = be.lacks(Feature::Knobs) {
            report.status = Status::Skip;
            report.skip_reason = Some(format!("needs {} (policy knobs), which the {} backend cannot do: {why}", Feature::Knobs, be.name()));
            return Ok((report, Env::default()));
        }
    }

    // Where a knob without a line came from: the machine this run is
    // compared with (its knobs come first), or the command line.
    let knob_origin = |index: usize| if index < opts.machine.len() { "the machine this run is compared with" } else { "given with --set" };
    if let Err(e) = be.configure(profile, &knobs) {
        let d = match e {
            ConfigError::UnknownProfile { known } => {
                let span = match (&opts.profile, &file_profile) {
                    (None, Some(p)) => p.span,
                    _ => Span::default(),
                };
                let mut d = Diagnostic::new(span, format!("unknown profile `{profile}`")).expected(known);
                if opts.profile.is_some() {
                    d = d.note("given with --profile");
                }
                d
            }
            ConfigError::Knob { index, message } => {
                let span = knob_spans.get(index).copied().flatten();
                let d = Diagnostic::new(span.unwrap_or_default(), message);
                match span {
                    Some(_) => d,
                    None => d.note(knob_origin(index)),
                }
            }
            ConfigError::OtherMachine { index, why } => {
                let what = match knob_spans.get(index).copied().flatten() {
                    Some(span) => format!("line {}: `{}`", src.line_col(span.start).0, src.snippet(span)),
                    None => knob_origin(index).to_string(),
                };
                let knob = knobs.get(index).map_or_else(|| "a machine knob".to_string(), |(k, v)| format!("{k}={v}"));
                report.status = Status::Skip;
                report.skip_reason = Some(format!("needs {knob} ({what}), which the {} backend's machine does not have: {why}", be.name()));
                return Ok((report, Env::default()));
            }
        };
        return Err(vec![d]);
    }

    // The other needs after configuring: what a backend can do may depend
    // on the machine knobs (which swap device a live run can have).
    for (idx, f) in checked.needs.iter().copied() {
        if let Some(why) = be.lacks(f) {
            let what = match sc.items.get(idx) {
                Some(it) => format!("line {}: `{}`", it.line, src.snippet(it.span)),
                None => "the scenario".to_string(),
            };
            report.status = Status::Skip;
            report.skip_reason = Some(format!("needs {f} ({what}), which the {} backend cannot do: {why}", be.name()));
            return Ok((report, Env::default()));
        }
    }

    let mut env = Env::default();
    let mut reported = 0;
    for (idx, item) in sc.items.iter().enumerate() {
        for i in reported..report.entries.len() {
            observer.entry(&report, i);
        }
        reported = report.entries.len();
        let text = src.snippet(item.span);
        match &item.kind {
            ItemKind::Profile(_) | ItemKind::Set { .. } | ItemKind::Xfail(_) => {}
            ItemKind::Thp { size, mode } => {
                let r = be.set(&Setting::Thp { size: size.value, mode: *mode });
                setting(&mut report, item, text.to_string(), r);
            }
            ItemKind::ThpZeroPage(on) => {
                let r = be.set(&Setting::ThpUseZeroPage(*on));
                setting(&mut report, item, text.to_string(), r);
            }
            ItemKind::Hugetlb { size, pages, overcommit } => {
                let r = be.set(&Setting::HugetlbPool { size: size.value, pages: *pages, overcommit: *overcommit });
                setting(&mut report, item, text.to_string(), r);
            }
            ItemKind::Task(name) => match be.spawn() {
                Ok(id) => {
                    env.names_of.insert(id, name.value.clone());
                    env.tasks.insert(name.value.clone(), TaskRt { id, dead: None });
                    env.lineage.add(&name.value, None);
                    report.entries.push(Entry::Task { line: item.line, text: text.to_string(), task: name.value.clone() });
                }
                Err(e) => {
                    report.status = Status::Skip;
                    report.skip_reason = Some(format!("cannot start task {}: {e}", name.value));
                    return Ok((report, env));
                }
            },
            ItemKind::Step(step) => {
                let n = checked.step_of_item.get(idx).copied().flatten().unwrap_or(0);
                observer.step_begins(n, text, be.work_counter());
                let mut sr = run_step(src, item, step, n, checked, be, &mut env);
                sr.state = be.state_view();
                observer.step_ends();
                report.entries.push(Entry::Step(sr));
                if let Some(locs) = checked.snapshots.get(&n) {
                    for l in locs {
                        let Some((t, addrs)) = place_addrs(&env, l) else { continue };
                        for &a in &addrs {
                            let pfn = be.page(t, a).ok().flatten().and_then(|p| p.pfn);
                            env.snaps.insert((n, place_name(l, addrs[0], a)), pfn);
                        }
                    }
                }
            }
            ItemKind::Expect(e) => {
                let c = expectation(src, item, e, be, &env);
                report.entries.push(Entry::Expect(c));
            }
            // A race's operations run in the order written: one of its
            // interleavings (`cowlab explore` tries them all).
            ItemKind::RaceBegin | ItemKind::RaceEnd => {}
            ItemKind::ExpectSome(e) => {
                let mut c = expectation(src, item, e, be, &env);
                if c.status == Status::Fail {
                    // Not met in this interleaving says nothing of the others.
                    c.status = Status::Skip;
                    c.detail = Some(format!(
                        "not in the written order ({}); cowlab explore tries every interleaving",
                        c.detail.unwrap_or_default()
                    ));
                }
                report.entries.push(Entry::Expect(c));
            }
        }
    }
    for i in reported..report.entries.len() {
        observer.entry(&report, i);
    }
    // Moved, not copied: what the caller keeps of `env` (the bindings)
    // does not include them.
    report.task_names = std::mem::take(&mut env.names_of).into_iter().map(|(id, n)| (id.0, n)).collect();
    report.finish();
    Ok((report, env))
}

fn setting(report: &mut Report, item: &Item, text: String, r: Result<(), String>) {
    report.entries.push(Entry::Setting { line: item.line, text, error: r.as_ref().err().cloned() });
    if let Err(e) = r {
        report.entries.push(Entry::Expect(Check {
            line: item.line,
            column: 1,
            text: "system setting".into(),
            status: Status::Fail,
            detail: Some(format!("the backend refused it: {e}")),
        }));
    }
}

/// Task and address of a place, if the task is alive and has the name.
fn place(env: &Env, l: &Loc) -> Option<(TaskId, u64)> {
    let t = env.tasks.get(&l.task.value)?;
    match env.vals.get(&l.name.value)? {
        Val::Region { addr, .. } => Some((t.id, addr.saturating_add(l.off()))),
        _ => None,
    }
}

fn region(env: &Env, r: &Range) -> Result<(u64, u64), String> {
    match env.vals.get(&r.name.value) {
        Some(Val::Region { addr, len }) => {
            let off = r.off();
            let l = r.len.as_ref().map(|l| l.value).unwrap_or(len.saturating_sub(off));
            Ok((addr.saturating_add(off), l))
        }
        Some(_) => Err(format!("`{}` is not a region", r.name.value)),
        None => Err(format!("`{}` was never created (an earlier step failed)", r.name.value)),
    }
}

fn resolve_addr(env: &Env, a: &Addr) -> Result<u64, String> {
    match a {
        Addr::Literal(l) => Ok(l.value),
        Addr::Name { name, offset } => match env.vals.get(&name.value) {
            Some(Val::Region { addr, .. }) => Ok(addr.saturating_add(offset.as_ref().map(|o| o.value).unwrap_or(0))),
            _ => Err(format!("`{}` was never created (an earlier step failed)", name.value)),
        },
    }
}

fn data_of(d: &DataSpec, len: u64) -> Contents {
    match d {
        DataSpec::Fill(b) => Contents::filled(len, *b),
        DataSpec::Bytes(v) => Contents::from_bytes(v),
    }
}

fn data_len(d: &DataSpec) -> Option<u64> {
    match d {
        DataSpec::Fill(_) => None,
        DataSpec::Bytes(v) => Some(v.len() as u64),
    }
}

/// `mmap … align=A`, as the selftests place THPs: map `len + A`, then
/// unmap the unaligned head and tail, so any backend gets the same layout.
/// A length that does not fit the address space even before the kernel
/// sees it is the kernel's answer to any length past TASK_SIZE: ENOMEM.
fn mmap_aligned(be: &mut dyn Backend, task: TaskId, m: &MmapCall, align: u64) -> Result<Ret, Failure> {
    let Some(wide_len) = m.len.checked_add(align).filter(|l| l.checked_next_multiple_of(PAGE).is_some()) else {
        return Err(Failure::Errno("ENOMEM".into()));
    };
    let wide = MmapCall { len: wide_len, ..m.clone() };
    let Ret::Addr(base) = be.call(task, &Call::Mmap(wide))? else {
        return Err(Failure::Backend("mmap returned no address".into()));
    };
    let start = base.next_multiple_of(align.max(1));
    let end = start + m.len.next_multiple_of(PAGE);
    for (addr, len) in [(base, start - base), (end, base + m.len + align - end)] {
        if len > 0 {
            be.call(task, &Call::Munmap { addr, len })?;
        }
    }
    Ok(Ret::Addr(start))
}

/// The backend's id of a named task.
fn task_id(env: &Env, t: &Ident) -> Result<TaskId, String> {
    env.tasks.get(&t.value).map(|rt| rt.id).ok_or_else(|| format!("task `{}` was never created (an earlier step failed)", t.value))
}

/// Builds the backend call for an operation.
fn build_call(step: &Step, env: &Env) -> Result<Call, String> {
    let fd_of = |n: &Ident| match env.vals.get(&n.value) {
        Some(Val::Pipe { write, .. }) => Ok(*write),
        Some(Val::File { fd, .. }) | Some(Val::Ring { fd }) => Ok(*fd),
        _ => Err(format!("`{}` was never created (an earlier step failed)", n.value)),
    };
    Ok(match &step.op {
        Op::Mmap(m) => Call::Mmap(MmapCall {
            addr: match &m.fixed {
                Some(a) => Some(resolve_addr(env, a)?),
                None => None,
            },
            len: m.len.value,
            prot: m.prot,
            shared: m.shared,
            fixed: m.fixed.is_some(),
            noreplace: m.noreplace,
            noreserve: m.noreserve,
            hugetlb: m.hugetlb.as_ref().map(|h| h.value),
            populate: m.populate,
            file: match &m.backing {
                Backing::Anon => None,
                Backing::File(f) => Some((fd_of(f)?, m.offset.as_ref().map(|o| o.value).unwrap_or(0))),
            },
        }),
        Op::Munmap(r) => {
            let (addr, len) = region(env, r)?;
            Call::Munmap { addr, len }
        }
        Op::Mprotect(r, p) => {
            let (addr, len) = region(env, r)?;
            Call::Mprotect { addr, len, prot: *p }
        }
        Op::Madvise(r, a) => {
            let (addr, len) = region(env, r)?;
            Call::Madvise { addr, len, advice: a.value }
        }
        Op::Mremap { old, new_len, to, dontunmap } => {
            let (old_addr, old_len) = region(env, old)?;
            Call::Mremap {
                old_addr,
                old_len,
                new_len: new_len.value,
                new_addr: match to {
                    Some(a) => Some(resolve_addr(env, a)?),
                    None => None,
                },
                dontunmap: *dontunmap,
            }
        }
        Op::Fork(_) => Call::Fork,
        Op::Exit(code) => Call::Exit { code: *code },
        Op::Write(r, d) => match env.vals.get(&r.name.value) {
            Some(Val::Region { .. }) => {
                let mut r2 = r.clone();
                if let (None, Some(l)) = (&r2.len, data_len(d)) {
                    r2.len = Some(Spanned::new(l, r.span));
                }
                let (addr, len) = region(env, &r2)?;
                Call::WriteMem { addr, data: data_of(d, len) }
            }
            Some(Val::Pipe { write, .. }) => {
                let len = data_len(d).or(r.len.as_ref().map(|l| l.value)).unwrap_or(0);
                Call::WriteFd { fd: *write, data: data_of(d, len) }
            }
            Some(Val::File { fd, size }) => {
                let len = data_len(d).or(r.len.as_ref().map(|l| l.value)).unwrap_or(size.saturating_sub(r.off()));
                Call::Pwrite { fd: *fd, offset: r.off(), data: data_of(d, len) }
            }
            _ => return Err(format!("`{}` was never created (an earlier step failed)", r.name.value)),
        },
        Op::Read(r) => {
            let exp_len = match &step.expect {
                Some(Spanned { value: StepExpect::Data(d), .. }) => data_len(d),
                _ => None,
            };
            let want = r.len.as_ref().map(|l| l.value).or(exp_len);
            match env.vals.get(&r.name.value) {
                Some(Val::Region { addr, len }) => {
                    Call::ReadMem { addr: addr.saturating_add(r.off()), len: want.unwrap_or(len.saturating_sub(r.off())) }
                }
                Some(Val::Pipe { read, .. }) => Call::ReadFd { fd: *read, len: want.unwrap_or(0) },
                Some(Val::File { fd, size }) => Call::Pread { fd: *fd, offset: r.off(), len: want.unwrap_or(size.saturating_sub(r.off())) },
                Some(Val::Pin { pin, len, .. }) => {
                    Call::ReadPinned { pin: *pin, offset: r.off(), len: want.unwrap_or(len.saturating_sub(r.off())) }
                }
                _ => return Err(format!("`{}` was never created (an earlier step failed)", r.name.value)),
            }
        }
        Op::Pipe => Call::Pipe,
        Op::Vmsplice { pipe, range } => {
            let (addr, len) = region(env, range)?;
            Call::Vmsplice { fd: fd_of(pipe)?, addr, len }
        }
        Op::Memfd(s, h, sparse) => Call::Memfd { size: s.value, hugetlb: h.as_ref().map(|h| h.value), sparse: *sparse },
        Op::Tmpfile(s, local, sparse) => Call::Tmpfile { size: s.value, local: *local, sparse: *sparse },
        Op::IoUring => Call::IoUringSetup,
        Op::IoUringRegister { ring, bufs } => {
            let bufs = bufs
                .iter()
                .map(|b| match b {
                    IoVec::Range(r) => region(env, r),
                    IoVec::Sparse(_) => Ok((0, 0)),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Call::IoUringRegister { ring: fd_of(ring)?, bufs }
        }
        Op::IoUringUnregister(ring) => Call::IoUringUnregister { ring: fd_of(ring)? },
        Op::IoUringFixed { ring, write, buf, file, file_off } => {
            let (addr, len) = region(env, buf)?;
            // The buffer index is the registered buffer containing the
            // range; the kernel checks the range lies inside it.
            let buf_index = env
                .ring_bufs
                .get(&ring.value)
                .and_then(|bs| bs.iter().position(|(a, l)| addr >= *a && addr.saturating_add(len) <= a.saturating_add(*l)))
                .unwrap_or(0) as u32;
            let ring = fd_of(ring)?;
            let fd = fd_of(file)?;
            let file_offset = file_off.as_ref().map(|o| o.value).unwrap_or(0);
            if *write {
                Call::IoUringWriteFixed { ring, buf_index, fd, file_offset, addr, len }
            } else {
                Call::IoUringReadFixed { ring, buf_index, fd, file_offset, addr, len }
            }
        }
        Op::ClearSoftDirty => Call::ClearSoftDirty,
        Op::Gup { kind, range, flags } => {
            let (addr, len) = region(env, range)?;
            Call::Gup { kind: *kind, addr, nr_pages: len / PAGE, flags: flags.iter().map(|f| f.value).collect() }
        }
        Op::Unpin(h) => match env.vals.get(&h.value) {
            Some(Val::Pin { pin, .. }) => Call::Unpin { pin: *pin },
            _ => return Err(format!("`{}` was never taken (an earlier step failed)", h.value)),
        },
        Op::Close { name, end } => match (env.vals.get(&name.value), end.as_ref().map(|e| e.value)) {
            (Some(Val::Pipe { read, .. }), Some(PipeEnd::Read)) => Call::Close { fd: *read },
            (Some(Val::Pipe { write, .. }), _) => Call::Close { fd: *write },
            _ => Call::Close { fd: fd_of(name)? },
        },
        Op::Mmget(t) => match env.tasks.get(&t.value) {
            Some(rt) => Call::Mmget { task: rt.id },
            None => return Err(format!("task `{}` was never created (an earlier step failed)", t.value)),
        },
        Op::Mmput(h) => match env.vals.get(&h.value) {
            Some(Val::Hold(hold)) => Call::Mmput { hold: *hold },
            _ => return Err(format!("`{}` was never taken (an earlier step failed)", h.value)),
        },
        Op::Fallocate { file, punch } => {
            Call::Fallocate { fd: fd_of(&file.name)?, offset: file.off(), len: file.len.as_ref().map_or(0, |l| l.value), punch: *punch }
        }
        Op::Shmget { size, hugetlb } => Call::Shmget { size: size.value, hugetlb: hugetlb.as_ref().map(|h| h.value) },
        Op::Shmat(seg) | Op::ShmRmid(seg) => match env.vals.get(&seg.value) {
            Some(Val::Shm { id, .. }) if matches!(step.op, Op::Shmat(_)) => Call::Shmat { shm: *id },
            Some(Val::Shm { id, .. }) => Call::ShmRmid { shm: *id },
            _ => return Err(format!("`{}` was never created (an earlier step failed)", seg.value)),
        },
        Op::Shmdt(r) => match env.vals.get(&r.value) {
            Some(Val::Region { addr, .. }) => Call::Shmdt { addr: *addr },
            _ => return Err(format!("`{}` was never created (an earlier step failed)", r.value)),
        },
        Op::ProcMemWrite { target, range, data } => {
            let mut r = range.clone();
            if let (None, Some(l)) = (&r.len, data_len(data)) {
                r.len = Some(Spanned::new(l, range.span));
            }
            let (addr, len) = region(env, &r)?;
            Call::ProcMemWrite { task: task_id(env, target)?, addr, data: data_of(data, len) }
        }
        Op::MbindLocalMove(r) => {
            let (addr, len) = region(env, r)?;
            Call::MbindLocalMove { addr, len }
        }
        Op::UffdioCopy(range, data) => {
            let mut r = range.clone();
            if let (None, Some(l)) = (&r.len, data_len(data)) {
                r.len = Some(Spanned::new(l, range.span));
            }
            let (addr, len) = region(env, &r)?;
            Call::UffdioCopy { addr, data: data_of(data, len) }
        }
        Op::ProcMemRead { target, range } => {
            let exp_len = match &step.expect {
                Some(Spanned { value: StepExpect::Data(d), .. }) => data_len(d),
                _ => None,
            };
            let mut r = range.clone();
            if let (None, Some(l)) = (&r.len, exp_len) {
                r.len = Some(Spanned::new(l, range.span));
            }
            let (addr, len) = region(env, &r)?;
            Call::ProcMemRead { task: task_id(env, target)?, addr, len }
        }
        Op::ProcessVm { write, target, remote, local, local_off } => {
            let task = task_id(env, target)?;
            let (remote, len) = region(env, remote)?;
            let local = match env.vals.get(&local.value) {
                Some(Val::Region { addr, .. }) => addr.saturating_add(local_off.as_ref().map(|o| o.value).unwrap_or(0)),
                _ => return Err(format!("`{}` was never created (an earlier step failed)", local.value)),
            };
            Call::ProcessVm { write: *write, task, remote, local, len }
        }
        Op::DirectIo { write, buf, file, file_off } => {
            let (addr, len) = region(env, buf)?;
            Call::DirectIo { write: *write, fd: fd_of(file)?, file_offset: file_off.as_ref().map(|o| o.value).unwrap_or(0), addr, len }
        }
    })
}

/// Region names (and offsets) an operation touches, for the delta lines.
fn touched(step: &Step, env: &Env, task: &str) -> Vec<(String, u64)> {
    let one = |r: &Range| vec![(r.name.value.clone(), r.off())];
    let all_regions = || -> Vec<(String, u64)> {
        env.vals.iter().filter(|(n, v)| matches!(v, Val::Region { .. }) && env.sees(task, n)).take(8).map(|(n, _)| (n.clone(), 0)).collect()
    };
    match &step.op {
        Op::Mmap(_) | Op::Mremap { .. } => {
            let mut v = Vec::new();
            if let Op::Mremap { old, .. } = &step.op {
                v.extend(one(old));
            }
            if let Some(b) = &step.bind {
                v.push((b.value.clone(), 0));
            }
            v
        }
        Op::Munmap(r) | Op::Mprotect(r, _) | Op::Madvise(r, _) => one(r),
        Op::Shmdt(r) => vec![(r.value.clone(), 0)],
        Op::Shmat(_) => step.bind.iter().map(|b| (b.value.clone(), 0)).collect(),
        Op::Write(r, _) | Op::Read(r) => match env.vals.get(&r.name.value) {
            Some(Val::Region { .. }) => one(r),
            Some(Val::Pin { region, off, .. }) => vec![(region.clone(), off + r.off())],
            _ => vec![],
        },
        Op::Vmsplice { range, .. } | Op::Gup { range, .. } | Op::ProcMemWrite { range, .. } | Op::ProcMemRead { range, .. } => one(range),
        Op::MbindLocalMove(r) | Op::UffdioCopy(r, _) => one(r),
        Op::IoUringRegister { bufs, .. } => bufs
            .iter()
            .flat_map(|b| match b {
                IoVec::Range(r) => one(r),
                IoVec::Sparse(_) => vec![],
            })
            .collect(),
        Op::IoUringFixed { buf, .. } | Op::DirectIo { buf, .. } => one(buf),
        Op::ProcessVm { remote, local, local_off, .. } => {
            vec![(remote.name.value.clone(), remote.off()), (local.value.clone(), local_off.as_ref().map(|o| o.value).unwrap_or(0))]
        }
        Op::Unpin(h) => match env.vals.get(&h.value) {
            Some(Val::Pin { region, off, .. }) => vec![(region.clone(), *off)],
            _ => vec![],
        },
        Op::Fork(_) | Op::Exit(_) | Op::ClearSoftDirty => all_regions(),
        _ => vec![],
    }
}

/// The tasks whose page-table entries a step's Δ lines compare: the task
/// that ran it, the task a cross-task call reached (`/proc/PID/mem`,
/// `process_vm_*`) and, once it exists, the child a fork made. Other tasks
/// whose entries the step changed (a hugetlb page stolen back from a child,
/// an OOM victim) are named by the kernel's narration; the counters of a
/// page they share with these tasks still show, once, in the page's line.
/// Looking at every task that can see a region would make a chain of N
/// forks cost N² observations.
fn actors(step: &Step, task: &str) -> Vec<String> {
    let mut v = vec![task.to_string()];
    match &step.op {
        Op::ProcMemWrite { target, .. } | Op::ProcMemRead { target, .. } | Op::ProcessVm { target, .. } => v.push(target.value.clone()),
        Op::Fork(child) => v.push(child.value.clone()),
        _ => {}
    }
    v
}

/// Observes `name+off` in each live task of `tasks` that has the name.
fn observe(be: &mut dyn Backend, env: &Env, places: &[(String, u64)], tasks: &[String]) -> BTreeMap<(String, String, u64), Seen> {
    let counters = be.lacks(Feature::FolioCounters).is_none();
    let frames = be.lacks(Feature::PageFrames).is_none();
    let mut out = BTreeMap::new();
    if !frames {
        return out;
    }
    for (name, off) in places {
        let Some(Val::Region { addr, .. }) = env.vals.get(name) else {
            continue;
        };
        for tname in tasks {
            let Some(t) = env.tasks.get(tname) else { continue };
            if t.dead.is_some() || !env.sees(tname, name) {
                continue;
            }
            let a = addr.saturating_add(*off);
            let page = be.page(t.id, a).ok().flatten();
            let folio = if counters { be.folio(t.id, a).ok().flatten() } else { None };
            out.insert((name.clone(), tname.clone(), *off), Seen { page, folio });
        }
    }
    out
}

fn pfn_of(s: &Seen) -> Option<u64> {
    s.page.as_ref().filter(|p| p.present).and_then(|p| p.pfn)
}

fn place_text(name: &str, off: u64) -> String {
    if off == 0 {
        name.to_string()
    } else {
        format!("{name}+{}", fmt_size(off))
    }
}

fn describe_page(s: &Seen) -> String {
    let Some(p) = &s.page else {
        return "not mapped".into();
    };
    if !p.present {
        return if p.swapped { "swapped out".into() } else { "not present".into() };
    }
    // Written into one string (an expectation's detail is built for every
    // page it looks at).
    let mut out = match p.pfn {
        Some(pfn) => format!("pfn {pfn:#x}"),
        None => "present".into(),
    };
    if p.zero_page {
        out.push_str(", zero page");
    }
    if let Some(f) = &s.folio {
        let _ = write!(out, ", refcount {}, mapcount {}", f.refcount, f.mapcount);
        if f.pincount != 0 {
            let _ = write!(out, ", pincount {}", f.pincount);
        }
        if f.order > 0 {
            let _ = write!(out, ", order {}", f.order);
        }
        if f.anon_exclusive {
            out.push_str(", anon_exclusive");
        }
    }
    if p.writable == Some(true) {
        out.push_str(", writable");
    }
    out
}

/// The Δ line of one task's entry at one place: what is mapped there
/// now (in full, with the new page's counters) when the page came, went
/// or was replaced; the entry's own bits when the page stayed. A page's
/// counters changing under an entry that stayed is the page's line
/// ([`page_deltas`]), once however many tasks map it.
fn entry_delta(name: &str, task: &str, off: u64, before: Option<&Seen>, after: Option<&Seen>) -> Option<String> {
    let place = format!("{} in {task}", place_text(name, off));
    let present = |s: Option<&Seen>| s.and_then(|s| s.page.as_ref()).map(|p| p.present).unwrap_or(false);
    match (before, after) {
        (_, Some(a)) if !present(before) && present(Some(a)) => Some(format!("{place}: now {}", describe_page(a))),
        (Some(b), a) if present(Some(b)) && !present(a) => {
            Some(format!("{place}: {} (was {})", a.map(describe_page).unwrap_or_else(|| "gone".into()), describe_page(b)))
        }
        (Some(b), Some(a)) if present(Some(b)) => {
            let (pb, pa) = (b.page.as_ref().and_then(|p| p.pfn), a.page.as_ref().and_then(|p| p.pfn));
            if pb != pa {
                return Some(format!("{place}: pfn {} → {}", pb.map(|p| format!("{p:#x}")).unwrap_or("-".into()), describe_page(a)));
            }
            let wb = b.page.as_ref().and_then(|p| p.writable);
            let wa = a.page.as_ref().and_then(|p| p.writable);
            match (wb, wa) {
                (Some(x), Some(y)) if x != y => {
                    Some(format!("{place}: pfn {}: writable {} → {}", pa.map(|p| format!("{p:#x}")).unwrap_or("-".into()), yes(x), yes(y)))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// The Δ lines of the pages the step's tasks mapped before it: each page
/// whose counters changed, once (a page shared by a thousand tasks has
/// one line, not one per task). A page the step's tasks no longer map is
/// looked up where another task still maps it at the same place; a page
/// no task maps any more has only its entry's line (`… (was …)`).
fn page_deltas(
    be: &mut dyn Backend,
    env: &Env,
    before: &BTreeMap<(String, String, u64), Seen>,
    after: &BTreeMap<(String, String, u64), Seen>,
) -> Vec<String> {
    let now: std::collections::HashMap<u64, &FolioObs> = after.values().filter_map(|s| Some((pfn_of(s)?, s.folio.as_ref()?))).collect();
    let mut done = std::collections::HashSet::new();
    let mut out = Vec::new();
    for ((name, _, off), s) in before {
        let (Some(pfn), Some(fb)) = (pfn_of(s), s.folio.as_ref()) else { continue };
        if !done.insert(pfn) {
            continue;
        }
        let found;
        let fa = match now.get(&pfn) {
            Some(f) => *f,
            None => {
                let Some(Val::Region { addr, .. }) = env.vals.get(name) else { continue };
                let a = addr.saturating_add(*off);
                let maps = |be: &mut dyn Backend, t: &TaskRt| {
                    be.page(t.id, a).ok().flatten().and_then(|p| p.pfn.filter(|_| p.present)) == Some(pfn)
                };
                let Some(t) = env.first_seer(name, |t| maps(be, t)) else { continue };
                found = be.folio(t.id, a).ok().flatten();
                match &found {
                    Some(f) => f,
                    None => continue,
                }
            }
        };
        let mut ch = Vec::new();
        for (n, x, y) in
            [("refcount", fb.refcount, fa.refcount), ("mapcount", fb.mapcount, fa.mapcount), ("pincount", fb.pincount, fa.pincount)]
        {
            if x != y {
                ch.push(format!("{n} {x} → {y}"));
            }
        }
        if fb.anon_exclusive != fa.anon_exclusive {
            ch.push(format!("anon_exclusive {} → {}", yes(fb.anon_exclusive), yes(fa.anon_exclusive)));
        }
        if !ch.is_empty() {
            out.push(format!("pfn {pfn:#x} ({}): {}", place_text(name, *off), ch.join(", ")));
        }
    }
    out
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn run_step(src: &Source, item: &Item, step: &Step, n: usize, checked: &Checked, be: &mut dyn Backend, env: &mut Env) -> StepReport {
    let tname: &str = &step.task.value;
    let mut sr = StepReport {
        step: n,
        line: item.line,
        task: tname.to_string(),
        text: src.snippet(item.span).to_string(),
        result: String::new(),
        kernel: Vec::new(),
        deltas: Vec::new(),
        checks: Vec::new(),
        state: None,
    };
    let expect = step.expect.as_ref();
    let exp_text = |e: &Spanned<StepExpect>| {
        let text = src.snippet(e.span);
        let mut s = String::with_capacity("expect ".len() + text.len());
        s.push_str("expect ");
        s.push_str(text);
        s
    };
    // Where the step's checks point; line and column are counted only
    // for a check (most steps have none).
    let at = expect.map_or(item.span, |e| e.span);

    let Some(task) = env.tasks.get(tname) else {
        sr.result = "not run".into();
        sr.checks.push(check_at(src, at, "run".into(), Status::Fail, Some(format!("task {tname} does not exist (its fork failed)"))));
        return sr;
    };
    if let Some(why) = &task.dead {
        sr.result = "not run".into();
        sr.checks.push(check_at(src, at, "run".into(), Status::Fail, Some(format!("task {tname} {why}"))));
        return sr;
    }
    let call = match build_call(step, env) {
        Ok(c) => c,
        Err(e) => {
            sr.result = "not run".into();
            sr.checks.push(check_at(src, at, "run".into(), Status::Fail, Some(e)));
            return sr;
        }
    };
    let narrate = be.narrates();
    let before = if narrate { observe(be, env, &touched(step, env, tname), &actors(step, tname)) } else { BTreeMap::new() };
    let res = match (&step.op, &call) {
        (Op::Mmap(MmapArgs { align: Some(al), .. }), Call::Mmap(m)) if !m.fixed => mmap_aligned(be, task.id, m, al.value),
        _ => be.call(task.id, &call),
    };
    env.last_log.clear();
    for t in be.take_trace() {
        let who = t.task.and_then(|id| env.names_of.get(&id).cloned()).map(|n| format!("{n}: ")).unwrap_or_default();
        if t.log {
            sr.kernel.push(format!("{who}kernel log: {}", t.text));
            env.last_log.push(t.text);
        } else {
            sr.kernel.push(format!("{who}{}", t.text));
        }
    }
    sr.kernel = compress_trace(std::mem::take(&mut sr.kernel));
    // Bind results.
    match &res {
        Ok(ret) => {
            sr.result = apply(step, ret, &call, env, tname);
            if let (true, Ret::Data(c)) = (checked.kept_reads.contains(&n), ret) {
                env.kept_reads.insert(n, c.clone());
            }
        }
        Err(f) => {
            sr.result = f.to_string();
            let death = match f {
                Failure::Signal(s) => Some(format!("was killed by {s} at step {n}")),
                Failure::Livelock => Some(format!("livelocked at step {n}")),
                _ => None,
            };
            if let (Some(why), Some(t)) = (death, env.tasks.get_mut(tname)) {
                t.dead = Some(why);
            }
        }
    }
    let after = if narrate { observe(be, env, &touched(step, env, tname), &actors(step, tname)) } else { BTreeMap::new() };
    for (k, b, a) in merge_join(&before, &after) {
        if let Some(d) = entry_delta(&k.0, &k.1, k.2, b, a) {
            sr.deltas.push(d);
        }
    }
    sr.deltas.extend(page_deltas(be, env, &before, &after));
    // Judge the outcome.
    // What the step returned, for the checks' details (a failure's text
    // is already the step's result).
    let got: &str = match &res {
        Ok(_) => "ok",
        Err(_) => &sr.result,
    };
    match expect.map(|e| (&e.value, e)) {
        None => {
            if res.is_err() {
                sr.checks.push(check_at(
                    src,
                    at,
                    "ok (every step without `expect` must succeed)".into(),
                    Status::Fail,
                    Some(format!("got {got}")),
                ));
            }
        }
        Some((StepExpect::Any, _)) => {}
        Some((x @ (StepExpect::Outcome(_) | StepExpect::Count(_) | StepExpect::OneOf(_)), e)) => {
            let pass = outcome_matches(x, &res);
            sr.checks.push(check_at(
                src,
                at,
                exp_text(e),
                if pass { Status::Pass } else { Status::Fail },
                if pass { None } else { Some(format!("got {got}")) },
            ));
        }
        Some((StepExpect::Data(d), e)) => {
            let (status, detail) = match &res {
                Ok(Ret::Data(c)) => judge_data(d, c),
                Ok(other) => (Status::Fail, Some(format!("the read returned {other:?}, not data"))),
                Err(_) => (Status::Fail, Some(format!("got {got}"))),
            };
            sr.checks.push(check_at(src, at, exp_text(e), status, detail));
        }
        Some((StepExpect::SameAs(k), e)) => {
            let (status, detail) = match (&res, env.kept_reads.get(&k.value)) {
                (Ok(Ret::Data(c)), Some(then)) => match then.first_difference_from(c) {
                    None => (Status::Pass, None),
                    Some(off) => {
                        (Status::Fail, Some(format!("step {} read {}, now {} (first difference at offset {off})", k.value, then, c)))
                    }
                },
                (Ok(Ret::Data(_)), None) => (Status::Fail, Some(format!("the read at step {} returned no data", k.value))),
                (Ok(other), _) => (Status::Fail, Some(format!("the read returned {other:?}, not data"))),
                (Err(_), _) => (Status::Fail, Some(format!("got {got}"))),
            };
            sr.checks.push(check_at(src, at, exp_text(e), status, detail));
        }
    }
    if let Err(e) = be.self_check() {
        sr.checks.push(Check { line: item.line, column: 1, text: "model invariants".into(), status: Status::Fail, detail: Some(e) });
    }
    sr
}

/// Every key of two maps once, in order, with its value in each: a merge
/// of the two sorted key sequences (no keys copied or sorted again).
fn merge_join<'a, K: Ord, V>(x: &'a BTreeMap<K, V>, y: &'a BTreeMap<K, V>) -> Vec<(&'a K, Option<&'a V>, Option<&'a V>)> {
    use std::cmp::Ordering;
    let (mut xi, mut yi) = (x.iter().peekable(), y.iter().peekable());
    let mut out = Vec::with_capacity(x.len().max(y.len()));
    loop {
        let order = match (xi.peek(), yi.peek()) {
            (None, None) => return out,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((a, _)), Some((b, _))) => a.cmp(b),
        };
        out.push(
            match order {
                Ordering::Less => xi.next().map(|(k, v)| (k, Some(v), None)),
                Ordering::Greater => yi.next().map(|(k, v)| (k, None, Some(v))),
                Ordering::Equal => xi.next().zip(yi.next()).map(|((k, v), (_, w))| (k, Some(v), Some(w))),
            }
            .expect("peeked"),
        );
    }
}

/// Whether a call's result is the outcome `e` allows (`Outcome`,
/// `count N`, `one of …`).
fn outcome_matches(e: &StepExpect, res: &Result<Ret, Failure>) -> bool {
    match (e, res) {
        (StepExpect::Outcome(Outcome::Ok), Ok(_)) => true,
        (StepExpect::Outcome(Outcome::Signal(s)), Err(Failure::Signal(g))) => s == g,
        (StepExpect::Outcome(Outcome::Errno(s)), Err(Failure::Errno(g))) => s == g,
        (StepExpect::Outcome(Outcome::Livelock), Err(Failure::Livelock)) => true,
        (StepExpect::Count(n), Ok(Ret::Count(g))) => n == g,
        (StepExpect::OneOf(alts), r) => alts.iter().any(|a| outcome_matches(a, r)),
        _ => false,
    }
}

/// Splits `text` around its first `@0x…` address.
fn split_addr(text: &str) -> Option<(&str, &str, &str)> {
    let at = text.find("@0x")?;
    let rest = &text[at + 1..];
    let end = rest[2..].find(|c: char| !c.is_ascii_hexdigit()).map(|e| e + 2).unwrap_or(rest.len());
    Some((&text[..at], &rest[..end], &rest[end..]))
}

/// Folds runs of the same decision at consecutive addresses (fork copying
/// 512 pages of a split THP) into one line with the address range and a
/// count, so the trace stays readable.
fn compress_trace(lines: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some((pre, first, post)) = split_addr(&lines[i]) else {
            out.push(lines[i].clone());
            i += 1;
            continue;
        };
        let mut j = i + 1;
        let mut last = first;
        while j < lines.len() {
            match split_addr(&lines[j]) {
                Some((p2, a2, q2)) if p2 == pre && q2 == post => {
                    last = a2;
                    j += 1;
                }
                _ => break,
            }
        }
        if j - i > 2 {
            out.push(format!("{pre}@{first}…{last}{post} (×{})", j - i));
        } else {
            out.extend(lines[i..j].iter().cloned());
        }
        i = j;
    }
    out
}

/// Compares read data with `fill`/`bytes`.
fn judge_data(d: &DataSpec, c: &Contents) -> (Status, Option<String>) {
    match d {
        DataSpec::Fill(b) => match c.first_not(*b) {
            None if !c.is_empty() => (Status::Pass, None),
            None => (Status::Fail, Some("the read returned no data".into())),
            Some(off) => (
                Status::Fail,
                Some(format!("got {} (first byte that is not 0x{b:02x}: offset {off}, 0x{:02x})", c, c.byte_at(off).unwrap_or(0))),
            ),
        },
        DataSpec::Bytes(v) => {
            // Canonical form: equal bytes are equal values.
            if *c == Contents::from_bytes(v) {
                (Status::Pass, None)
            } else {
                (Status::Fail, Some(format!("got {c}")))
            }
        }
    }
}

/// Records what a successful call produced; returns the result text.
fn apply(step: &Step, ret: &Ret, call: &Call, env: &mut Env, task: &str) -> String {
    let define = |env: &mut Env, v: Val| {
        if let Some(b) = &step.bind {
            env.vals.insert(b.value.clone(), v);
            let seq = env.defined_by.len();
            // A task that runs a step has a node (it was spawned or forked).
            let owner = env.lineage.node(task).unwrap_or(usize::MAX);
            env.defined_by.insert(b.value.clone(), (owner, seq));
        }
    };
    match (&step.op, ret) {
        (Op::Mmap(m), Ret::Addr(a)) => {
            let len = match m.hugetlb.as_ref() {
                Some(h) if h.value > 0 => m.len.value.div_ceil(h.value).saturating_mul(h.value),
                _ => m.len.value.div_ceil(PAGE).saturating_mul(PAGE),
            };
            define(env, Val::Region { addr: *a, len });
            format!("ok, {a:#x}")
        }
        (Op::Mremap { new_len, .. }, Ret::Addr(a)) => {
            define(env, Val::Region { addr: *a, len: new_len.value });
            format!("ok, {a:#x}")
        }
        (Op::Pipe, Ret::Pipe { read, write }) => {
            define(env, Val::Pipe { read: *read, write: *write });
            "ok".into()
        }
        (Op::Memfd(s, ..) | Op::Tmpfile(s, ..), Ret::Fd(fd)) => {
            define(env, Val::File { fd: *fd, size: s.value });
            "ok".into()
        }
        (Op::Shmget { size, hugetlb }, Ret::Shm(id)) => {
            let unit = hugetlb.as_ref().map_or(PAGE, |h| h.value.max(1));
            define(env, Val::Shm { id: *id, len: size.value.div_ceil(unit).saturating_mul(unit) });
            format!("ok, shmid {id}")
        }
        (Op::Shmat(seg), Ret::Addr(a)) => {
            let len = match env.vals.get(&seg.value) {
                Some(Val::Shm { len, .. }) => *len,
                _ => 0,
            };
            define(env, Val::Region { addr: *a, len });
            format!("ok, {a:#x}")
        }
        (Op::IoUring, Ret::Fd(fd)) => {
            define(env, Val::Ring { fd: *fd });
            "ok".into()
        }
        (Op::IoUringRegister { ring, .. }, _) => {
            if let Call::IoUringRegister { bufs, .. } = call {
                env.ring_bufs.insert(ring.value.clone(), bufs.clone());
            }
            "ok".into()
        }
        (Op::IoUringUnregister(ring), _) => {
            env.ring_bufs.remove(&ring.value);
            "ok".into()
        }
        (Op::Gup { range, .. }, Ret::Pin(p)) => {
            let len = match call {
                Call::Gup { nr_pages, .. } => nr_pages * PAGE,
                _ => 0,
            };
            define(env, Val::Pin { pin: *p, len, region: range.name.value.clone(), off: range.off() });
            "ok".into()
        }
        (Op::Fork(child), Ret::Task(id)) => {
            env.names_of.insert(*id, child.value.clone());
            env.tasks.insert(child.value.clone(), TaskRt { id: *id, dead: None });
            env.lineage.add(&child.value, Some((task, env.defined_by.len())));
            format!("ok, child {}", child.value)
        }
        (Op::Exit(_), _) => {
            if let Some(t) = env.tasks.get_mut(task) {
                t.dead = Some("exited".into());
            }
            "ok".into()
        }
        (Op::Mmget(_), Ret::Hold(h)) => {
            define(env, Val::Hold(*h));
            "ok".into()
        }
        (_, Ret::Data(c)) => format!("ok, {c}"),
        (_, Ret::Count(n)) => format!("ok, {n} bytes"),
        _ => "ok".into(),
    }
}

fn check_at(src: &Source, span: Span, text: String, status: Status, detail: Option<String>) -> Check {
    let (line, column) = src.line_col(span.start);
    Check { line, column, text, status, detail }
}

/// A place's name for details and snapshots: the place itself, or for a
/// page `a` of a range starting at `base`, that page.
fn place_name(l: &Loc, base: u64, a: u64) -> String {
    if l.end.is_none() {
        l.to_string()
    } else {
        match l.off() + (a - base) {
            0 => format!("{} in {}", l.name.value, l.task.value),
            off => format!("{}+{} in {}", l.name.value, fmt_size(off), l.task.value),
        }
    }
}

/// The addresses a place stands for: one, or every page of a range.
fn place_addrs(env: &Env, l: &Loc) -> Option<(TaskId, Vec<u64>)> {
    let (t, a) = place(env, l)?;
    match &l.end {
        None => Some((t, vec![a])),
        Some(e) => {
            let end = a.saturating_add(e.value.saturating_sub(l.off()));
            Some((t, (a..end).step_by(PAGE as usize).collect()))
        }
    }
}

/// The value of a page predicate, or why the backend cannot tell.
fn page_pred(pred: PagePred, p: Option<&PageObs>) -> Result<bool, &'static str> {
    let Some(p) = p else {
        return Ok(false);
    };
    let known = |v: Option<bool>, what| v.ok_or(what);
    Ok(match pred {
        PagePred::Mapped => true,
        PagePred::Present => p.present,
        PagePred::Swapped => p.swapped,
        PagePred::ZeroPage => p.present && p.zero_page,
        PagePred::Thp => p.present && p.thp,
        PagePred::Hugetlb => p.present && p.hugetlb,
        PagePred::Exclusive => p.present && p.exclusive,
        PagePred::SoftDirty => p.soft_dirty,
        _ if !p.present => false,
        PagePred::AnonExclusive => known(p.anon_exclusive, "PageAnonExclusive of this page")?,
        PagePred::Writable => known(p.writable, "the PTE write bit")?,
        PagePred::Anon => known(p.anon, "whether the page is anonymous")?,
        PagePred::Pagecache => !p.zero_page && !known(p.anon, "whether the page is anonymous")?,
        PagePred::PmdMapped => known(p.pmd_mapped, "PMD- or PTE-mapped")?,
        PagePred::PteMapped => !known(p.pmd_mapped, "PMD- or PTE-mapped")?,
    })
}

/// Judges a standalone expectation.
fn expectation(src: &Source, item: &Item, e: &Expectation, be: &mut dyn Backend, env: &Env) -> Check {
    let text = src.snippet(item.span).to_string();
    let mk = |status, detail| check_at(src, item.span, text.clone(), status, detail);
    let bname = be.name().to_string();
    let skip = |f: Feature, why: String| mk(Status::Skip, Some(format!("skipped: the {bname} backend cannot observe {f}: {why}")));
    let unseen = |what: &str, at: String| mk(Status::Skip, Some(format!("skipped: the {bname} backend cannot see {what} at {at}")));
    // The task and addresses of a place, or why not.
    let places = |l: &Loc| -> Result<(TaskId, Vec<u64>), String> {
        let t = env.tasks.get(&l.task.value).ok_or_else(|| format!("task {} does not exist", l.task.value))?;
        if let Some(why) = &t.dead {
            return Err(format!("task {} {why}", l.task.value));
        }
        place_addrs(env, l).ok_or_else(|| format!("`{}` was never created", l.name.value))
    };
    let at = place_name;
    let show = |p: Option<u64>| p.map(|p| format!("pfn {p:#x}")).unwrap_or("no page".into());
    match e {
        Expectation::SamePage { a, b, same } => {
            if let Some(why) = be.lacks(Feature::PageFrames) {
                return skip(Feature::PageFrames, why);
            }
            let ((ta, aa), (tb, ab)) = match (places(a), places(b)) {
                (Ok(x), Ok(y)) => (x, y),
                (Err(x), _) | (_, Err(x)) => return mk(Status::Fail, Some(x)),
            };
            let mut first = None;
            for (k, &x) in aa.iter().enumerate() {
                // A single place on the right pairs with each page of a
                // range on the left, page by page from its start.
                let y = ab.get(k).copied().filter(|_| ab.len() > 1).unwrap_or(ab[0] + (x - aa[0]));
                let fa = match be.page(ta, x) {
                    Ok(p) => p.and_then(|p| p.pfn),
                    Err(m) => return mk(Status::Fail, Some(m)),
                };
                let fb = match be.page(tb, y) {
                    Ok(p) => p.and_then(|p| p.pfn),
                    Err(m) => return mk(Status::Fail, Some(m)),
                };
                let pass = matches!((fa, fb), (Some(p), Some(q)) if (p == q) == *same);
                let detail = || format!("{}: {}, {}: {}", at(a, aa[0], x), show(fa), at(b, ab[0], y), show(fb));
                if !pass {
                    return mk(Status::Fail, Some(detail()));
                }
                if first.is_none() {
                    first = Some(detail());
                }
            }
            mk(Status::Pass, range_detail(aa.len(), first))
        }
        Expectation::Since { loc, step, changed } => {
            if let Some(why) = be.lacks(Feature::PageFrames) {
                return skip(Feature::PageFrames, why);
            }
            let (t, addrs) = match places(loc) {
                Ok(x) => x,
                Err(m) => return mk(Status::Fail, Some(m)),
            };
            let mut first = None;
            for &a in &addrs {
                let key = at(loc, addrs[0], a);
                let then = env.snaps.get(&(step.value, key.clone())).copied().flatten();
                let now = match be.page(t, a) {
                    Ok(p) => p.and_then(|p| p.pfn),
                    Err(m) => return mk(Status::Fail, Some(m)),
                };
                let detail = || format!("{key}: after step {}: {}, now: {}", step.value, show(then), show(now));
                if (then != now) != *changed {
                    return mk(Status::Fail, Some(detail()));
                }
                if first.is_none() {
                    first = Some(detail());
                }
            }
            mk(Status::Pass, range_detail(addrs.len(), first))
        }
        Expectation::Page { loc, pred, holds } => {
            let feature = match pred.value {
                PagePred::AnonExclusive => Feature::AnonExclusive,
                PagePred::Writable => Feature::PteWritable,
                _ => Feature::PageFrames,
            };
            if let Some(why) = be.lacks(feature) {
                return skip(feature, why);
            }
            let (t, addrs) = match places(loc) {
                Ok(x) => x,
                Err(m) => return mk(Status::Fail, Some(m)),
            };
            let mut first = None;
            for &a in &addrs {
                let p = match be.page(t, a) {
                    Ok(p) => p,
                    Err(m) => return mk(Status::Fail, Some(m)),
                };
                let v = match page_pred(pred.value, p.as_ref()) {
                    Ok(v) => v,
                    Err(what) => return unseen(what, at(loc, addrs[0], a)),
                };
                let seen = Seen { page: p, folio: None };
                let detail =
                    || if addrs.len() > 1 { format!("{}: {}", at(loc, addrs[0], a), describe_page(&seen)) } else { describe_page(&seen) };
                if v != *holds {
                    return mk(Status::Fail, Some(detail()));
                }
                if first.is_none() {
                    first = Some(detail());
                }
            }
            mk(Status::Pass, range_detail(addrs.len(), first))
        }
        Expectation::Counter { loc, counter, cmp, value } => {
            let (t, addrs) = match places(loc) {
                Ok(x) => x,
                Err(m) => return mk(Status::Fail, Some(m)),
            };
            let mut first = None;
            for &a in &addrs {
                let where_ = at(loc, addrs[0], a);
                let mut small_pin = None;
                // Mapcounts come with the page where the backend sees them
                // (live: /proc/kpagecount); refcount and pincount need the
                // folio's counters.
                let page = match counter.value {
                    Counter::Mapcount | Counter::PageMapcount => match be.page(t, a) {
                        Ok(p) => p,
                        Err(m) => return mk(Status::Fail, Some(m)),
                    },
                    _ => None,
                };
                let from_page = match counter.value {
                    Counter::Mapcount => page.as_ref().and_then(|p| p.mapcount),
                    Counter::PageMapcount => page.as_ref().and_then(|p| p.page_mapcount),
                    _ => None,
                };
                let v = match from_page {
                    Some(v) => v,
                    None if counter.value == Counter::PageMapcount => {
                        if page.as_ref().is_some_and(|p| p.present) {
                            return unseen("this page's mapcount", where_);
                        }
                        return mk(Status::Fail, Some(format!("no page is mapped at {where_}")));
                    }
                    None => {
                        if let Some(why) = be.lacks(Feature::FolioCounters) {
                            if counter.value == Counter::Mapcount && page.as_ref().is_some_and(|p| p.present) {
                                return unseen("the mapcount of this large folio (kpagecount is per page)", where_);
                            }
                            return skip(Feature::FolioCounters, why);
                        }
                        match be.folio(t, a) {
                            Ok(Some(f)) => match counter.value {
                                Counter::Refcount => f.refcount,
                                Counter::Pincount => {
                                    if f.order == 0 {
                                        small_pin = Some(f.refcount);
                                    }
                                    f.pincount
                                }
                                _ => f.mapcount,
                            },
                            Ok(None) => return mk(Status::Fail, Some(format!("no folio is mapped at {where_}"))),
                            Err(x) => return mk(Status::Fail, Some(x)),
                        }
                    }
                };
                let mut detail =
                    if addrs.len() > 1 { format!("{where_}: {} is {v}", counter.value) } else { format!("{} is {v}", counter.value) };
                if let Some(rc) = small_pin {
                    // include/linux/mm.h: a small folio has no pincount
                    // field; folio_maybe_dma_pinned() reads the refcount.
                    detail.push_str(&format!(
                        " (a small folio has no pincount: each FOLL_PIN adds GUP_PIN_COUNTING_BIAS = 1024 to its refcount, \
                         which is {rc}; pinned at most {} time(s))",
                        rc / 1024
                    ));
                }
                if !cmp.holds(v, *value) {
                    return mk(Status::Fail, Some(detail));
                }
                first.get_or_insert(detail);
            }
            mk(Status::Pass, range_detail(addrs.len(), first))
        }
        Expectation::Pool { size, field, cmp, value } => {
            if let Some(why) = be.lacks(Feature::HugetlbPool) {
                return skip(Feature::HugetlbPool, why);
            }
            match be.pool(size.value) {
                Ok(p) => {
                    let v = match field {
                        PoolField::Total => p.total,
                        PoolField::Free => p.free,
                        PoolField::Resv => p.resv,
                        PoolField::Surp => p.surp,
                    };
                    mk(
                        if cmp.holds(v, *value) { Status::Pass } else { Status::Fail },
                        Some(format!("total {} free {} resv {} surp {}", p.total, p.free, p.resv, p.surp)),
                    )
                }
                Err(x) => mk(Status::Fail, Some(x)),
            }
        }
        Expectation::Task { task, state } => {
            let Some(t) = env.tasks.get(&task.value) else {
                return mk(Status::Fail, Some(format!("task {} was never created", task.value)));
            };
            match be.task_state(t.id) {
                Ok(s) => {
                    let now = match &s {
                        TaskObs::Running => "running".to_string(),
                        TaskObs::Exited(Some(c)) => format!("exited {c}"),
                        TaskObs::Exited(None) => "exited".to_string(),
                        TaskObs::Killed(s) => format!("killed by {s}"),
                    };
                    let pass = match (state, &s) {
                        (TaskStateExp::Running, TaskObs::Running) => true,
                        (TaskStateExp::Exited(None), TaskObs::Exited(_)) => true,
                        (TaskStateExp::Exited(Some(want)), TaskObs::Exited(Some(got))) => want == got,
                        (TaskStateExp::Exited(Some(_)), TaskObs::Exited(None)) => {
                            return mk(Status::Skip, Some(format!("skipped: the {bname} backend cannot read the exit status")))
                        }
                        (TaskStateExp::Killed(x), TaskObs::Killed(y)) => x == y,
                        _ => false,
                    };
                    mk(if pass { Status::Pass } else { Status::Fail }, Some(now))
                }
                Err(x) => mk(Status::Fail, Some(x)),
            }
        }
        Expectation::Log { text: want, present } => {
            if let Some(why) = be.lacks(Feature::KernelLog) {
                return skip(Feature::KernelLog, why);
            }
            let hit = env.last_log.iter().find(|l| want.as_ref().is_none_or(|w| l.contains(w.value.as_str())));
            let detail = match (hit, env.last_log.len()) {
                (Some(l), _) => format!("logged: {l}"),
                (None, 0) => "the step logged nothing".to_string(),
                (None, n) => format!("the step logged {n} other line(s): {}", env.last_log.join(" | ")),
            };
            mk(if hit.is_some() == *present { Status::Pass } else { Status::Fail }, Some(detail))
        }
    }
}

/// The detail of a held expectation over `n` places: the first place's,
/// and how many more held.
fn range_detail(n: usize, first: Option<String>) -> Option<String> {
    match (n, first) {
        (0, _) => Some("an empty range".into()),
        (1, f) => f,
        (n, Some(f)) => Some(format!("{f}; and {} more page(s) alike", n - 1)),
        (_, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_decisions_fold_into_one_line() {
        let mut lines: Vec<String> = (0..512u64).map(|k| format!("P: copy_present_page @{:#x}: copy", 0x1000 + k * 0x1000)).collect();
        lines.push("P: other".into());
        let out = compress_trace(lines);
        assert_eq!(out, vec!["P: copy_present_page @0x1000…0x200000: copy (×512)".to_string(), "P: other".to_string()]);
        let two = vec!["a @0x1: x".to_string(), "a @0x2: x".to_string()];
        assert_eq!(compress_trace(two.clone()), two);
    }
}
