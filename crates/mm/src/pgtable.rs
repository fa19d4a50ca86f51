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
    Swap {
        slot: SwapSlot,
        exclusive: bool,
        soft_dirty: bool,
    },
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

/// Entries per PTE table.
const PTRS_PER_PTE: usize = 512;

/// One PTE table (the page-table page below a PMD): 512 slots and a count
/// of the used ones. Empty tables stay until their range is unmapped, as in
/// the kernel, so a zapped range keeps `pmd_none()` false.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PteTable {
    slots: Box<[Option<Entry>; PTRS_PER_PTE]>,
    used: u16,
    /// The PMD no longer points here (a THP collapse cleared it with
    /// `pmdp_collapse_flush()`), but the table and its entries still exist:
    /// a GUP-fast walker that read the PMD before reads them through its
    /// stale pointer, and the collapse either puts the table back or
    /// replaces it by a huge PMD.
    detached: bool,
}

impl PteTable {
    fn new() -> Self {
        PteTable { slots: Box::new([None; PTRS_PER_PTE]), used: 0, detached: false }
    }
}

/// What a PMD holds, as GUP-fast compares it (`pmd_val()`): nothing, a
/// PTE table, or a leaf. The model has one table per PMD range for its
/// whole life, so "the same table" is all a table value says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PmdVal {
    None,
    Table,
    Leaf(Entry),
}

fn pte_index(addr: u64) -> usize {
    ((addr / PAGE_SIZE) % PTRS_PER_PTE as u64) as usize
}

/// One address space's page tables: PTE tables per PMD range, PMD leaves
/// and PUD leaves, each keyed by virtual address.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PageTable {
    tables: BTreeMap<u64, PteTable>,
    pmds: BTreeMap<u64, Entry>,
    puds: BTreeMap<u64, Entry>,
}

impl PageTable {
    /// The leaf entry at exactly `addr` on `level` (aligned by the caller).
    pub fn get(&self, level: Level, addr: u64) -> Option<Entry> {
        match level {
            Level::Pte => self.tables.get(&(addr & !(PMD_SIZE - 1))).and_then(|t| t.slots[pte_index(addr)]),
            Level::Pmd => self.pmds.get(&addr).copied(),
            Level::Pud => self.puds.get(&addr).copied(),
        }
    }

    pub fn get_mut(&mut self, level: Level, addr: u64) -> Option<&mut Entry> {
        match level {
            Level::Pte => self.tables.get_mut(&(addr & !(PMD_SIZE - 1))).and_then(|t| t.slots[pte_index(addr)].as_mut()),
            Level::Pmd => self.pmds.get_mut(&addr),
            Level::Pud => self.puds.get_mut(&addr),
        }
    }

    pub fn set(&mut self, level: Level, addr: u64, e: Entry) {
        debug_assert_eq!(addr % level.size(), 0);
        match level {
            Level::Pte => {
                let t = self.tables.entry(addr & !(PMD_SIZE - 1)).or_insert_with(PteTable::new);
                let slot = &mut t.slots[pte_index(addr)];
                if slot.is_none() {
                    t.used += 1;
                }
                *slot = Some(e);
            }
            Level::Pmd => {
                self.pmds.insert(addr, e);
            }
            Level::Pud => {
                self.puds.insert(addr, e);
            }
        }
    }

    pub fn clear(&mut self, level: Level, addr: u64) -> Option<Entry> {
        match level {
            Level::Pte => {
                let t = self.tables.get_mut(&(addr & !(PMD_SIZE - 1)))?;
                let old = t.slots[pte_index(addr)].take();
                if old.is_some() {
                    t.used -= 1;
                }
                old
            }
            Level::Pmd => self.pmds.remove(&addr),
            Level::Pud => self.puds.remove(&addr),
        }
    }

    /// `free_pgtables()`: drop empty PTE tables whose whole PMD range lies in
    /// `[start, end)` or is no longer covered by any VMA (`covered` says).
    pub fn free_empty_tables(&mut self, start: u64, end: u64, covered: impl Fn(u64, u64) -> bool) {
        let lo = start & !(PMD_SIZE - 1);
        let gone: Vec<u64> =
            self.tables.range(lo..end).filter(|(a, t)| t.used == 0 && !covered(**a, **a + PMD_SIZE)).map(|(a, _)| *a).collect();
        for a in gone {
            self.tables.remove(&a);
        }
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

    /// `pmd_none()` for the PMD covering `addr`: no leaf and no PTE table
    /// (a detached table does not count).
    pub fn pmd_none(&self, addr: u64) -> bool {
        self.pmd_val(addr) == PmdVal::None
    }

    /// `pmd_val()` of the PMD covering `addr`.
    pub fn pmd_val(&self, addr: u64) -> PmdVal {
        let a = addr & !(PMD_SIZE - 1);
        if let Some(e) = self.pmds.get(&a) {
            return PmdVal::Leaf(*e);
        }
        match self.tables.get(&a) {
            Some(t) if !t.detached => PmdVal::Table,
            _ => PmdVal::None,
        }
    }

    /// `pmdp_collapse_flush()`: the PMD at `haddr` stops pointing to its PTE
    /// table; false if there is no attached table.
    pub fn pmd_detach_table(&mut self, haddr: u64) -> bool {
        match self.tables.get_mut(&haddr) {
            Some(t) if !t.detached => {
                t.detached = true;
                true
            }
            _ => false,
        }
    }

    /// `pmd_populate()` with the table taken by [`PageTable::pmd_detach_table`].
    pub fn pmd_reattach_table(&mut self, haddr: u64) {
        if let Some(t) = self.tables.get_mut(&haddr) {
            t.detached = false;
        }
    }

    /// The table at `haddr` leaves the page tables for good (collapse
    /// deposits it under the new huge PMD); its entries must be gone.
    pub fn pmd_drop_table(&mut self, haddr: u64) {
        if self.tables.get(&haddr).is_some_and(|t| t.used == 0) {
            self.tables.remove(&haddr);
        }
    }

    /// `pud_none()` for the PUD covering `addr`.
    pub fn pud_none(&self, addr: u64) -> bool {
        let a = addr & !(PUD_SIZE - 1);
        !self.puds.contains_key(&a)
            && self.pmds.range(a..a + PUD_SIZE).next().is_none()
            && self.tables.range(a..a + PUD_SIZE).next().is_none()
    }

    /// True when no PTE in `[start, end)` is set (used to pick mTHP orders).
    pub fn ptes_none(&self, start: u64, end: u64) -> bool {
        let mut a = start;
        while a < end {
            if self.get(Level::Pte, a).is_some() {
                return false;
            }
            a += PAGE_SIZE;
        }
        true
    }

    /// The PTE leaves in `[start, end)`, in address order, as they are
    /// reached (no list is built).
    pub fn ptes_in(&self, start: u64, end: u64) -> impl Iterator<Item = Leaf> + '_ {
        let lo = start & !(PMD_SIZE - 1);
        self.tables.range(lo..end).flat_map(move |(&base, t)| {
            let first = if base < start { pte_index(start) } else { 0 };
            let last = if base + PMD_SIZE > end { ((end - base).div_ceil(PAGE_SIZE)) as usize } else { PTRS_PER_PTE };
            (first..last).filter_map(move |i| t.slots[i].map(|e| Leaf { addr: base + i as u64 * PAGE_SIZE, level: Level::Pte, entry: e }))
        })
    }

    /// All leaves intersecting `[start, end)`, in address order.
    pub fn leaves(&self, start: u64, end: u64) -> Vec<Leaf> {
        let mut out: Vec<Leaf> = self.ptes_in(start, end).collect();
        for (level, map) in [(Level::Pud, &self.puds), (Level::Pmd, &self.pmds)] {
            let lo = start & !(level.size() - 1);
            for (&a, &e) in map.range(lo..end) {
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
        self.tables.values().map(|t| t.used as usize).sum()
    }

    /// The first leaf (any level) starting at or after `addr` and before `end`.
    pub fn next_leaf(&self, addr: u64, end: u64) -> Option<Leaf> {
        let mut best: Option<Leaf> = self.ptes_in(addr, end).next();
        // A PTE in the PMD range of `addr` comes first unless a huge leaf
        // starts before it, which needs a 2 MiB-aligned start in
        // `[addr, pte)`: only `addr` itself can be one, and at equal
        // addresses the PTE is the answer. So the huge-leaf maps need no
        // look (fork's copy asks this once per page).
        if let Some(b) = best.filter(|b| b.addr & !(PMD_SIZE - 1) == addr & !(PMD_SIZE - 1)) {
            if b.addr == addr || !addr.is_multiple_of(PMD_SIZE) {
                return Some(b);
            }
        }
        for (level, map) in [(Level::Pud, &self.puds), (Level::Pmd, &self.pmds)] {
            if let Some((&a, &e)) = map.range(addr..end).next() {
                if best.is_none_or(|b| a < b.addr) {
                    best = Some(Leaf { addr: a, level, entry: e });
                }
            }
        }
        best
    }
}
