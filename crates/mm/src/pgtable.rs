//! Page tables: leaves at PTE, PMD and PUD level (x86-64, 4 levels).
//!
//! The model keeps one ordered map of leaves per level, keyed by the leaf's
//! virtual address. A PMD "table" exists exactly when some PTE lies in its
//! range; a PUD table when some PMD leaf or PTE lies in its range. That is
//! all the kernel's walkers look at (none / present / leaf), so the three
//! maps answer every question `gup_fast_pmd_range()` and friends ask, while
//! staying `Clone + Eq + Hash` and cheap to copy at fork. Left out: page-table
//! pages themselves (their allocation and freeing), PMD sharing of hugetlb,
//! TLB state.

use crate::folio::FolioId;
use crate::types::{PAGE_SIZE, PMD_SIZE, PUD_SIZE};
use std::collections::BTreeMap;

/// Page-table level of a leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    Pte,
    Pmd,
    Pud,
}

impl Level {
    pub fn size(self) -> u64 {
        match self {
            Level::Pte => PAGE_SIZE,
            Level::Pmd => PMD_SIZE,
            Level::Pud => PUD_SIZE,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Level::Pte => "PTE",
            Level::Pmd => "PMD",
            Level::Pud => "PUD",
        }
    }
}

/// A present leaf: maps page `page` of `folio` (for PMD/PUD leaves, the
/// first page of the range they map).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Present {
    pub folio: FolioId,
    pub page: u64,
    pub write: bool,
    pub dirty: bool,
    pub young: bool,
    pub soft_dirty: bool,
    /// `pte_special()`: no struct page is to be used (the zero page, PFN
    /// maps). The huge zero PMD is not special on x86 but is recognised by
    /// its folio.
    pub special: bool,
}

/// Identifier of a swap slot on the model's swap device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SwapSlot(pub u32);

/// One leaf entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    Present(Present),
    /// A swap entry; `exclusive` is the swap PTE's anon-exclusive marker
    /// (`pte_swp_exclusive()`).
    Swap { slot: SwapSlot, exclusive: bool, soft_dirty: bool },
}

impl Entry {
    pub fn present(&self) -> Option<&Present> {
        match self {
            Entry::Present(p) => Some(p),
            Entry::Swap { .. } => None,
        }
    }

    pub fn present_mut(&mut self) -> Option<&mut Present> {
        match self {
            Entry::Present(p) => Some(p),
            Entry::Swap { .. } => None,
        }
    }
}

/// A leaf found by a walk: where it starts, its level, and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Leaf {
    pub addr: u64,
    pub level: Level,
    pub entry: Entry,
}

impl Leaf {
    /// The page within the leaf's folio that maps `addr`.
    pub fn page_for(&self, addr: u64) -> Option<(FolioId, u64)> {
        self.entry.present().map(|p| (p.folio, p.page + (addr - self.addr) / PAGE_SIZE))
    }
}

/// One address space's page tables.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PageTable {
    ptes: BTreeMap<u64, Entry>,
    pmds: BTreeMap<u64, Entry>,
    puds: BTreeMap<u64, Entry>,
}

impl PageTable {
    fn map(&self, level: Level) -> &BTreeMap<u64, Entry> {
        match level {
            Level::Pte => &self.ptes,
            Level::Pmd => &self.pmds,
            Level::Pud => &self.puds,
        }
    }

    fn map_mut(&mut self, level: Level) -> &mut BTreeMap<u64, Entry> {
        match level {
            Level::Pte => &mut self.ptes,
            Level::Pmd => &mut self.pmds,
            Level::Pud => &mut self.puds,
        }
    }

    /// The leaf entry at exactly `addr` on `level` (aligned by the caller).
    pub fn get(&self, level: Level, addr: u64) -> Option<Entry> {
        self.map(level).get(&addr).copied()
    }

    pub fn get_mut(&mut self, level: Level, addr: u64) -> Option<&mut Entry> {
        self.map_mut(level).get_mut(&addr)
    }

    pub fn set(&mut self, level: Level, addr: u64, e: Entry) {
        debug_assert_eq!(addr % level.size(), 0);
        self.map_mut(level).insert(addr, e);
    }

    pub fn clear(&mut self, level: Level, addr: u64) -> Option<Entry> {
        self.map_mut(level).remove(&addr)
    }

    /// The leaf covering `addr`, at whatever level it sits.
    pub fn lookup(&self, addr: u64) -> Option<Leaf> {
        for level in [Level::Pud, Level::Pmd, Level::Pte] {
            let a = addr & !(level.size() - 1);
            if let Some(e) = self.get(level, a) {
                return Some(Leaf { addr: a, level, entry: e });
            }
        }
        None
    }

    /// `pmd_none()` for the PMD covering `addr`: no leaf and no PTE table.
    pub fn pmd_none(&self, addr: u64) -> bool {
        let a = addr & !(PMD_SIZE - 1);
        self.get(Level::Pmd, a).is_none() && self.ptes.range(a..a + PMD_SIZE).next().is_none()
    }

    /// `pud_none()` for the PUD covering `addr`.
    pub fn pud_none(&self, addr: u64) -> bool {
        let a = addr & !(PUD_SIZE - 1);
        self.get(Level::Pud, a).is_none()
            && self.pmds.range(a..a + PUD_SIZE).next().is_none()
            && self.ptes.range(a..a + PUD_SIZE).next().is_none()
    }

    /// True when no PTE in `[start, end)` is set (used to pick mTHP orders).
    pub fn ptes_none(&self, start: u64, end: u64) -> bool {
        self.ptes.range(start..end).next().is_none()
    }

    /// All leaves intersecting `[start, end)`, in address order.
    pub fn leaves(&self, start: u64, end: u64) -> Vec<Leaf> {
        let mut out = Vec::new();
        for level in [Level::Pud, Level::Pmd, Level::Pte] {
            let lo = start & !(level.size() - 1);
            for (&a, &e) in self.map(level).range(lo..end) {
                if a + level.size() > start {
                    out.push(Leaf { addr: a, level, entry: e });
                }
            }
        }
        out.sort_by_key(|l| l.addr);
        out
    }

    /// Number of PTE leaves (for statistics and benchmarks).
    pub fn nr_ptes(&self) -> usize {
        self.ptes.len()
    }

    /// The first PTE leaf at or after `addr` and before `end`.
    pub fn next_pte(&self, addr: u64, end: u64) -> Option<(u64, Entry)> {
        self.ptes.range(addr..end).next().map(|(a, e)| (*a, *e))
    }

    /// The first leaf (any level) starting at or after `addr` and before `end`.
    pub fn next_leaf(&self, addr: u64, end: u64) -> Option<Leaf> {
        let mut best: Option<Leaf> = None;
        for level in [Level::Pud, Level::Pmd, Level::Pte] {
            if let Some((&a, &e)) = self.map(level).range(addr..end).next() {
                if best.is_none_or(|b| a < b.addr) {
                    best = Some(Leaf { addr: a, level, entry: e });
                }
            }
        }
        best
    }
}
