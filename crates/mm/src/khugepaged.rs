//! MADV_COLLAPSE (mm/khugepaged.c: madvise_collapse() →
//! hpage_collapse_scan_pmd() → collapse_huge_page()).

use crate::events::EventKind;
use crate::folio::{FolioId, MmId};
use crate::kernel::{Kernel, ThpMode};
use crate::memory::FaultFlags;
use crate::pgtable::{Entry, Level};
use crate::types::*;

impl Kernel {
    /// Collapses every PMD-sized, PMD-aligned range of `[start, end)` inside
    /// a private anonymous VMA into a new PMD-mapped THP. Like the kernel's
    /// MADV_COLLAPSE it ignores the sysfs `enabled` settings except `never`
    /// for the PMD size (EINVAL, as MADV_NOHUGEPAGE, or a VMA too small for
    /// any aligned 2 MiB range; checked on this 6.18),
    /// and the max_ptes_* limits; a range with no whole aligned 2 MiB block
    /// has nothing to do and succeeds. It swaps pages in first, and
    /// fails (EAGAIN) if any page has references other than its mappings —
    /// a pinned or GUP'd page cannot be collapsed. The new THP is exclusive
    /// to this mm; pages shared with other mms stay theirs.
    pub(crate) fn madvise_collapse(&mut self, pid: Pid, mm: MmId, start: u64, end: u64) -> SysResult<()> {
        let pmd_never = matches!(self.settings.thp_mode(crate::kernel::THP_PMD_ORDER), ThpMode::Never | ThpMode::Inherit);
        // __thp_vma_allowable_orders() outside a fault also wants the VMA
        // to hold at least one aligned PMD-sized range.
        let holds_pmd = |v: &crate::vma::Vma| v.end >= PMD_SIZE && align_down(v.end - PMD_SIZE, PMD_SIZE) >= v.start;
        let refused = |v: &crate::vma::Vma| !v.is_anonymous() || v.nohugepage || v.hugetlb.is_some() || pmd_never || !holds_pmd(v);
        if self.mm(mm).vmas.values().any(|v| v.start < end && start < v.end && refused(v)) {
            return Err(Errno::EINVAL.into());
        }
        let mut h = start.next_multiple_of(PMD_SIZE);
        while h + PMD_SIZE <= end {
            self.collapse_huge_page(pid, mm, h)?;
            h += PMD_SIZE;
        }
        Ok(())
    }

    fn collapse_huge_page(&mut self, pid: Pid, mm: MmId, haddr: u64) -> SysResult<()> {
        let vma = self.mm(mm).vma(haddr).cloned().ok_or(Errno::ENOMEM)?;
        if !vma.is_anonymous() || vma.nohugepage || vma.hugetlb.is_some() || haddr + PMD_SIZE > vma.end || vma.start > haddr {
            return Err(Errno::EINVAL.into());
        }
        if self.mm(mm).pt.get(Level::Pmd, haddr).is_some() {
            return Ok(());
        }
        // Swap in what was swapped out (__collapse_huge_page_swapin()).
        for leaf in self.mm(mm).pt.leaves(haddr, haddr + PMD_SIZE) {
            if matches!(leaf.entry, Entry::Swap { .. }) {
                self.handle_mm_fault(pid, mm, leaf.addr, FaultFlags::READ).map_err(|_| Errno::ENOMEM)?;
            }
        }
        let leaves = self.mm(mm).pt.leaves(haddr, haddr + PMD_SIZE);
        let mut folios: Vec<FolioId> = leaves.iter().filter_map(|l| self.folio_of_leaf(l)).collect();
        folios.dedup();
        for &f in &folios {
            let fo = self.folios.get(f);
            if !fo.is_anon() || fo.refcount != fo.mapcount {
                self.event(pid, EventKind::Note, "collapse_huge_page", Some(haddr), || {
                    "a page has extra references (pinned or GUP'd) → EAGAIN".into()
                });
                return Err(Errno::EAGAIN.into());
            }
        }
        let new = self.alloc_anon_folio(crate::kernel::THP_PMD_ORDER);
        for leaf in &leaves {
            if let Entry::Present(p) = leaf.entry {
                if !p.special {
                    let i = (leaf.addr - haddr) / PAGE_SIZE;
                    self.copy_page_data(new, i, p.folio, p.page);
                }
            }
        }
        self.zap_page_range(pid, mm, haddr, haddr + PMD_SIZE);
        self.ensure_anon_vma(mm, vma.start);
        self.add_new_anon_rmap(new, mm, 1, true);
        self.mm_mut(mm).pt.set(Level::Pmd, haddr, crate::memory::pte(new, 0, vma.prot.write, true));
        self.note_copy(HPAGE_PMD_NR, false);
        self.event(pid, EventKind::Copy, "collapse_huge_page", Some(haddr), || "512 PTEs → new PMD-mapped THP".into());
        Ok(())
    }
}
