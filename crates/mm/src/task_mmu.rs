//! Observation: a /proc/self/pagemap-like view and the folio counters
//! (fs/proc/task_mmu.c: pagemap_pmd_range(), pte_to_pagemap_entry()).

use crate::folio::FolioKind;
use crate::kernel::Kernel;
use crate::pgtable::{Entry, Level};
use crate::types::*;

/// What pagemap (plus kpageflags) would say about one virtual page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PagemapEntry {
    pub present: bool,
    pub swapped: bool,
    /// PM_MMAP_EXCLUSIVE: mapped by this process only.
    pub exclusive: bool,
    /// Page frame number (None if not present).
    pub pfn: Option<u64>,
    pub zero_page: bool,
    /// Part of a transparent huge page (any size).
    pub thp: bool,
    /// Part of a hugetlb page.
    pub hugetlb: bool,
    pub anon: bool,
    /// PM_SOFT_DIRTY.
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
    pub pincount: i64,
    pub anon: bool,
    /// PageAnonExclusive of this page (hugetlb and PMD mappings: the head's).
    pub anon_exclusive: bool,
    pub maybe_pinned: bool,
    pub hugetlb: bool,
}

impl Kernel {
    /// The pagemap entry for `addr` in `pid`.
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
        let Some(leaf) = mm.pt.lookup(addr) else { return Ok(e) };
        e.level = Some(leaf.level);
        match leaf.entry {
            // pte_to_pagemap_entry() sets PM_MMAP_EXCLUSIVE only for a
            // present page: a swap entry never shows it.
            Entry::Swap { soft_dirty, .. } => {
                e.swapped = true;
                e.soft_dirty = soft_dirty;
            }
            Entry::Present(p) => {
                let (fid, page) = leaf.page_for(addr).expect("present");
                let f = self.folios.get(if p.special { crate::folio::ZERO_FOLIO } else { fid });
                e.present = true;
                e.soft_dirty = p.soft_dirty;
                e.writable = p.write;
                e.zero_page = f.kind == FolioKind::Zero;
                e.pfn = Some(if p.special { f.pfn } else { f.pfn + page });
                e.thp = f.is_large() && f.hugetlb.is_none() && !e.zero_page;
                e.hugetlb = f.hugetlb.is_some();
                e.anon = f.is_anon();
                e.exclusive = !e.zero_page && if f.is_large() { f.mapcount > 0 && !f.maybe_mapped_shared() } else { f.mapcount == 1 };
            }
        }
        Ok(e)
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
            pincount: f.pincount,
            anon: f.is_anon(),
            anon_exclusive: f.page_ae(ae_page),
            maybe_pinned: f.maybe_dma_pinned(),
            hugetlb: f.hugetlb.is_some(),
        }
    }
}
