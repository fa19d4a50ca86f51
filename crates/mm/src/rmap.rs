//! Reverse-map bookkeeping: mapcounts, mm ids and PageAnonExclusive
//! (mm/rmap.c, include/linux/rmap.h).

use crate::events::EventKind;
use crate::folio::{FolioId, MmId};
use crate::kernel::Kernel;
use crate::types::{Pid, HPAGE_PMD_NR};

impl Kernel {
    /// Accounts `nr` new PTE mappings (or one entire PMD/PUD mapping when
    /// `entire`) of `folio` by `mm`, each holding one folio reference
    /// (folio_add_anon_rmap_ptes()/folio_add_file_rmap_*() plus the caller's
    /// folio_ref_add()). The zero folios are never counted.
    pub(crate) fn rmap_add(&mut self, folio: FolioId, mm: MmId, nr: u64, entire: bool) {
        let f = self.folios.get_mut(folio);
        if f.is_zero() {
            return;
        }
        let n = if entire { 1 } else { nr as i64 };
        f.mapcount += n;
        if entire {
            f.entire_mapcount += 1;
        }
        f.refcount += n;
        if f.is_large() {
            f.add_mm_map(mm, n as u32);
        }
    }

    /// Undoes [`Kernel::rmap_add`] for `nr` PTEs (or one entire mapping) and
    /// drops their references (folio_remove_rmap_*() + folio_put()).
    pub(crate) fn rmap_remove(&mut self, folio: FolioId, mm: MmId, nr: u64, entire: bool) {
        let f = self.folios.get_mut(folio);
        if f.is_zero() {
            return;
        }
        let n = if entire { 1 } else { nr as i64 };
        f.mapcount -= n;
        if entire {
            f.entire_mapcount -= 1;
        }
        if f.is_large() {
            f.sub_mm_map(mm, n as u32);
        }
        self.folio_put_refs(folio, n);
    }

    /// `folio_add_new_anon_rmap()` with RMAP_EXCLUSIVE: a freshly allocated
    /// folio whose allocation reference becomes the first mapping's; all its
    /// pages start anon-exclusive.
    pub(crate) fn add_new_anon_rmap(&mut self, folio: FolioId, mm: MmId, nr_ptes: u64, entire: bool) {
        let f = self.folios.get_mut(folio);
        f.anon_exclusive.set_all(true);
        f.refcount -= 1;
        self.rmap_add(folio, mm, nr_ptes, entire);
    }

    /// `__folio_try_dup_anon_rmap()` (include/linux/rmap.h): fork wants to
    /// share `nr` pages of an anon folio from `first` with the child. If the
    /// folio may be pinned (and the mm ever pinned) and any of the pages is
    /// anon-exclusive, refuse: fork must copy instead. Otherwise clear AE on
    /// those pages (the child's mappings and references are counted by the
    /// caller's rmap_add()). Under policies without early fork copies
    /// (pre-5.9) never refuse.
    fn try_dup_anon_rmap(&mut self, folio: FolioId, first: u64, nr: u64, parent_has_pinned: bool) -> bool {
        let f = self.folios.get(folio);
        let any_ae = (first..first + nr).any(|p| f.page_ae(p));
        if self.policy.fork_copies_pinned() && parent_has_pinned && f.maybe_dma_pinned() && any_ae {
            return false;
        }
        let f = self.folios.get_mut(folio);
        for p in first..first + nr {
            f.anon_exclusive.set(p, false);
        }
        true
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
        let nr = f.nr_pages();
        let f = self.folios.get_mut(folio);
        for p in 0..nr {
            f.anon_exclusive.set(p, false);
        }
        true
    }
}
