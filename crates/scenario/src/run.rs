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
use std::collections::{BTreeMap, BTreeSet};

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
}

#[derive(Clone, Debug)]
enum Val {
    Region { addr: u64, len: u64 },
    Pipe { read: Fd, write: Fd },
    File { fd: Fd, size: u64 },
    Ring { fd: Fd },
    Pin { pin: PinId, len: u64, region: String, off: u64 },
    Hold(u64),
}

#[derive(Clone, Debug)]
struct TaskRt {
    id: TaskId,
    dead: Option<String>,
    names: BTreeSet<String>,
}

/// What the runner knows at run time.
#[derive(Default)]
struct Env {
    tasks: BTreeMap<String, TaskRt>,
    vals: BTreeMap<String, Val>,
    names_of: BTreeMap<TaskId, String>,
    /// Registered fixed buffers per ring name.
    ring_bufs: BTreeMap<String, Vec<(u64, u64)>>,
    /// `changed since step N`: (step, place) → pfn then.
    snaps: BTreeMap<(usize, String), Option<u64>>,
    /// `expect same as step N`: what the read at step N returned.
    kept_reads: BTreeMap<usize, Contents>,
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
    let file_profile = sc.items.iter().find_map(|i| match &i.kind {
        ItemKind::Profile(p) => Some(p.clone()),
        _ => None,
    });
    let profile = opts.profile.clone().or(file_profile.as_ref().map(|p| p.value.clone())).unwrap_or_else(|| DEFAULT_PROFILE.to_string());
    // Knobs: the file's, then the command line's; remember where each came
    // from so an error can point at it.
    let mut knobs: Vec<(String, String)> = Vec::new();
    let mut knob_spans: Vec<Option<Span>> = Vec::new();
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
        profile: profile.clone(),
        knobs: knobs.iter().map(|(k, v)| KnobSetting { knob: k.clone(), value: v.clone() }).collect(),
        status: Status::Pass,
        skip_reason: None,
        entries: Vec::new(),
        summary: Summary::default(),
        task_names: BTreeMap::new(),
    };

    // Operations the backend cannot perform make the whole scenario moot.
    let mut needs: Vec<(usize, Feature)> = checked.needs.clone();
    if !knobs.is_empty() {
        needs.insert(0, (usize::MAX, Feature::Knobs));
    }
    for (idx, f) in needs {
        if let Some(why) = be.lacks(f) {
            let what = match sc.items.get(idx) {
                Some(it) => format!("line {}: `{}`", it.line, src.snippet(it.span)),
                None => "policy knobs".to_string(),
            };
            report.status = Status::Skip;
            report.skip_reason = Some(format!("needs {f} ({what}), which the {} backend cannot do: {why}", be.name()));
            return Ok(report);
        }
    }

    if let Err(e) = be.configure(&profile, &knobs) {
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
                if span.is_none() {
                    d.note("given with --set")
                } else {
                    d
                }
            }
        };
        return Err(vec![d]);
    }

    let mut env = Env::default();
    for (idx, item) in sc.items.iter().enumerate() {
        let text = src.snippet(item.span).to_string();
        match &item.kind {
            ItemKind::Profile(_) | ItemKind::Set { .. } => {}
            ItemKind::Thp { size, mode } => {
                let r = be.set(&Setting::Thp { size: size.value, mode: *mode });
                setting(&mut report, item, text, r);
            }
            ItemKind::ThpZeroPage(on) => {
                let r = be.set(&Setting::ThpUseZeroPage(*on));
                setting(&mut report, item, text, r);
            }
            ItemKind::Hugetlb { size, pages, overcommit } => {
                let r = be.set(&Setting::HugetlbPool { size: size.value, pages: *pages, overcommit: *overcommit });
                setting(&mut report, item, text, r);
            }
            ItemKind::Task(name) => match be.spawn() {
                Ok(id) => {
                    env.names_of.insert(id, name.value.clone());
                    env.tasks.insert(name.value.clone(), TaskRt { id, dead: None, names: BTreeSet::new() });
                    report.entries.push(Entry::Task { line: item.line, text, task: name.value.clone() });
                }
                Err(e) => {
                    report.status = Status::Skip;
                    report.skip_reason = Some(format!("cannot start task {}: {e}", name.value));
                    return Ok(report);
                }
            },
            ItemKind::Step(step) => {
                let n = checked.step_of_item.get(idx).copied().flatten().unwrap_or(0);
                let mut sr = run_step(src, item, step, n, checked, be, &mut env);
                sr.state = be.state_view();
                report.entries.push(Entry::Step(sr));
                if let Some(locs) = checked.snapshots.get(&n) {
                    for l in locs {
                        let pfn = place(&env, l).and_then(|(t, a)| be.page(t, a).ok().flatten()).and_then(|p| p.pfn);
                        env.snaps.insert((n, l.to_string()), pfn);
                    }
                }
            }
            ItemKind::Expect(e) => {
                let c = expectation(src, item, e, be, &env);
                report.entries.push(Entry::Expect(c));
            }
        }
    }
    report.task_names = env.names_of.iter().map(|(id, n)| (id.0, n.clone())).collect();
    report.finish();
    Ok(report)
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
fn mmap_aligned(be: &mut dyn Backend, task: TaskId, m: &MmapCall, align: u64) -> Result<Ret, Failure> {
    let wide = MmapCall { len: m.len + align, ..m.clone() };
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
        Op::Mremap { old, new_len, to } => {
            let (old_addr, old_len) = region(env, old)?;
            Call::Mremap {
                old_addr,
                old_len,
                new_len: new_len.value,
                new_addr: match to {
                    Some(a) => Some(resolve_addr(env, a)?),
                    None => None,
                },
            }
        }
        Op::Fork(_) => Call::Fork,
        Op::Exit => Call::Exit,
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
        Op::Memfd(s, h) => Call::Memfd { size: s.value, hugetlb: h.as_ref().map(|h| h.value) },
        Op::Tmpfile(s, local) => Call::Tmpfile { size: s.value, local: *local },
        Op::IoUring => Call::IoUringSetup,
        Op::IoUringRegister { ring, bufs } => {
            Call::IoUringRegister { ring: fd_of(ring)?, bufs: bufs.iter().map(|b| region(env, b)).collect::<Result<Vec<_>, _>>()? }
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
        Op::Mmget(t) => match env.tasks.get(&t.value) {
            Some(rt) => Call::Mmget { task: rt.id },
            None => return Err(format!("task `{}` was never created (an earlier step failed)", t.value)),
        },
        Op::Mmput(h) => match env.vals.get(&h.value) {
            Some(Val::Hold(hold)) => Call::Mmput { hold: *hold },
            _ => return Err(format!("`{}` was never taken (an earlier step failed)", h.value)),
        },
    })
}

/// Region names (and offsets) an operation touches, for the delta lines.
fn touched(step: &Step, env: &Env, task: &str) -> Vec<(String, u64)> {
    let one = |r: &Range| vec![(r.name.value.clone(), r.off())];
    let all_regions = || -> Vec<(String, u64)> {
        env.tasks
            .get(task)
            .map(|t| {
                t.names.iter().filter(|n| matches!(env.vals.get(*n), Some(Val::Region { .. }))).take(8).map(|n| (n.clone(), 0)).collect()
            })
            .unwrap_or_default()
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
        Op::Write(r, _) | Op::Read(r) => match env.vals.get(&r.name.value) {
            Some(Val::Region { .. }) => one(r),
            Some(Val::Pin { region, off, .. }) => vec![(region.clone(), off + r.off())],
            _ => vec![],
        },
        Op::Vmsplice { range, .. } | Op::Gup { range, .. } => one(range),
        Op::IoUringRegister { bufs, .. } => bufs.iter().flat_map(one).collect(),
        Op::IoUringFixed { buf, .. } => one(buf),
        Op::Unpin(h) => match env.vals.get(&h.value) {
            Some(Val::Pin { region, off, .. }) => vec![(region.clone(), *off)],
            _ => vec![],
        },
        Op::Fork(_) | Op::Exit | Op::ClearSoftDirty => all_regions(),
        _ => vec![],
    }
}

/// Observes `name+off` in every live task that has the name.
fn observe(be: &mut dyn Backend, env: &Env, places: &[(String, u64)]) -> BTreeMap<(String, String, u64), Seen> {
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
        for (tname, t) in &env.tasks {
            if t.dead.is_some() || !t.names.contains(name) {
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

fn describe_page(s: &Seen) -> String {
    let Some(p) = &s.page else {
        return "not mapped".into();
    };
    if !p.present {
        return if p.swapped { "swapped out".into() } else { "not present".into() };
    }
    let mut parts = vec![match p.pfn {
        Some(pfn) => format!("pfn {pfn:#x}"),
        None => "present".into(),
    }];
    if p.zero_page {
        parts.push("zero page".into());
    }
    if let Some(f) = &s.folio {
        parts.push(format!("refcount {}", f.refcount));
        parts.push(format!("mapcount {}", f.mapcount));
        if f.pincount != 0 {
            parts.push(format!("pincount {}", f.pincount));
        }
        if f.order > 0 {
            parts.push(format!("order {}", f.order));
        }
        if f.anon_exclusive {
            parts.push("anon_exclusive".into());
        }
    }
    if p.writable == Some(true) {
        parts.push("writable".into());
    }
    parts.join(", ")
}

fn delta(name: &str, task: &str, off: u64, before: Option<&Seen>, after: Option<&Seen>) -> Option<String> {
    let place = if off == 0 { format!("{name} in {task}") } else { format!("{name}+{} in {task}", fmt_size(off)) };
    let present = |s: Option<&Seen>| s.and_then(|s| s.page.as_ref()).map(|p| p.present).unwrap_or(false);
    match (before, after) {
        (b, a) if b == a => None,
        (_, Some(a)) if !present(before) && present(Some(a)) => Some(format!("{place}: now {}", describe_page(a))),
        (Some(b), a) if present(Some(b)) && !present(a) => {
            Some(format!("{place}: {} (was {})", a.map(describe_page).unwrap_or_else(|| "gone".into()), describe_page(b)))
        }
        (Some(b), Some(a)) => {
            let pb = b.page.as_ref().and_then(|p| p.pfn);
            let pa = a.page.as_ref().and_then(|p| p.pfn);
            if pb != pa {
                return Some(format!("{place}: pfn {} → {}", pb.map(|p| format!("{p:#x}")).unwrap_or("-".into()), describe_page(a)));
            }
            let mut ch = Vec::new();
            if let (Some(fb), Some(fa)) = (&b.folio, &a.folio) {
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
            }
            let wb = b.page.as_ref().and_then(|p| p.writable);
            let wa = a.page.as_ref().and_then(|p| p.writable);
            if let (Some(x), Some(y)) = (wb, wa) {
                if x != y {
                    ch.push(format!("writable {} → {}", yes(x), yes(y)));
                }
            }
            if ch.is_empty() {
                None
            } else {
                Some(format!("{place}: pfn {}: {}", pa.map(|p| format!("{p:#x}")).unwrap_or("-".into()), ch.join(", ")))
            }
        }
        _ => None,
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn run_step(src: &Source, item: &Item, step: &Step, n: usize, checked: &Checked, be: &mut dyn Backend, env: &mut Env) -> StepReport {
    let tname = step.task.value.clone();
    let mut sr = StepReport {
        step: n,
        line: item.line,
        task: tname.clone(),
        text: src.snippet(item.span).to_string(),
        result: String::new(),
        kernel: Vec::new(),
        deltas: Vec::new(),
        checks: Vec::new(),
        state: None,
    };
    let expect = step.expect.as_ref();
    let exp_text = |e: &Spanned<StepExpect>| format!("expect {}", src.snippet(e.span));
    let (line, col) = src.line_col(expect.map(|e| e.span.start).unwrap_or(item.span.start));

    let Some(task) = env.tasks.get(&tname).cloned() else {
        sr.result = "not run".into();
        sr.checks.push(Check {
            line,
            column: col,
            text: "run".into(),
            status: Status::Fail,
            detail: Some(format!("task {tname} does not exist (its fork failed)")),
        });
        return sr;
    };
    if let Some(why) = &task.dead {
        sr.result = "not run".into();
        sr.checks.push(Check { line, column: col, text: "run".into(), status: Status::Fail, detail: Some(format!("task {tname} {why}")) });
        return sr;
    }
    let call = match build_call(step, env) {
        Ok(c) => c,
        Err(e) => {
            sr.result = "not run".into();
            sr.checks.push(Check { line, column: col, text: "run".into(), status: Status::Fail, detail: Some(e) });
            return sr;
        }
    };
    let places = touched(step, env, &tname);
    let before = observe(be, env, &places);
    let res = match (&step.op, &call) {
        (Op::Mmap(MmapArgs { align: Some(al), .. }), Call::Mmap(m)) if !m.fixed => mmap_aligned(be, task.id, m, al.value),
        _ => be.call(task.id, &call),
    };
    for t in be.take_trace() {
        let who = t.task.and_then(|id| env.names_of.get(&id).cloned()).map(|n| format!("{n}: ")).unwrap_or_default();
        sr.kernel.push(format!("{who}{}", t.text));
    }
    sr.kernel = compress_trace(std::mem::take(&mut sr.kernel));
    // Bind results.
    match &res {
        Ok(ret) => {
            sr.result = apply(step, ret, &call, env, &tname);
            if let (true, Ret::Data(c)) = (checked.kept_reads.contains(&n), ret) {
                env.kept_reads.insert(n, c.clone());
            }
        }
        Err(f) => {
            sr.result = f.to_string();
            if let Failure::Signal(s) = f {
                if let Some(t) = env.tasks.get_mut(&tname) {
                    t.dead = Some(format!("was killed by {s} at step {n}"));
                }
            }
        }
    }
    let places = touched(step, env, &tname);
    let after = observe(be, env, &places);
    let mut keys: Vec<_> = before.keys().chain(after.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if let Some(d) = delta(&k.0, &k.1, k.2, before.get(&k), after.get(&k)) {
            sr.deltas.push(d);
        }
    }
    // Judge the outcome.
    let got = match &res {
        Ok(_) => "ok".to_string(),
        Err(f) => f.to_string(),
    };
    match expect.map(|e| (&e.value, e)) {
        None => {
            if res.is_err() {
                sr.checks.push(Check {
                    line,
                    column: col,
                    text: "ok (every step without `expect` must succeed)".into(),
                    status: Status::Fail,
                    detail: Some(format!("got {got}")),
                });
            }
        }
        Some((StepExpect::Any, _)) => {}
        Some((StepExpect::Outcome(o), e)) => {
            let pass = match (o, &res) {
                (Outcome::Ok, Ok(_)) => true,
                (Outcome::Signal(s), Err(Failure::Signal(g))) => s == g,
                (Outcome::Errno(s), Err(Failure::Errno(g))) => s == g,
                _ => false,
            };
            sr.checks.push(Check {
                line,
                column: col,
                text: exp_text(e),
                status: if pass { Status::Pass } else { Status::Fail },
                detail: if pass { None } else { Some(format!("got {got}")) },
            });
        }
        Some((StepExpect::Data(d), e)) => {
            let (status, detail) = match &res {
                Ok(Ret::Data(c)) => judge_data(d, c),
                Ok(other) => (Status::Fail, Some(format!("the read returned {other:?}, not data"))),
                Err(_) => (Status::Fail, Some(format!("got {got}"))),
            };
            sr.checks.push(Check { line, column: col, text: exp_text(e), status, detail });
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
            sr.checks.push(Check { line, column: col, text: exp_text(e), status, detail });
        }
    }
    if let Err(e) = be.self_check() {
        sr.checks.push(Check { line: item.line, column: 1, text: "model invariants".into(), status: Status::Fail, detail: Some(e) });
    }
    sr
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
    let bind = step.bind.as_ref().map(|b| b.value.clone());
    let define = |env: &mut Env, v: Val| {
        if let Some(b) = &bind {
            env.vals.insert(b.clone(), v);
            if let Some(t) = env.tasks.get_mut(task) {
                t.names.insert(b.clone());
            }
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
        (Op::Memfd(s, _) | Op::Tmpfile(s, _), Ret::Fd(fd)) => {
            define(env, Val::File { fd: *fd, size: s.value });
            "ok".into()
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
            let names: BTreeSet<String> = env
                .tasks
                .get(task)
                .map(|t| t.names.iter().filter(|n| !matches!(env.vals.get(*n), Some(Val::Pin { .. } | Val::Hold(_)))).cloned().collect())
                .unwrap_or_default();
            env.names_of.insert(*id, child.value.clone());
            env.tasks.insert(child.value.clone(), TaskRt { id: *id, dead: None, names });
            format!("ok, child {}", child.value)
        }
        (Op::Exit, _) => {
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

/// Judges a standalone expectation.
fn expectation(src: &Source, item: &Item, e: &Expectation, be: &mut dyn Backend, env: &Env) -> Check {
    let text = src.snippet(item.span).to_string();
    let mk = |status, detail| check_at(src, item.span, text.clone(), status, detail);
    let skip = |f: Feature, why: String| mk(Status::Skip, Some(format!("skipped: the {} backend cannot observe {f}: {why}", be.name())));
    // Observe the page at a place, or explain why not.
    let page_at = |be: &mut dyn Backend, l: &Loc| -> Result<Option<PageObs>, String> {
        let t = env.tasks.get(&l.task.value).ok_or_else(|| format!("task {} does not exist", l.task.value))?;
        if let Some(why) = &t.dead {
            return Err(format!("task {} {why}", l.task.value));
        }
        let (tid, a) = place(env, l).ok_or_else(|| format!("`{}` was never created", l.name.value))?;
        be.page(tid, a)
    };
    match e {
        Expectation::SamePage { a, b, same } => {
            if let Some(why) = be.lacks(Feature::PageFrames) {
                return skip(Feature::PageFrames, why);
            }
            let pa = page_at(be, a);
            let pb = page_at(be, b);
            match (pa, pb) {
                (Ok(pa), Ok(pb)) => {
                    let fa = pa.as_ref().and_then(|p| p.pfn);
                    let fb = pb.as_ref().and_then(|p| p.pfn);
                    let show = |p: Option<u64>| p.map(|p| format!("pfn {p:#x}")).unwrap_or("no page".into());
                    let detail = format!("{a}: {}, {b}: {}", show(fa), show(fb));
                    let pass = match (fa, fb) {
                        (Some(x), Some(y)) => (x == y) == *same,
                        _ => false,
                    };
                    mk(if pass { Status::Pass } else { Status::Fail }, Some(detail))
                }
                (Err(x), _) | (_, Err(x)) => mk(Status::Fail, Some(x)),
            }
        }
        Expectation::Since { loc, step, changed } => {
            if let Some(why) = be.lacks(Feature::PageFrames) {
                return skip(Feature::PageFrames, why);
            }
            let then = env.snaps.get(&(step.value, loc.to_string())).copied().flatten();
            match page_at(be, loc) {
                Ok(p) => {
                    let now = p.and_then(|p| p.pfn);
                    let show = |p: Option<u64>| p.map(|p| format!("pfn {p:#x}")).unwrap_or("no page".into());
                    let pass = (then != now) == *changed;
                    mk(
                        if pass { Status::Pass } else { Status::Fail },
                        Some(format!("after step {}: {}, now: {}", step.value, show(then), show(now))),
                    )
                }
                Err(x) => mk(Status::Fail, Some(x)),
            }
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
            match page_at(be, loc) {
                Ok(p) => {
                    let p = p.unwrap_or_default();
                    let v = match pred.value {
                        PagePred::Present => p.present,
                        PagePred::Swapped => p.swapped,
                        PagePred::ZeroPage => p.present && p.zero_page,
                        PagePred::Thp => p.present && p.thp,
                        PagePred::Hugetlb => p.present && p.hugetlb,
                        PagePred::Exclusive => p.present && p.exclusive,
                        PagePred::AnonExclusive => p.present && p.anon_exclusive == Some(true),
                        PagePred::Writable => p.present && p.writable == Some(true),
                    };
                    let seen = Seen { page: Some(p), folio: None };
                    mk(if v == *holds { Status::Pass } else { Status::Fail }, Some(describe_page(&seen)))
                }
                Err(x) => mk(Status::Fail, Some(x)),
            }
        }
        Expectation::Counter { loc, counter, cmp, value } => {
            if let Some(why) = be.lacks(Feature::FolioCounters) {
                return skip(Feature::FolioCounters, why);
            }
            let f = match page_at(be, loc) {
                Err(x) => return mk(Status::Fail, Some(x)),
                Ok(_) => match place(env, loc) {
                    Some((t, a)) => be.folio(t, a),
                    None => Err("not a region".into()),
                },
            };
            match f {
                Ok(Some(f)) => {
                    let v = match counter.value {
                        Counter::Refcount => f.refcount,
                        Counter::Mapcount => f.mapcount,
                        Counter::Pincount => f.pincount,
                    };
                    mk(if cmp.holds(v, *value) { Status::Pass } else { Status::Fail }, Some(format!("{} is {v}", counter.value)))
                }
                Ok(None) => mk(Status::Fail, Some(format!("no folio is mapped at {loc}"))),
                Err(x) => mk(Status::Fail, Some(x)),
            }
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
                    let pass = match (state, &s) {
                        (TaskStateExp::Running, TaskObs::Running) => true,
                        (TaskStateExp::Exited, TaskObs::Exited) => true,
                        (TaskStateExp::Killed(x), TaskObs::Killed(y)) => x == y,
                        _ => false,
                    };
                    let now = match s {
                        TaskObs::Running => "running".to_string(),
                        TaskObs::Exited => "exited".to_string(),
                        TaskObs::Killed(s) => format!("killed by {s}"),
                    };
                    mk(if pass { Status::Pass } else { Status::Fail }, Some(now))
                }
                Err(x) => mk(Status::Fail, Some(x)),
            }
        }
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
