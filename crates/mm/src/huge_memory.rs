//! Transparent huge pages mapped by PMDs (mm/huge_memory.c).

use crate::events::EventKind;
use crate::folio::{FolioId, MmId, HUGE_ZERO_FOLIO, ZERO_FOLIO};
use crate::kernel::Kernel;
use crate::memory::{FaultFlags, FaultResult};
use crate::pgtable::{Entry, Level, Present};
use crate::rmap::Rmap;
use crate::types::*;
use crate::vma::Vma;

impl Kernel {
    /// `do_huge_pmd_anonymous_page()`: first touch of a THP-eligible PMD
    /// range. A read maps the huge zero folio read-only when
    /// `use_zero_page` is on; otherwise a zeroed 2 MiB folio is mapped by the
    /// PMD, writable (if VM_WRITE), as new exclusive anon. Without 2 MiB of
    /// free RAM the fault falls back to small pages (VM_FAULT_FALLBACK,
    /// decided by the caller, [`Kernel::thp_fault_room`]).
    ///
    /// The VMA gets its anon_vma first (`vmf_anon_prepare()`), also when only
    /// the huge zero folio is mapped — unlike the small zero page in
    /// `do_anonymous_page()` — so fork copies a huge zero PMD to the child.
    pub(crate) fn do_huge_pmd_anonymous_page(&mut self, pid: Pid, mm: MmId, vma: &Vma, haddr: u64, write: bool) -> FaultResult {
        self.ensure_anon_vma(mm, vma.start);
        if !write && self.settings.use_zero_page {
            self.mm_mut(mm).pt.set(
                Level::Pmd,
                haddr,
                Entry::Present(Present {
                    folio: HUGE_ZERO_FOLIO,
                    page: 0,
                    write: false,
                    dirty: false,
                    young: true,
                    // set_huge_zero_folio() builds the PMD from the
                    // protection alone: no soft-dirty bit.
                    soft_dirty: false,
                    special: false,
                }),
            );
            self.event(pid, EventKind::Alloc, "do_huge_pmd_anonymous_page", Some(haddr), || "read fault → map the huge zero folio".into());
            return Ok(());
        }
        self.map_new_anon_thp(pid, mm, vma, haddr, "do_huge_pmd_anonymous_page");
        Ok(())
    }

    /// Is there RAM for a new PMD-sized THP? A THP allocation never runs
    /// the OOM killer (GFP_TRANSHUGE_LIGHT); without room the fault falls
    /// back to small pages.
    pub(crate) fn thp_fault_room(&self) -> bool {
        self.free_ram_pages() >= 1 << crate::kernel::THP_PMD_ORDER
    }

    fn map_new_anon_thp(&mut self, pid: Pid, mm: MmId, vma: &Vma, haddr: u64, func: &'static str) {
        let folio = self.alloc_anon_folio(crate::kernel::THP_PMD_ORDER);
        self.ensure_anon_vma(mm, vma.start);
        self.add_new_anon_rmap(folio, mm, Rmap::Entire);
        self.mm_mut(mm).pt.set(Level::Pmd, haddr, crate::memory::pte(folio, 0, vma.prot.write, true));
        self.event(pid, EventKind::Alloc, func, Some(haddr), || "new zeroed 2M THP mapped by a PMD (exclusive)".into());
    }

    /// `do_huge_pmd_wp_page()`: write/unshare fault on a read-only PMD.
    /// Huge zero PMD → a fresh THP (`do_huge_zero_wp_pmd()`). Anon THP: the
    /// head's PageAnonExclusive or a refcount of exactly 1 means reuse;
    /// otherwise split the PMD mapping (not the folio) and let the fault be
    /// retried on PTEs, where at most one 4 KiB page is copied.
    /// Returns Ok(false) for that fallback. File THPs are not modelled (the
    /// model's page cache uses small folios).
    pub(crate) fn do_huge_pmd_wp_page(
        &mut self,
        pid: Pid,
        mm: MmId,
        vma: &Vma,
        haddr: u64,
        p: Present,
        flags: FaultFlags,
    ) -> Result<bool, crate::memory::VmFault> {
        if p.folio == HUGE_ZERO_FOLIO && !self.thp_fault_room() {
            // do_huge_zero_wp_pmd() without a THP: split the PMD, retry on
            // PTEs.
            self.split_huge_pmd(pid, mm, haddr);
            return Ok(false);
        }
        if p.folio == HUGE_ZERO_FOLIO {
            self.mm_mut(mm).pt.clear(Level::Pmd, haddr);
            self.map_new_anon_thp(pid, mm, vma, haddr, "do_huge_zero_wp_pmd");
            return Ok(true);
        }
        let f = self.folios.get(p.folio);
        let reuse = if f.page_ae(0) {
            Some("head PageAnonExclusive".to_string())
        } else if f.refcount == 1 {
            Some("refcount 1".to_string())
        } else {
            None
        };
        match reuse {
            Some(why) => {
                self.folios.get_mut(p.folio).anon_exclusive.set_all(true);
                if flags.write {
                    self.mm_mut(mm).pt.update_present(Level::Pmd, haddr, |e| {
                        e.write = vma.prot.write;
                        e.dirty = true;
                        e.soft_dirty = true;
                    });
                }
                self.event(pid, EventKind::Reuse, "do_huge_pmd_wp_page", Some(haddr), || format!("{why} → reuse the whole THP"));
                Ok(true)
            }
            None => {
                let rc = f.refcount;
                self.event(pid, EventKind::Split, "do_huge_pmd_wp_page", Some(haddr), || {
                    format!("THP refcount {rc} → split the PMD, retry on PTEs")
                });
                self.split_huge_pmd(pid, mm, haddr);
                Ok(false)
            }
        }
    }

    /// `__split_huge_pmd()`: replace the PMD mapping at `haddr` by 512 PTEs
    /// mapping the same folio with the same permissions; every subpage
    /// inherits the head's PageAnonExclusive. The folio itself stays whole
    /// (`__split_huge_pmd_locked()`: PTE rmap of all pages, then the PMD's
    /// rmap removed); a dirty PMD dirties it (`folio_set_dirty()`).
    /// The huge zero PMD becomes 512 zero-page PTEs.
    pub(crate) fn split_huge_pmd(&mut self, pid: Pid, mm: MmId, haddr: u64) {
        let Some(Entry::Present(p)) = self.mm(mm).pt.get(Level::Pmd, haddr) else { return };
        if self.folios.get(p.folio).hugetlb.is_some() {
            return;
        }
        self.mm_mut(mm).pt.clear(Level::Pmd, haddr);
        if p.folio == HUGE_ZERO_FOLIO {
            let e = Present { folio: crate::folio::ZERO_FOLIO, page: 0, write: false, special: true, ..p };
            self.mm_mut(mm).pt.set_ptes(haddr, (0..HPAGE_PMD_NR).map(|_| Entry::Present(e)));
            return;
        }
        let f = self.folios.get_mut(p.folio);
        f.dirty |= p.dirty;
        let head_ae = f.page_ae(0);
        f.anon_exclusive.set_all(head_ae);
        // As the kernel orders it: the PTE mappings are counted before the
        // PMD mapping goes, which matters for the mm slots when `mm` has none.
        self.rmap_add(p.folio, mm, Rmap::Ptes { first: 0, nr: HPAGE_PMD_NR });
        self.rmap_remove(p.folio, mm, Rmap::Entire);
        self.mm_mut(mm).pt.set_ptes(haddr, (0..HPAGE_PMD_NR).map(|i| Entry::Present(Present { page: p.page + i, ..p })));
        self.event(pid, EventKind::Split, "__split_huge_pmd", Some(haddr), || "PMD mapping → 512 PTEs (folio stays whole)".into());
    }

    /// `split_folio()` → `__folio_split()` (mm/huge_memory.c): split the
    /// large anonymous folio `folio`, mapped only by `mm`, into small
    /// folios, as MADV_COLD, MADV_PAGEOUT and MADV_FREE do to a folio their
    /// range covers in part. Refused (false) as `can_split_folio()` refuses
    /// a folio with references beyond its mappings (a GUP reference or pin,
    /// a pipe buffer, an io_uring buffer).
    ///
    /// `unmap_folio()` takes every mapping down, PMD mappings split into
    /// PTEs first (a dirty PMD or PTE dirties the folio,
    /// `try_to_migrate_one()`); each page becomes a folio of its own
    /// ([`crate::folio::FolioArena::split_to_small`]); `remap_page()` with
    /// RMP_USE_SHARED_ZEROPAGE maps every page back with its entry's bits
    /// (writable, dirty, young, soft-dirty, PageAnonExclusive), except that a
    /// page whose bytes are all zero is mapped as the shared zero page
    /// instead (`try_to_map_unused_to_zeropage()`: read-only, soft-dirty
    /// kept) and its new folio freed, as is the folio of every page nothing
    /// mapped. The split is one step: nobody sees the migration entries.
    ///
    /// Left out: page-cache, shmem and hugetlb folios and the huge zero
    /// folio (refused: the model's callers split anonymous folios only), a
    /// folio in the swap cache (refused; the kernel moves its swap-cache
    /// entries to the new folios), mappings by other mms (refused: callers
    /// split only folios no other mm maps, `folio_maybe_mapped_shared()`),
    /// splits to an order above 0, the deferred-split queue and LRU state.
    pub(crate) fn split_folio(&mut self, pid: Pid, mm: MmId, folio: FolioId) -> bool {
        let f = self.folios.get(folio);
        if !f.is_large() || !f.is_anon() || f.hugetlb.is_some() || f.refcount != f.mapcount || self.swap_cache_of(folio).is_some() {
            return false;
        }
        let (order, mapcount) = (f.order, f.mapcount);
        let leaves = self.folio_leaves(mm, folio);
        if leaves.len() as i64 != mapcount {
            return false;
        }
        let pmd_mapped = leaves.iter().any(|l| l.level == Level::Pmd);
        for l in leaves.iter().filter(|l| l.level == Level::Pmd) {
            self.split_huge_pmd(pid, mm, l.addr);
        }
        let leaves = if pmd_mapped { self.folio_leaves(mm, folio) } else { leaves };
        let ptes: Vec<(u64, Present)> = leaves.iter().filter_map(|l| l.entry.present().map(|q| (l.addr, *q))).collect();
        if ptes.iter().any(|(_, q)| q.dirty) {
            self.folios.get_mut(folio).dirty = true;
        }
        let pages = self.folios.split_to_small(folio);
        let mut zero_mapped = 0;
        for (addr, q) in ptes {
            let new = pages[q.page as usize];
            let e = if self.folios.get(new).data.is_fill(0) {
                zero_mapped += 1;
                self.rmap_remove(new, mm, Rmap::pte(0));
                Present { folio: ZERO_FOLIO, page: 0, write: false, dirty: false, young: true, special: true, ..q }
            } else {
                Present { folio: new, page: 0, ..q }
            };
            self.mm_mut(mm).pt.set(Level::Pte, addr, Entry::Present(e));
        }
        // Pages nothing mapped are freed with the split
        // (`free_folio_and_swap_cache()`).
        for &page in &pages {
            if self.folios.get(page).refcount == 0 && !self.folios.get(page).freed {
                self.free_folio(page);
            }
        }
        self.event(pid, EventKind::Split, "split_folio", None, || {
            format!(
                "{}K folio → {} small folios; {zero_mapped} zero-filled pages mapped as the shared zero page",
                (PAGE_SIZE << order) / 1024,
                1u64 << order
            )
        });
        true
    }

    /// Splits a PMD-mapped THP straddling `addr` (VMA split, partial unmap,
    /// mprotect or madvise of part of it: `split_huge_pmd_address()`).
    pub(crate) fn split_huge_leaf_at(&mut self, mm: MmId, addr: u64) {
        let haddr = align_down(addr, PMD_SIZE);
        if haddr != addr && self.mm(mm).pt.get(Level::Pmd, haddr).is_some() {
            let pid = self.pid_of_mm(mm);
            self.split_huge_pmd(pid, mm, haddr);
        }
    }
}
