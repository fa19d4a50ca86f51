//! Differential fuzzing: random scenarios on the model and on this kernel.
//!
//! A [`Case`] is a system set-up and a list of [`FOp`]s. An operation names
//! its task, region, pipe, file or ring by a small number that [`render`]
//! takes modulo what exists at that point of the scenario, and render drops
//! an operation that has nothing to act on (a write before any mapping, a
//! fork past [`MAX_TASKS`]). So every list, generated or shrunk by
//! proptest (which removes operations and lowers numbers), renders to a
//! scenario that `scenario::load` accepts: the fuzzer never has to reject
//! a case, and a shrunk case is still a case.
//!
//! Every operation is written with `expect any`. Whether `munmap` of a
//! hugetlb range that is not aligned fails, or a write to a read-only
//! mapping kills the task, is the kernel's to say; the diff compares what
//! both backends did, so the scenario itself need not predict it.
//!
//! Only operations both backends perform are generated: no
//! `pin_user_pages`/`get_user_pages` (gup_test), no model-only
//! expectations, no policy knobs. Left out on purpose, each for a reason
//! the model cannot or should not follow:
//!
//! - 1 GiB hugetlb pages: fork on 6.18 sometimes skips copying a 1 GiB
//!   mapping at random (docs/divergences.md §1);
//! - `madvise pageout`: the model has swap, this machine has none;
//! - `madvise free|remove|cold`: not modelled (the model says EINVAL);
//! - `write` into a pipe: a full pipe blocks the kernel's writer
//!   (vmsplice is non-blocking on both sides);
//! - io_uring submissions from a task other than the ring's creator: the
//!   live agent drives each ring from the process that set it up;
//! - `madvise collapse` and page-cache mappings longer than a page: two
//!   divergences still open (docs/divergences.md §12, §13).
//!
//! [`campaign`] runs cases from a seeded generator; a case whose diff shows
//! a divergence no docs/divergences.md entry explains (see
//! [`crate::known`]) is shrunk to a minimal scenario and written out.

use crate::diff::{diff_loaded, DiffResult, Divergence};
use crate::{LiveBackend, LiveOptions};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use scenario::ast::fmt_size;
use scenario::backend::{Backend, Setting};
use scenario::model::ModelBackend;
use scenario::report::{Entry, Status};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PAGE: u64 = 4096;
const HPAGE: u64 = 2 << 20;
/// Processes per scenario, counting the first one.
pub const MAX_TASKS: usize = 4;
/// PIPE_DEF_BUFFERS: a longer vmsplice only fills what fits.
const PIPE_PAGES: u64 = 16;
/// Longest generated operation list.
pub const MAX_OPS: usize = 28;
/// hugetlb 2M pages a case may ask for; the campaign checks first that the
/// kernel can provide them.
pub const MAX_HUGETLB_PAGES: u64 = 4;

/// The THP setting of a case: `thp all never` and then this for 2M.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Thp {
    Never,
    Always,
    Madvise,
}

/// System settings, written as the scenario's header.
#[derive(Clone, Debug)]
pub struct Setup {
    pub thp: Thp,
    /// One smaller THP size (16K or 64K) set to `always`.
    pub small_thp: Option<u64>,
    pub zero_page: bool,
    pub hugetlb_pages: u64,
    pub overcommit: u64,
}

/// What a `Map` operation maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapKind {
    /// 4K to 32K of anonymous memory, private or shared.
    Anon,
    /// 64K or 128K private anon at a 64K-aligned address (mTHP sized).
    Mthp,
    /// 2M or 4M private anon at a 2M-aligned address (PMD THP).
    Thp,
    /// 2M or 4M of private MAP_HUGETLB memory (2M pages).
    Hugetlb,
    /// A mapping of a file the task has.
    File,
}

/// What a `File` operation creates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Memfd,
    MemfdHugetlb,
    Tmpfile,
}

/// A place in a region: region number, offset and length, in pages of the
/// operation's unit (4K, or 2M where the kernel needs hugetlb alignment),
/// taken modulo what fits.
#[derive(Clone, Copy, Debug)]
pub struct At {
    pub region: u8,
    pub off: u16,
    pub len: u16,
}

/// One generated operation. Numbers pick among what exists when the
/// operation is rendered (see the module documentation).
#[derive(Clone, Debug)]
pub enum FOp {
    Map {
        task: u8,
        kind: MapKind,
        size: u8,
        shared: bool,
        prot: u8,
        populate: bool,
        noreserve: bool,
        file: u8,
        offset: u8,
    },
    File {
        task: u8,
        kind: FileKind,
        size: u8,
    },
    Fork {
        task: u8,
    },
    Exit {
        task: u8,
    },
    Write {
        task: u8,
        at: At,
        byte: u8,
        one_byte: bool,
    },
    Read {
        task: u8,
        at: At,
    },
    /// A standalone `expect … present`: makes both backends observe a page.
    Observe {
        task: u8,
        at: At,
    },
    Pipe {
        task: u8,
    },
    Vmsplice {
        task: u8,
        pipe: u8,
        at: At,
    },
    ReadPipe {
        task: u8,
        pipe: u8,
        pages: u8,
    },
    FileIo {
        task: u8,
        file: u8,
        page: u8,
        write: Option<u8>,
    },
    Ring {
        task: u8,
    },
    Register {
        task: u8,
        ring: u8,
        at: At,
    },
    Fixed {
        task: u8,
        ring: u8,
        file: u8,
        write: bool,
        off: u16,
        len: u16,
        file_page: u8,
    },
    Unregister {
        task: u8,
        ring: u8,
    },
    Mprotect {
        task: u8,
        at: At,
        prot: u8,
    },
    Madvise {
        task: u8,
        at: At,
        advice: u8,
    },
    Munmap {
        task: u8,
        at: At,
    },
    Mremap {
        task: u8,
        at: At,
        pages: u16,
    },
    ClearSoftDirty {
        task: u8,
    },
}

/// One generated scenario.
#[derive(Clone, Debug)]
pub struct Case {
    pub setup: Setup,
    pub ops: Vec<FOp>,
}

const PROTS: [&str; 4] = ["rw", "rw", "r", "none"];
/// Not `pageout`: without swap the kernel reclaims no anon page (the live
/// backend skips such scenarios). Not `collapse`: the kernel's EINVAL for
/// some ranges without a whole aligned 2M block is not modelled yet
/// (divergences.md §12).
const ADVICES: [&str; 9] =
    ["dontneed", "dontfork", "dofork", "wipeonfork", "keeponfork", "hugepage", "nohugepage", "populate_read", "populate_write"];

fn at() -> impl Strategy<Value = At> {
    // Offsets near the start of a region (page 0 and 1 of a THP) matter
    // most; any other page is equally likely.
    let off = prop_oneof![Just(0u16), 0u16..4, any::<u16>()];
    let len = prop_oneof![Just(0u16), 0u16..4, any::<u16>()];
    (any::<u8>(), off, len).prop_map(|(region, off, len)| At { region, off, len })
}

fn setup() -> impl Strategy<Value = Setup> {
    let thp = prop_oneof![Just(Thp::Never), Just(Thp::Always), Just(Thp::Madvise)];
    let small = prop_oneof![3 => Just(None), 1 => Just(Some(16 << 10)), 1 => Just(Some(64 << 10))];
    (thp, small, any::<bool>(), 0..=MAX_HUGETLB_PAGES, 0u64..=1).prop_map(|(thp, small_thp, zero_page, hugetlb_pages, overcommit)| Setup {
        thp,
        small_thp,
        zero_page,
        hugetlb_pages,
        overcommit,
    })
}

fn map_kind() -> impl Strategy<Value = MapKind> {
    prop_oneof![
        4 => Just(MapKind::Anon),
        1 => Just(MapKind::Mthp),
        3 => Just(MapKind::Thp),
        3 => Just(MapKind::Hugetlb),
        2 => Just(MapKind::File),
    ]
}

fn file_kind() -> impl Strategy<Value = FileKind> {
    prop_oneof![Just(FileKind::Memfd), Just(FileKind::MemfdHugetlb), Just(FileKind::Tmpfile)]
}

/// One operation; the weights favour what makes COW happen (maps, writes,
/// forks) over what only observes.
pub fn op() -> impl Strategy<Value = FOp> {
    let t = any::<u8>;
    prop_oneof![
        5 => (t(), map_kind(), any::<u8>(), any::<bool>(), any::<u8>(), prop::bool::weighted(0.15), prop::bool::weighted(0.2), any::<u8>(), any::<u8>())
            .prop_map(|(task, kind, size, shared, prot, populate, noreserve, file, offset)| FOp::Map {
                task, kind, size, shared, prot, populate, noreserve, file, offset
            }),
        1 => (t(), file_kind(), any::<u8>()).prop_map(|(task, kind, size)| FOp::File { task, kind, size }),
        3 => t().prop_map(|task| FOp::Fork { task }),
        1 => t().prop_map(|task| FOp::Exit { task }),
        8 => (t(), at(), any::<u8>(), prop::bool::weighted(0.3)).prop_map(|(task, at, byte, one_byte)| FOp::Write { task, at, byte, one_byte }),
        3 => (t(), at()).prop_map(|(task, at)| FOp::Read { task, at }),
        2 => (t(), at()).prop_map(|(task, at)| FOp::Observe { task, at }),
        1 => t().prop_map(|task| FOp::Pipe { task }),
        2 => (t(), any::<u8>(), at()).prop_map(|(task, pipe, at)| FOp::Vmsplice { task, pipe, at }),
        2 => (t(), any::<u8>(), any::<u8>()).prop_map(|(task, pipe, pages)| FOp::ReadPipe { task, pipe, pages }),
        1 => (t(), any::<u8>(), any::<u8>(), prop::option::of(any::<u8>())).prop_map(|(task, file, page, write)| FOp::FileIo {
            task, file, page, write
        }),
        1 => t().prop_map(|task| FOp::Ring { task }),
        1 => (t(), any::<u8>(), at()).prop_map(|(task, ring, at)| FOp::Register { task, ring, at }),
        2 => (t(), any::<u8>(), any::<u8>(), any::<bool>(), any::<u16>(), any::<u16>(), any::<u8>()).prop_map(
            |(task, ring, file, write, off, len, file_page)| FOp::Fixed { task, ring, file, write, off, len, file_page }
        ),
        1 => (t(), any::<u8>()).prop_map(|(task, ring)| FOp::Unregister { task, ring }),
        2 => (t(), at(), any::<u8>()).prop_map(|(task, at, prot)| FOp::Mprotect { task, at, prot }),
        3 => (t(), at(), any::<u8>()).prop_map(|(task, at, advice)| FOp::Madvise { task, at, advice }),
        2 => (t(), at()).prop_map(|(task, at)| FOp::Munmap { task, at }),
        1 => (t(), at(), any::<u16>()).prop_map(|(task, at, pages)| FOp::Mremap { task, at, pages }),
        1 => t().prop_map(|task| FOp::ClearSoftDirty { task }),
    ]
}

/// Whole cases.
pub fn case() -> impl Strategy<Value = Case> {
    (setup(), prop::collection::vec(op(), 1..=MAX_OPS)).prop_map(|(setup, ops)| Case { setup, ops })
}

#[derive(Clone, Debug)]
enum Obj {
    /// `huge`: a hugetlb mapping (2M alignment for munmap and friends).
    Region {
        len: u64,
        huge: bool,
    },
    Pipe,
    File {
        size: u64,
        huge: bool,
    },
    /// `buf`: the range the renderer last registered (region, offset,
    /// length), so fixed I/O can pick a range inside it.
    Ring {
        owner: usize,
        buf: Option<(usize, u64, u64)>,
    },
}

#[derive(Clone, Debug)]
struct TaskSt {
    name: String,
    alive: bool,
    /// Objects this task can name, in creation order.
    sees: Vec<usize>,
}

/// The renderer's picture of the scenario so far: who exists and what they
/// can see, as the checker will see it.
struct Render {
    /// A THP size below 2M is on: what fits an mTHP must not depend on
    /// where a backend places a mapping.
    small_thp: bool,
    tasks: Vec<TaskSt>,
    objs: Vec<(String, Obj)>,
    lines: Vec<String>,
}

impl Render {
    fn task(&self, n: u8) -> Option<usize> {
        let alive: Vec<usize> = (0..self.tasks.len()).filter(|&i| self.tasks[i].alive).collect();
        (!alive.is_empty()).then(|| alive[n as usize % alive.len()])
    }

    /// The `n`th object of task `t` that `want` accepts.
    fn pick(&self, t: usize, n: u8, want: impl Fn(&Obj) -> bool) -> Option<usize> {
        let v: Vec<usize> = self.tasks[t].sees.iter().copied().filter(|&o| want(&self.objs[o].1)).collect();
        (!v.is_empty()).then(|| v[n as usize % v.len()])
    }

    fn new_obj(&mut self, t: usize, prefix: &str, obj: Obj) -> String {
        let name = format!("{prefix}{}", self.objs.len());
        self.objs.push((name.clone(), obj));
        let id = self.objs.len() - 1;
        self.tasks[t].sees.push(id);
        name
    }

    fn step(&mut self, t: usize, text: String) {
        self.lines.push(format!("{}: {text} expect any", self.tasks[t].name));
    }

    /// A range of a region of task `t`: unit 2M in hugetlb regions when
    /// `huge_unit`, else 4K; at most `max` units long.
    fn range(&self, t: usize, a: At, huge_unit: bool, max: u64) -> Option<(usize, String, u64, u64)> {
        let r = self.pick(t, a.region, |o| matches!(o, Obj::Region { .. }))?;
        self.range_in(r, a, huge_unit, max)
    }

    /// Like [`Render::range`], in region `r`.
    fn range_in(&self, r: usize, a: At, huge_unit: bool, max: u64) -> Option<(usize, String, u64, u64)> {
        let (name, Obj::Region { len, huge, .. }) = &self.objs[r] else { return None };
        let unit = if *huge && huge_unit { HPAGE } else { PAGE };
        let units = len / unit;
        if units == 0 {
            return None;
        }
        let off = a.off as u64 % units;
        let n = 1 + a.len as u64 % (units - off).min(max.max(1));
        Some((r, name.clone(), off * unit, n * unit))
    }
}

fn place(name: &str, off: u64) -> String {
    if off == 0 {
        name.to_string()
    } else {
        format!("{name}+{}", fmt_size(off))
    }
}

fn range_text(name: &str, off: u64, len: u64) -> String {
    format!("{} {}", place(name, off), fmt_size(len))
}

/// The scenario text of a case. Always accepted by `scenario::load`.
pub fn render(c: &Case) -> String {
    let s = &c.setup;
    let mut out = String::new();
    let _ = writeln!(out, "thp all never");
    match s.thp {
        Thp::Never => {}
        Thp::Always => out.push_str("thp 2M always\n"),
        Thp::Madvise => out.push_str("thp 2M madvise\n"),
    }
    if let Some(small) = s.small_thp {
        let _ = writeln!(out, "thp {} always", fmt_size(small));
    }
    let _ = writeln!(out, "thp use_zero_page {}", if s.zero_page { "on" } else { "off" });
    // 2M only: 1 GiB pages make fork nondeterministic (divergences.md §1).
    let _ = writeln!(out, "hugetlb 2M pages={} overcommit={}", s.hugetlb_pages, s.overcommit);
    out.push_str("task P\n");
    let mut r = Render {
        small_thp: s.small_thp.is_some(),
        tasks: vec![TaskSt { name: "P".into(), alive: true, sees: vec![] }],
        objs: vec![],
        lines: vec![],
    };
    for op in &c.ops {
        render_op(&mut r, op);
    }
    for l in r.lines {
        out.push_str(&l);
        out.push('\n');
    }
    out
}

fn render_op(r: &mut Render, op: &FOp) {
    let task = match op {
        FOp::Map { task, .. }
        | FOp::File { task, .. }
        | FOp::Fork { task }
        | FOp::Exit { task }
        | FOp::Write { task, .. }
        | FOp::Read { task, .. }
        | FOp::Observe { task, .. }
        | FOp::Pipe { task }
        | FOp::Vmsplice { task, .. }
        | FOp::ReadPipe { task, .. }
        | FOp::FileIo { task, .. }
        | FOp::Ring { task }
        | FOp::Register { task, .. }
        | FOp::Fixed { task, .. }
        | FOp::Unregister { task, .. }
        | FOp::Mprotect { task, .. }
        | FOp::Madvise { task, .. }
        | FOp::Munmap { task, .. }
        | FOp::Mremap { task, .. }
        | FOp::ClearSoftDirty { task } => *task,
    };
    let Some(t) = r.task(task) else { return };
    match *op {
        FOp::Map { kind, size, shared, prot, populate, noreserve, file, offset, .. } => {
            let prot = PROTS[prot as usize % PROTS.len()];
            let pop = if populate { " populate" } else { "" };
            let (text, obj) = match kind {
                MapKind::Anon => {
                    // 64K-aligned, so whether an mTHP fits does not depend
                    // on where each backend puts the mapping. Shared (shmem)
                    // mappings are one page: the model has no fault-around
                    // (divergences.md §13).
                    // With mTHP on, lengths are whole 64K blocks, so no folio
                    // can span two regions whose VMAs one backend merged.
                    let len = if shared {
                        PAGE
                    } else if r.small_thp {
                        (64 << 10) << (size % 2)
                    } else {
                        (1 + size as u64 % 8) * PAGE
                    };
                    let sh = if shared { "shared" } else { "private" };
                    (format!("mmap {} {sh} anon {prot} align=64K{pop}", fmt_size(len)), Obj::Region { len, huge: false })
                }
                MapKind::Mthp => {
                    let len = (64 << 10) << (size % 2);
                    (format!("mmap {} private anon {prot} align=64K{pop}", fmt_size(len)), Obj::Region { len, huge: false })
                }
                MapKind::Thp => {
                    let len = HPAGE << (size % 2);
                    (format!("mmap {} private anon {prot} align=2M{pop}", fmt_size(len)), Obj::Region { len, huge: false })
                }
                MapKind::Hugetlb => {
                    let len = HPAGE << (size % 2);
                    let nr = if noreserve { " noreserve" } else { "" };
                    let sh = if shared { "shared" } else { "private" };
                    (format!("mmap {} {sh} hugetlb=2M {prot}{nr}{pop}", fmt_size(len)), Obj::Region { len, huge: true })
                }
                MapKind::File => {
                    let Some(f) = r.pick(t, file, |o| matches!(o, Obj::File { .. })) else { return };
                    let (fname, Obj::File { size: fsize, huge }) = r.objs[f].clone() else { return };
                    let unit = if huge { HPAGE } else { PAGE };
                    let units = fsize / unit;
                    let off = offset as u64 % units;
                    // One page of a page-cache file: no fault-around in the
                    // model (divergences.md §13).
                    let len = if huge { (1 + size as u64 % (units - off)) * unit } else { PAGE };
                    let sh = if shared { "shared" } else { "private" };
                    let o = if off > 0 { format!(" offset={}", fmt_size(off * unit)) } else { String::new() };
                    (format!("mmap {} {sh} file {fname}{o} {prot}{pop}", fmt_size(len)), Obj::Region { len, huge })
                }
            };
            let name = r.new_obj(t, "R", obj);
            r.step(t, format!("{name} = {text}"));
        }
        FOp::File { kind, size, .. } => {
            let (text, obj) = match kind {
                FileKind::Memfd | FileKind::Tmpfile => {
                    let len = (1 + size as u64 % 8) * PAGE;
                    let what = if kind == FileKind::Memfd { "memfd" } else { "tmpfile" };
                    (format!("{what} {}", fmt_size(len)), Obj::File { size: len, huge: false })
                }
                FileKind::MemfdHugetlb => {
                    let len = HPAGE << (size % 2);
                    (format!("memfd {} hugetlb=2M", fmt_size(len)), Obj::File { size: len, huge: true })
                }
            };
            let name = r.new_obj(t, "F", obj);
            r.step(t, format!("{name} = {text}"));
        }
        FOp::Fork { .. } => {
            if r.tasks.len() >= MAX_TASKS {
                return;
            }
            let child = format!("C{}", r.tasks.len());
            let sees = r.tasks[t].sees.clone();
            r.step(t, format!("fork {child}"));
            r.tasks.push(TaskSt { name: child, alive: true, sees });
        }
        FOp::Exit { .. } => {
            // Someone must be left to run the rest.
            if t == 0 {
                return;
            }
            r.step(t, "exit".into());
            r.tasks[t].alive = false;
        }
        FOp::Write { at, byte, one_byte, .. } => {
            let Some((_, name, off, len)) = r.range(t, at, false, u64::MAX) else { return };
            if one_byte {
                r.step(t, format!("write {} bytes {byte:02x}", place(&name, off)));
            } else {
                r.step(t, format!("write {} fill 0x{byte:02x}", range_text(&name, off, len)));
            }
        }
        FOp::Read { at, .. } => {
            let Some((_, name, off, len)) = r.range(t, at, false, u64::MAX) else { return };
            r.step(t, format!("read {}", range_text(&name, off, len)));
        }
        FOp::Observe { at, .. } => {
            let Some((_, name, off, _)) = r.range(t, at, false, 1) else { return };
            let tn = r.tasks[t].name.clone();
            r.lines.push(format!("expect {} in {tn} present", place(&name, off)));
        }
        FOp::Pipe { .. } => {
            let name = r.new_obj(t, "p", Obj::Pipe);
            r.step(t, format!("{name} = pipe"));
        }
        FOp::Vmsplice { pipe, at, .. } => {
            let Some(p) = r.pick(t, pipe, |o| matches!(o, Obj::Pipe)) else { return };
            let Some((_, name, off, len)) = r.range(t, at, false, PIPE_PAGES) else { return };
            let pn = r.objs[p].0.clone();
            r.step(t, format!("vmsplice {pn} {}", range_text(&name, off, len)));
        }
        FOp::ReadPipe { pipe, pages, .. } => {
            let Some(p) = r.pick(t, pipe, |o| matches!(o, Obj::Pipe)) else { return };
            let pn = r.objs[p].0.clone();
            r.step(t, format!("read {pn} {}", fmt_size((1 + pages as u64 % PIPE_PAGES) * PAGE)));
        }
        FOp::FileIo { file, page, write, .. } => {
            let Some(f) = r.pick(t, file, |o| matches!(o, Obj::File { .. })) else { return };
            let (fname, Obj::File { size, .. }) = r.objs[f].clone() else { return };
            let off = (page as u64 % (size / PAGE)) * PAGE;
            match write {
                Some(b) => r.step(t, format!("write {} 4K fill 0x{b:02x}", place(&fname, off))),
                None => r.step(t, format!("read {} 4K", place(&fname, off))),
            }
        }
        FOp::Ring { .. } => {
            let name = r.new_obj(t, "r", Obj::Ring { owner: t, buf: None });
            r.step(t, format!("{name} = io_uring"));
        }
        FOp::Register { ring, at, .. } => {
            let Some(g) = r.pick(t, ring, |o| matches!(o, Obj::Ring { owner, .. } if *owner == t)) else { return };
            let Some((reg, name, off, len)) = r.range(t, at, false, HPAGE / PAGE) else { return };
            let gn = r.objs[g].0.clone();
            r.step(t, format!("io_uring register {gn} {}", range_text(&name, off, len)));
            r.objs[g].1 = Obj::Ring { owner: t, buf: Some((reg, off, len)) };
        }
        FOp::Fixed { ring, file, write, off, len, file_page, .. } => {
            let Some(g) = r.pick(t, ring, |o| matches!(o, Obj::Ring { owner, buf: Some(_) } if *owner == t)) else { return };
            let Some(f) = r.pick(t, file, |o| matches!(o, Obj::File { .. })) else { return };
            let Obj::Ring { buf: Some((reg, boff, blen)), .. } = r.objs[g].1 else { return };
            let (fname, Obj::File { size, .. }) = r.objs[f].clone() else { return };
            let bpages = blen / PAGE;
            let o = off as u64 % bpages;
            let fo = file_page as u64 % (size / PAGE);
            let n = 1 + len as u64 % (bpages - o).min(size / PAGE - fo);
            let (gn, rn) = (r.objs[g].0.clone(), r.objs[reg].0.clone());
            let buf = range_text(&rn, boff + o * PAGE, n * PAGE);
            let fplace = place(&fname, fo * PAGE);
            if write {
                r.step(t, format!("io_uring write_fixed {gn} {buf} to {fplace}"));
            } else {
                r.step(t, format!("io_uring read_fixed {gn} {buf} from {fplace}"));
            }
        }
        FOp::Unregister { ring, .. } => {
            let Some(g) = r.pick(t, ring, |o| matches!(o, Obj::Ring { owner, .. } if *owner == t)) else { return };
            let gn = r.objs[g].0.clone();
            r.step(t, format!("io_uring unregister {gn}"));
            r.objs[g].1 = Obj::Ring { owner: t, buf: None };
        }
        FOp::Mprotect { at, prot, .. } => {
            let Some((_, name, off, len)) = r.range(t, at, true, u64::MAX) else { return };
            let prot = PROTS[prot as usize % PROTS.len()];
            r.step(t, format!("mprotect {} {prot}", range_text(&name, off, len)));
        }
        FOp::Madvise { at, advice, .. } => {
            let Some((_, name, off, len)) = r.range(t, at, true, u64::MAX) else { return };
            let advice = ADVICES[advice as usize % ADVICES.len()];
            r.step(t, format!("madvise {} {advice}", range_text(&name, off, len)));
        }
        FOp::Munmap { at, .. } => {
            let Some((reg, name, off, len)) = r.range(t, at, true, u64::MAX) else { return };
            r.step(t, format!("munmap {}", range_text(&name, off, len)));
            // A region unmapped whole is gone: whether a later mapping lands
            // at its address depends on each backend's address allocator.
            if matches!(r.objs[reg].1, Obj::Region { len: l, .. } if off == 0 && len == l) {
                r.tasks[t].sees.retain(|&o| o != reg);
            }
        }
        FOp::Mremap { at, pages, .. } => {
            // Not hugetlb, which wants 2M lengths. Not with mTHP on: where a
            // moved range lands decides whether an mTHP fits there.
            if r.small_thp {
                return;
            }
            let Some(reg) = r.pick(t, at.region, |o| matches!(o, Obj::Region { huge: false, .. })) else { return };
            let Some((_, name, off, len)) = r.range_in(reg, at, false, u64::MAX) else { return };
            // From one page up to twice the length: shrinking, keeping the
            // size or growing (which moves it).
            let new_len = (1 + pages as u64 % (2 * len / PAGE)) * PAGE;
            let new = r.new_obj(t, "R", Obj::Region { len: new_len, huge: false });
            // The old range may now be free, and whether a later mapping
            // lands there depends on each backend's address allocator.
            r.tasks[t].sees.retain(|&o| o != reg);
            r.step(t, format!("{new} = mremap {} {}", range_text(&name, off, len), fmt_size(new_len)));
        }
        FOp::ClearSoftDirty { .. } => r.step(t, "clear_soft_dirty".into()),
    }
}

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

/// The model alone, with invariants checked after every step: a panic or a
/// broken invariant is a model bug whatever the kernel does.
pub fn model_bug(l: &scenario::Loaded) -> Option<String> {
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut m = ModelBackend::new().with_self_check(true);
        scenario::run_loaded(l, &mut m, &scenario::RunOptions::default())
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
    // A documented model bug does not stop the comparison: what the kernel
    // and the model did can still differ in a new way.
    if let Some(bug) = model_bug(&l) {
        return Verdict::ModelBug(bug);
    }
    let mut be = match LiveBackend::new(live.clone()) {
        Ok(b) => b,
        Err(e) => return Verdict::Skipped(e),
    };
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
    // pass/fail adds nothing, and would repeat a documented difference
    // unlabelled.
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

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&seed.to_le_bytes());
    b
}

/// Runs `o.cases` cases from the generator seeded with `o.seed` (the same
/// seed gives the same cases), shrinks and writes out each new finding,
/// and reports progress lines through `log`.
pub fn campaign(o: &Options, mut log: impl FnMut(&str)) -> Summary {
    let start = Instant::now();
    let config = Config { failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(o.seed)));
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

    fn loads(c: &Case) -> Result<scenario::Loaded, String> {
        let text = render(c);
        scenario::load("fuzz.cow", &text).map_err(|(src, ds)| {
            let errs: String = ds.iter().map(|d| d.render(&src)).collect();
            format!("{errs}\n--- scenario:\n{text}")
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        /// Whatever the generator makes, the checker accepts.
        #[test]
        fn every_case_renders_to_a_scenario_that_checks(c in case()) {
            if let Err(e) = loads(&c) {
                prop_assert!(false, "{}", e);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        /// The model side of a campaign: no panic, no broken invariant
        /// (checked after every step).
        #[test]
        fn the_model_runs_every_case_keeping_its_invariants(c in case()) {
            let l = loads(&c).map_err(TestCaseError::fail)?;
            if let Some(bug) = model_bug(&l) {
                prop_assert!(false, "{}\n--- scenario:\n{}", bug, render(&c));
            }
        }
    }

    /// Shrinking (dropping operations, lowering every number) keeps cases
    /// valid: walk a few value trees all the way down, checking each step.
    #[test]
    fn shrunk_cases_still_check() {
        let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(7)));
        for _ in 0..16 {
            let mut tree = case().new_tree(&mut runner).expect("a case");
            for k in 0..400 {
                loads(&tree.current()).unwrap_or_else(|e| panic!("{e}"));
                // Alternate as the shrinker does when a failure comes and goes.
                let moved = if k % 3 == 2 { tree.complicate() } else { tree.simplify() };
                if !moved && !tree.simplify() {
                    break;
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_cases() {
        let texts = |seed| {
            let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed)));
            (0..8).map(|_| render(&case().new_tree(&mut runner).expect("a case").current())).collect::<Vec<_>>()
        };
        assert_eq!(texts(1), texts(1));
        assert_ne!(texts(1), texts(2));
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
