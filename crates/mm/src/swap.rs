//! Swap: reclaim by MADV_PAGEOUT and swap-in (mm/vmscan.c, mm/swapfile.c,
//! mm/memory.c: do_swap_page()).
//!
//! The model's swap device is unlimited and synchronous. Each swapped page
//! gets a slot holding its bytes and a count of the swap PTEs that refer to
//! it (`swap_map`); the swap cache keeps the folio of a slot that is still
//! referenced by other PTEs after one of them swapped it in. Left out:
//! large-folio swap-out and swap-in (folios are swapped page by page),
//! readahead, zswap, a reclaim that fails on extra references (such folios
//! are simply not reclaimed).

use crate::contents::Contents;
use crate::events::EventKind;
use crate::folio::{FolioId, MmId};
use crate::kernel::Kernel;
use crate::memory::{pte, FaultFlags, FaultResult};
use crate::pgtable::{Entry, Level, Present, SwapSlot};
use crate::rmap::Rmap;
use crate::types::*;
use crate::vma::Vma;
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Slot {
    pub data: Contents,
    /// Swap PTEs referring to this slot.
    pub count: u32,
    /// The folio in the swap cache for this slot, holding one reference.
    pub cache: Option<FolioId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub(crate) struct SwapDevice {
    pub slots: BTreeMap<SwapSlot, Slot>,
    next: u32,
}

impl Kernel {
    pub(crate) fn swap_cache_of(&self, folio: FolioId) -> Option<SwapSlot> {
        self.swap.slots.iter().find(|(_, s)| s.cache == Some(folio)).map(|(k, _)| *k)
    }

    /// Swap PTEs still referring to `slot` (`swap_count()`).
    pub(crate) fn swap_count(&self, slot: SwapSlot) -> i64 {
        self.swap.slots.get(&slot).map_or(0, |s| s.count as i64)
    }

    /// `swap_free()` for one swap PTE going away (zap, swap-in).
    pub(crate) fn swap_free(&mut self, slot: SwapSlot) {
        let s = self.swap.slots.get_mut(&slot).expect("swap PTEs refer to live slots");
        s.count -= 1;
        if s.count == 0 {
            let s = self.swap.slots.remove(&slot).expect("present");
            if let Some(f) = s.cache {
                self.folio_put(f);
            }
        }
    }

    /// `folio_free_swap()`: drop the swap-cache slot of `folio` if no swap PTE
    /// refers to it any more.
    pub(crate) fn try_free_swap(&mut self, folio: FolioId) {
        if let Some(slot) = self.swap_cache_of(folio) {
            if self.swap.slots[&slot].count == 0 {
                self.swap.slots.remove(&slot);
                self.folio_put(folio);
            }
        }
    }

    /// `swap_duplicate()` at fork.
    pub(crate) fn swap_dup(&mut self, slot: SwapSlot) {
        self.swap.slots.get_mut(&slot).expect("swap PTEs refer to live slots").count += 1;
    }

    /// MADV_PAGEOUT on `[start, end)` (mm/madvise.c:
    /// madvise_cold_or_pageout_pte_range() → reclaim_pages()): every private
    /// anon folio mapped only by this mm is unmapped page by page into swap
    /// entries that carry the page's anon-exclusive bit, then freed. A folio
    /// that may be pinned is skipped (`folio_try_share_anon_rmap_pte()` refuses);
    /// so is one shared with another mm or holding other references.
    /// Runs the [`crate::rmap::TryToUnmap`] step machine to its end.
    pub(crate) fn pageout(&mut self, pid: Pid, mm: MmId, start: u64, end: u64) {
        let mut t = crate::rmap::TryToUnmap::begin(pid, mm, start, end);
        while self.try_to_unmap_step(&mut t) {}
    }

    /// Splits the PMD-mapped anon THPs wholly inside `[start, end)` so that
    /// they are swapped out page by page.
    pub(crate) fn pageout_split(&mut self, pid: Pid, mm: MmId, start: u64, end: u64) {
        for leaf in self.mm(mm).pt.leaves(start, end) {
            if leaf.level == Level::Pmd && leaf.addr >= start && leaf.addr + PMD_SIZE <= end {
                if let Some(f) = self.folio_of_leaf(&leaf) {
                    if self.folio_is_anon(f) && self.folios.get(f).hugetlb.is_none() {
                        self.split_huge_pmd(pid, mm, leaf.addr);
                    }
                }
            }
        }
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
        done: &[FolioId],
    ) -> Option<(FolioId, Vec<(u64, Present)>)> {
        for leaf in self.mm(mm).pt.leaves(from, end) {
            let Entry::Present(p) = leaf.entry else { continue };
            if leaf.addr < from || leaf.level != Level::Pte || p.special || done.contains(&p.folio) {
                continue;
            }
            let f = self.folios.get(p.folio);
            if !f.is_anon() || f.hugetlb.is_some() || f.maybe_mapped_shared() || f.mapcount != f.refcount {
                continue;
            }
            if !f.is_large() && f.mapcount != 1 {
                continue;
            }
            // Every mapping of the folio must lie in this range of this mm.
            let mapped: Vec<(u64, Present)> = self
                .mm(mm)
                .pt
                .leaves(start, end)
                .into_iter()
                .filter_map(|l| l.entry.present().filter(|q| q.folio == p.folio && l.level == Level::Pte).map(|q| (l.addr, *q)))
                .collect();
            if mapped.len() as i64 != f.mapcount {
                continue;
            }
            return Some((p.folio, mapped));
        }
        None
    }

    /// Puts one page into a new swap slot and its swap entry at `addr`
    /// (`try_to_unmap_one()`'s `set_pte_at()` of the swap PTE).
    pub(crate) fn swap_out_page(&mut self, mm: MmId, addr: u64, q: Present, exclusive: bool) {
        let slot = SwapSlot(self.swap.next);
        self.swap.next += 1;
        let data = self.folios.get(q.folio).page_data(q.page);
        self.swap.slots.insert(slot, Slot { data, count: 1, cache: None });
        self.mm_mut(mm).pt.set(Level::Pte, addr, Entry::Swap { slot, exclusive, soft_dirty: q.soft_dirty });
    }

    /// `do_swap_page()`: fault on a swap entry. The folio comes from the swap
    /// cache or is read from the slot (and cached if other swap PTEs still
    /// refer to the slot). It is mapped exclusively — anon-exclusive, and
    /// writable for a write fault — if the swap PTE carried the exclusive
    /// marker or nobody else can reference the folio; otherwise read-only,
    /// and a write fault continues in `do_wp_page()`.
    pub(crate) fn do_swap_page(&mut self, pid: Pid, mm: MmId, vma: &Vma, addr: u64, flags: FaultFlags) -> FaultResult {
        let Some(Entry::Swap { slot, exclusive, soft_dirty }) = self.mm(mm).pt.get(Level::Pte, addr) else {
            return Ok(());
        };
        let s = &self.swap.slots[&slot];
        let folio = match s.cache {
            Some(f) => {
                self.folio_ref_add(f, 1);
                f
            }
            None => {
                let data = s.data.clone();
                let others = s.count > 1;
                let f = self.alloc_anon_folio(0);
                self.folios.get_mut(f).data = data;
                if others {
                    self.folio_ref_add(f, 1);
                    self.swap.slots.get_mut(&slot).expect("present").cache = Some(f);
                }
                f
            }
        };
        self.swap_free(slot);
        // Our reference becomes the mapping's.
        let fo = self.folios.get(folio);
        let exclusive = exclusive || (fo.refcount == 1 && fo.mapcount == 0);
        let write = exclusive && flags.write && vma.prot.write;
        self.folios.get_mut(folio).refcount -= 1;
        self.rmap_add(folio, mm, Rmap::pte(0));
        self.folios.get_mut(folio).anon_exclusive.set(0, exclusive);
        self.ensure_anon_vma(mm, vma.start);
        let mut e = pte(folio, 0, write, write);
        if let Entry::Present(p) = &mut e {
            p.soft_dirty = soft_dirty || write;
        }
        self.mm_mut(mm).pt.set(Level::Pte, addr, e);
        self.event(pid, EventKind::Swap, "do_swap_page", Some(addr), || {
            format!("swap-in, {}", if exclusive { "exclusive" } else { "maybe shared → map read-only" })
        });
        if (flags.write || flags.unshare) && !write {
            let p = *self.mm(mm).pt.get(Level::Pte, addr).and_then(|e| e.present().copied()).as_ref().expect("just mapped");
            if !(flags.unshare && exclusive) {
                return self.do_wp_page(pid, mm, vma, addr, p, flags);
            }
        }
        Ok(())
    }
}
