//! Static checks: everything about a scenario that can be known without
//! running it.
//!
//! The checker walks the statements in order with a picture of the world as
//! the text describes it: which tasks are alive, which names each task can
//! see (a child inherits its parent's names at `fork`, but not its pins),
//! what kind of object each name is, how long regions are, how many bytes a
//! pipe holds. That catches unknown names, a task used after `exit` or after
//! an expected fatal signal, misaligned offsets, ranges past a region's end
//! and reads from a pipe nothing was put into — with the position of the
//! offending token — before a backend is even created.
//!
//! Where the scenario *expects* an errno from an operation, the checks that
//! would predict that errno (alignment, bounds) are skipped: testing that the
//! kernel says EINVAL is a legitimate scenario.

use crate::ast::*;
use crate::backend::Feature;
use crate::diag::{Diagnostic, Span};
use mm::direct_io::DIO_ALIGN;
use std::collections::{BTreeMap, BTreeSet};

pub const PAGE: u64 = 4096;
const HUGE_SIZES: [u64; 2] = [2 << 20, 1 << 30];

/// What the checker learned that the runner needs.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    /// Step number (1-based, operations only) of each item, by item index.
    pub step_of_item: Vec<Option<usize>>,
    /// Operations that need a backend feature, by item index (model-only
    /// operations, io_uring, files…): the runner skips the scenario when the
    /// backend lacks one.
    pub needs: Vec<(usize, Feature)>,
    /// `changed since step N`: after step N, remember which page backs these
    /// places.
    pub snapshots: BTreeMap<usize, Vec<Loc>>,
    /// Read steps whose data a later `expect same as step N` compares with.
    pub kept_reads: BTreeSet<usize>,
}

/// What a name stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Region {
        len: u64,
        huge: Option<u64>,
    },
    Pipe,
    File {
        size: u64,
    },
    Ring,
    Pin {
        task: String,
        len: u64,
    },
    /// An `mmget` handle, held by `task`.
    Hold {
        task: String,
    },
    /// A SysV shm segment: what `shmat` maps (the size rounded up to its
    /// page size).
    Shm {
        len: u64,
        huge: Option<u64>,
    },
}

impl Kind {
    fn noun(&self) -> &'static str {
        match self {
            Kind::Region { .. } => "a region",
            Kind::Pipe => "a pipe",
            Kind::File { .. } => "a file",
            Kind::Ring => "an io_uring",
            Kind::Pin { .. } => "a pin handle",
            Kind::Hold { .. } => "an mm handle",
            Kind::Shm { .. } => "a shm segment",
        }
    }
}

#[derive(Clone, Debug)]
struct Name {
    kind: Kind,
    line: usize,
    /// The task that created it: its node in the lineage (every task
    /// has one from the line that creates it).
    task: usize,
    /// Order of definition (see [`Checker::visible`]).
    seq: usize,
}

#[derive(Clone, Debug)]
struct Task {
    line: usize,
    /// `Some((line, why))` once the task has exited or been killed.
    dead: Option<(usize, String)>,
    /// File descriptors this task closed (a pipe's end, or a file or ring
    /// with no end), with the line: using one again is an error, since its
    /// number may name another file by then.
    closed: BTreeMap<(String, Option<PipeEnd>), usize>,
    /// The task exists from right after this step (0: from the start).
    born: usize,
}

/// At most this many errors are kept; the rest are counted.
const MAX_ERRORS: usize = 20;

#[derive(Default)]
struct Checker {
    tasks: BTreeMap<String, Task>,
    names: BTreeMap<String, Name>,
    /// Bytes known to be in each pipe.
    pipe_bytes: BTreeMap<String, u64>,
    /// Pins already released: name → line.
    unpinned: BTreeMap<String, usize>,
    errors: Vec<Diagnostic>,
    /// Errors past [`MAX_ERRORS`]: how many, where the first was, and a
    /// scratch diagnostic the callers may annotate.
    omitted: usize,
    first_omitted: Span,
    scratch: Diagnostic,
    out: Checked,
    steps: usize,
    seen_step: bool,
    profile: Option<usize>,
    /// Who forked whom, and when: what decides which names a task sees.
    lineage: crate::lineage::Lineage,
    /// The line of the `xfail` marker.
    xfail: Option<usize>,
    knobs: BTreeMap<String, usize>,
    /// Step numbers of the reads so far.
    reads: BTreeSet<usize>,
    /// Inside `race {`: its line and how many operations it holds.
    race: Option<(usize, usize)>,
    /// A race block has ended (so `in some interleaving` means something).
    raced: bool,
}

/// Checks a parsed scenario. All errors are returned, in source order.
pub fn check(s: &Scenario) -> Result<Checked, Vec<Diagnostic>> {
    let mut c = Checker::default();
    c.out.step_of_item.reserve_exact(s.items.len());
    for (idx, item) in s.items.iter().enumerate() {
        let step = c.item(idx, item);
        c.out.step_of_item.push(step);
    }
    if let Some((line, _)) = &c.race {
        let end = s.items.last().map_or(Span::default(), |i| i.span);
        c.err(end, format!("the `race {{` block of line {line} is not closed")).expected.push("`}`".into());
    }
    if c.errors.is_empty() {
        Ok(c.out)
    } else {
        if c.omitted > 0 {
            c.errors.push(Diagnostic::new(c.first_omitted, format!("… and {} more error(s) after this one, not shown", c.omitted)));
        }
        Err(c.errors)
    }
}

fn is_pow2_size(n: u64) -> bool {
    n.is_power_of_two()
}

impl Checker {
    /// Records an error; past [`MAX_ERRORS`] it is only counted (the
    /// returned diagnostic is a scratch one).
    fn err(&mut self, span: Span, msg: impl Into<String>) -> &mut Diagnostic {
        if self.full() {
            if self.omitted == 0 {
                self.first_omitted = span;
            }
            self.omitted += 1;
            self.scratch = Diagnostic::new(span, String::new());
            return &mut self.scratch;
        }
        self.errors.push(Diagnostic::new(span, msg));
        let last = self.errors.len() - 1;
        &mut self.errors[last]
    }

    /// No more errors are kept: callers skip building long notes.
    fn full(&self) -> bool {
        self.errors.len() >= MAX_ERRORS
    }

    /// No live task that can name pipe `p` still has its write end open:
    /// a read of the empty pipe returns end of file at once
    /// (fs/pipe.c: pipe_read()) instead of blocking.
    fn pipe_writers_gone(&self, p: &str) -> bool {
        let write_end = (p.to_string(), Some(PipeEnd::Write));
        self.tasks.iter().all(|(n, t)| t.dead.is_some() || !self.visible(n, p) || t.closed.contains_key(&write_end))
    }

    /// Can `task` use the name `name`: its own names, and the names each
    /// ancestor had when the line forked off it, pins and holds excepted
    /// (a fork copies no names; see [`crate::lineage::Lineage`]).
    fn visible(&self, task: &str, name: &str) -> bool {
        self.names.get(name).is_some_and(|def| self.sees(task, def))
    }

    /// Can `task` use the name defined by `def` (see [`Checker::visible`]).
    fn sees(&self, task: &str, def: &Name) -> bool {
        self.lineage.sees(task, def.task, def.seq, !matches!(def.kind, Kind::Pin { .. } | Kind::Hold { .. }))
    }

    fn item(&mut self, idx: usize, item: &Item) -> Option<usize> {
        match &item.kind {
            ItemKind::Profile(p) => {
                if let Some(l) = self.profile {
                    self.err(p.span, "the profile is already set").notes.push(format!("first set at line {l}"));
                } else if self.seen_step || !self.tasks.is_empty() {
                    self.err(p.span, "`profile` must come before the first task")
                        .notes
                        .push("the kernel's rules cannot change while programs run".into());
                }
                self.profile = Some(item.line);
                None
            }
            ItemKind::Xfail(reason) => {
                if let Some(l) = self.xfail {
                    self.err(reason.span, "the scenario is already marked xfail").notes.push(format!("first marked at line {l}"));
                } else if self.seen_step || !self.tasks.is_empty() {
                    self.err(reason.span, "`xfail` must come before the first task")
                        .notes
                        .push("it says how the whole scenario is judged".into());
                } else if reason.value.trim().is_empty() {
                    self.err(reason.span, "an empty reason").notes.push("say why the scenario is expected to fail".into());
                }
                self.xfail = Some(item.line);
                None
            }
            ItemKind::Set { knob, .. } => {
                if self.seen_step || !self.tasks.is_empty() {
                    self.err(knob.span, "`set` must come before the first task")
                        .notes
                        .push("the kernel's rules cannot change while programs run".into());
                }
                if let Some(l) = self.knobs.insert(knob.value.clone(), item.line) {
                    self.err(knob.span, format!("knob `{}` is already set", knob.value)).notes.push(format!("first set at line {l}"));
                }
                None
            }
            ItemKind::Thp { size, .. } => {
                if let ThpSize::Bytes(b) = size.value {
                    if !(is_pow2_size(b) && (16 << 10..=2 << 20).contains(&b)) {
                        self.err(size.span, "not a THP size").expected.extend(["a power of two from 16K to 2M".to_string(), "all".into()]);
                    }
                }
                None
            }
            ItemKind::ThpZeroPage(_) => None,
            ItemKind::Hugetlb { size, .. } => {
                let _ = self.huge_size(size);
                None
            }
            ItemKind::Task(name) => {
                if self.fresh(name) {
                    self.tasks.insert(name.value.clone(), Task { line: item.line, dead: None, closed: BTreeMap::new(), born: self.steps });
                    self.lineage.add(&name.value, None);
                }
                None
            }
            ItemKind::Step(step) => {
                self.seen_step = true;
                self.steps += 1;
                let n = self.steps;
                self.race_step(item, step);
                self.step(idx, item, step);
                Some(n)
            }
            ItemKind::Expect(e) => {
                if self.race.is_some() {
                    self.err(item.span, "a `race { }` block holds operations only").notes.push("put expectations after its `}`".into());
                }
                self.expectation(e);
                None
            }
            ItemKind::ExpectSome(e) => {
                if !self.raced || self.race.is_some() {
                    self.err(item.span, "`in some interleaving` needs a `race { }` block before it");
                }
                self.expectation(e);
                None
            }
            ItemKind::RaceBegin => {
                if let Some((line, _)) = &self.race {
                    let line = *line;
                    self.err(item.span, "race blocks do not nest").notes.push(format!("the open one starts at line {line}"));
                } else {
                    self.race = Some((item.line, 0));
                }
                None
            }
            ItemKind::RaceEnd => {
                match self.race.take() {
                    None => {
                        self.err(item.span, "`}` without a `race {`");
                    }
                    Some((line, ops)) if ops < 2 => {
                        self.err(item.span, format!("the race of line {line} needs two operations or more"));
                    }
                    Some(_) => self.raced = true,
                }
                None
            }
        }
    }

    /// Inside a race: every operation needs a step machine. Each line is
    /// one racing thread of its process, so a process may race itself.
    fn race_step(&mut self, item: &Item, step: &Step) {
        let Some((_, ops)) = &mut self.race else { return };
        *ops += 1;
        if let Err(why) = race_step_machine(&step.op) {
            let name = step.op.keyword();
            self.err(step.op_span, format!("`{name}` (line {}) has no step machine, so it cannot race", item.line)).notes.push(why.into());
        }
    }

    /// The hugetlb page size if it is one the machine has; reports if not,
    /// and the caller then treats the region as base pages.
    fn huge_size(&mut self, size: &Spanned<u64>) -> Option<u64> {
        if !HUGE_SIZES.contains(&size.value) {
            self.err(size.span, format!("no hugetlb page size {}", fmt_size(size.value))).expected.extend(["2M".to_string(), "1G".into()]);
            return None;
        }
        Some(size.value)
    }

    /// Is `name` free to define? Reports if not.
    fn fresh(&mut self, name: &Ident) -> bool {
        if let Some(t) = self.tasks.get(&name.value) {
            let l = t.line;
            self.err(name.span, format!("`{}` is already a task", name.value)).notes.push(format!("defined at line {l}"));
            return false;
        }
        if let Some(n) = self.names.get(&name.value) {
            let l = n.line;
            self.err(name.span, format!("`{}` is already defined", name.value))
                .notes
                .push(format!("defined at line {l}; every name is defined once per scenario"));
            return false;
        }
        true
    }

    /// The task running a step or named in an expectation: must exist; must
    /// be alive unless `allow_dead`.
    fn task(&mut self, t: &Ident, allow_dead: bool) -> bool {
        match self.tasks.get(&t.value) {
            None => {
                let known: Vec<String> = if self.full() { Vec::new() } else { self.tasks.keys().take(20).cloned().collect() };
                let d = self.err(t.span, format!("unknown task `{}`", t.value));
                if known.is_empty() {
                    d.notes.push("declare one first with `task NAME` (e.g. `task P`)".into());
                } else {
                    d.expected.extend(known);
                }
                false
            }
            Some(task) => match (&task.dead, allow_dead) {
                (Some((l, why)), false) => {
                    let msg = format!("task `{}` is used after it {why} (line {l})", t.value);
                    self.err(t.span, msg);
                    false
                }
                _ => true,
            },
        }
    }

    /// A name as seen by `task`: must exist, be visible there, be of the
    /// wanted kind.
    fn name(&mut self, task: &str, n: &Ident, want: &[&str]) -> Option<Kind> {
        // Only the kind is copied out (the owner's name only on an error):
        // this runs for every name every step uses.
        // One lookup gives the kind and whether `task` sees it.
        let found = self.names.get(&n.value).map(|d| (d.kind.clone(), self.sees(task, d)));
        let Some((kind, sees)) = found else {
            let visible: Vec<String> =
                if self.full() { Vec::new() } else { self.names.keys().filter(|k| self.visible(task, k)).take(20).cloned().collect() };
            let d = self.err(n.span, format!("unknown name `{}`", n.value));
            if visible.is_empty() {
                d.notes.push(format!("task {task} has no named objects yet"));
            } else {
                d.notes.push(format!("names task {task} can use here: {}", visible.join(", ")));
            }
            return None;
        };
        if !sees {
            let owner = |def: &Name| self.lineage.nodes.get(def.task).map(|f| &*f.name);
            let why = match self.names.get(&n.value).and_then(|def| Some((def, owner(def)?))) {
                Some((def, owner)) if owner != task => format!(
                    "`{}` belongs to task {owner} (line {}); a task sees what it created and what its parent had when it forked",
                    n.value, def.line
                ),
                _ => "it is gone".to_string(),
            };
            self.err(n.span, format!("task {task} has no `{}`", n.value)).notes.push(why);
            return None;
        }
        let noun = kind.noun();
        if !want.contains(&noun) {
            self.err(n.span, format!("`{}` is {noun}", n.value)).expected.extend(want.iter().map(|s| s.to_string()));
            return None;
        }
        Some(kind)
    }

    fn define(&mut self, task: &str, n: &Ident, kind: Kind, line: usize) {
        if !self.fresh(n) {
            return;
        }
        if let Kind::Pipe = kind {
            self.pipe_bytes.insert(n.value.clone(), 0);
        }
        let seq = self.names.len();
        // Only a task that exists defines names, and every task has a node.
        let task = self.lineage.node(task).unwrap_or(usize::MAX);
        self.names.insert(n.value.clone(), Name { kind, line, task, seq });
    }

    /// Bounds and alignment of `range` in a region; returns the length.
    fn region_range(&mut self, r: &Range, kind: &Kind, align: bool, lenient: bool) -> Option<u64> {
        let Kind::Region { len, huge } = kind else {
            return None;
        };
        let off = r.off();
        let page = huge.unwrap_or(PAGE);
        if align && !lenient && !off.is_multiple_of(page) {
            let span = r.offset.as_ref().map(|o| o.span).unwrap_or(r.span);
            self.err(span, format!("misaligned: offset {} is not a multiple of the {} page size", fmt_hex_size(off), fmt_size(page)))
                .notes
                .push("write `expect EINVAL` after the operation to test the kernel's answer".into());
            return None;
        }
        if off > *len && !lenient {
            let span = r.offset.as_ref().map(|o| o.span).unwrap_or(r.span);
            self.err(span, format!("offset {} is past the end of `{}` ({})", fmt_size(off), r.name.value, fmt_size(*len)));
            return None;
        }
        let l = match &r.len {
            Some(l) => l.value,
            None => len.saturating_sub(off),
        };
        if off.saturating_add(l) > *len && !lenient {
            let span = r.len.as_ref().map(|l| l.span).unwrap_or(r.span);
            self.err(
                span,
                format!("{}+{} {} goes past the end of `{}` ({})", r.name.value, fmt_size(off), fmt_size(l), r.name.value, fmt_size(*len)),
            )
            .notes
            .push("write `expect SIGSEGV` (or the errno) to test an access past the end".into());
            return None;
        }
        if align && !lenient {
            if let Some(lspan) = r.len.as_ref().map(|l| l.span) {
                if huge.is_some() && l % page != 0 {
                    self.err(
                        lspan,
                        format!("misaligned: length {} is not a multiple of the {} hugetlb page size", fmt_size(l), fmt_size(page)),
                    );
                    return None;
                }
            }
        }
        Some(l)
    }

    fn addr(&mut self, task: &str, a: &Addr, align: u64, lenient: bool) {
        match a {
            Addr::Literal(l) => {
                if !lenient && l.value % align != 0 {
                    self.err(l.span, format!("misaligned: address {:#x} is not a multiple of {}", l.value, fmt_size(align)));
                }
            }
            Addr::Name { name, offset } => {
                if self.name(task, name, &["a region"]).is_some() {
                    if let Some(o) = offset {
                        if !lenient && o.value % align != 0 {
                            self.err(
                                o.span,
                                format!("misaligned: offset {} is not a multiple of {}", fmt_hex_size(o.value), fmt_size(align)),
                            );
                        }
                    }
                }
            }
        }
    }

    fn need_bind<'a>(&mut self, step: &'a Step, what: &str) -> Option<&'a Ident> {
        if step.bind.is_none() {
            self.err(step.op_span, format!("`{}` makes {what}; give it a name", step.op.keyword())).notes.push(format!(
                "write `{}: NAME = {} …`",
                step.task.value,
                step.op.keyword()
            ));
        }
        step.bind.as_ref()
    }

    fn step(&mut self, idx: usize, item: &Item, step: &Step) {
        if !self.task(&step.task, false) {
            return;
        }
        let t: &str = &step.task.value;
        let expect = step.expect.as_ref().map(|e| &e.value);
        // An expected errno or "any" means the operation may be refused:
        // leave bounds and alignment to the kernel.
        let lenient = expect.is_some_and(may_refuse);
        let fails = expect.is_some_and(surely_fails);
        if let Some(e) = &step.expect {
            let to_memory =
                matches!(&step.op, Op::Write(r, _) if matches!(self.names.get(&r.name.value).map(|n| &n.kind), Some(Kind::Region { .. })));
            if expects_count(&e.value) && (!returns_count(&step.op) || to_memory) {
                self.err(e.span, format!("`{}` returns no byte count", step.op.keyword()))
                    .notes
                    .push("a count comes from vmsplice, write (to a pipe or file) and io_uring read_fixed/write_fixed".into());
            }
        }
        if let (Some(b), false) = (&step.bind, binds(&step.op)) {
            self.err(b.span, format!("`{}` does not produce anything to name", step.op.keyword()));
        }
        if let Some(e) = &step.expect {
            if matches!(e.value, StepExpect::Data(_) | StepExpect::SameAs(_)) && !matches!(step.op, Op::Read(_) | Op::ProcMemRead { .. }) {
                self.err(e.span, "contents can only be expected from a `read`")
                    .notes
                    .push("read the data, e.g. `P: read A expect fill 0x00`".into());
            } else if let StepExpect::SameAs(n) = &e.value {
                if self.reads.contains(&n.value) {
                    self.out.kept_reads.insert(n.value);
                } else {
                    let reads: Vec<String> = self.reads.iter().map(|r| r.to_string()).collect();
                    self.err(n.span, format!("step {} is not an earlier `read`", n.value)).expected.push(if reads.is_empty() {
                        "an earlier read step (none yet)".to_string()
                    } else {
                        format!("one of the read steps {}", reads.join(", "))
                    });
                }
            }
        }
        if matches!(step.op, Op::Read(_) | Op::ProcMemRead { .. }) {
            self.reads.insert(self.steps);
        }
        for (n, end) in self.fd_uses(&step.op).into_iter().flatten() {
            // Looked up only where the task closed something (the key is
            // an owned name).
            let closed = self.tasks.get(t).map(|task| &task.closed).filter(|c| !c.is_empty());
            if let Some(line) = closed.and_then(|c| c.get(&(n.value.clone(), end))) {
                let what = match end {
                    Some(e) => format!("the {e} end of `{}`", n.value),
                    None => format!("`{}`", n.value),
                };
                self.err(n.span, format!("task {t} closed {what} at line {line}"))
                    .notes
                    .push("its descriptor number may belong to another file by now".into());
            }
        }
        match &step.op {
            Op::Mmap(m) => {
                let huge = m.hugetlb.as_ref().and_then(|h| self.huge_size(h));
                if m.len.value == 0 && !lenient {
                    self.err(m.len.span, "mmap of 0 bytes fails with EINVAL").expected.push("a size above 0".into());
                }
                if let Backing::File(f) = &m.backing {
                    self.name(t, f, &["a file"]);
                    self.out.needs.push((idx, Feature::Files));
                }
                if let Some(a) = &m.fixed {
                    self.addr(t, a, huge.unwrap_or(PAGE), lenient);
                }
                if let Some(a) = &m.align {
                    if !a.value.is_power_of_two() || a.value < PAGE {
                        self.err(a.span, format!("`align=` must be a power of two of at least 4K, not {}", fmt_hex_size(a.value)))
                            .expected
                            .push("a size like 2M or 64K".into());
                    }
                    if m.fixed.is_some() {
                        self.err(a.span, "`align=` places a mapping the kernel chooses; with `fixed=` the address is given")
                            .expected
                            .push("either align= or fixed=".into());
                    }
                }
                if let Some(o) = &m.offset {
                    if o.value % PAGE != 0 && !lenient {
                        self.err(o.span, "misaligned: the file offset must be a multiple of 4K");
                    }
                }
                if huge.is_some() {
                    self.out.needs.push((idx, Feature::Hugetlb));
                }
                if let Some(b) = self.need_bind(step, "a mapping") {
                    let len = match huge {
                        Some(h) => m.len.value.div_ceil(h).saturating_mul(h),
                        None => m.len.value.div_ceil(PAGE).saturating_mul(PAGE),
                    };
                    self.define(t, b, Kind::Region { len, huge }, item.line);
                }
            }
            Op::Munmap(r) | Op::Mprotect(r, _) => {
                if let Some(k) = self.name(t, &r.name, &["a region"]) {
                    self.region_range(r, &k, true, lenient);
                }
            }
            Op::Madvise(r, adv) => {
                if let Some(k) = self.name(t, &r.name, &["a region"]) {
                    // MADV_DONTNEED on hugetlb rounds the length down rather
                    // than failing; only the start must be aligned.
                    let k = match k {
                        Kind::Region { len, huge: Some(h) } => {
                            if r.off() % h != 0 && !lenient {
                                let span = r.offset.as_ref().map(|o| o.span).unwrap_or(r.span);
                                self.err(
                                    span,
                                    format!(
                                        "misaligned: offset {} is not a multiple of the {} page size",
                                        fmt_hex_size(r.off()),
                                        fmt_size(h)
                                    ),
                                )
                                .notes
                                .push("write `expect EINVAL` after the operation to test the kernel's answer".into());
                            }
                            Kind::Region { len, huge: None }
                        }
                        k => k,
                    };
                    self.region_range(r, &k, true, lenient);
                }
                if matches!(adv.value, Advice::Hugepage | Advice::Nohugepage | Advice::Collapse) {
                    self.out.needs.push((idx, Feature::Thp));
                }
                if adv.value == Advice::Pageout {
                    self.out.needs.push((idx, Feature::Swap));
                }
            }
            Op::Mremap { old, to, .. } => {
                let k = self.name(t, &old.name, &["a region"]);
                if let Some(k) = &k {
                    self.region_range(old, k, true, lenient);
                }
                if let Some(a) = to {
                    self.addr(t, a, PAGE, lenient);
                }
                if let (Some(b), Op::Mremap { new_len, .. }) = (&step.bind, &step.op) {
                    let huge = match k {
                        Some(Kind::Region { huge, .. }) => huge,
                        _ => None,
                    };
                    self.define(t, b, Kind::Region { len: new_len.value.div_ceil(PAGE).saturating_mul(PAGE), huge }, item.line);
                }
            }
            Op::Fork(child) => {
                if self.fresh(child) {
                    // The child's descriptor table is a copy of the parent's.
                    let closed = self.tasks.get(t).map(|p| p.closed.clone()).unwrap_or_default();
                    self.tasks.insert(
                        child.value.clone(),
                        Task {
                            line: item.line,
                            dead: if fails { Some((item.line, "was never created".into())) } else { None },
                            closed,
                            born: self.steps,
                        },
                    );
                    self.lineage.add(&child.value, Some((t, self.names.len())));
                }
            }
            Op::Exit(_) => {
                if let Some(task) = self.tasks.get_mut(t) {
                    task.dead = Some((item.line, "exited".into()));
                }
            }
            Op::Write(r, data) => {
                if let Some(k) = self.name(t, &r.name, &["a region", "a file", "a pipe"]) {
                    let dlen = match data {
                        DataSpec::Bytes(b) => Some(b.len() as u64),
                        DataSpec::Fill(_) => None,
                    };
                    if let (Some(d), Some(l)) = (dlen, &r.len) {
                        if d != l.value {
                            self.err(l.span, format!("length {} but {d} bytes are given", l.value))
                                .notes
                                .push("leave the length out; it comes from the bytes".into());
                        }
                    }
                    match &k {
                        Kind::Region { .. } => {
                            let r2 = with_data_len(r, dlen);
                            self.region_range(&r2, &k, false, lenient || fails);
                        }
                        Kind::Pipe => {
                            if r.offset.is_some() {
                                self.err(r.span, "a pipe has no offsets");
                            }
                            let n = dlen.or(r.len.as_ref().map(|l| l.value));
                            match n {
                                None => {
                                    self.err(r.span, "how many bytes? a pipe has no size")
                                        .expected
                                        .push(format!("`write {} 4K fill …`", r.name.value));
                                }
                                Some(n) if !fails => {
                                    *self.pipe_bytes.entry(r.name.value.clone()).or_default() += n;
                                }
                                _ => {}
                            }
                        }
                        Kind::File { .. } => {
                            self.out.needs.push((idx, Feature::Files));
                        }
                        _ => {}
                    }
                }
            }
            Op::Read(r) => {
                let want = ["a region", "a pipe", "a file", "a pin handle"];
                if let Some(k) = self.name(t, &r.name, &want) {
                    let dlen = match expect {
                        Some(StepExpect::Data(DataSpec::Bytes(b))) => Some(b.len() as u64),
                        _ => None,
                    };
                    if let (Some(d), Some(l)) = (dlen, &r.len) {
                        if d != l.value {
                            self.err(l.span, format!("reads {} bytes but {d} bytes are expected", l.value));
                        }
                    }
                    match &k {
                        Kind::Region { .. } => {
                            let r2 = with_data_len(r, dlen);
                            self.region_range(&r2, &k, false, lenient || fails);
                        }
                        Kind::Pipe => {
                            if r.offset.is_some() {
                                self.err(r.span, "a pipe has no offsets");
                            }
                            let want = dlen.or(r.len.as_ref().map(|l| l.value));
                            let have = self.pipe_bytes.get(&r.name.value).copied().unwrap_or(0);
                            if want.is_none() {
                                self.err(r.span, "how many bytes? a pipe has no size")
                                    .expected
                                    .push(format!("`read {} 4K …`", r.name.value));
                            } else if have == 0 && !lenient && !self.pipe_writers_gone(&r.name.value) {
                                self.err(r.name.span, format!("pipe `{}` has no data here: the read would block forever", r.name.value))
                                    .notes
                                    .push("nothing was written or vmspliced into it before this line".into());
                            } else if let Some(w) = want {
                                let e = self.pipe_bytes.entry(r.name.value.clone()).or_default();
                                *e = e.saturating_sub(w);
                            }
                        }
                        Kind::File { .. } => self.out.needs.push((idx, Feature::Files)),
                        Kind::Pin { task, len } => {
                            if task != t {
                                self.err(step.task.span, format!("`{}` was taken by task {task}", r.name.value));
                            }
                            if let Some(l) = self.unpinned.get(&r.name.value).copied() {
                                self.err(r.name.span, format!("`{}` was released at line {l}", r.name.value));
                            }
                            let l = r.len.as_ref().map(|l| l.value).unwrap_or(len.saturating_sub(r.off()));
                            if r.off().saturating_add(l) > *len {
                                self.err(r.span, format!("goes past the end of the pinned range ({})", fmt_size(*len)));
                            }
                            self.out.needs.push((idx, Feature::Gup));
                        }
                        _ => {}
                    }
                }
            }
            Op::Pipe => {
                if let Some(b) = self.need_bind(step, "a pipe") {
                    self.define(t, b, Kind::Pipe, item.line);
                }
            }
            Op::Vmsplice { pipe, range } => {
                self.name(t, pipe, &["a pipe"]);
                if let Some(k) = self.name(t, &range.name, &["a region"]) {
                    if let Some(l) = self.region_range(range, &k, false, lenient || fails) {
                        if !fails {
                            *self.pipe_bytes.entry(pipe.value.clone()).or_default() += l;
                        }
                    }
                }
            }
            Op::Memfd(size, ..) | Op::Tmpfile(size, ..) => {
                self.out.needs.push((idx, Feature::Files));
                if let Op::Memfd(_, Some(_), _) = &step.op {
                    self.out.needs.push((idx, Feature::Hugetlb));
                }
                if let Some(b) = self.need_bind(step, "a file") {
                    self.define(t, b, Kind::File { size: size.value }, item.line);
                }
            }
            Op::IoUring => {
                self.out.needs.push((idx, Feature::IoUring));
                if let Some(b) = self.need_bind(step, "an io_uring instance") {
                    self.define(t, b, Kind::Ring, item.line);
                }
            }
            Op::IoUringRegister { ring, bufs } => {
                self.out.needs.push((idx, Feature::IoUring));
                self.name(t, ring, &["an io_uring"]);
                if bufs.is_empty() && !lenient {
                    self.err(step.op_span, "registering no buffers fails with EINVAL")
                        .notes
                        .push("write `expect EINVAL` to test that, or `sparse` for an empty slot".into());
                }
                for b in bufs {
                    if let IoVec::Range(r) = b {
                        if let Some(k) = self.name(t, &r.name, &["a region"]) {
                            self.region_range(r, &k, false, lenient || fails);
                        }
                    }
                }
            }
            Op::Close { name, end } => {
                if let Some(k) = self.name(t, name, &["a pipe", "a file", "an io_uring"]) {
                    match (&k, end) {
                        (Kind::Pipe, None) => {
                            self.err(name.span, format!("which end of pipe `{}`?", name.value))
                                .expected
                                .extend([format!("`close {} read`", name.value), format!("`close {} write`", name.value)]);
                        }
                        (Kind::Pipe, Some(_)) | (_, None) => {
                            if let Some(task) = self.tasks.get_mut(t) {
                                task.closed.entry((name.value.clone(), end.as_ref().map(|e| e.value))).or_insert(item.line);
                            }
                        }
                        (_, Some(e)) => {
                            self.err(e.span, format!("`{}` is {}, it has no {} end", name.value, k.noun(), e.value));
                        }
                    }
                }
            }
            Op::IoUringUnregister(ring) => {
                self.out.needs.push((idx, Feature::IoUring));
                self.name(t, ring, &["an io_uring"]);
            }
            Op::IoUringFixed { ring, buf, file, .. } => {
                self.out.needs.push((idx, Feature::IoUring));
                self.out.needs.push((idx, Feature::Files));
                self.name(t, ring, &["an io_uring"]);
                if let Some(k) = self.name(t, &buf.name, &["a region"]) {
                    self.region_range(buf, &k, false, lenient || fails);
                }
                self.name(t, file, &["a file"]);
            }
            Op::ClearSoftDirty => self.out.needs.push((idx, Feature::SoftDirty)),
            Op::Gup { range, .. } => {
                self.out.needs.push((idx, Feature::Gup));
                if let Some(k) = self.name(t, &range.name, &["a region"]) {
                    let l = self.region_range(range, &k, true, lenient);
                    if let (Some(l), false) = (l, lenient) {
                        if l == 0 || l % PAGE != 0 {
                            let span = range.len.as_ref().map(|l| l.span).unwrap_or(range.span);
                            self.err(span, format!("GUP takes whole pages; {} is not a multiple of 4K", fmt_size(l)));
                        }
                    }
                    if let Some(b) = self.need_bind(step, "a pin handle") {
                        let len = l.unwrap_or(0);
                        self.define(t, b, Kind::Pin { task: t.to_string(), len }, item.line);
                    }
                }
            }
            Op::Unpin(h) => {
                self.out.needs.push((idx, Feature::Gup));
                if let Some(Kind::Pin { task, .. }) = self.name(t, h, &["a pin handle"]) {
                    if task != t {
                        self.err(step.task.span, format!("`{}` was taken by task {task}", h.value));
                    }
                    if let Some(l) = self.unpinned.insert(h.value.clone(), item.line) {
                        self.err(h.span, format!("`{}` was already released at line {l}", h.value));
                    }
                }
            }
            Op::ProcessVm { target, remote, local, local_off, .. } => {
                // The remote range is judged in the target's address space,
                // the local place in the caller's; the kernel takes any
                // lengths and alignments.
                let mut len = None;
                // An ended target is allowed: the kernel's answer is ESRCH.
                if self.task(target, true) {
                    if let Some(k) = self.name(&target.value, &remote.name, &["a region"]) {
                        len = self.region_range(remote, &k, false, lenient || fails);
                    }
                }
                if let Some(k) = self.name(t, local, &["a region"]) {
                    let at = Range {
                        name: local.clone(),
                        offset: local_off.clone(),
                        len: len.map(|l| Spanned::new(l, remote.span)),
                        span: local_off.as_ref().map(|o| local.span.to(o.span)).unwrap_or(local.span),
                    };
                    self.region_range(&at, &k, false, lenient || fails);
                }
            }
            Op::DirectIo { buf, file, file_off, .. } => {
                self.out.needs.push((idx, Feature::Files));
                if let Some(k) = self.name(t, &buf.name, &["a region"]) {
                    if let Some(l) = self.region_range(buf, &k, false, lenient || fails) {
                        let off = file_off.as_ref().map(|o| o.value).unwrap_or(0);
                        if !lenient && !fails && !(l | off).is_multiple_of(DIO_ALIGN) {
                            self.err(buf.span, format!("O_DIRECT needs the length and the file offset {DIO_ALIGN}-byte aligned"))
                                .notes
                                .push("write `expect EINVAL` to test the kernel's answer".into());
                        }
                    }
                }
                self.name(t, file, &["a file"]);
            }
            Op::Mmget(target) => {
                self.out.needs.push((idx, Feature::MmHold));
                if self.task(target, false) {
                    if let Some(b) = self.need_bind(step, "an mm handle") {
                        self.define(t, b, Kind::Hold { task: t.to_string() }, item.line);
                    }
                }
            }
            Op::Fallocate { file, .. } => {
                self.out.needs.push((idx, Feature::Files));
                self.name(t, &file.name, &["a file"]);
                if file.len.is_none() {
                    self.err(file.span, "how many bytes? fallocate needs a length")
                        .expected
                        .push(format!("`fallocate {} 2M`", file.name.value));
                }
            }
            Op::Shmget { size, hugetlb } => {
                let huge = hugetlb.as_ref().and_then(|h| self.huge_size(h));
                if hugetlb.is_some() {
                    self.out.needs.push((idx, Feature::Hugetlb));
                }
                if size.value == 0 && !lenient {
                    self.err(size.span, "a segment of 0 bytes fails with EINVAL").expected.push("a size above 0".into());
                }
                if let Some(b) = self.need_bind(step, "a shm segment") {
                    let unit = huge.unwrap_or(PAGE);
                    self.define(t, b, Kind::Shm { len: size.value.div_ceil(unit).saturating_mul(unit), huge }, item.line);
                }
            }
            Op::Shmat(seg) => {
                if let Some(Kind::Shm { len, huge }) = self.name(t, seg, &["a shm segment"]) {
                    if let Some(b) = self.need_bind(step, "a mapping") {
                        self.define(t, b, Kind::Region { len, huge }, item.line);
                    }
                }
            }
            Op::Shmdt(r) => {
                self.name(t, r, &["a region"]);
            }
            Op::ShmRmid(seg) => {
                self.name(t, seg, &["a shm segment"]);
            }
            Op::ProcMemWrite { target, range, data } => {
                let dlen = match data {
                    DataSpec::Bytes(b) => Some(b.len() as u64),
                    DataSpec::Fill(_) => None,
                };
                self.task_range(target, range, dlen, lenient || fails);
            }
            Op::MbindLocalMove(r) => {
                if let Some(k) = self.name(t, &r.name, &["a region"]) {
                    self.region_range(r, &k, true, lenient || fails);
                }
            }
            Op::UffdioCopy(r, data) => {
                let dlen = match data {
                    DataSpec::Bytes(b) => Some(b.len() as u64),
                    DataSpec::Fill(_) => None,
                };
                self.task_range(&step.task, r, dlen, lenient || fails);
            }
            Op::ProcMemRead { target, range } => {
                let dlen = match expect {
                    Some(StepExpect::Data(DataSpec::Bytes(b))) => Some(b.len() as u64),
                    _ => None,
                };
                self.task_range(target, range, dlen, lenient || fails);
            }
            Op::Mmput(h) => {
                self.out.needs.push((idx, Feature::MmHold));
                if let Some(Kind::Hold { task }) = self.name(t, h, &["an mm handle"]) {
                    if task != t {
                        self.err(step.task.span, format!("`{}` was taken by task {task}", h.value));
                    }
                    if let Some(l) = self.unpinned.insert(h.value.clone(), item.line) {
                        self.err(h.span, format!("`{}` was already released at line {l}", h.value));
                    }
                }
            }
        }
        let death = match expect {
            Some(StepExpect::Outcome(Outcome::Signal(s))) => Some(format!("was killed by {s}")),
            // A livelocked task never comes back (the live backend kills it).
            Some(StepExpect::Outcome(Outcome::Livelock)) => Some("livelocked".to_string()),
            Some(StepExpect::OneOf(alts))
                if alts.iter().all(|a| matches!(a, StepExpect::Outcome(Outcome::Signal(_) | Outcome::Livelock))) =>
            {
                Some("was killed (every expected outcome ends it)".to_string())
            }
            _ => None,
        };
        if let Some(why) = death {
            if let Some(task) = self.tasks.get_mut(t) {
                task.dead = Some((item.line, why));
            }
        }
    }

    /// A range in `target`'s address space (`proc_mem_write`,
    /// `proc_mem_read`; `uffdio_copy` in the task's own): the task is
    /// alive and the range names a region of it; `dlen` is the byte count
    /// the data (or the expected data) implies, which a written length
    /// must match.
    fn task_range(&mut self, target: &Ident, r: &Range, dlen: Option<u64>, lenient: bool) {
        if !self.task(target, false) {
            return;
        }
        if let (Some(d), Some(l)) = (dlen, &r.len) {
            if d != l.value {
                self.err(l.span, format!("length {} but {d} bytes are given", l.value))
                    .notes
                    .push("leave the length out; it comes from the bytes".into());
            }
        }
        if let Some(k) = self.name(&target.value, &r.name, &["a region"]) {
            let mut r2 = r.clone();
            if r2.len.is_none() {
                r2.len = dlen.map(|d| Spanned::new(d, r.span));
            }
            self.region_range(&r2, &k, false, lenient);
        }
    }

    /// The file descriptors an operation uses (two at most), in order, with
    /// the pipe end for pipes.
    fn fd_uses<'a>(&self, op: &'a Op) -> [Option<(&'a Ident, Option<PipeEnd>)>; 2] {
        let io = |n: &'a Ident, end: PipeEnd| match self.names.get(&n.value).map(|d| &d.kind) {
            Some(Kind::Pipe) => [Some((n, Some(end))), None],
            Some(Kind::File { .. }) => [Some((n, None)), None],
            _ => [None, None],
        };
        let one = |n: &'a Ident, end: Option<PipeEnd>| [Some((n, end)), None];
        match op {
            Op::Mmap(MmapArgs { backing: Backing::File(f), .. }) => one(f, None),
            Op::Write(r, _) => io(&r.name, PipeEnd::Write),
            Op::Read(r) => io(&r.name, PipeEnd::Read),
            Op::Vmsplice { pipe, .. } => one(pipe, Some(PipeEnd::Write)),
            Op::IoUringRegister { ring, .. } | Op::IoUringUnregister(ring) => one(ring, None),
            Op::IoUringFixed { ring, file, .. } => [Some((ring, None)), Some((file, None))],
            Op::DirectIo { file, .. } => one(file, None),
            Op::Close { name, end } => one(name, end.as_ref().map(|e| e.value)),
            Op::Fallocate { file, .. } => one(&file.name, None),
            _ => [None, None],
        }
    }

    fn loc(&mut self, l: &Loc) -> bool {
        if !self.task(&l.task, false) {
            return false;
        }
        match self.name(&l.task.value, &l.name, &["a region"]) {
            Some(Kind::Region { len, .. }) => {
                if l.off() >= len {
                    let span = l.offset.as_ref().map(|o| o.span).unwrap_or(l.name.span);
                    self.err(span, format!("offset {} is past the end of `{}` ({})", fmt_size(l.off()), l.name.value, fmt_size(len)));
                    return false;
                }
                if let Some(e) = &l.end {
                    if e.value <= l.off() {
                        self.err(e.span, format!("the range ends at {} but starts at {}", fmt_size(e.value), fmt_size(l.off())))
                            .expected
                            .push("an end past the start".into());
                        return false;
                    }
                    if e.value > len {
                        self.err(e.span, format!("the range ends past the end of `{}` ({})", l.name.value, fmt_size(len)));
                        return false;
                    }
                }
                true
            }
            _ => false,
        }
    }

    fn expectation(&mut self, e: &Expectation) {
        match e {
            Expectation::SamePage { a, b, .. } => {
                self.loc(a);
                self.loc(b);
            }
            Expectation::Since { loc, step, .. } => {
                if step.value == 0 || step.value > self.steps {
                    let steps = self.steps;
                    self.err(step.span, format!("there is no step {} before this line", step.value)).expected.push(if steps == 0 {
                        "an earlier step (none yet)".to_string()
                    } else {
                        format!("a step number from 1 to {steps}")
                    });
                } else if let Some(born) = self.tasks.get(&loc.task.value).map(|t| t.born).filter(|b| *b > step.value) {
                    self.err(
                        step.span,
                        format!("task {} did not exist yet at step {} (it was forked at step {born})", loc.task.value, step.value),
                    )
                    .expected
                    .push(format!("a step from {born} on"));
                } else if self.loc(loc) {
                    self.out.snapshots.entry(step.value).or_default().push(loc.clone());
                }
            }
            Expectation::Page { loc, .. } | Expectation::Counter { loc, .. } => {
                self.loc(loc);
            }
            Expectation::Pool { size, .. } => {
                let _ = self.huge_size(size);
            }
            Expectation::Task { task, .. } => {
                self.task(task, true);
            }
            Expectation::Log { text, .. } => {
                if self.steps == 0 {
                    let span = text.as_ref().map(|t| t.span).unwrap_or_default();
                    self.err(span, "`expect log` judges the log lines of the step before it, and there is none yet")
                        .expected
                        .push("an operation line before this one".into());
                }
            }
        }
    }
}

/// `r` with the length of the data it is given when it names none (a
/// copy only then: this runs for every write and read of a region).
fn with_data_len(r: &Range, dlen: Option<u64>) -> std::borrow::Cow<'_, Range> {
    match (&r.len, dlen) {
        (None, Some(d)) => std::borrow::Cow::Owned(Range { len: Some(Spanned::new(d, r.span)), ..r.clone() }),
        _ => std::borrow::Cow::Borrowed(r),
    }
}

/// The step may be refused (an errno, `any`, or a choice with an errno):
/// bounds and alignment are the kernel's to judge.
fn may_refuse(e: &StepExpect) -> bool {
    match e {
        StepExpect::Any | StepExpect::Outcome(Outcome::Errno(_)) => true,
        StepExpect::OneOf(alts) => alts.iter().any(may_refuse),
        _ => false,
    }
}

/// The step is expected to fail whatever happens (no success among the
/// outcomes it allows).
fn surely_fails(e: &StepExpect) -> bool {
    match e {
        StepExpect::Outcome(o) => *o != Outcome::Ok,
        StepExpect::OneOf(alts) => alts.iter().all(surely_fails),
        _ => false,
    }
}

fn expects_count(e: &StepExpect) -> bool {
    match e {
        StepExpect::Count(_) => true,
        StepExpect::OneOf(alts) => alts.iter().any(expects_count),
        _ => false,
    }
}

/// Operations whose success is a byte count.
fn returns_count(op: &Op) -> bool {
    matches!(
        op,
        Op::Vmsplice { .. }
            | Op::Write(..)
            | Op::IoUringFixed { .. }
            | Op::ProcMemWrite { .. }
            | Op::ProcessVm { .. }
            | Op::DirectIo { .. }
    )
}

fn binds(op: &Op) -> bool {
    matches!(op, Op::Mmap(_) | Op::Mremap { .. } | Op::Pipe | Op::Memfd(..) | Op::Tmpfile(..) | Op::IoUring | Op::Gup { .. } | Op::Mmget(_))
        || matches!(op, Op::Shmget { .. } | Op::Shmat(_))
}

fn fmt_hex_size(n: u64) -> String {
    if n.is_multiple_of(1024) {
        fmt_size(n)
    } else {
        format!("{n:#x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Source;

    fn errs(src: &str) -> Vec<String> {
        let s = crate::parse::parse(src).expect("parses");
        match check(&s) {
            Ok(_) => vec![],
            Err(es) => es.iter().map(|d| d.render(&Source::new("t", src))).collect(),
        }
    }

    #[test]
    fn a_good_scenario_checks() {
        let e = errs(
            "task P\nP: A = mmap 4K\nP: write A fill 0\nP: fork C\nC: p = pipe\n\
             C: vmsplice p A 4K\nC: munmap A\nP: write A fill 0xff\nC: read p 4K expect fill 0\n\
             expect A in P changed since step 4\nC: exit\nexpect C exited\n",
        );
        assert!(e.is_empty(), "{e:?}");
    }

    #[test]
    fn use_after_exit() {
        let e = errs("task P\nP: fork C\nC: exit\nC: A = mmap 4K\n");
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("t:4:1: error: task `C` is used after it exited (line 3)"), "{}", e[0]);
    }

    #[test]
    fn killed_by_expected_signal() {
        let e = errs("task P\nP: A = mmap 4K r\nP: write A fill 1 expect SIGSEGV\nP: read A\n");
        assert!(e[0].contains("was killed by SIGSEGV (line 3)"), "{e:?}");
    }

    #[test]
    fn misaligned_and_bounds() {
        let e = errs("task P\nP: A = mmap 8K\nP: munmap A+0x100 4K\n");
        assert!(e[0].starts_with("t:3:13: error: misaligned: offset 0x100"), "{}", e[0]);
        let e = errs("task P\nP: A = mmap 8K\nP: munmap A+0x100 4K expect EINVAL\n");
        assert!(e.is_empty());
        let e = errs("task P\nP: A = mmap 4K\nP: write A+4K 4K fill 0\n");
        assert!(e[0].contains("goes past the end of `A` (4K)"), "{e:?}");
        let e = errs("task P\nP: A = mmap 2M hugetlb=2M\nP: munmap A+4K 4K\n");
        assert!(e[0].contains("multiple of the 2M page size"), "{e:?}");
    }

    #[test]
    fn names_and_kinds() {
        let e = errs("task P\nP: munmap B\n");
        assert!(e[0].starts_with("t:2:11: error: unknown name `B`"), "{e:?}");
        let e = errs("task P\nP: fork C\nC: A = mmap 4K\nP: munmap A\n");
        assert!(e[0].contains("task P has no `A`"), "{e:?}");
        let e = errs("task P\nP: p = pipe\nP: munmap p\n");
        assert!(e[0].contains("`p` is a pipe"), "{e:?}");
        let e = errs("task P\nP: A = mmap 4K\nP: A = mmap 4K\n");
        assert!(e[0].contains("`A` is already defined"), "{e:?}");
        let e = errs("task P\nQ: A = mmap 4K\n");
        assert!(e[0].starts_with("t:2:1: error: unknown task `Q`"), "{e:?}");
    }

    #[test]
    fn empty_pipe() {
        let e = errs("task P\nP: p = pipe\nP: read p 4K expect fill 0\n");
        assert!(e[0].starts_with("t:3:9: error: pipe `p` has no data here"), "{e:?}");
    }

    #[test]
    fn same_as_needs_an_earlier_read() {
        let e = errs("task P\nP: A = mmap 4K\nP: read A expect same as step 1\n");
        assert!(e[0].contains("step 1 is not an earlier `read`") && e[0].contains("none yet"), "{e:?}");
        let e = errs("task P\nP: A = mmap 4K\nP: read A\nP: read A expect same as step 3\n");
        assert!(e[0].contains("step 3 is not an earlier `read`") && e[0].contains("read steps 2"), "{e:?}");
        assert!(errs("task P\nP: A = mmap 4K\nP: read A\nP: fork C\nC: read A expect same as step 2\n").is_empty());
    }

    #[test]
    fn since_needs_an_earlier_step() {
        let e = errs("task P\nP: A = mmap 4K\nexpect A in P changed since step 2\n");
        assert!(e[0].contains("there is no step 2"), "{e:?}");
    }

    #[test]
    fn since_a_step_before_the_task_existed() {
        let e = errs("task P\nP: A = mmap 4K\nP: fork C\nexpect A in C unchanged since step 1\n");
        assert!(e[0].contains("task C did not exist yet at step 1 (it was forked at step 2)"), "{e:?}");
    }

    #[test]
    fn pins_are_not_inherited() {
        let e = errs("task P\nP: A = mmap 4K\nP: h = pin_user_pages A 4K\nP: fork C\nC: unpin h\n");
        assert!(e[0].contains("task C has no `h`"), "{e:?}");
    }

    #[test]
    fn needs_are_recorded() {
        let s = crate::parse::parse("task P\nP: A = mmap 4K\nP: h = pin_user_pages A 4K\n").unwrap();
        let c = check(&s).unwrap();
        assert_eq!(c.needs, vec![(2, Feature::Gup)]);
        assert_eq!(c.step_of_item, vec![None, Some(1), Some(2)]);
    }
}
