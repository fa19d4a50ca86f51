//! MADV_COLLAPSE (mm/khugepaged.c: madvise_collapse() →
//! hpage_collapse_scan_pmd() → collapse_huge_page()).

use crate::events::EventKind;
use crate::folio::{FolioId, MmId};
use crate::kernel::Kernel;
use crate::memory::FaultFlags;
use crate::pgtable::{Entry, Level};
use crate::rmap::Rmap;
use crate::types::*;

impl Kernel {
    /// `madvise_collapse()`, called by the madvise walk for each VMA of
    /// `[start, end)` in address order; the first VMA that fails ends the
    /// walk with its error. A VMA must pass `thp_vma_allowable_order()` with
    /// TVA_FORCED_COLLAPSE (include/linux/huge_mm.h,
    /// mm/huge_memory.c: `__thp_vma_allowable_orders()`), else EINVAL:
    /// private anonymous (file and shmem collapse are not modelled), no
    /// MADV_NOHUGEPAGE, room for an aligned 2 MiB range before its end, and
    /// an anon_vma (a VMA never faulted or forked has none). The sysfs
    /// `enabled` settings do not count, `never` included: a forced collapse
    /// skips them (checked live on 6.18).
    ///
    /// Then every whole aligned 2 MiB block of the VMA's part of the range
    /// is collapsed (none: nothing to do, 0). Per block, as
    /// `hpage_collapse_scan_pmd()` and the result switch of
    /// `madvise_collapse()` have it: a block already PMD-mapped counts as
    /// done; a block without a PTE table (`find_pmd_or_thp_or_none()`:
    /// SCAN_PMD_NONE) ends the call with EINVAL; one whose pages have extra
    /// references (SCAN_PAGE_COUNT) is skipped and the call ends with EAGAIN
    /// after the other blocks; other failures end the call with theirs.
    /// Left out: SCAN_PMD_NULL (no PMD table at all, which the kernel skips
    /// and then also answers EINVAL) is taken as SCAN_PMD_NONE, so later
    /// blocks of that call are not collapsed; the max_ptes_* limits are
    /// khugepaged's only.
    pub(crate) fn madvise_collapse(&mut self, pid: Pid, mm: MmId, start: u64, end: u64) -> SysResult<()> {
        let vmas: Vec<(u64, u64)> =
            self.mm(mm).vmas.values().filter(|v| v.start < end && start < v.end).map(|v| (v.start, v.end)).collect();
        for (vs, ve) in vmas {
            let Some(v) = self.mm(mm).vma(vs) else { continue };
            // thp_vma_suitable_order() at vm_end - 2M: an aligned block fits.
            let holds_pmd = v.end >= PMD_SIZE && align_down(v.end - PMD_SIZE, PMD_SIZE) >= v.start;
            if !v.is_anonymous() || v.nohugepage || v.hugetlb.is_some() || !holds_pmd || v.anon_vma.is_none() {
                return Err(Errno::EINVAL.into());
            }
            let (lo, hi) = (start.max(vs), end.min(ve));
            let mut busy = false;
            let mut h = lo.next_multiple_of(PMD_SIZE);
            while h + PMD_SIZE <= hi {
                match self.collapse_huge_page(pid, mm, h) {
                    Ok(()) => {}
                    Err(e) if e == Errno::EAGAIN.into() => busy = true,
                    Err(e) => return Err(e),
                }
                h += PMD_SIZE;
            }
            if busy {
                return Err(Errno::EAGAIN.into());
            }
        }
        Ok(())
    }

    /// `collapse_huge_page()` run to completion: the [`Collapse`] step
    /// machine driven to its end.
    fn collapse_huge_page(&mut self, pid: Pid, mm: MmId, haddr: u64) -> SysResult<()> {
        let mut c = Collapse::begin(pid, mm, haddr);
        while self.collapse_step(&mut c) {}
        c.result.unwrap_or(Ok(()))
    }

    /// One atomic step of a collapse; false once done.
    pub fn collapse_step(&mut self, c: &mut Collapse) -> bool {
        let (pid, mm, haddr) = (c.pid, c.mm, c.haddr);
        match c.state {
            CollapseState::Begin => {
                let r = self.collapse_prepare(c);
                if let Err(e) = r {
                    return self.collapse_end(c, Err(e));
                }
                if c.new.is_none() {
                    return self.collapse_end(c, Ok(()));
                }
                c.state = CollapseState::Flush;
            }
            CollapseState::Flush => {
                // pmdp_collapse_flush(): from now on new walkers find no PMD.
                c.detached = self.mm_mut(mm).pt.pmd_detach_table(haddr);
                c.state = if self.policy.collapse_table_sync { CollapseState::TableSync } else { CollapseState::Isolate };
            }
            CollapseState::TableSync => {
                // tlb_remove_table_sync_one(): the IPI returns once every
                // CPU had interrupts on, i.e. no GUP-fast walk that could
                // have read the old PMD is still running. The model has no
                // CPUs: a driver must not take this step while such a walk
                // is in progress (the sequential runs have none).
                c.state = CollapseState::Isolate;
            }
            CollapseState::Isolate => {
                // __collapse_huge_page_isolate(): only anon pages whose every
                // reference is a mapping may go.
                let mut folios: Vec<FolioId> =
                    self.mm(mm).pt.leaves_in(haddr, haddr + PMD_SIZE).filter_map(|l| self.folio_of_leaf(&l)).collect();
                folios.dedup();
                let busy = folios.iter().any(|&f| {
                    let fo = self.folios.get(f);
                    !fo.is_anon() || (self.policy.collapse_refcount_check && fo.refcount != fo.mapcount)
                });
                if busy {
                    self.event(pid, EventKind::Note, "__collapse_huge_page_isolate", Some(haddr), || {
                        "a page has extra references (pinned or GUP'd) → put the PTE table back, EAGAIN".into()
                    });
                    if c.detached {
                        self.mm_mut(mm).pt.pmd_reattach_table(haddr);
                    }
                    return self.collapse_end(c, Err(Errno::EAGAIN.into()));
                }
                c.state = CollapseState::Copy;
            }
            CollapseState::Copy => {
                // __collapse_huge_page_copy(), then the new PMD.
                let new = c.new.take().expect("allocated at begin");
                for leaf in self.mm(mm).pt.leaves(haddr, haddr + PMD_SIZE) {
                    if let Entry::Present(p) = leaf.entry {
                        if !p.special {
                            let i = (leaf.addr - haddr) / PAGE_SIZE;
                            self.copy_page_data(new, i, p.folio, p.page);
                        }
                    }
                }
                self.zap_page_range(pid, mm, haddr, haddr + PMD_SIZE);
                self.mm_mut(mm).pt.pmd_drop_table(haddr);
                let vma = self.mm(mm).vma(haddr).cloned().expect("collapse holds mmap_lock: the VMA stays");
                self.ensure_anon_vma(mm, vma.start);
                self.add_new_anon_rmap(new, mm, Rmap::Entire);
                self.mm_mut(mm).pt.set(Level::Pmd, haddr, crate::memory::pte(new, 0, vma.prot.write, true));
                self.note_copy(HPAGE_PMD_NR, false);
                self.event(pid, EventKind::Copy, "collapse_huge_page", Some(haddr), || "512 PTEs → new PMD-mapped THP".into());
                return self.collapse_end(c, Ok(()));
            }
            CollapseState::Done => return false,
        }
        true
    }

    /// The checks before the PMD is touched, swap-in, and the allocation
    /// of the new THP (left in `c.new`; None when there is nothing to do).
    fn collapse_prepare(&mut self, c: &mut Collapse) -> SysResult<()> {
        let (pid, mm, haddr) = (c.pid, c.mm, c.haddr);
        let vma = self.mm(mm).vma(haddr).cloned().ok_or(Errno::ENOMEM)?;
        if !vma.is_anonymous() || vma.nohugepage || vma.hugetlb.is_some() || haddr + PMD_SIZE > vma.end || vma.start > haddr {
            return Err(Errno::EINVAL.into());
        }
        match self.mm(mm).pt.pmd_val(haddr) {
            // SCAN_PMD_MAPPED: already a THP.
            crate::pgtable::PmdVal::Leaf(_) => return Ok(()),
            // SCAN_PMD_NONE: nothing was ever mapped here.
            crate::pgtable::PmdVal::None => return Err(Errno::EINVAL.into()),
            crate::pgtable::PmdVal::Table => {}
        }
        // Swap in what was swapped out (__collapse_huge_page_swapin()).
        for leaf in self.mm(mm).pt.leaves(haddr, haddr + PMD_SIZE) {
            if matches!(leaf.entry, Entry::Swap { .. }) {
                self.handle_mm_fault(pid, mm, leaf.addr, FaultFlags::READ).map_err(|_| Errno::ENOMEM)?;
            }
        }
        // alloc_charge_folio() comes first in the kernel too; without the
        // memory it fails (SCAN_ALLOC_HUGE_PAGE_FAIL → ENOMEM).
        if !self.thp_fault_room() {
            return Err(Errno::ENOMEM.into());
        }
        c.new = Some(self.alloc_anon_folio(crate::kernel::THP_PMD_ORDER));
        Ok(())
    }

    fn collapse_end(&mut self, c: &mut Collapse, r: SysResult<()>) -> bool {
        if let Some(new) = c.new.take() {
            self.folio_put(new);
        }
        c.result = Some(r);
        c.state = CollapseState::Done;
        false
    }
}

/// Where a collapse stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CollapseState {
    /// Next: revalidate, swap in, allocate the THP.
    Begin,
    /// Next: `pmdp_collapse_flush()` clears the PMD and flushes the TLB.
    Flush,
    /// Next: `tlb_remove_table_sync_one()` (policy `collapse_table_sync`).
    TableSync,
    /// Next: `__collapse_huge_page_isolate()` checks every page's references.
    Isolate,
    /// Next: `__collapse_huge_page_copy()` and `set_pmd_at()`.
    Copy,
    Done,
}

/// One `collapse_huge_page()` of the PMD range at `haddr`, split where
/// GUP-fast can slip in: the PMD is cleared first (walkers that start later
/// find nothing), an IPI then waits for walkers already past the PMD, and
/// only then are the pages' references checked — a pin taken before that
/// point is seen and the PTE table goes back. The collapse holds mmap_lock
/// for writing throughout, so only lockless walkers and rmap walkers race it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Collapse {
    pub pid: Pid,
    pub mm: MmId,
    pub haddr: u64,
    pub state: CollapseState,
    /// The new THP, allocated and not yet mapped.
    new: Option<FolioId>,
    /// Whether `pmdp_collapse_flush()` took a PTE table away.
    detached: bool,
    pub result: Option<SysResult<()>>,
}

impl Collapse {
    pub fn begin(pid: Pid, mm: MmId, haddr: u64) -> Collapse {
        Collapse { pid, mm, haddr, state: CollapseState::Begin, new: None, detached: false, result: None }
    }

    /// The kernel function the next step plays.
    pub fn next_func(&self) -> &'static str {
        match self.state {
            CollapseState::Begin => "collapse_huge_page",
            CollapseState::Flush => "pmdp_collapse_flush",
            CollapseState::TableSync => "tlb_remove_table_sync_one",
            CollapseState::Isolate => "__collapse_huge_page_isolate",
            CollapseState::Copy => "__collapse_huge_page_copy",
            CollapseState::Done => "",
        }
    }

    /// The new THP's allocation reference, held until it is mapped.
    pub fn held(&self) -> Vec<(FolioId, u64, bool)> {
        self.new.iter().map(|&f| (f, 1, false)).collect()
    }
}
