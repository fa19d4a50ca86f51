//! Page tables: leaves at PTE, PMD and PUD level (x86-64, 4 levels).
//!
//! PTE tables sit where the kernel keeps them: in a PMD table of 512 slots
//! per 1 GiB (PUD) range, found by the range's address (a short sorted
//! list: an address space spans one or a few such ranges), so a walk indexes
//! its way down as `pmd_offset()` / `pte_offset_map()` do instead of
//! searching one big map per page. PMD and PUD leaves (rare: THP and
//! hugetlb) are kept in ordered maps keyed by address. A PMD "table" exists
//! exactly when some PTE lies in its range; a PUD table when some PMD leaf
//! or PTE lies in its range. That is all the kernel's walkers look at
//! (none / present / leaf), so these answer every question
//! `gup_fast_pmd_range()` and friends ask, while staying `Clone + Eq +
//! Hash`. Left out: page-table pages themselves (their allocation and
//! freeing), PMD sharing of hugetlb, TLB state.

use crate::folio::FolioId;
use crate::types::{PAGE_SIZE, PMD_SIZE, PUD_SIZE};
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    /// The whole entry in one number, different for different entries
    /// (bits 0-63 the page, 64-95 the folio or swap slot, 96-100 the flags,
    /// 101 swap or not), so that hashing it is one write instead of eight.
    fn word(&self) -> u128 {
        match *self {
            Entry::Present(Present { folio, page, write, dirty, young, soft_dirty, special }) => {
                let flags =
                    write as u128 | (dirty as u128) << 1 | (young as u128) << 2 | (soft_dirty as u128) << 3 | (special as u128) << 4;
                page as u128 | (folio.0 as u128) << 64 | flags << 96
            }
            Entry::Swap { slot, exclusive, soft_dirty } => {
                let flags = exclusive as u128 | (soft_dirty as u128) << 1;
                (slot.0 as u128) << 64 | flags << 96 | 1 << 101
            }
        }
    }

    pub fn present(&self) -> Option<&Present> {
        match self {
            Entry::Present(p) => Some(p),
            Entry::Swap { .. } => None,
        }
    }
}

impl Hash for Entry {
    fn hash<H: Hasher>(&self, h: &mut H) {
        h.write_u128(self.word());
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

/// Entries per PTE table, and PMD slots per PMD table.
const PTRS_PER_PTE: usize = 512;
const PTRS_PER_PMD: usize = 512;

/// One PTE slot packed into a word, as the kernel's `pte_t` is one: 0 is
/// `pte_none()`, otherwise bit 0 is set, bit 1 says swap entry, and
///
/// - present: bits 2-6 write, dirty, young, soft-dirty, special; bits 7-31
///   the page within the folio; bits 32-63 the folio;
/// - swap: bit 2 exclusive, bit 3 soft-dirty; bits 32-63 the slot.
///
/// A PTE table is then 4 KiB like the kernel's, a third of the [`Entry`]
/// it encodes: walks over many PTEs (fork, GUP, zap, clone of a state)
/// move a third of the bytes, and a fork allocates a third as much for the
/// child's tables. One entry has one encoding, so equal tables are equal
/// words.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PteSlot(u64);

/// Bits of the page index in a present [`PteSlot`]: enough for a page of
/// the largest folio (1 GiB, 2^18 pages).
const PTE_PAGE_BITS: u32 = 25;

impl PteSlot {
    const NONE: PteSlot = PteSlot(0);
    /// The two low bits, and their value in a present PTE and in a swap
    /// entry (0 is `pte_none()`).
    const KIND: u64 = 0b11;
    const PRESENT: u64 = 0b01;
    const SWAP: u64 = 0b11;
    // A present PTE's bits.
    const WRITE: u64 = 1 << 2;
    const DIRTY: u64 = 1 << 3;
    const YOUNG: u64 = 1 << 4;
    const SOFT_DIRTY: u64 = 1 << 5;
    const SPECIAL: u64 = 1 << 6;
    /// Where the page index within the folio starts.
    const PAGE_SHIFT: u32 = 7;
    /// Page 1 within the folio.
    const PAGE_ONE: u64 = 1 << Self::PAGE_SHIFT;
    // A swap entry's bits.
    const SWAP_EXCLUSIVE: u64 = 1 << 2;
    const SWAP_SOFT_DIRTY: u64 = 1 << 3;
    /// Where the folio (present) or the swap slot (swap) starts.
    const ID_SHIFT: u32 = 32;
    /// Dirty, young and soft-dirty: what the model sets in a PTE a store
    /// goes through (as `touch()` in memory.rs does for a write).
    const TOUCHED_BY_WRITE: u64 = Self::DIRTY | Self::YOUNG | Self::SOFT_DIRTY;
    /// What a PTE in a store's run must match: the kind, write and special
    /// bits, the page and the folio (everything but dirty, young and
    /// soft-dirty).
    const RUN_MASK: u64 = !Self::TOUCHED_BY_WRITE;

    pub(crate) fn new(e: Entry) -> Self {
        let bit = |on: bool, b: u64| if on { b } else { 0 };
        PteSlot(match e {
            Entry::Present(Present { folio, page, write, dirty, young, soft_dirty, special }) => {
                debug_assert!(page < 1 << PTE_PAGE_BITS, "a PTE maps a page of its folio");
                Self::PRESENT
                    | bit(write, Self::WRITE)
                    | bit(dirty, Self::DIRTY)
                    | bit(young, Self::YOUNG)
                    | bit(soft_dirty, Self::SOFT_DIRTY)
                    | bit(special, Self::SPECIAL)
                    | page << Self::PAGE_SHIFT
                    | (folio.0 as u64) << Self::ID_SHIFT
            }
            Entry::Swap { slot, exclusive, soft_dirty } => {
                Self::SWAP
                    | bit(exclusive, Self::SWAP_EXCLUSIVE)
                    | bit(soft_dirty, Self::SWAP_SOFT_DIRTY)
                    | (slot.0 as u64) << Self::ID_SHIFT
            }
        })
    }

    /// The entry, `None` for `pte_none()`.
    pub(crate) fn get(self) -> Option<Entry> {
        let w = self.0;
        let has = |b: u64| w & b != 0;
        match w & Self::KIND {
            Self::PRESENT => Some(Entry::Present(Present {
                folio: FolioId((w >> Self::ID_SHIFT) as u32),
                page: w >> Self::PAGE_SHIFT & ((1 << PTE_PAGE_BITS) - 1),
                write: has(Self::WRITE),
                dirty: has(Self::DIRTY),
                young: has(Self::YOUNG),
                soft_dirty: has(Self::SOFT_DIRTY),
                special: has(Self::SPECIAL),
            })),
            Self::SWAP => Some(Entry::Swap {
                slot: SwapSlot((w >> Self::ID_SHIFT) as u32),
                exclusive: has(Self::SWAP_EXCLUSIVE),
                soft_dirty: has(Self::SWAP_SOFT_DIRTY),
            }),
            _ => None,
        }
    }

    fn is_some(self) -> bool {
        self.0 != 0
    }
}

impl std::fmt::Debug for PteSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.get().fmt(f)
    }
}

/// One PTE table (the page-table page below a PMD): 512 slots and a count
/// of the used ones. Empty tables stay until their range is unmapped, as in
/// the kernel, so a zapped range keeps `pmd_none()` false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PteTable {
    slots: Box<[PteSlot; PTRS_PER_PTE]>,
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
        // Built in place (zeroed memory from the allocator), not made on
        // the stack and moved.
        let slots = vec![PteSlot::NONE; PTRS_PER_PTE].into_boxed_slice().try_into().expect("PTRS_PER_PTE slots");
        PteTable { slots, used: 0, detached: false }
    }
}

impl Hash for PteTable {
    /// The used slots with their indices: the same value as hashing all
    /// 512 slots (equal tables hash equal, the encoding is unambiguous)
    /// for a fraction of the work in sparse tables (the explorer hashes
    /// every state it meets).
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.used.hash(h);
        self.detached.hash(h);
        for (i, e) in self.slots.iter().enumerate() {
            if e.is_some() {
                h.write_u128(e.0 as u128 | (i as u128) << 64);
            }
        }
    }
}

/// The PTE tables of one 1 GiB (PUD) range, indexed by PMD slot, and how
/// many there are (a range without any is not kept, so that equal page
/// tables are equal values).
#[derive(Clone, Debug, PartialEq, Eq)]
struct PmdTable {
    tables: Box<[Option<PteTable>; PTRS_PER_PMD]>,
    nr: u16,
}

impl PmdTable {
    fn new() -> Self {
        let tables = std::iter::repeat_with(|| None).take(PTRS_PER_PMD).collect::<Box<[_]>>().try_into().expect("PTRS_PER_PMD slots");
        PmdTable { tables, nr: 0 }
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

fn pmd_index(addr: u64) -> usize {
    ((addr / PMD_SIZE) % PTRS_PER_PMD as u64) as usize
}

/// One address space's page tables: PTE tables in PMD tables keyed by
/// their 1 GiB range, PMD leaves and PUD leaves keyed by virtual address.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PageTable {
    /// The PMD tables by the start of their 1 GiB range, in address order.
    /// A sorted vector rather than a map: it holds one or a few tables, and
    /// every PTE lookup starts here, so a binary search over a slice beats
    /// a B-tree descent (one key per range, so equal tables are equal
    /// vectors).
    pmd_tables: Vec<(u64, PmdTable)>,
    pmds: BTreeMap<u64, Entry>,
    puds: BTreeMap<u64, Entry>,
}

impl Hash for PageTable {
    /// Every PTE table with its address, then the huge leaves (what the
    /// derived hash of one map of tables by address would cover).
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.pmd_tables.iter().map(|(_, d)| d.nr as usize).sum::<usize>().hash(h);
        for (a, t) in self.tables_in(0, u64::MAX) {
            a.hash(h);
            t.hash(h);
        }
        self.pmds.hash(h);
        self.puds.hash(h);
    }
}

impl PageTable {
    /// Where the PMD table of the 1 GiB range of `addr` is in `pmd_tables`
    /// (`Ok`), or would go (`Err`).
    fn pmd_table_pos(&self, addr: u64) -> Result<usize, usize> {
        let base = addr & !(PUD_SIZE - 1);
        self.pmd_tables.binary_search_by_key(&base, |&(b, _)| b)
    }

    /// The PTE table for the PMD range of `addr` (`pmd_offset()` then the
    /// table it points to; detached tables included).
    fn table(&self, addr: u64) -> Option<&PteTable> {
        let i = self.pmd_table_pos(addr).ok()?;
        self.pmd_tables[i].1.tables[pmd_index(addr)].as_ref()
    }

    /// [`PageTable::table`] for changing the table. Kept out of line: its
    /// binary search inlined into fork's `copy_pte_table` made that loop
    /// too big for LLVM to inline the per-entry helpers of fork.rs into
    /// it (`fork_pages 65536 1`: 9.4 M instructions in fork instead of
    /// 15.5 M).
    #[inline(never)]
    fn table_mut(&mut self, addr: u64) -> Option<&mut PteTable> {
        let i = self.pmd_table_pos(addr).ok()?;
        self.pmd_tables[i].1.tables[pmd_index(addr)].as_mut()
    }

    /// The PTE table for `addr`, made if missing (`pte_alloc()`).
    fn table_alloc(&mut self, addr: u64) -> &mut PteTable {
        let i = match self.pmd_table_pos(addr) {
            Ok(i) => i,
            Err(i) => {
                self.pmd_tables.insert(i, (addr & !(PUD_SIZE - 1), PmdTable::new()));
                i
            }
        };
        let d = &mut self.pmd_tables[i].1;
        let slot = &mut d.tables[pmd_index(addr)];
        if slot.is_none() {
            d.nr += 1;
        }
        slot.get_or_insert_with(PteTable::new)
    }

    /// Drops the PTE table at the PMD-aligned `haddr`.
    fn remove_table(&mut self, haddr: u64) {
        let Ok(i) = self.pmd_table_pos(haddr) else { return };
        let d = &mut self.pmd_tables[i].1;
        if d.tables[pmd_index(haddr)].take().is_some() {
            d.nr -= 1;
            if d.nr == 0 {
                self.pmd_tables.remove(i);
            }
        }
    }

    /// The PTE tables whose PMD range starts in `[lo, end)`, in address
    /// order, with their addresses.
    fn tables_in(&self, lo: u64, end: u64) -> impl Iterator<Item = (u64, &PteTable)> + '_ {
        let first_range = self.pmd_tables.partition_point(|&(b, _)| b < lo & !(PUD_SIZE - 1));
        let end_range = self.pmd_tables.partition_point(|&(b, _)| b < end);
        self.pmd_tables[first_range..end_range.max(first_range)].iter().flat_map(move |&(base, ref d)| {
            let first = if base < lo { (lo - base).div_ceil(PMD_SIZE) as usize } else { 0 };
            let last = if end - base < PUD_SIZE { (end - base).div_ceil(PMD_SIZE) as usize } else { PTRS_PER_PMD };
            d.tables[first.min(last)..last]
                .iter()
                .enumerate()
                .filter_map(move |(i, t)| t.as_ref().map(|t| (base + (first + i) as u64 * PMD_SIZE, t)))
        })
    }

    /// The leaf entry at exactly `addr` on `level` (aligned by the caller).
    pub fn get(&self, level: Level, addr: u64) -> Option<Entry> {
        match level {
            Level::Pte => self.table(addr).and_then(|t| t.slots[pte_index(addr)].get()),
            Level::Pmd => self.pmds.get(&addr).copied(),
            Level::Pud => self.puds.get(&addr).copied(),
        }
    }

    /// Changes the leaf entry at exactly `addr` on `level` in place with
    /// `f`, if there is one (PTEs are stored packed, so there is no
    /// `&mut Entry` to hand out). True if there was an entry.
    pub fn update(&mut self, level: Level, addr: u64, f: impl FnOnce(&mut Entry)) -> bool {
        let e = match level {
            Level::Pte => {
                let Some(slot) = self.table_mut(addr).map(|t| &mut t.slots[pte_index(addr)]) else { return false };
                let Some(mut e) = slot.get() else { return false };
                f(&mut e);
                *slot = PteSlot::new(e);
                return true;
            }
            Level::Pmd => self.pmds.get_mut(&addr),
            Level::Pud => self.puds.get_mut(&addr),
        };
        e.map(f).is_some()
    }

    /// [`PageTable::update`] for a present entry: `f` changes it; swap
    /// entries and empty slots are left alone.
    pub fn update_present(&mut self, level: Level, addr: u64, f: impl FnOnce(&mut Present)) -> bool {
        let mut present = false;
        self.update(level, addr, |e| {
            if let Entry::Present(p) = e {
                present = true;
                f(p);
            }
        });
        present
    }

    /// A store's run of PTEs, found and touched in one walk: the present
    /// PTE at the page-aligned `addr` (the caller found it) and each PTE
    /// after it below `end` (into the next PTE tables too) that is
    /// present, not special, writable, and maps the next page of the same
    /// folio, up to the first that is not, are made young, dirty and
    /// soft-dirty ([`PteSlot::TOUCHED_BY_WRITE`]). Each table is
    /// looked up once, and the run is read and touched in its packed form.
    /// Returns how many PTEs were touched, the first included (none if
    /// there is no present PTE at `addr`).
    pub(crate) fn touch_write_run(&mut self, addr: u64, end: u64) -> u64 {
        let end = end.next_multiple_of(PAGE_SIZE).max(addr + PAGE_SIZE);
        // The word the next PTE must have under `PteSlot::RUN_MASK`; none
        // before the first.
        let mut next: Option<u64> = None;
        let mut a = addr;
        'tables: while a < end {
            let stop = ((a & !(PMD_SIZE - 1)) + PMD_SIZE).min(end);
            let Some(t) = self.table_mut(a) else { break };
            let first = pte_index(a);
            for slot in &mut t.slots[first..first + ((stop - a) / PAGE_SIZE) as usize] {
                let w = slot.0;
                let ok = match next {
                    None => w & PteSlot::KIND == PteSlot::PRESENT,
                    Some(want) => w & PteSlot::RUN_MASK == want,
                };
                if !ok {
                    break 'tables;
                }
                // The same folio, its next page, present, writable, not special.
                next = Some((w & PteSlot::RUN_MASK & !PteSlot::SPECIAL | PteSlot::WRITE) + PteSlot::PAGE_ONE);
                slot.0 = w | PteSlot::TOUCHED_BY_WRITE;
                a += PAGE_SIZE;
            }
        }
        (a - addr) / PAGE_SIZE
    }

    /// Sets the PTE at `addr` to `new` if it is `old` (`pte_same()` then
    /// `set_pte_at()` under the PTE lock); false, and nothing changed,
    /// otherwise.
    pub fn replace_pte(&mut self, addr: u64, old: Entry, new: Entry) -> bool {
        let Some(slot) = self.table_mut(addr).map(|t| &mut t.slots[pte_index(addr)]) else { return false };
        // Compared packed: an entry has one encoding, and none is the
        // empty word.
        if *slot != PteSlot::new(old) {
            return false;
        }
        *slot = PteSlot::new(new);
        true
    }

    pub fn set(&mut self, level: Level, addr: u64, e: Entry) {
        debug_assert_eq!(addr % level.size(), 0);
        match level {
            Level::Pte => {
                let t = self.table_alloc(addr);
                let slot = &mut t.slots[pte_index(addr)];
                if !slot.is_some() {
                    t.used += 1;
                }
                *slot = PteSlot::new(e);
            }
            Level::Pmd => {
                self.pmds.insert(addr, e);
            }
            Level::Pud => {
                self.puds.insert(addr, e);
            }
        }
    }

    /// [`PageTable::set`] of consecutive PTEs from `addr` to `entries`, in
    /// order, all in the PTE table of `addr`: the table is looked up (or
    /// made) once, as `__split_huge_pmd_locked()` fills one table.
    pub fn set_ptes(&mut self, addr: u64, entries: impl IntoIterator<Item = Entry>) {
        debug_assert_eq!(addr % PAGE_SIZE, 0);
        let mut entries = entries.into_iter().peekable();
        if entries.peek().is_none() {
            return;
        }
        let t = self.table_alloc(addr);
        let mut added = 0;
        for (slot, e) in t.slots[pte_index(addr)..].iter_mut().zip(&mut entries) {
            added += !slot.is_some() as u16;
            *slot = PteSlot::new(e);
        }
        t.used += added;
        debug_assert!(entries.next().is_none(), "set_ptes stays within one PTE table");
    }

    pub fn clear(&mut self, level: Level, addr: u64) -> Option<Entry> {
        match level {
            Level::Pte => {
                let t = self.table_mut(addr)?;
                let old = std::mem::take(&mut t.slots[pte_index(addr)]).get();
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
        let gone: Vec<u64> = self.tables_in(lo, end).filter(|(a, t)| t.used == 0 && !covered(*a, *a + PMD_SIZE)).map(|(a, _)| a).collect();
        for a in gone {
            self.remove_table(a);
        }
    }

    /// The PTE slots for `[addr, end)`, one after another, from the table
    /// of `addr` (detached or not, as [`PageTable::get`] reads them; `end`
    /// no further than that table's PMD range): a walker reading a run of
    /// entries looks the table up once, and can copy them in their packed
    /// form. None without a table.
    pub(crate) fn pte_run(&self, addr: u64, end: u64) -> Option<&[PteSlot]> {
        let t = self.table(addr)?;
        let first = pte_index(addr);
        Some(&t.slots[first..first + ((end - addr) / PAGE_SIZE) as usize])
    }

    /// The leaf covering `addr`, at whatever level it sits.
    pub fn lookup(&self, addr: u64) -> Option<Leaf> {
        // Level by level as `get` would, but the huge-leaf maps are asked
        // only when not empty, and the PTE read needs no level dispatch:
        // a store or load asks this once per page.
        for (level, map) in [(Level::Pud, &self.puds), (Level::Pmd, &self.pmds)] {
            if map.is_empty() {
                continue;
            }
            let a = addr & !(level.size() - 1);
            if let Some(&entry) = map.get(&a) {
                return Some(Leaf { addr: a, level, entry });
            }
        }
        let a = addr & !(PAGE_SIZE - 1);
        let entry = self.table(a)?.slots[pte_index(a)].get()?;
        Some(Leaf { addr: a, level: Level::Pte, entry })
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
        match self.table(a) {
            Some(t) if !t.detached => PmdVal::Table,
            _ => PmdVal::None,
        }
    }

    /// `pmdp_collapse_flush()`: the PMD at `haddr` stops pointing to its PTE
    /// table; false if there is no attached table.
    pub fn pmd_detach_table(&mut self, haddr: u64) -> bool {
        match self.table_mut(haddr) {
            Some(t) if !t.detached => {
                t.detached = true;
                true
            }
            _ => false,
        }
    }

    /// `pmd_populate()` with the table taken by [`PageTable::pmd_detach_table`].
    pub fn pmd_reattach_table(&mut self, haddr: u64) {
        if let Some(t) = self.table_mut(haddr) {
            t.detached = false;
        }
    }

    /// The table at `haddr` leaves the page tables for good (collapse
    /// deposits it under the new huge PMD); its entries must be gone.
    pub fn pmd_drop_table(&mut self, haddr: u64) {
        if self.table(haddr).is_some_and(|t| t.used == 0) {
            self.remove_table(haddr);
        }
    }

    /// `pud_none()` for the PUD covering `addr`.
    pub fn pud_none(&self, addr: u64) -> bool {
        let a = addr & !(PUD_SIZE - 1);
        !self.puds.contains_key(&a) && self.pmds.range(a..a + PUD_SIZE).next().is_none() && self.pmd_table_pos(a).is_err()
    }

    /// True when no PTE in `[start, end)` is set (used to pick mTHP orders).
    pub fn ptes_none(&self, start: u64, end: u64) -> bool {
        // A PTE table at a time, its slots compared with the empty word.
        let mut a = start;
        while a < end {
            let stop = ((a & !(PMD_SIZE - 1)) + PMD_SIZE).min(end);
            if self.pte_run(a, stop).is_some_and(|slots| slots.iter().any(|s| s.is_some())) {
                return false;
            }
            a = stop;
        }
        true
    }

    /// The PTE leaves in `[start, end)`, in address order, as they are
    /// reached (no list is built).
    pub fn ptes_in(&self, start: u64, end: u64) -> impl Iterator<Item = Leaf> + '_ {
        let lo = start & !(PMD_SIZE - 1);
        self.tables_in(lo, end).flat_map(move |(base, t)| {
            let first = if base < start { pte_index(start) } else { 0 };
            let last = if base + PMD_SIZE > end { ((end - base).div_ceil(PAGE_SIZE)) as usize } else { PTRS_PER_PTE };
            (first..last)
                .filter_map(move |i| t.slots[i].get().map(|e| Leaf { addr: base + i as u64 * PAGE_SIZE, level: Level::Pte, entry: e }))
        })
    }

    /// All leaves intersecting `[start, end)`, in address order (at one
    /// address, a PTE of a detached table before a huge leaf, a PUD leaf
    /// before a PMD leaf).
    pub fn leaves(&self, start: u64, end: u64) -> Vec<Leaf> {
        self.leaves_in(start, end).collect()
    }

    /// [`PageTable::leaves`] as they are reached, without building a list
    /// of every leaf: each PTE table is read slot by slot where it lies,
    /// and the huge leaves (few: THP and hugetlb) are merged in by address,
    /// a PTE before a huge leaf at the same address.
    pub fn leaves_in(&self, start: u64, end: u64) -> impl Iterator<Item = Leaf> + '_ {
        let mut huge: Vec<Leaf> =
            if self.pmds.is_empty() && self.puds.is_empty() { Vec::new() } else { self.huge_leaves(start, end).collect() };
        huge.sort_by_key(|l| l.addr);
        let lo = start & !(PMD_SIZE - 1);
        LeavesIn { tables: self.tables_in(lo, end), slots: &[], base: 0, next: 0, start, end, huge: huge.into_iter().peekable() }
    }

    /// The PUD and then the PMD leaves intersecting `[start, end)` (each
    /// level in address order), without walking the PTE tables: for
    /// callers that look only for huge mappings a range cuts.
    pub fn huge_leaves(&self, start: u64, end: u64) -> impl Iterator<Item = Leaf> + '_ {
        [(Level::Pud, &self.puds), (Level::Pmd, &self.pmds)].into_iter().flat_map(move |(level, map)| {
            let lo = start & !(level.size() - 1);
            map.range(lo..end).filter(move |(&a, _)| a + level.size() > start).map(move |(&addr, &entry)| Leaf { addr, level, entry })
        })
    }

    /// Number of PTE leaves (for statistics and benchmarks).
    pub fn nr_ptes(&self) -> usize {
        self.tables_in(0, u64::MAX).map(|(_, t)| t.used as usize).sum()
    }

    /// The loop of `copy_pte_range()` over the PTE table holding `addr`,
    /// from `addr` to `end` or that table's end, whichever comes first:
    /// `copy` is given each entry in address order and returns the entry
    /// to leave in `self` and the one to set at the same address in `dst`,
    /// already encoded, or `None` to stop before that entry (left as it
    /// was). Encoded by the caller because the closure is inlined into the
    /// loop: an entry decoded here and re-encoded there with a bit or two
    /// changed then compiles to those bits (fork's anon pages: 147
    /// instructions a page, against 260 when one encoding served every
    /// kind of entry). Returns where
    /// the walk stopped: the address of the entry it stopped at, or the end
    /// of its range. Does nothing (returns `addr`) where there is no PTE
    /// table, or where a PMD or PUD leaf also covers `addr` (the entries are
    /// then not the only leaves of the range: the caller goes through
    /// [`PageTable::next_leaf`]). `dst`'s table is made at the first entry
    /// set, as [`PageTable::set`] makes it.
    pub(crate) fn copy_pte_table(
        &mut self,
        dst: &mut PageTable,
        addr: u64,
        end: u64,
        mut copy: impl FnMut(Entry) -> Option<(PteSlot, PteSlot)>,
    ) -> u64 {
        let haddr = addr & !(PMD_SIZE - 1);
        if self.pmds.contains_key(&haddr) || self.puds.contains_key(&(addr & !(PUD_SIZE - 1))) {
            return addr;
        }
        let Some(src) = self.table_mut(addr) else { return addr };
        let last = (end.saturating_sub(haddr).div_ceil(PAGE_SIZE) as usize).min(PTRS_PER_PTE);
        let done = (haddr + last as u64 * PAGE_SIZE).min(end);
        let mut to: Option<&mut PteTable> = None;
        for i in pte_index(addr)..last {
            let Some(e) = src.slots[i].get() else { continue };
            let a = haddr + i as u64 * PAGE_SIZE;
            let Some((e, c)) = copy(e) else { return a };
            src.slots[i] = e;
            let t = match to {
                Some(t) => t,
                None => dst.table_alloc(a),
            };
            if !std::mem::replace(&mut t.slots[i], c).is_some() {
                t.used += 1;
            }
            to = Some(t);
        }
        done
    }

    /// [`PageTable::next_leaf`], and the leaf [`PageTable::clear`]ed too if
    /// it ends by `end` (the bool says whether it was): a zap's step. A
    /// PTE found in the table of `addr` is cleared where it was found,
    /// without a second walk.
    pub fn take_next_leaf(&mut self, addr: u64, end: u64) -> Option<(Leaf, bool)> {
        if let Some(t) = self.table_mut(addr) {
            let base = addr & !(PMD_SIZE - 1);
            let last = (end.saturating_sub(base).div_ceil(PAGE_SIZE) as usize).min(PTRS_PER_PTE);
            // As in `next_leaf`: only a PTE at `addr`, or one found from an
            // address that is not 2 MiB-aligned, comes before any huge leaf.
            if let Some(i) = (pte_index(addr)..last).find(|&i| t.slots[i].is_some()) {
                let a = base + i as u64 * PAGE_SIZE;
                if (a == addr || !addr.is_multiple_of(PMD_SIZE)) && a + PAGE_SIZE <= end {
                    let entry = t.slots[i].get()?;
                    t.slots[i] = PteSlot::NONE;
                    t.used -= 1;
                    return Some((Leaf { addr: a, level: Level::Pte, entry }, true));
                }
            }
        }
        let leaf = self.next_leaf(addr, end)?;
        let cleared = leaf.addr + leaf.level.size() <= end;
        if cleared {
            self.clear(leaf.level, leaf.addr);
        }
        Some((leaf, cleared))
    }

    /// The first leaf (any level) starting at or after `addr` and before `end`.
    pub fn next_leaf(&self, addr: u64, end: u64) -> Option<Leaf> {
        // Most often the answer is in the PTE table of `addr` itself (fork
        // asks this once per page): scan that table from `addr` on.
        if let Some(t) = self.table(addr) {
            let base = addr & !(PMD_SIZE - 1);
            let last = (end.saturating_sub(base).div_ceil(PAGE_SIZE) as usize).min(PTRS_PER_PTE);
            // Empty slots are skipped by their word; only the one found is
            // decoded.
            let found = (pte_index(addr)..last).find(|&i| t.slots[i].is_some());
            if let Some((a, e)) = found.and_then(|i| Some((base + i as u64 * PAGE_SIZE, t.slots[i].get()?))) {
                // As below: a huge leaf can come first only from `addr`.
                if a == addr || !addr.is_multiple_of(PMD_SIZE) {
                    return Some(Leaf { addr: a, level: Level::Pte, entry: e });
                }
            }
        }
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

/// The walk of [`PageTable::leaves_in`]: the PTE tables in address order,
/// the slots of the current one still to read (from index `next`, the
/// table mapping `base`), and the sorted huge leaves not yet given.
struct LeavesIn<'a, T: Iterator<Item = (u64, &'a PteTable)>> {
    tables: T,
    slots: &'a [PteSlot],
    base: u64,
    next: usize,
    start: u64,
    end: u64,
    huge: std::iter::Peekable<std::vec::IntoIter<Leaf>>,
}

impl<'a, T: Iterator<Item = (u64, &'a PteTable)>> LeavesIn<'a, T> {
    /// The next PTE leaf, without consuming it.
    fn peek_pte(&mut self) -> Option<Leaf> {
        loop {
            while self.next < self.slots.len() {
                let i = self.next;
                if let Some(entry) = self.slots[i].get() {
                    return Some(Leaf { addr: self.base + i as u64 * PAGE_SIZE, level: Level::Pte, entry });
                }
                self.next += 1;
            }
            let (base, t) = self.tables.next()?;
            let first = if base < self.start { pte_index(self.start) } else { 0 };
            let last = if base + PMD_SIZE > self.end { (self.end - base).div_ceil(PAGE_SIZE) as usize } else { PTRS_PER_PTE };
            self.base = base;
            self.slots = &t.slots[..last.max(first)];
            self.next = first;
        }
    }
}

impl<'a, T: Iterator<Item = (u64, &'a PteTable)>> Iterator for LeavesIn<'a, T> {
    type Item = Leaf;

    fn next(&mut self) -> Option<Leaf> {
        let pte = self.peek_pte();
        match (pte, self.huge.peek()) {
            (Some(p), Some(h)) if h.addr < p.addr => self.huge.next(),
            (Some(p), _) => {
                self.next += 1;
                Some(p)
            }
            (None, _) => self.huge.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store's run goes on through writable PTEs of the next pages of
    /// one folio, across a table boundary, and stops at a gap, another
    /// folio, a page out of order, a read-only or a special PTE; exactly
    /// the PTEs of the run are made young, dirty and soft-dirty.
    #[test]
    fn a_write_run_stops_where_the_folio_run_does() {
        let pte = |folio: u32, page: u64, write: bool, special: bool| {
            Entry::Present(Present { folio: FolioId(folio), page, write, dirty: false, young: false, soft_dirty: false, special })
        };
        // What a write sets, by the fault path's own rule.
        let touched = |e: Entry| match e {
            Entry::Present(mut p) => {
                crate::memory::touch(&mut p, true);
                Entry::Present(p)
            }
            e => e,
        };
        // Four pages before a PMD boundary and four after it.
        let base = PMD_SIZE - 4 * PAGE_SIZE;
        let breaks: [Option<Entry>; 5] =
            [None, Some(pte(8, 6, true, false)), Some(pte(7, 9, true, false)), Some(pte(7, 6, false, false)), Some(pte(7, 6, true, true))];
        for brk in breaks {
            let mut pt = PageTable::default();
            // The run's first PTE need not be writable: the caller decides.
            pt.set(Level::Pte, base, pte(7, 0, false, false));
            for i in 1..6 {
                pt.set(Level::Pte, base + i * PAGE_SIZE, pte(7, i, true, false));
            }
            match brk {
                Some(e) => pt.set(Level::Pte, base + 6 * PAGE_SIZE, e),
                None => drop(pt.clear(Level::Pte, base + 6 * PAGE_SIZE)),
            }
            pt.set(Level::Pte, base + 7 * PAGE_SIZE, pte(7, 7, true, false));
            let before = pt.clone();
            assert_eq!(pt.touch_write_run(base, base + 8 * PAGE_SIZE), 6, "{brk:?}");
            for i in 0..8 {
                let a = base + i * PAGE_SIZE;
                let want = before.get(Level::Pte, a).map(|e| if i < 6 { touched(e) } else { e });
                assert_eq!(pt.get(Level::Pte, a), want, "page {i} after {brk:?}");
            }
        }
        // The end is exclusive, and a partial last page counts.
        let mut pt = PageTable::default();
        pt.set_ptes(0, (0..4).map(|i| pte(3, i, true, false)));
        assert_eq!(pt.touch_write_run(0, 2 * PAGE_SIZE), 2);
        assert_eq!(pt.touch_write_run(0, 2 * PAGE_SIZE + 1), 3);
        assert_eq!(pt.touch_write_run(PAGE_SIZE, PAGE_SIZE), 1, "the first PTE is touched whatever the end");
        assert_eq!(pt.touch_write_run(PMD_SIZE, 2 * PMD_SIZE), 0, "no table, no run");
    }

    /// Every flag combination, the extremes of folio, page and swap slot:
    /// a packed PTE gives back the entry it was made from, and only an
    /// empty slot reads as none.
    #[test]
    fn pte_slots_give_back_their_entries() {
        assert_eq!(PteSlot::NONE.get(), None);
        for bits in 0..32u32 {
            let b = |i: u32| bits >> i & 1 == 1;
            for (folio, page) in [(0, 0), (1, 511), (u32::MAX, (1 << 18) - 1), (7, (1 << PTE_PAGE_BITS) - 1)] {
                let e = Entry::Present(Present {
                    folio: FolioId(folio),
                    page,
                    write: b(0),
                    dirty: b(1),
                    young: b(2),
                    soft_dirty: b(3),
                    special: b(4),
                });
                assert!(PteSlot::new(e).is_some());
                assert_eq!(PteSlot::new(e).get(), Some(e));
            }
            for slot in [0, 1, u32::MAX] {
                let e = Entry::Swap { slot: SwapSlot(slot), exclusive: b(0), soft_dirty: b(1) };
                assert_eq!(PteSlot::new(e).get(), Some(e));
            }
        }
    }

    /// `leaves_in` gives every PTE and huge leaf, sorted by address (stably:
    /// PTEs first, then PUD, then PMD leaves at one address), for ranges
    /// cutting tables and huge leaves anywhere: PTEs in two 1 GiB ranges
    /// (one table detached, as under a collapse, with a PMD leaf over it),
    /// PMD and PUD leaves, swap entries, a special entry.
    #[test]
    fn leaves_in_is_leaves() {
        let mut pt = PageTable::default();
        let present = |folio: u32, page: u64| {
            Entry::Present(Present {
                folio: FolioId(folio),
                page,
                write: true,
                dirty: false,
                young: true,
                soft_dirty: false,
                special: false,
            })
        };
        for i in 0..40u64 {
            pt.set(Level::Pte, PMD_SIZE - 20 * PAGE_SIZE + i * PAGE_SIZE, present(1, i));
        }
        pt.set(Level::Pte, 5 * PMD_SIZE + 3 * PAGE_SIZE, Entry::Swap { slot: SwapSlot(4), exclusive: true, soft_dirty: false });
        pt.set(Level::Pte, 7 * PMD_SIZE, present(2, 0));
        assert!(pt.pmd_detach_table(7 * PMD_SIZE));
        pt.set(Level::Pmd, 7 * PMD_SIZE, present(3, 0));
        pt.set(Level::Pmd, 9 * PMD_SIZE, present(4, 0));
        pt.set(Level::Pud, 2 * PUD_SIZE, present(5, 0));
        pt.set(Level::Pte, PUD_SIZE + 511 * PAGE_SIZE, present(6, 0));
        pt.set(Level::Pte, 3 * PUD_SIZE + PMD_SIZE, present(7, 0));
        let special = Entry::Present(Present {
            folio: FolioId(7),
            page: 0,
            write: false,
            dirty: false,
            young: false,
            soft_dirty: false,
            special: true,
        });
        pt.set(Level::Pte, 3 * PUD_SIZE + PMD_SIZE + PAGE_SIZE, special);
        let edges = [
            0,
            PAGE_SIZE,
            PMD_SIZE - 10 * PAGE_SIZE,
            PMD_SIZE,
            PMD_SIZE + 5 * PAGE_SIZE + 1,
            5 * PMD_SIZE + 3 * PAGE_SIZE,
            7 * PMD_SIZE,
            7 * PMD_SIZE + PAGE_SIZE,
            9 * PMD_SIZE + 1,
            PUD_SIZE + 511 * PAGE_SIZE,
            2 * PUD_SIZE + PMD_SIZE,
            3 * PUD_SIZE + PMD_SIZE,
            4 * PUD_SIZE,
        ];
        let mut compared = 0;
        for &s in &edges {
            for &e in edges.iter().filter(|&&e| e > s) {
                let mut sorted: Vec<Leaf> = pt.ptes_in(s, e).chain(pt.huge_leaves(s, e)).collect();
                sorted.sort_by_key(|l| l.addr);
                assert_eq!(pt.leaves_in(s, e).collect::<Vec<_>>(), sorted, "[{s:#x}, {e:#x})");
                compared += sorted.len();
            }
        }
        assert!(compared > 500);
    }
}
