//! madvise(2) (mm/madvise.c).

use crate::events::EventKind;
use crate::folio::{FolioId, MmId, HUGE_ZERO_FOLIO};
use crate::kernel::Kernel;
use crate::pgtable::{Entry, Level, Present};
use crate::types::*;

/// The advice values the model implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Advice {
    DontNeed,
    Remove,
    DontFork,
    DoFork,
    WipeOnFork,
    KeepOnFork,
    HugePage,
    NoHugePage,
    Collapse,
    PageOut,
    Cold,
    Free,
    PopulateRead,
    PopulateWrite,
}

impl Advice {
    pub fn parse(s: &str) -> Option<Advice> {
        Some(match s.to_ascii_lowercase().trim_start_matches("madv_") {
            "dontneed" => Advice::DontNeed,
            "remove" => Advice::Remove,
            "dontfork" => Advice::DontFork,
            "dofork" => Advice::DoFork,
            "wipeonfork" => Advice::WipeOnFork,
            "keeponfork" => Advice::KeepOnFork,
            "hugepage" => Advice::HugePage,
            "nohugepage" => Advice::NoHugePage,
            "collapse" => Advice::Collapse,
            "pageout" => Advice::PageOut,
            "cold" => Advice::Cold,
            "free" => Advice::Free,
            "populate_read" => Advice::PopulateRead,
            "populate_write" => Advice::PopulateWrite,
            _ => return None,
        })
    }
}

impl Kernel {
    /// madvise(2). Flag advice splits VMAs and sets VM_* bits (DONTFORK,
    /// WIPEONFORK on private anon only, HUGEPAGE…); DONTNEED zaps (hugetlb:
    /// huge-aligned start, length rounded down); REMOVE punches a hole in
    /// the file of a shared mapping; PAGEOUT reclaims to swap;
    /// COLLAPSE builds a PMD-mapped THP (`madvise_collapse()`); POPULATE_*
    /// faults pages in. Unmapped parts of the range give ENOMEM, after the
    /// advice was applied to the mapped parts (POPULATE stops at the hole).
    pub fn madvise(&mut self, pid: Pid, addr: u64, len: u64, advice: Advice) -> SysResult<()> {
        let mm = self.mm_of(pid)?;
        if !is_aligned(addr, PAGE_SIZE) {
            return Err(Errno::EINVAL.into());
        }
        // madvise_should_skip(): a length that wraps to 0 when page-aligned
        // or an end past 2^64 is EINVAL, an empty range does nothing.
        let aligned = page_align(len);
        if len != 0 && aligned == 0 {
            return Err(Errno::EINVAL.into());
        }
        let end = addr.checked_add(aligned).ok_or(Errno::EINVAL)?;
        if end == addr {
            return Ok(());
        }
        if matches!(advice, Advice::PopulateRead | Advice::PopulateWrite) {
            return self.madvise_populate(pid, mm, addr, end, advice == Advice::PopulateWrite);
        }
        // madvise_walk_vmas(): holes do not stop the walk; the advice is
        // applied to every mapped part and ENOMEM reported at the end.
        let hole = self.check_fully_mapped(mm, addr, end).err();
        if !self.mm(mm).vmas.values().any(|v| v.start < end && addr < v.end) {
            return Err(Errno::ENOMEM.into());
        }
        self.madvise_mapped(pid, mm, addr, end, advice)?;
        hole.map_or(Ok(()), Err)
    }

    /// `madvise_populate()` → `faultin_page_range()`: GUP with the VMA's
    /// own permissions and no FOLL_FORCE, one VMA after the other in
    /// address order, stopping at the first problem: a hole is ENOMEM, a
    /// VMA that refuses the access (`check_vma_flags()`: no VM_READ for
    /// populate_read, no VM_WRITE for populate_write, a protection key)
    /// EINVAL — what came before stays populated.
    fn madvise_populate(&mut self, pid: Pid, mm: MmId, start: u64, end: u64, write: bool) -> SysResult<()> {
        let mut a = start;
        while a < end {
            let Some(v) = self.mm(mm).vma(a).cloned() else { return Err(Errno::ENOMEM.into()) };
            if self.check_vma_flags(&v, crate::gup::GupFlags { write, ..crate::gup::GupFlags::GET }).is_err() {
                return Err(Errno::EINVAL.into());
            }
            while a < end.min(v.end) {
                let ff = crate::memory::FaultFlags { write, unshare: false };
                if let Err(e) = self.handle_mm_fault(pid, mm, a, ff) {
                    return Err(match e {
                        // The OOM killer chose this task: it is dead.
                        crate::memory::VmFault::Oom => SysError::Signal(Signal::SIGKILL),
                        _ => Errno::EFAULT.into(),
                    });
                }
                self.work.add(1);
                a += PAGE_SIZE;
            }
        }
        Ok(())
    }

    /// `madvise_remove()` (mm/madvise.c) on the part `[start, end)` of one
    /// VMA: the VMA must map a file (EINVAL) shared and writable
    /// (`vma_is_shared_maywrite()`, EACCES); the file range it maps there
    /// is punched as `fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)`
    /// would ([`Kernel::punch_hole`]). An error ends the walk over the
    /// VMAs, as `madvise_walk_vmas()` does. Left out: VM_LOCKED (EINVAL;
    /// the model has no mlock), userfaultfd.
    fn madvise_remove(&mut self, pid: Pid, v: &crate::vma::Vma, start: u64, end: u64) -> SysResult<()> {
        let Some(ino) = v.inode() else { return Err(Errno::EINVAL.into()) };
        if !(v.shared && v.maywrite) {
            return Err(Errno::EACCES.into());
        }
        let offset = (start - v.start) + v.pgoff * PAGE_SIZE;
        self.punch_hole(pid, ino, offset, end - start)
    }

    /// The advice for the mapped parts of `[addr, end)`.
    fn madvise_mapped(&mut self, pid: Pid, mm: MmId, addr: u64, end: u64, advice: Advice) -> SysResult<()> {
        match advice {
            Advice::DontNeed => {
                let vmas: Vec<crate::vma::Vma> = self.mm(mm).vmas.values().filter(|v| v.start < end && addr < v.end).cloned().collect();
                for v in vmas {
                    let (s, e) = (addr.max(v.start), end.min(v.end));
                    let (s, e) = if v.hugetlb.is_some() { crate::hugetlb::hugetlb_dontneed_range(&v, s, e)? } else { (s, e) };
                    if s < e {
                        self.zap_page_range(pid, mm, s, e);
                    }
                }
                Ok(())
            }
            Advice::Remove => {
                let vmas: Vec<crate::vma::Vma> = self.mm(mm).vmas.values().filter(|v| v.start < end && addr < v.end).cloned().collect();
                for v in vmas {
                    self.madvise_remove(pid, &v, addr.max(v.start), end.min(v.end))?;
                }
                Ok(())
            }
            // madvise_pageout() and madvise_cold(): VMA by VMA, and
            // `can_madv_lru_vma()` refuses a hugetlb VMA with EINVAL, after
            // the VMAs before it were done (VM_LOCKED and VM_PFNMAP, refused
            // too, do not exist in the model). MADV_COLD only deactivates
            // (LRU state the model leaves out) and splits what it covers in
            // part.
            Advice::PageOut | Advice::Cold => {
                let vmas: Vec<(u64, u64, bool)> = self
                    .mm(mm)
                    .vmas
                    .values()
                    .filter(|v| v.start < end && addr < v.end)
                    .map(|v| (addr.max(v.start), end.min(v.end), v.hugetlb.is_some()))
                    .collect();
                for (s, e, hugetlb) in vmas {
                    if hugetlb {
                        return Err(Errno::EINVAL.into());
                    }
                    if advice == Advice::PageOut {
                        self.pageout(pid, mm, s, e);
                    } else {
                        self.madvise_split_partial(pid, mm, s, e);
                    }
                }
                Ok(())
            }
            // madvise_free_single_vma(), VMA by VMA: refused (EINVAL, ending
            // the walk) for hugetlb (`madvise_dontneed_free_valid_vma()`)
            // and for anything but private anonymous memory.
            Advice::Free => {
                let vmas: Vec<(u64, u64, bool)> = self
                    .mm(mm)
                    .vmas
                    .values()
                    .filter(|v| v.start < end && addr < v.end)
                    .map(|v| (addr.max(v.start), end.min(v.end), v.hugetlb.is_none() && v.is_anonymous() && !v.shared))
                    .collect();
                for (s, e, private_anon) in vmas {
                    if !private_anon {
                        return Err(Errno::EINVAL.into());
                    }
                    self.madvise_free_range(pid, mm, s, e);
                }
                Ok(())
            }
            Advice::Collapse => self.madvise_collapse(pid, mm, addr, end),
            _ => {
                if advice == Advice::WipeOnFork
                    && self.mm(mm).vmas.values().any(|v| {
                        // hugetlb mappings have a hugetlbfs file behind them
                        v.start < end && addr < v.end && (v.shared || !v.is_anonymous() || v.hugetlb.is_some())
                    })
                {
                    return Err(Errno::EINVAL.into());
                }
                if advice == Advice::DontFork
                    && self.mm(mm).vmas.values().any(|v| {
                        v.start < end
                            && addr < v.end
                            && v.hugetlb.is_some()
                            && (!is_aligned(addr.max(v.start), v.hugetlb.map_or(1, |h| h.bytes())))
                    })
                {
                    return Err(Errno::EINVAL.into());
                }
                let set = |v: &mut crate::vma::Vma| match advice {
                    Advice::DontFork => v.dontcopy = true,
                    Advice::DoFork => v.dontcopy = false,
                    Advice::WipeOnFork => v.wipeonfork = true,
                    Advice::KeepOnFork => v.wipeonfork = false,
                    Advice::HugePage => {
                        v.hugepage = true;
                        v.nohugepage = false;
                    }
                    Advice::NoHugePage => {
                        v.nohugepage = true;
                        v.hugepage = false;
                    }
                    // Advice that changes no VMA flag took the arms above.
                    Advice::DontNeed
                    | Advice::Remove
                    | Advice::PageOut
                    | Advice::Cold
                    | Advice::Free
                    | Advice::Collapse
                    | Advice::PopulateRead
                    | Advice::PopulateWrite => {}
                };
                // madvise_update_vma(): a VMA whose flags stay as they are
                // is neither split nor touched (its huge PMDs stay whole).
                let changes = |v: &crate::vma::Vma| {
                    let mut n = v.clone();
                    set(&mut n);
                    n != *v
                };
                if !self.mm(mm).vmas.values().any(|v| v.start < end && addr < v.end && changes(v)) {
                    return Ok(());
                }
                self.split_vmas_around(mm, addr, end)?;
                let keys: Vec<u64> = self.mm(mm).vmas.range(addr..end).map(|(k, _)| *k).collect();
                for k in keys {
                    set(self.mm_mut(mm).vmas.get_mut(&k).expect("listed"));
                }
                self.merge_vmas(mm, addr, end);
                Ok(())
            }
        }
    }

    /// The folio splitting of `madvise_cold_or_pageout_pte_range()` and
    /// `madvise_free_pte_range()` / `madvise_free_huge_pmd()` on `[start,
    /// end)` inside one VMA: a large anon folio the range covers only in
    /// part is split ([`Kernel::split_folio`]) unless another mm may map
    /// it (`folio_maybe_mapped_shared()`). In part means a PMD mapping the
    /// range does not cover whole, or a run of PTEs
    /// ([`Kernel::madvise_folio_pte_batch`]) shorter than the folio. A
    /// split that fails leaves the folio as it is. The kernel splits as its
    /// walk meets each folio; splitting all of them first is the same,
    /// since a split changes only its own folio's entries.
    pub(crate) fn madvise_split_partial(&mut self, pid: Pid, mm: MmId, start: u64, end: u64) {
        let mut split: Vec<FolioId> = Vec::new();
        let mut next = start;
        for leaf in self.mm(mm).pt.leaves_in(start, end) {
            let Entry::Present(p) = leaf.entry else { continue };
            if leaf.addr < next || p.special || p.folio == HUGE_ZERO_FOLIO {
                continue;
            }
            let f = self.folios.get(p.folio);
            if !f.is_large() || !f.is_anon() || f.hugetlb.is_some() {
                continue;
            }
            let partial = match leaf.level {
                Level::Pte => {
                    let nr = self.madvise_folio_pte_batch(mm, leaf.addr, end, &p);
                    next = leaf.addr + nr * PAGE_SIZE;
                    nr < f.nr_pages()
                }
                _ => leaf.addr < start || leaf.addr + leaf.level.size() > end,
            };
            if partial && !f.maybe_mapped_shared() && !split.contains(&p.folio) {
                split.push(p.folio);
            }
        }
        for folio in split {
            self.split_folio(pid, mm, folio);
        }
    }

    /// `madvise_folio_pte_batch()` (mm/madvise.c → `folio_pte_batch_flags()`,
    /// mm/internal.h): how many PTEs from `addr` map consecutive pages of
    /// `p`'s folio, within `addr`'s page table and before `end`. Dirty,
    /// young, writable and soft-dirty bits may differ within a batch.
    pub(crate) fn madvise_folio_pte_batch(&self, mm: MmId, addr: u64, end: u64, p: &Present) -> u64 {
        let table_end = align_down(addr, PMD_SIZE) + PMD_SIZE;
        1 + self.pte_run_of_folio(mm, addr + PAGE_SIZE, end.min(table_end), p.folio, p.page + 1) / PAGE_SIZE
    }

    /// MADV_FREE on `[start, end)` inside one private anonymous VMA
    /// (mm/madvise.c: madvise_free_single_vma() → madvise_free_huge_pmd()
    /// and madvise_free_pte_range()): the data may be thrown away.
    /// After the splits of [`Kernel::madvise_split_partial`]:
    /// - a swap entry is cleared and its swap freed
    ///   (`free_swap_and_cache_nr()`): the next access faults in zeros;
    /// - a PMD-mapped THP covered whole and mapped by no other mm, and
    ///   every folio whose PTEs the range covers whole (a large folio that
    ///   could not be split is skipped), is made lazily freeable
    ///   (`folio_mark_lazyfree()`: unless in the swap cache): its entries
    ///   lose their dirty and young bits, and a dirty folio or one in the
    ///   swap cache is first made clean and taken out of the swap cache —
    ///   only when this mm's PTEs are all its mappings (mapcount equal to
    ///   its pages); otherwise it is left alone.
    ///
    /// Reclaim ([`Kernel::pageout`]) then drops a lazily freeable folio
    /// that nobody wrote since instead of swapping it out.
    /// Left out: userfaultfd's UFFD_EVENT_REMOVE, the LRU lists (the
    /// kernel moves the folio to the inactive file list), VM_DROPPABLE.
    pub(crate) fn madvise_free_range(&mut self, pid: Pid, mm: MmId, start: u64, end: u64) {
        self.madvise_split_partial(pid, mm, start, end);
        let leaves: Vec<(u64, Level)> = self.mm(mm).pt.leaves_in(start, end).map(|l| (l.addr, l.level)).collect();
        let mut next = start;
        let mut freed = 0u64;
        for (addr, level) in leaves {
            if addr < next {
                continue;
            }
            self.work.add(level.size() / PAGE_SIZE);
            match self.mm(mm).pt.get(level, addr) {
                Some(Entry::Swap { slot, .. }) if level == Level::Pte => {
                    self.mm_mut(mm).pt.clear(Level::Pte, addr);
                    self.free_swap_and_cache(slot);
                }
                Some(Entry::Present(p)) if !p.special && p.folio != HUGE_ZERO_FOLIO && self.folio_is_anon(p.folio) => {
                    let f = self.folios.get(p.folio);
                    let nr = match level {
                        Level::Pte if f.is_large() => self.madvise_folio_pte_batch(mm, addr, end, &p),
                        Level::Pte => 1,
                        // madvise_free_huge_pmd(): whole, and not shared.
                        _ if addr < start || addr + level.size() > end || f.maybe_mapped_shared() => continue,
                        _ => 1,
                    };
                    next = addr + nr * level.size();
                    if level == Level::Pte && nr < f.nr_pages() {
                        continue;
                    }
                    let cached = self.swap_cache_of(p.folio).is_some();
                    if cached || f.dirty {
                        if level == Level::Pte && f.mapcount != f.nr_pages() as i64 {
                            continue;
                        }
                        if cached && !self.folio_free_swap(p.folio) {
                            continue;
                        }
                        self.folios.get_mut(p.folio).dirty = false;
                    }
                    for i in 0..nr {
                        self.mm_mut(mm).pt.update_present(level, addr + i * level.size(), |q| {
                            q.dirty = false;
                            q.young = false;
                        });
                    }
                    if self.swap_cache_of(p.folio).is_none() {
                        self.folios.get_mut(p.folio).lazyfree = true;
                    }
                    freed += nr * level.size() / PAGE_SIZE;
                }
                _ => {}
            }
        }
        self.event(pid, EventKind::Note, "madvise_free_pte_range", Some(start), || format!("{freed} pages lazily freeable"));
    }
}
