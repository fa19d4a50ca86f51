//! Observation: a /proc/self/pagemap-like view and the folio counters
//! (fs/proc/task_mmu.c: pagemap_pmd_range(), pte_to_pagemap_entry(),
//! pagemap_hugetlb_range(); fs/proc/page.c for kpagecount).

use crate::folio::FolioKind;
use crate::kernel::Kernel;
use crate::pgtable::{Entry, Level};
use crate::types::*;

/// What pagemap (plus kpageflags) would say about one virtual page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PagemapEntry {
    pub present: bool,
    pub swapped: bool,
    /// PM_MMAP_EXCLUSIVE, as the kernel computes it: see
    /// [`Kernel::pagemap`].
    pub exclusive: bool,
    /// Page frame number (None if not present).
    pub pfn: Option<u64>,
    pub zero_page: bool,
    /// Part of a transparent huge page (any size).
    pub thp: bool,
    /// Part of a hugetlb page.
    pub hugetlb: bool,
    pub anon: bool,
    /// PM_SOFT_DIRTY: the entry's soft-dirty bit, or the VMA's
    /// VM_SOFTDIRTY.
    pub soft_dirty: bool,
    /// The entry is writable (not visible in pagemap; model only).
    pub writable: bool,
    /// Mapped by a PMD/PUD leaf (model only).
    pub level: Option<Level>,
}

/// The counters of the folio behind one virtual page (model only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FolioInfo {
    pub pfn: u64,
    pub order: u8,
    pub refcount: i64,
    pub mapcount: i64,
    pub entire_mapcount: i64,
    /// What /proc/kpagecount reports for this page: its precise mapcount
    /// with CONFIG_PAGE_MAPCOUNT, the folio's average per page without
    /// (`get_kpage_count()`).
    pub page_mapcount: i64,
    pub pincount: i64,
    pub anon: bool,
    /// PageAnonExclusive of this page (hugetlb and PMD mappings: the head's).
    pub anon_exclusive: bool,
    pub maybe_pinned: bool,
    pub hugetlb: bool,
}

impl Kernel {
    /// The pagemap entry for `addr` in `pid`. The "exclusively mapped" bit
    /// (PM_MMAP_EXCLUSIVE) is set only on present entries with a page
    /// behind them — never on swap entries or the small zero page:
    /// - hugetlb: the folio is mapped once (`folio_maybe_mapped_shared()`;
    ///   PMD sharing is not modelled);
    /// - otherwise `__folio_page_mapped_exclusively()`, which follows the
    ///   `page_mapcount` knob (CONFIG_PAGE_MAPCOUNT): on, the page's precise
    ///   mapcount is 1; off, the folio is not maybe mapped shared (for a
    ///   large folio the MM_ID shared bit, see [`crate::rmap::MmIdSlots`]).
    /// - For a PMD-mapped THP (`pagemap_pmd_range()`) the kernel asks about
    ///   the PMD's first page and reports that answer for all 512 entries.
    ///   The huge zero folio is such a page: never counted, so it reads
    ///   "exclusive" with the knob off and not with it on.
    pub fn pagemap(&self, pid: Pid, addr: u64) -> SysResult<PagemapEntry> {
        let t = self.tasks.get(&pid).ok_or(Errno::ESRCH)?;
        let mm = self.mm(t.mm);
        let mut e = PagemapEntry {
            present: false,
            swapped: false,
            exclusive: false,
            pfn: None,
            zero_page: false,
            thp: false,
            hugetlb: false,
            anon: false,
            soft_dirty: false,
            writable: false,
            level: None,
        };
        // pte_to_pagemap_entry() / pagemap_pte_hole(): a VMA still
        // VM_SOFTDIRTY reports every page soft-dirty, mapped or not.
        e.soft_dirty = mm.vma(addr).is_some_and(|v| v.softdirty);
        let Some(leaf) = mm.pt.lookup(addr) else { return Ok(e) };
        e.level = Some(leaf.level);
        match leaf.entry {
            // pte_to_pagemap_entry() sets PM_MMAP_EXCLUSIVE only for a
            // present page: a swap entry never shows it.
            Entry::Swap { soft_dirty, .. } => {
                e.swapped = true;
                e.soft_dirty |= soft_dirty;
            }
            Entry::Present(p) => {
                let (fid, page) = leaf.page_for(addr).expect("present");
                let f = self.folios.get(if p.special { crate::folio::ZERO_FOLIO } else { fid });
                e.present = true;
                e.soft_dirty |= p.soft_dirty;
                e.writable = p.write;
                e.zero_page = f.kind == FolioKind::Zero;
                e.pfn = Some(if p.special { f.pfn } else { f.pfn + page });
                e.thp = f.is_large() && f.hugetlb.is_none() && !e.zero_page;
                e.hugetlb = f.hugetlb.is_some();
                e.anon = f.is_anon();
                e.exclusive = if p.special {
                    false
                } else if f.hugetlb.is_some() {
                    !f.maybe_mapped_shared()
                } else {
                    let asked = if leaf.level == Level::Pte { page } else { 0 };
                    self.page_mapped_exclusively(f, asked)
                };
            }
        }
        Ok(e)
    }

    /// `__folio_page_mapped_exclusively()` (fs/proc/task_mmu.c).
    fn page_mapped_exclusively(&self, f: &crate::folio::Folio, page: u64) -> bool {
        if self.policy.page_mapcount {
            f.precise_page_mapcount(page) == 1
        } else {
            !f.maybe_mapped_shared()
        }
    }

    /// The counters of the folio mapped at `addr`, if any.
    pub fn folio_info(&self, pid: Pid, addr: u64) -> SysResult<Option<FolioInfo>> {
        let t = self.tasks.get(&pid).ok_or(Errno::ESRCH)?;
        let Some(leaf) = self.mm(t.mm).pt.lookup(addr) else { return Ok(None) };
        let Some((fid, page)) = leaf.page_for(addr) else { return Ok(None) };
        let p = leaf.entry.present().expect("page_for implies present");
        let fid = if p.special { crate::folio::ZERO_FOLIO } else { fid };
        Ok(Some(self.folio_info_of(fid, page, leaf.level != Level::Pte)))
    }

    /// `folio_precise_page_mapcount()` of the page mapped at `addr`, which
    /// is what /proc/kpagecount shows with CONFIG_PAGE_MAPCOUNT=y
    /// (fs/proc/page.c, `get_kpage_count()`): the PTEs of every mm that map
    /// this very page, plus the folio's entire (PMD/PUD) mappings: the
    /// folio's per-page count ([`crate::folio::PageCounts`], which
    /// `check_invariants()` recounts from every page table). The zero pages
    /// are outside the rmap: 0. `None` when nothing is present at `addr`.
    pub fn page_mapcount(&self, pid: Pid, addr: u64) -> SysResult<Option<i64>> {
        let t = self.tasks.get(&pid).ok_or(Errno::ESRCH)?;
        let Some(leaf) = self.mm(t.mm).pt.lookup(addr) else { return Ok(None) };
        let Some((fid, page)) = leaf.page_for(addr) else { return Ok(None) };
        let f = self.folios.get(fid);
        if leaf.entry.present().is_some_and(|p| p.special) || f.kind == FolioKind::Zero {
            return Ok(Some(0));
        }
        Ok(Some(f.precise_page_mapcount(page)))
    }

    /// Counters of a folio, for the page `page` of it.
    pub fn folio_info_of(&self, fid: crate::folio::FolioId, page: u64, head_bit: bool) -> FolioInfo {
        let f = self.folios.get(fid);
        let ae_page = if head_bit || f.hugetlb.is_some() { 0 } else { page.min(f.nr_pages() - 1) };
        FolioInfo {
            pfn: f.pfn,
            order: f.order,
            refcount: f.refcount,
            mapcount: f.mapcount,
            entire_mapcount: f.entire_mapcount,
            page_mapcount: if self.policy.page_mapcount {
                f.precise_page_mapcount(page.min(f.nr_pages() - 1))
            } else {
                f.average_page_mapcount()
            },
            pincount: f.pincount,
            anon: f.is_anon(),
            anon_exclusive: f.page_ae(ae_page),
            maybe_pinned: f.maybe_dma_pinned(),
            hugetlb: f.hugetlb.is_some(),
        }
    }
}
