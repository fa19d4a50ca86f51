//! A plain description of the whole model state, for pictures and the JSON
//! trace: tasks → VMAs → page-table entries → folios, and the holders of
//! references that are not mappings (GUP handles, pipe buffers, io_uring
//! buffers, page cache, swap cache), with the hugetlb pools.
//!
//! This is not a kernel interface (no /proc file shows all of it); it is
//! what an mm developer draws on a whiteboard. It stays small at scale:
//! consecutive page-table entries that map consecutive pages of one folio,
//! or one page each of a run of small folios that look alike, are one
//! [`EntryRun`] with a count, and such small folios are one [`FolioView`]
//! with a count, so a 1 GiB region is a handful of boxes, not 262,144.

use crate::folio::{FolioId, FolioKind};
use crate::kernel::{Kernel, TaskState};
use crate::pgtable::Entry;
use crate::splice::PipeBuf;
use crate::types::{HugeSize, PAGE_SIZE};
use serde::Serialize;
use std::collections::BTreeMap;

/// The whole state at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StateView {
    pub tasks: Vec<TaskView>,
    /// Live folios that something refers to, grouped (see [`FolioView`]).
    pub folios: Vec<FolioView>,
    /// References that are not page-table mappings.
    pub holders: Vec<HolderView>,
    pub pools: Vec<PoolView>,
    /// Swap slots in use.
    pub swap_slots: usize,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskView {
    pub pid: u32,
    /// "running", "exited" or the killing signal ("SIGBUS").
    pub state: String,
    pub mm: u32,
    /// MMF_HAS_PINNED.
    pub has_pinned: bool,
    pub vmas: Vec<VmaView>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VmaView {
    pub start: u64,
    pub end: u64,
    /// "rw", "r", "w", "none".
    pub prot: String,
    /// "anon", "shmem/file inode N", with "hugetlb 2M" where it applies.
    pub backing: String,
    pub shared: bool,
    /// VM_* flags that are set, by name.
    pub flags: Vec<String>,
    pub entries: Vec<EntryRun>,
}

/// `count` consecutive leaf entries of one level that look alike.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryRun {
    pub addr: u64,
    /// "PTE", "PMD" or "PUD".
    pub level: String,
    pub count: u64,
    /// "present" or "swap".
    pub kind: String,
    /// The [`FolioView`] the entries map (present entries).
    pub folio: Option<u32>,
    /// The page of that folio the first entry maps.
    pub page: u64,
    pub write: bool,
    pub dirty: bool,
    pub special: bool,
    /// Swap entries: the anon-exclusive marker of the swap PTE.
    pub swap_exclusive: bool,
}

/// One folio, or `count` folios of one size (not hugetlb) with equal
/// counters and flags whose ids follow each other (a region filled page by
/// page; a file's consecutive page-cache folios).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FolioView {
    /// The first folio's id; the group is ids `id ..` in arena order.
    pub id: u32,
    pub count: u64,
    /// "anon", "file inode N index I", "zero".
    pub kind: String,
    /// Size of one folio in bytes.
    pub size: u64,
    pub hugetlb: bool,
    pub pfn: u64,
    pub refcount: i64,
    pub mapcount: i64,
    pub entire_mapcount: i64,
    pub pincount: i64,
    /// PageAnonExclusive: how many of the folio's pages have it.
    pub anon_exclusive_pages: u64,
    pub maybe_mapped_shared: bool,
    pub dirty: bool,
}

/// A holder of folio references that is not a mapping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HolderView {
    /// "pin", "gup", "pipe", "io_uring", "page cache", "swap cache".
    pub kind: String,
    /// Who holds it ("P2 FOLL_PIN|FOLL_LONGTERM", "pipe 7", "inode 3").
    pub label: String,
    /// The folio views it refers to, with how many page references each.
    pub folios: Vec<(u32, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoolView {
    /// "2M" or "1G".
    pub size: String,
    pub nr: u64,
    pub free: u64,
    /// Signed: the kernel's counter wraps below zero for a while.
    pub resv: i64,
    pub surplus: u64,
}

/// What makes small folios interchangeable in a picture.
#[derive(PartialEq, Eq)]
struct FolioLook {
    kind: &'static str,
    order: u8,
    hugetlb: bool,
    refcount: i64,
    mapcount: i64,
    pincount: i64,
    ae: u64,
    shared: bool,
    dirty: bool,
}

fn kind_name(k: FolioKind) -> String {
    match k {
        FolioKind::Anon => "anon".into(),
        FolioKind::Zero => "zero".into(),
        FolioKind::File { inode, index } => format!("file inode {} index {index}", inode.0),
    }
}

fn huge_name(h: HugeSize) -> &'static str {
    match h {
        HugeSize::Size2M => "2M",
        HugeSize::Size1G => "1G",
    }
}

/// A holder's kind, its label and the (folio, page) references it holds.
type Holder = (String, String, Vec<(FolioId, u64)>);

impl Kernel {
    /// Every reference to a folio that is not a mapping, per holder.
    fn reference_holders(&self) -> Vec<Holder> {
        let mut out = Vec::new();
        for (h, r) in &self.gup {
            let mut flags = vec![if r.pin { "FOLL_PIN" } else { "FOLL_GET" }];
            if r.write {
                flags.push("FOLL_WRITE");
            }
            if r.longterm {
                flags.push("FOLL_LONGTERM");
            }
            let kind = if r.pin { "pin" } else { "gup" };
            out.push((kind.to_string(), format!("P{} handle {} {}", r.pid.0, h.0, flags.join("|")), r.pages.iter().collect()));
        }
        for (id, p) in &self.pipes {
            let pages: Vec<(FolioId, u64)> = p
                .bufs
                .iter()
                .filter_map(|b| match b {
                    PipeBuf::Page { folio, page, .. } => Some((*folio, *page)),
                    PipeBuf::Copy(_) => None,
                })
                .collect();
            if !pages.is_empty() {
                out.push(("pipe".into(), format!("pipe {}", id.0), pages));
            }
        }
        for (id, ring) in &self.rings {
            let pages: Vec<(FolioId, u64)> = ring.bufs.iter().flatten().flat_map(|b| b.pages.iter()).collect();
            if !pages.is_empty() {
                out.push(("io_uring".into(), format!("io_uring {} fixed buffers", id.0), pages));
            }
        }
        for (id, inode) in &self.inodes {
            let pages: Vec<(FolioId, u64)> = inode.cache.values().map(|&f| (f, 0)).collect();
            if !pages.is_empty() {
                out.push(("page cache".into(), format!("inode {} ({:?})", id.0, inode.kind), pages));
            }
        }
        let cached: Vec<(FolioId, u64)> = self.swap.iter().filter_map(|(_, s)| s.cache.map(|f| (f, 0))).collect();
        if !cached.is_empty() {
            out.push(("swap cache".into(), "swap cache".into(), cached));
        }
        out
    }

    fn folio_look(&self, id: FolioId) -> FolioLook {
        let f = self.folios.get(id);
        FolioLook {
            kind: match f.kind {
                FolioKind::Anon => "anon",
                FolioKind::Zero => "zero",
                FolioKind::File { .. } => "file",
            },
            order: f.order,
            hugetlb: f.hugetlb.is_some(),
            refcount: f.refcount,
            mapcount: f.mapcount,
            pincount: f.pincount,
            ae: (0..f.nr_pages()).filter(|&p| f.page_ae(p)).count() as u64,
            shared: f.maybe_mapped_shared(),
            dirty: f.dirty,
        }
    }

    /// The state as [`StateView`] describes it.
    pub fn view(&self) -> StateView {
        let holders = self.reference_holders();
        // Folios that something refers to, in id order.
        let mut referenced: BTreeMap<FolioId, ()> = BTreeMap::new();
        for m in self.mms.values() {
            for l in m.pt.leaves(0, crate::types::TASK_SIZE) {
                if let Some(p) = l.entry.present() {
                    referenced.insert(p.folio, ());
                }
            }
        }
        for (_, _, pages) in &holders {
            for &(f, _) in pages {
                referenced.insert(f, ());
            }
        }
        // Group runs of alike folios with consecutive ids (page-cache folios
        // also need consecutive indices of one file); hugetlb pages are few
        // and each is drawn.
        let mut group_of: BTreeMap<FolioId, u32> = BTreeMap::new();
        let mut folios: Vec<FolioView> = Vec::new();
        let mut last: Option<(FolioId, FolioLook)> = None;
        for &id in referenced.keys() {
            let f = self.folios.get(id);
            let look = self.folio_look(id);
            let follows_in_file = |prev: FolioId| match (self.folios.get(prev).kind, f.kind) {
                (FolioKind::File { inode: a, index: i }, FolioKind::File { inode: b, index: j }) => a == b && i + f.nr_pages() == j,
                (FolioKind::File { .. }, _) | (_, FolioKind::File { .. }) => false,
                _ => true,
            };
            let joins =
                f.hugetlb.is_none() && last.as_ref().is_some_and(|(prev, l)| prev.0 + 1 == id.0 && *l == look && follows_in_file(*prev));
            if joins {
                let g = folios.last_mut().expect("a group precedes a joining folio");
                g.count += 1;
                group_of.insert(id, g.id);
            } else {
                folios.push(FolioView {
                    id: id.0,
                    count: 1,
                    kind: kind_name(f.kind),
                    size: f.size(),
                    hugetlb: f.hugetlb.is_some(),
                    pfn: f.pfn,
                    refcount: f.refcount,
                    mapcount: f.mapcount,
                    entire_mapcount: f.entire_mapcount,
                    pincount: f.pincount,
                    anon_exclusive_pages: look.ae,
                    maybe_mapped_shared: look.shared,
                    dirty: f.dirty,
                });
                group_of.insert(id, id.0);
            }
            last = Some((id, look));
        }
        let holders = holders
            .into_iter()
            .map(|(kind, label, pages)| {
                let mut per: BTreeMap<u32, u64> = BTreeMap::new();
                for (f, _) in pages {
                    *per.entry(group_of[&f]).or_default() += 1;
                }
                HolderView { kind, label, folios: per.into_iter().collect() }
            })
            .collect();
        let tasks = self
            .tasks
            .values()
            .map(|t| {
                let m = &self.mms[&t.mm];
                let alive = t.state == TaskState::Running;
                let vmas = if alive { m.vmas.values().map(|v| self.vma_view(m, v, &group_of)).collect() } else { Vec::new() };
                TaskView {
                    pid: t.pid.0,
                    state: match t.state {
                        TaskState::Running => "running".into(),
                        TaskState::Exited => "exited".into(),
                        TaskState::Killed(s) => s.name().to_string(),
                    },
                    mm: t.mm.0,
                    has_pinned: m.has_pinned,
                    vmas,
                }
            })
            .collect();
        let pools = [HugeSize::Size2M, HugeSize::Size1G]
            .into_iter()
            .filter_map(|h| {
                let p = self.hstates.get(h)?;
                Some(PoolView { size: huge_name(h).into(), nr: p.nr, free: p.free, resv: p.resv as i64, surplus: p.surplus })
            })
            .collect();
        StateView { tasks, folios, holders, pools, swap_slots: self.swap.len() }
    }

    fn vma_view(&self, m: &crate::kernel::Mm, v: &crate::vma::Vma, group_of: &BTreeMap<FolioId, u32>) -> VmaView {
        let mut flags = Vec::new();
        for (on, name) in [
            (v.dontcopy, "VM_DONTCOPY"),
            (v.wipeonfork, "VM_WIPEONFORK"),
            (v.hugepage, "VM_HUGEPAGE"),
            (v.nohugepage, "VM_NOHUGEPAGE"),
            (v.noreserve, "VM_NORESERVE"),
            (v.maywrite, "VM_MAYWRITE"),
        ] {
            if on {
                flags.push(name.to_string());
            }
        }
        let mut backing = match v.inode() {
            None => "anon".to_string(),
            Some(i) => format!("inode {}", i.0),
        };
        if let Some(h) = v.hugetlb {
            backing.push_str(&format!(" hugetlb {}", huge_name(h)));
        }
        let mut entries: Vec<EntryRun> = Vec::new();
        // The folio id the previous entry mapped, to tell a continuing run.
        let mut prev_folio: Option<FolioId> = None;
        for leaf in m.pt.leaves(v.start, v.end) {
            let level = leaf.level.name().to_string();
            let run = match leaf.entry {
                Entry::Present(p) => EntryRun {
                    addr: leaf.addr,
                    level,
                    count: 1,
                    kind: "present".into(),
                    folio: Some(group_of[&p.folio]),
                    page: p.page,
                    write: p.write,
                    dirty: p.dirty,
                    special: p.special,
                    swap_exclusive: false,
                },
                Entry::Swap { exclusive, .. } => EntryRun {
                    addr: leaf.addr,
                    level,
                    count: 1,
                    kind: "swap".into(),
                    folio: None,
                    page: 0,
                    write: false,
                    dirty: false,
                    special: false,
                    swap_exclusive: exclusive,
                },
            };
            let this_folio = leaf.entry.present().map(|p| p.folio);
            let continues = entries.last().is_some_and(|r| {
                let size = leaf.level.size();
                let next_addr = r.addr + r.count * size;
                let alike = r.level == run.level
                    && r.kind == run.kind
                    && r.write == run.write
                    && r.dirty == run.dirty
                    && r.special == run.special
                    && r.swap_exclusive == run.swap_exclusive;
                let same_folio_next_page =
                    r.folio == run.folio && prev_folio == this_folio && run.page == r.page + r.count * (size / PAGE_SIZE);
                // One page each of consecutive folios of one group.
                let next_folio_of_group =
                    r.folio == run.folio && prev_folio.zip(this_folio).is_some_and(|(a, b)| a.0 + 1 == b.0) && r.page == 0 && run.page == 0;
                let swap = r.kind == "swap";
                alike && next_addr == leaf.addr && (swap || same_folio_next_page || next_folio_of_group)
            });
            if continues {
                entries.last_mut().expect("checked").count += 1;
            } else {
                entries.push(run);
            }
            prev_folio = this_folio;
        }
        VmaView { start: v.start, end: v.end, prot: v.prot.to_string(), backing, shared: v.shared, flags, entries }
    }
}
