//! Swap: reclaim by MADV_PAGEOUT and swap-in (mm/vmscan.c, mm/swapfile.c,
//! mm/swap_state.c, mm/memory.c: do_swap_page()).
//!
//! The model's swap device never fills (see [`SwapDevice`] for how slots
//! are handed out); its kind is the policy's
//! `swap` setting (`SwapKind`), because the kind decides which path
//! do_swap_page() takes. Each swapped page gets a slot holding its bytes, a
//! count of the swap PTEs that refer to it (`swap_map`) and the folio in the
//! swap cache for it, if any. A slot lives while a swap PTE or the swap cache
//! refers to it (the kernel's SWAP_HAS_CACHE). What the two kinds do:
//!
//! - zram (SWP_SYNCHRONOUS_IO): writeback finishes inside reclaim, so a
//!   paged-out folio leaves the swap cache and is freed; a swap-in of a slot
//!   only one PTE refers to skips the swap cache with a fresh folio, which is
//!   exclusive whatever the swap PTE said.
//! - a swap file: writeback is asynchronous, so reclaim leaves a dirty folio
//!   in the swap cache (one pass of MADV_PAGEOUT never comes back for it);
//!   swap-ins go through the swap cache and are exclusive only if the swap
//!   PTE said so or no one else holds the folio.
//!
//! Left out: large-folio swap-out and swap-in (folios are swapped page by
//! page, and only small folios stay in the swap cache), readahead, zswap,
//! writeback still running at swap-in (SWP_STABLE_WRITES), vm_swap_full()
//! (the device is never half full), the per-CPU LRU batches, a reclaim that
//! fails on extra references (such folios are simply not reclaimed), and the
//! rare race in which asynchronous writeback ends before reclaim looks at the
//! folio again (the kernel then frees it as for zram).

use crate::contents::Contents;
use crate::events::EventKind;
use crate::folio::{FolioId, MmId};
use crate::kernel::Kernel;
use crate::memory::{pte, FaultFlags, FaultResult};
use crate::pgtable::{Entry, Level, Present, SwapSlot};
use crate::policy::SwapKind;
use crate::rmap::Rmap;
use crate::types::*;
use crate::vma::Vma;
use std::collections::BTreeSet;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Slot {
    pub data: Contents,
    /// Swap PTEs referring to this slot.
    pub count: u32,
    /// The folio in the swap cache for this slot, holding one reference.
    pub cache: Option<FolioId>,
}

/// The swap device's slots and the swap cache's index.
///
/// A new slot is the lowest free slot number, so `slots[i]` is slot `i`
/// (`None` while free) and the vector never ends in a free slot: it is as
/// long as the highest live slot number plus one, which is at most the
/// most slots ever live at once (a slot is handed out only when every
/// lower one is live). Memory is therefore bounded by the peak of live
/// slots, not by how many were ever handed out, and slot numbers stay
/// small. Every set of live slots has one form, so `Eq` and `Hash` compare
/// states by `slots` alone; a lookup is an index, not a tree search.
///
/// Which slot a page gets is not observable from user space in the model:
/// its pagemap reports a swapped page (PM_SWAP) but not the swap type and
/// offset, which the kernel shows only to CAP_SYS_ADMIN
/// (`pagemap_read()`'s `show_pfn`; see [`crate::task_mmu::PagemapEntry`];
/// the live backend reads only PM_SWAP); only the explorer's counterexample
/// summaries print slot numbers, as names.
///
/// The kernel's allocator (mm/swapfile.c: `folio_alloc_swap()` →
/// `swap_alloc_fast()` / `cluster_alloc_swap_entry()`) is not lowest-first:
/// it splits the device into clusters of `SWAPFILE_CLUSTER` slots (a PMD's
/// worth, 512 on x86-64, with CONFIG_THP_SWAP; 256 without), allocates
/// upward from a per-CPU (SSD) or per-device (rotating disk) next offset
/// inside the current cluster, and when that cluster is used up takes one
/// from the non-full, then the free, then the fragmented cluster lists;
/// freed slots are reused once their cluster is picked again. What the
/// model keeps of it is that freed slots are reused.
#[derive(Clone, Debug, Default)]
pub(crate) struct SwapDevice {
    slots: Vec<Option<Slot>>,
    /// No slot below this one is free (a lower bound on the lowest free
    /// slot), so that handing out slots in a row does not rescan the live
    /// ones. Made from `slots`, so left out of `Eq` and `Hash`.
    free_from: usize,
    /// The slot each swap-cache folio belongs to (the kernel's
    /// `folio->swap`), indexed by folio id (the folio arena hands out the
    /// lowest free id, so ids are dense): the reverse of `Slot::cache`, so
    /// finding a folio's slot is a lookup, not a scan of the device. Made
    /// from `slots`, so left out of `Eq` and `Hash`. Changed only through
    /// [`SwapDevice::set_cache`] and [`SwapDevice::remove`].
    by_folio: Vec<Option<SwapSlot>>,
}

impl PartialEq for SwapDevice {
    fn eq(&self, other: &Self) -> bool {
        self.slots == other.slots
    }
}

impl Eq for SwapDevice {}

impl std::hash::Hash for SwapDevice {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.slots.hash(h);
    }
}

impl SwapDevice {
    /// The live slot `slot`.
    fn get(&self, slot: SwapSlot) -> Option<&Slot> {
        self.slots.get(slot.0 as usize)?.as_ref()
    }

    /// One more swap entry refers to `slot` (`swap_duplicate()`).
    pub(crate) fn dup(&mut self, slot: SwapSlot) {
        self.get_mut(slot).expect("swap PTEs refer to live slots").count += 1;
    }

    fn get_mut(&mut self, slot: SwapSlot) -> Option<&mut Slot> {
        self.slots.get_mut(slot.0 as usize)?.as_mut()
    }

    /// The live slots in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (SwapSlot, &Slot)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (SwapSlot(i as u32), s)))
    }

    /// How many slots are live.
    pub(crate) fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// A new slot holding `data`, referred to by one swap PTE: the lowest
    /// free one.
    fn alloc(&mut self, data: Contents) -> SwapSlot {
        let i = (self.free_from..self.slots.len()).find(|&i| self.slots[i].is_none()).unwrap_or(self.slots.len());
        let slot = Slot { data, count: 1, cache: None };
        match self.slots.get_mut(i) {
            Some(free) => *free = Some(slot),
            None => self.slots.push(Some(slot)),
        }
        self.free_from = i + 1;
        SwapSlot(u32::try_from(i).expect("live swap slots fit in a swap entry"))
    }

    /// Puts `folio` into the swap cache for `slot`, or (`None`) takes the
    /// slot's folio out of it.
    fn set_cache(&mut self, slot: SwapSlot, folio: Option<FolioId>) {
        let s = self.get_mut(slot).expect("swap-cache slots are live");
        if let Some(old) = std::mem::replace(&mut s.cache, folio) {
            self.unindex(old);
        }
        if let Some(f) = folio {
            let i = f.0 as usize;
            if self.by_folio.len() <= i {
                self.by_folio.resize(i + 1, None);
            }
            self.by_folio[i] = Some(slot);
        }
    }

    /// Takes `folio` out of the swap-cache index.
    fn unindex(&mut self, folio: FolioId) {
        self.by_folio[folio.0 as usize] = None;
    }

    /// The slot whose swap-cache folio `folio` is.
    fn cache_of(&self, folio: FolioId) -> Option<SwapSlot> {
        self.by_folio.get(folio.0 as usize).copied().flatten()
    }

    /// Folios in the swap-cache index (for the invariant check).
    pub fn cached(&self) -> usize {
        self.by_folio.iter().flatten().count()
    }

    /// Frees `slot` (and its swap-cache entry).
    fn remove(&mut self, slot: SwapSlot) {
        let i = slot.0 as usize;
        if let Some(f) = self.slots[i].take().expect("freed slots are live").cache {
            self.unindex(f);
        }
        while self.slots.last().is_some_and(|s| s.is_none()) {
            self.slots.pop();
        }
        self.free_from = self.free_from.min(i);
    }
}

impl Kernel {
    pub(crate) fn swap_cache_of(&self, folio: FolioId) -> Option<SwapSlot> {
        self.swap.cache_of(folio)
    }

    /// Swap PTEs still referring to `slot` (`swap_count()`).
    pub(crate) fn swap_count(&self, slot: SwapSlot) -> i64 {
        self.swap.get(slot).map_or(0, |s| s.count as i64)
    }

    /// `swap_free_nr()` for one swap PTE replaced at swap-in: the slot goes
    /// once neither a swap PTE nor the swap cache refers to it; a folio in the
    /// swap cache stays there.
    fn swap_free(&mut self, slot: SwapSlot) {
        let s = self.swap.get_mut(slot).expect("swap PTEs refer to live slots");
        s.count -= 1;
        if s.count == 0 && s.cache.is_none() {
            self.swap.remove(slot);
        }
    }

    /// `free_swap_and_cache_nr()` for one swap PTE zapped (munmap,
    /// MADV_DONTNEED, exit): when the last swap PTE goes, the swap-cache
    /// folio goes too if nothing maps it (`__try_to_reclaim_swap()` with
    /// TTRS_UNMAPPED); a mapped one stays in the swap cache.
    pub(crate) fn free_swap_and_cache(&mut self, slot: SwapSlot) {
        self.swap_free(slot);
        if let Some(f) = self.swap.get(slot).filter(|s| s.count == 0).and_then(|s| s.cache) {
            if self.folios.get(f).mapcount == 0 {
                self.folio_free_swap(f);
            }
        }
    }

    /// `folio_free_swap()`: take `folio` out of the swap cache (dropping the
    /// cache's reference and the slot) if no swap PTE refers to its slot any
    /// more. Returns whether it did. A folio that lives on is dirty: its
    /// bytes are nowhere else now (`folio_set_dirty()`).
    pub(crate) fn folio_free_swap(&mut self, folio: FolioId) -> bool {
        match self.swap_cache_of(folio) {
            Some(slot) if self.swap.get(slot).is_some_and(|s| s.count == 0) => {
                self.swap.remove(slot);
                self.folio_put(folio);
                let f = self.folios.get_mut(folio);
                if !f.freed {
                    f.dirty = true;
                }
                true
            }
            _ => false,
        }
    }

    /// `free_swap_cache()` (mm/swap_state.c), called for a folio a zap or a
    /// COW copy let go of: free its swap space once nothing maps it.
    pub(crate) fn free_swap_cache(&mut self, folio: FolioId) {
        // Only a folio in the swap cache qualifies, and the cache's
        // reference keeps it allocated.
        if self.swap_cache_of(folio).is_some() && self.folios.get(folio).mapcount == 0 {
            self.folio_free_swap(folio);
        }
    }

    /// `swap_duplicate()` at fork.
    pub(crate) fn swap_dup(&mut self, slot: SwapSlot) {
        self.swap.dup(slot);
    }

    /// MADV_PAGEOUT on `[start, end)` (mm/madvise.c:
    /// madvise_cold_or_pageout_pte_range() → reclaim_pages() →
    /// shrink_folio_list()): every private anon folio mapped only by this mm
    /// is unmapped page by page into swap entries that carry the page's
    /// anon-exclusive bit (`try_to_unmap_one()`). A folio already in the swap
    /// cache keeps its slot (`folio_alloc_swap()` is skipped). Then, on zram,
    /// the folio leaves the swap cache and is freed; on a swap file a dirty
    /// folio stays in the swap cache under writeback (a clean one, whose slot
    /// already holds its bytes, is freed). A folio that may be pinned is
    /// skipped (`folio_try_share_anon_rmap()` refuses); so is one shared
    /// with another mm or holding references other than its mappings and the
    /// swap cache.
    /// Runs the [`crate::rmap::TryToUnmap`] step machine to its end; what
    /// happens after the unmap is [`Kernel::swap_out_folio`].
    pub(crate) fn pageout(&mut self, pid: Pid, mm: MmId, start: u64, end: u64) {
        let mut t = crate::rmap::TryToUnmap::begin(pid, mm, start, end);
        while self.try_to_unmap_step(&mut t) {}
    }

    /// The first step of MADV_PAGEOUT on `[start, end)`, inside one VMA:
    /// the large folios the range covers in part are split
    /// ([`Kernel::madvise_split_partial`]); then each PMD-mapped anon THP
    /// the range covers whole and no other mm may map
    /// (`folio_maybe_mapped_shared()`) is split into PTEs so that it is
    /// swapped out page by page (`try_to_unmap_one()` with
    /// TTU_SPLIT_HUGE_PMD) — unless MADV_FREE made it lazily freeable: then
    /// it is dropped whole or kept ([`Kernel::discard_lazyfree_pmd`]).
    pub(crate) fn pageout_split(&mut self, pid: Pid, mm: MmId, start: u64, end: u64) {
        self.madvise_split_partial(pid, mm, start, end);
        let huge: Vec<_> = self.mm(mm).pt.huge_leaves(start, end).collect();
        for leaf in huge {
            if leaf.level == Level::Pmd && leaf.addr >= start && leaf.addr + PMD_SIZE <= end {
                if let Some(f) = self.folio_of_leaf(&leaf) {
                    let fo = self.folios.get(f);
                    if fo.is_anon() && fo.hugetlb.is_none() && !fo.maybe_mapped_shared() {
                        if fo.lazyfree {
                            self.discard_lazyfree_pmd(pid, mm, leaf.addr, f);
                        } else {
                            self.split_huge_pmd(pid, mm, leaf.addr);
                        }
                    }
                }
            }
        }
    }

    /// `__discard_anon_folio_pmd_locked()` (mm/huge_memory.c, reached from
    /// `try_to_unmap_one()`): reclaim of a PMD-mapped THP that MADV_FREE
    /// made lazily freeable. Written again since (a dirty PMD or folio), it
    /// is swap-backed again and stays mapped; with references beyond its
    /// mappings (GUP) it stays mapped and lazily freeable; otherwise the PMD
    /// is cleared and the folio freed without being written anywhere: the
    /// next access faults in zeros. One step in the model (the kernel clears
    /// the PMD before it reads the reference count, against GUP-fast).
    pub(crate) fn discard_lazyfree_pmd(&mut self, pid: Pid, mm: MmId, haddr: u64, folio: FolioId) {
        let Some(Entry::Present(p)) = self.mm(mm).pt.get(Level::Pmd, haddr) else { return };
        let f = self.folios.get_mut(folio);
        if p.dirty || f.dirty {
            f.dirty = true;
            f.lazyfree = false;
            return;
        }
        if f.refcount != f.mapcount {
            return;
        }
        self.mm_mut(mm).pt.clear(Level::Pmd, haddr);
        self.rmap_remove(folio, mm, Rmap::Entire);
        self.event(pid, EventKind::Swap, "__discard_anon_folio_pmd_locked", Some(haddr), || "clean lazyfree THP → dropped".into());
    }

    /// The next folio at or after `from` that reclaim would try to swap
    /// out: a private anon folio whose every reference is a mapping by PTEs
    /// of this range of this mm. Returns it with those mappings.
    pub(crate) fn pageout_candidate(
        &self,
        mm: MmId,
        from: u64,
        start: u64,
        end: u64,
        done: &BTreeSet<FolioId>,
    ) -> Option<(FolioId, Vec<(u64, Present)>)> {
        for leaf in self.mm(mm).pt.ptes_in(from, end) {
            let Entry::Present(p) = leaf.entry else { continue };
            if p.special || done.contains(&p.folio) {
                continue;
            }
            let cached = self.swap_cache_of(p.folio);
            let f = self.folios.get(p.folio);
            if !f.is_anon() || f.hugetlb.is_some() || f.maybe_mapped_shared() || f.mapcount + cached.is_some() as i64 != f.refcount {
                continue;
            }
            if !f.is_large() {
                // Its one mapping is this PTE.
                if f.mapcount != 1 {
                    continue;
                }
                return Some((p.folio, vec![(leaf.addr, p)]));
            }
            // Every mapping of the folio must lie in this range of this mm
            // (room for all of them made at once: a THP has 512). The PTEs
            // are read a table at a time, each table found by its first
            // PTE.
            let pt = &self.mm(mm).pt;
            let mut mapped: Vec<(u64, Present)> = Vec::with_capacity(f.mapcount as usize);
            let mut at = start;
            while at < end {
                let Some(first) = pt.ptes_in(at, end).next() else { break };
                let table_end = (align_down(first.addr, PMD_SIZE) + PMD_SIZE).min(end);
                let slots = pt.pte_run(first.addr, table_end).expect("the table of a PTE");
                for (addr, slot) in (first.addr..).step_by(PAGE_SIZE as usize).zip(slots) {
                    if let Some(Entry::Present(q)) = slot.get() {
                        if q.folio == p.folio {
                            mapped.push((addr, q));
                        }
                    }
                }
                at = table_end;
            }
            if mapped.len() as i64 != f.mapcount {
                continue;
            }
            return Some((p.folio, mapped));
        }
        None
    }

    /// `shrink_folio_list()` after `try_to_unmap_one()` cleared the PTEs of
    /// `mapped` (their mapping references are still held by the caller):
    /// each page gets a swap entry carrying its AE bit. A folio already in
    /// the swap cache keeps its slot (`folio_alloc_swap()` is skipped); a new
    /// one enters the swap cache with a reference (`add_to_swap()`). Then, on
    /// zram, or for a clean folio whose slot already holds its bytes, the
    /// folio leaves the swap cache (`__remove_mapping()`); on a swap file a
    /// dirty small folio stays there, clean, under writeback.
    pub(crate) fn swap_out_folio(&mut self, folio: FolioId, mm: MmId, mapped: Vec<(u64, Present)>, exclusive: Vec<bool>) {
        let cached = self.swap_cache_of(folio);
        let dirty = self.folios.get(folio).dirty || mapped.iter().any(|(_, q)| q.dirty);
        let small = !self.folios.get(folio).is_large();
        let keep = match cached {
            Some(_) => self.policy.swap == SwapKind::File && dirty,
            None => self.policy.swap == SwapKind::File && small,
        };
        if cached.is_none() && keep {
            self.folio_ref_add(folio, 1);
        }
        let mut kept_slot = cached;
        for ((addr, q), exclusive) in mapped.into_iter().zip(exclusive) {
            let data = self.folios.get(q.folio).page_data(q.page);
            let slot = match cached {
                Some(slot) => {
                    let s = self.swap.get_mut(slot).expect("cached slots are live");
                    s.count += 1;
                    s.data = data;
                    slot
                }
                None => {
                    let slot = self.swap.alloc(data);
                    kept_slot = Some(slot);
                    slot
                }
            };
            self.mm_mut(mm).pt.set(Level::Pte, addr, Entry::Swap { slot, exclusive, soft_dirty: q.soft_dirty });
        }
        match (cached, keep) {
            (Some(slot), false) => {
                self.swap.set_cache(slot, None);
                self.folio_put(folio);
            }
            (_, true) => {
                let slot = kept_slot.expect("a small folio has its slot");
                self.swap.set_cache(slot, Some(folio));
                self.folios.get_mut(folio).dirty = false;
            }
            (None, false) => {}
        }
    }

    /// `do_swap_page()`: fault on a swap entry.
    ///
    /// Where the folio comes from: the swap cache if it holds one; on zram,
    /// when this is the slot's only swap PTE, a fresh folio read from the
    /// slot that never enters the swap cache (certainly exclusive); otherwise
    /// a fresh folio read into the swap cache (`swapin_readahead()`).
    /// Exclusive: the fresh uncached folio always; a swap-cache folio if the
    /// swap PTE carried the exclusive marker (`pte_swp_exclusive()`).
    /// After the slot reference is dropped (`swap_free_nr()`), a write fault
    /// on a folio held only by the swap cache and the fault frees the swap
    /// space (`should_try_to_free_swap()` → `folio_free_swap()`). The folio
    /// is then mapped exclusively if it was exclusive or the fault holds the
    /// only reference — anon-exclusive, and writable whenever the VMA is
    /// writable and soft-dirty tracking does not want a fault
    /// (`pte_needs_soft_dirty_wp()`), even on a read fault; dirty on a write
    /// fault. Otherwise it is mapped read-only and shared, and a write fault
    /// goes on to `do_wp_page()`. An unshare fault (the kernel's GUP retries
    /// one on the now present PTE) goes there too unless the page is
    /// exclusive. Left out: KSM, uffd-wp, large folios (see the module doc).
    pub(crate) fn do_swap_page(&mut self, pid: Pid, mm: MmId, vma: &Vma, addr: u64, flags: FaultFlags) -> FaultResult {
        let Some(Entry::Swap { slot, exclusive: marker, soft_dirty }) = self.mm(mm).pt.get(Level::Pte, addr) else {
            return Ok(());
        };
        let s = self.swap.get(slot).expect("swap PTEs refer to live slots");
        if s.cache.is_none() {
            self.oom_reserve(pid, 1)?;
        }
        let s = self.swap.get(slot).expect("swap PTEs refer to live slots");
        let (folio, in_cache) = match s.cache {
            Some(f) => {
                self.folio_ref_add(f, 1);
                (f, true)
            }
            None => {
                let (data, cache) = (s.data.clone(), !(self.policy.swap == SwapKind::Zram && s.count == 1));
                let f = self.alloc_anon_folio(0);
                self.folios.get_mut(f).data = data;
                if cache {
                    self.folio_ref_add(f, 1);
                    self.swap.set_cache(slot, Some(f));
                }
                (f, cache)
            }
        };
        let exclusive = !in_cache || marker;
        self.swap_free(slot);
        if in_cache && flags.write && self.folios.get(folio).refcount == 2 {
            self.folio_free_swap(folio);
        }
        let fo = self.folios.get(folio);
        let exclusive = exclusive || fo.refcount == 1;
        let writable = exclusive && vma.prot.write && (vma.softdirty || soft_dirty);
        let write = writable && flags.write;
        // The fault's reference becomes the mapping's.
        self.folios.get_mut(folio).refcount -= 1;
        self.rmap_add(folio, mm, Rmap::pte(0));
        self.folios.get_mut(folio).anon_exclusive.set(0, exclusive);
        self.ensure_anon_vma(mm, vma.start);
        let mut e = pte(folio, 0, writable, write);
        if let Entry::Present(p) = &mut e {
            p.soft_dirty = soft_dirty || write;
        }
        self.mm_mut(mm).pt.set(Level::Pte, addr, e);
        self.event(pid, EventKind::Swap, "do_swap_page", Some(addr), || {
            let from = if in_cache { "from the swap cache" } else { "skipping the swap cache" };
            let how = match (exclusive, writable) {
                (true, true) => "exclusive → map writable",
                (true, false) => "exclusive → map read-only (VMA read-only or soft-dirty tracking)",
                (false, _) => "maybe shared → map read-only",
            };
            format!("swap-in {from}, {how}")
        });
        if (flags.write && !write) || (flags.unshare && !exclusive) {
            let p = *self.mm(mm).pt.get(Level::Pte, addr).and_then(|e| e.present().copied()).as_ref().expect("just mapped");
            return self.do_wp_page(pid, mm, vma, addr, p, flags);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash_of as hash;
    use crate::madvise::Advice;
    use crate::mmap::MmapRequest;
    use crate::policy::Policy;

    /// One page stays swapped out while another is paged out and back in
    /// again and again (the second swap-in frees its slot: zram skips the
    /// swap cache, a write on a swap file frees the swap space): the
    /// device holds two slots at most, however many were handed out.
    #[test]
    fn storage_stays_bounded_while_one_slot_stays_live() {
        for kind in [SwapKind::Zram, SwapKind::File] {
            let mut k = Kernel::new(Policy { swap: kind, ..Policy::default() });
            let p = k.spawn();
            let a = k.mmap(p, MmapRequest::anon(2 * PAGE_SIZE)).unwrap();
            let b = a + PAGE_SIZE;
            k.write_mem(p, a, &Contents::filled(2 * PAGE_SIZE, 0x5a)).unwrap();
            k.madvise(p, a, PAGE_SIZE, Advice::PageOut).unwrap();
            for round in 0..1000u32 {
                k.madvise(p, b, PAGE_SIZE, Advice::PageOut).unwrap();
                assert!(k.pagemap(p, b).unwrap().swapped, "{kind:?} round {round}");
                let byte = Contents::filled(PAGE_SIZE, round as u8);
                k.write_mem(p, b, &byte).unwrap();
                k.check_invariants().unwrap();
                assert!(k.pagemap(p, a).unwrap().swapped, "{kind:?}: the first page stays out");
                assert!(k.swap.slots.len() <= 2, "{kind:?} round {round}: {} slots kept", k.swap.slots.len());
            }
            assert!(k.read_mem(p, a, PAGE_SIZE).unwrap().is_fill(0x5a), "{kind:?}");
            assert!(k.read_mem(p, b, PAGE_SIZE).unwrap().is_fill(231), "{kind:?}: round 999's byte");
        }
    }

    /// A freed slot is handed out again before a new one, and the same
    /// live slots reached by different histories are one state.
    #[test]
    fn the_lowest_free_slot_is_reused_and_a_state_has_one_form() {
        let data = || Contents::filled(PAGE_SIZE, 1);
        let mut d = SwapDevice::default();
        let slots: Vec<SwapSlot> = (0..4).map(|_| d.alloc(data())).collect();
        assert_eq!(slots, [0, 1, 2, 3].map(SwapSlot));
        d.remove(SwapSlot(2));
        d.remove(SwapSlot(1));
        assert_eq!(d.alloc(data()), SwapSlot(1));
        assert_eq!(d.alloc(data()), SwapSlot(2));
        assert_eq!(d.alloc(data()), SwapSlot(4));
        for s in [4, 3, 2, 1] {
            d.remove(SwapSlot(s));
        }
        assert_eq!(d.slots.len(), 1, "free slots at the end are dropped");

        let mut e = SwapDevice::default();
        e.alloc(data());
        assert_eq!(d, e);
        assert_eq!(hash(&d), hash(&e));
        assert_eq!(d.alloc(data()), e.alloc(data()));
    }
}
