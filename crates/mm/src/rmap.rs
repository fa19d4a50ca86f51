//! Reverse-map bookkeeping: mapcounts, mm ids and PageAnonExclusive
//! (mm/rmap.c, include/linux/rmap.h).

use crate::events::EventKind;
use crate::folio::{Folio, FolioId, MmId};
use crate::kernel::Kernel;
use crate::pgtable::{Entry, Level, Present};
use crate::types::{Pid, HPAGE_PMD_NR};

/// Which pages of a folio one rmap call maps or unmaps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rmap {
    /// `nr` PTEs mapping pages `first .. first + nr` of the folio
    /// (`folio_add_*_rmap_ptes()`, `folio_remove_rmap_ptes()`).
    Ptes { first: u64, nr: u64 },
    /// One PMD or PUD mapping of the whole folio (`…_rmap_pmd()`,
    /// `…_rmap_pud()`, and every hugetlb mapping).
    Entire,
}

impl Rmap {
    /// One PTE mapping `page`.
    pub(crate) fn pte(page: u64) -> Rmap {
        Rmap::Ptes { first: page, nr: 1 }
    }

    /// The mapping a page-table leaf at `level` makes of `page` (the head
    /// for PMD/PUD leaves).
    pub(crate) fn leaf(level: Level, page: u64) -> Rmap {
        if level == Level::Pte {
            Rmap::pte(page)
        } else {
            Rmap::Entire
        }
    }

    /// How much the folio-wide mapcount changes: one per PTE, one for an
    /// entire mapping.
    fn units(self) -> u32 {
        match self {
            Rmap::Ptes { nr, .. } => nr as u32,
            Rmap::Entire => 1,
        }
    }
}

/// One remembered mm of a large folio: the kernel's `_mm_id[i]` and
/// `_mm_id_mapcount[i]` (which the kernel stores as `mapcount - 1`, with -1
/// for a free slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MmIdSlot {
    pub mm: MmId,
    /// Mappings added by `mm` since it took the slot, minus those it
    /// removed; never 0 (the slot is freed instead). It can be lower than
    /// the mappings `mm` really has: mappings added while no slot was free
    /// are not in it.
    pub mapcount: u32,
}

/// CONFIG_MM_ID bookkeeping of a large folio that is not hugetlb
/// (include/linux/rmap.h: `folio_add_return_large_mapcount()`,
/// `folio_sub_return_large_mapcount()`; the folio's `_mm_id`,
/// `_mm_id_mapcount` and the "maybe mapped shared" bit of `_mm_ids`).
///
/// The kernel does not know every mm that maps a large folio. It has two
/// slots. An mm that maps the folio takes a free slot if there is one;
/// taking slot 1, or slot 0 while other mappings exist, sets the shared bit.
/// An mm that finds no free slot is counted only in the folio's total
/// mapcount. The bit is cleared only when an unmap leaves one slot owning
/// all of the folio's mappings (or the folio unmapped). So once three mms
/// mapped a folio, the bit can stay set while a single mm — one without a
/// slot, or one whose slot undercounts it — is left: the folio then looks
/// shared to COW reuse and to pagemap though it is not. Left out: the
/// 32-bit per-slot overflow handling (this model is 64-bit) and the lock
/// bit (the model's steps are atomic).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MmIdSlots {
    pub slots: [Option<MmIdSlot>; 2],
    /// FOLIO_MM_IDS_SHARED_BIT: the folio may be mapped by more than one mm.
    pub shared: bool,
}

impl MmIdSlots {
    fn slot_of(&self, mm: MmId) -> Option<usize> {
        self.slots.iter().position(|s| s.is_some_and(|s| s.mm == mm))
    }

    /// `folio_add_return_large_mapcount()`: `mm` added `diff` mappings;
    /// `total` is the folio's mapcount after the addition.
    pub(crate) fn add(&mut self, mm: MmId, diff: u32, total: i64) {
        if let Some(i) = self.slot_of(mm) {
            if let Some(s) = &mut self.slots[i] {
                s.mapcount += diff;
            }
        } else if self.slots[0].is_none() {
            self.slots[0] = Some(MmIdSlot { mm, mapcount: diff });
            if total != diff as i64 {
                self.shared = true;
            }
        } else if self.slots[1].is_none() {
            // Slot 0 has mappings of another mm.
            self.slots[1] = Some(MmIdSlot { mm, mapcount: diff });
            self.shared = true;
        }
    }

    /// `folio_sub_return_large_mapcount()`: `mm` removed `diff` mappings;
    /// `total` is the folio's mapcount after the removal. A slot whose count
    /// would drop to zero or below is freed (below: the mm had mappings from
    /// before it took the slot). Only then, or when `mm` has no slot, does
    /// the kernel look whether one slot now owns every mapping and clear the
    /// shared bit.
    pub(crate) fn sub(&mut self, mm: MmId, diff: u32, total: i64) {
        if let Some(i) = self.slot_of(mm) {
            match &mut self.slots[i] {
                Some(s) if s.mapcount > diff => {
                    s.mapcount -= diff;
                    return;
                }
                _ => self.slots[i] = None,
            }
        }
        if self.slots.iter().any(|s| s.map_or(0, |s| s.mapcount as i64) == total) {
            self.shared = false;
        }
    }

    /// [`MmIdSlots::sub`] of one mapping, `nr` times over (the kernel's
    /// `folio_remove_rmap_pte()` page after page), `total` being the
    /// folio's mapcount after the last: the same slots and bit, in one
    /// step. A slot of `mm` holding more than `nr` only shrinks. Otherwise
    /// the removal that empties it, and every one after it (all of them if
    /// `mm` has no slot), looks whether a slot owns every mapping left; the
    /// slots no longer change then, and those removals leave the totals
    /// `total ..= total + looks - 1`.
    pub(crate) fn sub_each(&mut self, mm: MmId, nr: u32, total: i64) {
        if nr == 0 {
            return;
        }
        let mut looks = nr;
        if let Some(i) = self.slot_of(mm) {
            match &mut self.slots[i] {
                Some(s) if s.mapcount > nr => {
                    s.mapcount -= nr;
                    return;
                }
                s => {
                    looks = nr + 1 - s.map_or(1, |s| s.mapcount);
                    *s = None;
                }
            }
        }
        let totals = total..=total + looks as i64 - 1;
        if self.slots.iter().any(|s| totals.contains(&s.map_or(0, |s| s.mapcount as i64))) {
            self.shared = false;
        }
    }
}

/// [`Kernel::rmap_add`] on the folio itself, for callers that hold it
/// (fork's copy of a page table, which holds the page tables and the folio
/// arena at once).
#[inline]
pub(crate) fn folio_add_rmap(f: &mut Folio, mm: MmId, r: Rmap) {
    if f.is_zero() {
        return;
    }
    let n = r.units();
    f.mapcount += n as i64;
    f.refcount += n as i64;
    match r {
        Rmap::Entire => f.entire_mapcount += 1,
        Rmap::Ptes { first, nr } if f.is_large() => f.page_mapcounts.add(first, nr, 1),
        Rmap::Ptes { .. } => {}
    }
    if f.is_large() && f.hugetlb.is_none() {
        let total = f.mapcount;
        f.mm_ids.add(mm, n, total);
    }
}

/// `__folio_try_dup_anon_rmap()` (include/linux/rmap.h): fork wants to share
/// `nr` pages of an anon folio from `first` with the child. If `may_refuse`
/// (the parent mm ever pinned, see [`Kernel::folio_try_dup_anon_rmap_pte`]),
/// the folio may be pinned and any of the pages is anon-exclusive, refuse:
/// fork must copy instead, and nothing changed. Otherwise clear AE on those
/// pages (the child's mappings and references are counted by the caller's
/// [`folio_add_rmap`]).
#[inline]
pub(crate) fn folio_try_dup_anon_rmap(f: &mut Folio, first: u64, nr: u64, may_refuse: bool) -> bool {
    if may_refuse && f.maybe_dma_pinned() && f.anon_exclusive.any_in(first, nr) {
        return false;
    }
    f.anon_exclusive.set_range(first, nr, false);
    true
}

impl Kernel {
    /// Accounts a new mapping of `folio` by `mm` (PTEs or one entire
    /// PMD/PUD mapping), each PTE or entire mapping holding one folio
    /// reference (`__folio_add_rmap()` for anon and file folios,
    /// `hugetlb_add_*_rmap()`, `__folio_try_dup_anon_rmap()`'s counting,
    /// plus the caller's `folio_ref_add()`): the folio-wide mapcount, the
    /// entire mapcount, the per-page mapcounts of PTE-mapped large folios
    /// and, for large folios other than hugetlb, the mm slots. The zero
    /// folios are never counted.
    pub(crate) fn rmap_add(&mut self, folio: FolioId, mm: MmId, r: Rmap) {
        folio_add_rmap(self.folios.get_mut(folio), mm, r);
    }

    /// Every page-table leaf of `mm` that maps `folio` (an rmap walk
    /// limited to one mm; the special zero-page entries map no folio).
    pub(crate) fn folio_leaves(&self, mm: MmId, folio: FolioId) -> Vec<crate::pgtable::Leaf> {
        let pt = &self.mm(mm).pt;
        pt.leaves_in(0, crate::types::TASK_SIZE).filter(|l| l.entry.present().is_some_and(|p| p.folio == folio && !p.special)).collect()
    }

    /// Undoes [`Kernel::rmap_add`] and drops the mappings' references
    /// (`__folio_remove_rmap()` / `hugetlb_remove_rmap()` + `folio_put()`).
    pub(crate) fn rmap_remove(&mut self, folio: FolioId, mm: MmId, r: Rmap) {
        let n = self.folio_remove_rmap(folio, mm, r);
        self.folio_put_refs(folio, n as i64);
    }

    /// The mapcount half of [`Kernel::rmap_remove`] (`__folio_remove_rmap()`):
    /// returns the references the removed mappings held, for the caller to
    /// drop now or after a TLB flush.
    pub(crate) fn folio_remove_rmap(&mut self, folio: FolioId, mm: MmId, r: Rmap) -> u64 {
        let f = self.folios.get_mut(folio);
        if f.is_zero() {
            return 0;
        }
        let n = r.units();
        f.mapcount -= n as i64;
        match r {
            Rmap::Entire => f.entire_mapcount -= 1,
            Rmap::Ptes { first, nr } if f.is_large() => f.page_mapcounts.add(first, nr, -1),
            Rmap::Ptes { .. } => {}
        }
        if f.is_large() && f.hugetlb.is_none() {
            let total = f.mapcount;
            f.mm_ids.sub(mm, n, total);
        }
        n as u64
    }

    /// [`Kernel::folio_remove_rmap`] of one PTE mapping for each page of
    /// `pages`, in that order, as `try_to_unmap_one()` takes a swap-backed
    /// folio down page by page: a run of consecutive pages is counted at
    /// once (the per-page counts and the mm slots end as after one removal
    /// per page, [`MmIdSlots::sub_each`]). Returns the references the
    /// mappings held.
    pub(crate) fn folio_remove_rmap_each(&mut self, folio: FolioId, mm: MmId, pages: impl IntoIterator<Item = u64>) -> u64 {
        let f = self.folios.get_mut(folio);
        if f.is_zero() {
            return 0;
        }
        let mut removed = 0;
        let mut pages = pages.into_iter().peekable();
        while let Some(first) = pages.next() {
            let mut nr = 1;
            while pages.next_if_eq(&(first + nr)).is_some() {
                nr += 1;
            }
            f.mapcount -= nr as i64;
            if f.is_large() {
                f.page_mapcounts.add(first, nr, -1);
                if f.hugetlb.is_none() {
                    let total = f.mapcount;
                    f.mm_ids.sub_each(mm, nr as u32, total);
                }
            }
            removed += nr;
        }
        removed
    }

    /// `folio_add_new_anon_rmap()` with RMAP_EXCLUSIVE (and
    /// `hugetlb_add_new_anon_rmap()`): a freshly allocated folio whose
    /// allocation reference becomes the first mapping's; all its pages start
    /// anon-exclusive. The kernel sets the mapcounts outright
    /// (`folio_set_large_mapcount()` gives `mm` slot 0); on a folio with no
    /// mappings, counting them with [`Kernel::rmap_add`] gives the same state.
    pub(crate) fn add_new_anon_rmap(&mut self, folio: FolioId, mm: MmId, r: Rmap) {
        let f = self.folios.get_mut(folio);
        f.anon_exclusive.set_all(true);
        f.refcount -= 1;
        self.rmap_add(folio, mm, r);
    }

    /// [`folio_try_dup_anon_rmap`] for `folio`: it may refuse only if the
    /// parent mm ever pinned (MMF_HAS_PINNED) and the policy has early fork
    /// copies (5.9 on; before, fork never refuses).
    fn try_dup_anon_rmap(&mut self, folio: FolioId, first: u64, nr: u64, parent_has_pinned: bool) -> bool {
        let may_refuse = self.policy.fork_copies_pinned() && parent_has_pinned;
        folio_try_dup_anon_rmap(self.folios.get_mut(folio), first, nr, may_refuse)
    }

    /// `folio_try_dup_anon_rmap_pte()`: one PTE-mapped page.
    pub(crate) fn folio_try_dup_anon_rmap_pte(&mut self, folio: FolioId, page: u64, parent_has_pinned: bool) -> bool {
        self.try_dup_anon_rmap(folio, page, 1, parent_has_pinned)
    }

    /// `folio_try_dup_anon_rmap_pmd()`: a PMD-mapped THP, all its pages.
    pub(crate) fn folio_try_dup_anon_rmap_pmd(&mut self, folio: FolioId, parent_has_pinned: bool) -> bool {
        self.try_dup_anon_rmap(folio, 0, HPAGE_PMD_NR, parent_has_pinned)
    }

    /// `hugetlb_try_dup_anon_rmap()`: a hugetlb folio, whose AE bit is the
    /// head page's.
    pub(crate) fn hugetlb_try_dup_anon_rmap(&mut self, folio: FolioId, parent_has_pinned: bool) -> bool {
        let nr = self.folios.get(folio).nr_pages();
        self.try_dup_anon_rmap(folio, 0, nr, parent_has_pinned)
    }

    /// `folio_try_share_anon_rmap_pte()` (include/linux/rmap.h:
    /// __folio_try_share_anon_rmap()): before temporarily unmapping a page
    /// (swap-out, migration), clear AE — unless the folio may be pinned, in
    /// which case the unmap is refused and the page stays mapped and AE. The
    /// kernel asks page by page as it unmaps them; the model's only caller
    /// unmaps every page of the folio together and asks once for all.
    pub(crate) fn folio_try_share_anon_rmap_pte(&mut self, pid: Pid, folio: FolioId, addr: u64) -> bool {
        let f = self.folios.get(folio);
        if f.maybe_dma_pinned() {
            self.event(pid, EventKind::Note, "folio_try_share_anon_rmap_pte", Some(addr), || "folio maybe pinned → keep mapped".into());
            return false;
        }
        self.folios.get_mut(folio).anon_exclusive.set_all(false);
        true
    }
}

/// Where a swap-out of a range stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TryToUnmapState {
    /// Next: split the range's PMD-mapped THPs.
    Split,
    /// Next: pick the next folio at or after `from` that reclaim would take.
    Next {
        from: u64,
    },
    /// (A2 first, policy `swapout_clear_pte_first` off) next: look for
    /// pins while the PTEs are still mapped.
    CheckPinned {
        folio: FolioId,
        mapped: Vec<(u64, Present)>,
    },
    /// (A1) next: clear the folio's PTEs (`ptep_clear_flush()`).
    Clear {
        folio: FolioId,
        mapped: Vec<(u64, Present)>,
    },
    /// (A2+A3) next: `folio_try_share_anon_rmap_pte()` — back off if maybe
    /// pinned (restoring the PTEs), else clear PageAnonExclusive.
    Share {
        folio: FolioId,
        mapped: Vec<(u64, Present)>,
    },
    /// (after A1, a folio MADV_FREE made lazily freeable) next:
    /// try_to_unmap_one()'s MADV_FREE check — drop the folio if nobody
    /// wrote it or holds it, else put the PTEs back.
    Discard {
        folio: FolioId,
        mapped: Vec<(u64, Present)>,
    },
    /// Next: install the swap entries, carrying each page's AE bit as it was
    /// before the unmap, and free the folio.
    Swap {
        folio: FolioId,
        mapped: Vec<(u64, Present)>,
        exclusive: Vec<bool>,
    },
    Done,
}

/// Swap-out of the anon folios of `[start, end)` (MADV_PAGEOUT →
/// shrink_folio_list() → try_to_unmap() → try_to_unmap_one()), one folio at
/// a time, each split into the steps include/linux/rmap.h orders against
/// GUP-fast: (A1) clear the PTE, (A2) check for pins, (A3) clear
/// PageAnonExclusive — a pin taken before A2 is seen and the PTE put back
/// (A4); one taken after A1 is a pin GUP-fast's recheck of the PTE undoes.
/// rmap's walk needs no mmap_lock; MADV_PAGEOUT's page-table walk holds it
/// for reading. Left out: writeback (the model's swap device is
/// synchronous), the swap cache after swap-out, large-folio swap entries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TryToUnmap {
    pub pid: Pid,
    pub mm: MmId,
    pub start: u64,
    pub end: u64,
    pub state: TryToUnmapState,
    /// Folios already tried.
    done: std::collections::BTreeSet<FolioId>,
    /// Mapping references taken off the rmap by A1 and not yet dropped.
    unmapped: Option<(FolioId, u64)>,
}

impl TryToUnmap {
    pub fn begin(pid: Pid, mm: MmId, start: u64, end: u64) -> TryToUnmap {
        TryToUnmap { pid, mm, start, end, state: TryToUnmapState::Split, done: Default::default(), unmapped: None }
    }

    /// The kernel function the next step plays.
    pub fn next_func(&self) -> &'static str {
        match self.state {
            TryToUnmapState::Split => "split_huge_pmd",
            TryToUnmapState::Next { .. } => "shrink_folio_list",
            TryToUnmapState::CheckPinned { .. } => "folio_maybe_dma_pinned",
            TryToUnmapState::Clear { .. } => "ptep_clear_flush",
            TryToUnmapState::Share { .. } => "folio_try_share_anon_rmap_pte",
            TryToUnmapState::Discard { .. } => "try_to_unmap_one",
            TryToUnmapState::Swap { .. } => "try_to_unmap_one",
            TryToUnmapState::Done => "",
        }
    }

    /// The references of mappings already cleared from the page tables.
    pub fn held(&self) -> Vec<(FolioId, u64, bool)> {
        self.unmapped.iter().map(|&(f, n)| (f, n, false)).collect()
    }
}

impl Kernel {
    /// One atomic step of a swap-out; false once done.
    pub fn try_to_unmap_step(&mut self, t: &mut TryToUnmap) -> bool {
        let (pid, mm) = (t.pid, t.mm);
        t.state = match std::mem::replace(&mut t.state, TryToUnmapState::Done) {
            TryToUnmapState::Done => return false,
            TryToUnmapState::Split => {
                self.pageout_split(pid, mm, t.start, t.end);
                TryToUnmapState::Next { from: t.start }
            }
            TryToUnmapState::Next { from } => match self.pageout_candidate(mm, from, t.start, t.end, &t.done) {
                None => return false,
                Some((folio, mapped)) => {
                    t.done.insert(folio);
                    self.work.add(mapped.len() as u64);
                    if self.policy.swapout_clear_pte_first {
                        TryToUnmapState::Clear { folio, mapped }
                    } else {
                        TryToUnmapState::CheckPinned { folio, mapped }
                    }
                }
            },
            TryToUnmapState::CheckPinned { folio, mapped } => {
                let from = mapped.last().map_or(t.end, |(a, _)| a + crate::types::PAGE_SIZE);
                if self.folios.get(folio).maybe_dma_pinned() {
                    let addr = mapped[0].0;
                    self.event(pid, EventKind::Note, "folio_try_share_anon_rmap_pte", Some(addr), || {
                        "folio maybe pinned → keep mapped".into()
                    });
                    TryToUnmapState::Next { from }
                } else {
                    TryToUnmapState::Clear { folio, mapped }
                }
            }
            TryToUnmapState::Clear { folio, mapped } => {
                for (addr, _) in &mapped {
                    self.mm_mut(mm).pt.clear(Level::Pte, *addr);
                }
                let refs = self.folio_remove_rmap_each(folio, mm, mapped.iter().map(|(_, q)| q.page));
                t.unmapped = Some((folio, refs));
                if self.folios.get(folio).lazyfree {
                    TryToUnmapState::Discard { folio, mapped }
                } else if self.policy.swapout_clear_pte_first {
                    TryToUnmapState::Share { folio, mapped }
                } else {
                    // The pin check came first; A3 follows the clear.
                    let exclusive = self.clear_ae(folio, &mapped);
                    TryToUnmapState::Swap { folio, mapped, exclusive }
                }
            }
            TryToUnmapState::Share { folio, mapped } => {
                let addr = mapped[0].0;
                let exclusive: Vec<bool> = mapped.iter().map(|(_, q)| self.folios.get(folio).page_ae(q.page)).collect();
                if self.folio_try_share_anon_rmap_pte(pid, folio, addr) {
                    TryToUnmapState::Swap { folio, mapped, exclusive }
                } else {
                    // A4: put the PTEs back.
                    self.restore_unmapped(t, folio, &mapped)
                }
            }
            TryToUnmapState::Discard { folio, mapped } => {
                let held = t.unmapped.map_or(0, |(_, refs)| refs as i64);
                let f = self.folios.get_mut(folio);
                // A dirty PTE dirties the folio as it is cleared.
                f.dirty |= mapped.iter().any(|(_, q)| q.dirty);
                if f.dirty {
                    // Written since MADV_FREE: swap-backed again, kept.
                    f.lazyfree = false;
                    self.restore_unmapped(t, folio, &mapped)
                } else if f.refcount != f.mapcount + held {
                    // A GUP reference: kept, still lazily freeable.
                    self.restore_unmapped(t, folio, &mapped)
                } else {
                    let from = mapped.last().map_or(t.end, |(a, _)| a + crate::types::PAGE_SIZE);
                    let addr = mapped[0].0;
                    t.unmapped = None;
                    self.folio_put_refs(folio, held);
                    self.event(pid, EventKind::Swap, "try_to_unmap_one", Some(addr), || "clean lazyfree folio → dropped".into());
                    TryToUnmapState::Next { from }
                }
            }
            TryToUnmapState::Swap { folio, mapped, exclusive } => {
                let from = mapped.last().map_or(t.end, |(a, _)| a + crate::types::PAGE_SIZE);
                let addr = mapped[0].0;
                self.swap_out_folio(folio, mm, mapped, exclusive);
                if let Some((f, refs)) = t.unmapped.take() {
                    self.folio_put_refs(f, refs as i64);
                }
                self.event(pid, EventKind::Swap, "shrink_folio_list", Some(addr), || "folio swapped out".into());
                TryToUnmapState::Next { from }
            }
        };
        true
    }

    /// A4, and the lazyfree check's back-off: the cleared PTEs of `mapped`
    /// are put back and their references become the mappings' again; the
    /// walk goes on after them.
    fn restore_unmapped(&mut self, t: &mut TryToUnmap, folio: FolioId, mapped: &[(u64, Present)]) -> TryToUnmapState {
        let mm = t.mm;
        let (_, refs) = t.unmapped.take().expect("set by the clear");
        for (a, q) in mapped {
            self.mm_mut(mm).pt.set(Level::Pte, *a, Entry::Present(*q));
        }
        for (_, q) in mapped {
            self.rmap_add(folio, mm, Rmap::pte(q.page));
        }
        self.folio_ref_add(folio, -(refs as i64));
        let from = mapped.last().map_or(t.end, |(a, _)| a + crate::types::PAGE_SIZE);
        TryToUnmapState::Next { from }
    }

    /// A3 for the pages of `mapped`, returning their AE bits before.
    fn clear_ae(&mut self, folio: FolioId, mapped: &[(u64, Present)]) -> Vec<bool> {
        let f = self.folios.get_mut(folio);
        let was: Vec<bool> = mapped.iter().map(|(_, q)| f.page_ae(q.page)).collect();
        f.anon_exclusive.set_all(false);
        was
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`MmIdSlots::sub_each`] ends where that many single removals end,
    /// from every small state: `mm` with a slot of any count or none, the
    /// other slot free or another mm's, either bit, any number of mappings
    /// no slot counts.
    #[test]
    fn sub_each_is_sub_one_mapping_at_a_time() {
        let (me, other, third) = (MmId(1), MmId(2), MmId(3));
        let slot = |mm, n: u32| (n > 0).then_some(MmIdSlot { mm, mapcount: n });
        let mut tried = 0;
        for (m0, m1) in [(me, other), (other, me), (other, third)] {
            for (n0, n1) in (0..6).flat_map(|a| (0..6).map(move |b| (a, b))) {
                for shared in [false, true] {
                    for nr in 1..7u32 {
                        for unslotted in 0..4i64 {
                            let start = MmIdSlots { slots: [slot(m0, n0), slot(m1, n1)], shared };
                            let before = nr as i64
                                + unslotted
                                + start.slots.iter().flatten().filter(|s| s.mm != me).map(|s| s.mapcount as i64).sum::<i64>();
                            let mut one = start;
                            for k in 1..=nr as i64 {
                                one.sub(me, 1, before - k);
                            }
                            let mut all = start;
                            all.sub_each(me, nr, before - nr as i64);
                            assert_eq!(all, one, "from {start:?}, removing {nr} of {before}");
                            tried += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(tried, 3 * 36 * 2 * 6 * 4);
    }
}
