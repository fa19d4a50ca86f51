//! Page faults, write-protect reuse and copy, and zapping (mm/memory.c).

use crate::events::EventKind;
use crate::folio::{FolioId, FolioKind, MmId, ZERO_FOLIO};
use crate::kernel::{Kernel, ThpMode};
use crate::pgtable::{Entry, Level, Present};
use crate::policy::{AnonReuse, LargeAnonReuse};
use crate::rmap::Rmap;
use crate::types::*;
use crate::vma::Vma;

/// FAULT_FLAG_WRITE / FAULT_FLAG_UNSHARE (never both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultFlags {
    pub write: bool,
    pub unshare: bool,
}

impl FaultFlags {
    pub const READ: FaultFlags = FaultFlags { write: false, unshare: false };
    pub const WRITE: FaultFlags = FaultFlags { write: true, unshare: false };
    pub const UNSHARE: FaultFlags = FaultFlags { write: false, unshare: true };

    fn name(self) -> &'static str {
        match (self.write, self.unshare) {
            (true, _) => "write",
            (_, true) => "unshare",
            _ => "read",
        }
    }
}

/// VM_FAULT_* errors of a fault handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmFault {
    Sigbus,
    Sigsegv,
    Oom,
    /// A policy variant would retry forever; given up after a bound.
    Livelock,
}

impl VmFault {
    /// What the faulting task sees.
    pub fn to_sys_error(self) -> SysError {
        match self {
            VmFault::Sigbus => SysError::Signal(Signal::SIGBUS),
            VmFault::Sigsegv => SysError::Signal(Signal::SIGSEGV),
            VmFault::Oom => SysError::Signal(Signal::SIGKILL),
            VmFault::Livelock => SysError::Livelock,
        }
    }
}

pub(crate) type FaultResult = Result<(), VmFault>;

/// What an access sets in a present leaf: young, and for a write dirty
/// and soft-dirty.
pub(crate) fn touch(p: &mut Present, write: bool) {
    p.young = true;
    if write {
        p.dirty = true;
        p.soft_dirty = true;
    }
}

/// A present PTE that maps `page` of `folio`, writable and dirty per `write`.
pub(crate) fn pte(folio: FolioId, page: u64, write: bool, dirty: bool) -> Entry {
    Entry::Present(Present { folio, page, write, dirty, young: true, soft_dirty: true, special: false })
}

impl Kernel {
    /// `handle_mm_fault()` → `__handle_mm_fault()` → `handle_pte_fault()`:
    /// dispatch a fault at `addr` to the hugetlb, PMD (THP) or PTE handler.
    /// Starts with `sanitize_fault_flags()`: UNSHARE outside a COW mapping is
    /// dropped (it means nothing there); a write to a VMA without VM_MAYWRITE
    /// is refused. Left out: NUMA hinting, userfaultfd, per-VMA locks.
    pub(crate) fn handle_mm_fault(&mut self, pid: Pid, mm: MmId, addr: u64, mut flags: FaultFlags) -> FaultResult {
        let vma = self.mm(mm).vma(addr).ok_or(VmFault::Sigsegv)?.clone();
        if flags.unshare && !vma.is_cow_mapping() {
            flags.unshare = false;
        }
        if flags.write && !vma.maywrite {
            return Err(VmFault::Sigsegv);
        }
        self.stats.faults += 1;
        if vma.hugetlb.is_some() {
            return crate::hugetlb::hugetlb_fault(self, pid, mm, &vma, addr, flags);
        }
        let haddr = align_down(addr, PMD_SIZE);
        if let Some(Entry::Present(p)) = self.mm(mm).pt.get(Level::Pmd, haddr) {
            if (flags.write || flags.unshare) && !p.write {
                if !self.do_huge_pmd_wp_page(pid, mm, &vma, haddr, p, flags)? {
                    // Fallback: the PMD was split; retry at PTE level.
                    return self.handle_pte_fault(pid, mm, &vma, addr, flags);
                }
            } else if flags.write {
                self.touch_leaf(mm, Level::Pmd, haddr, true);
            }
            return Ok(());
        }
        let zero_pmd = !flags.write && self.settings.use_zero_page;
        if self.mm(mm).pt.pmd_none(addr) && self.thp_vma_allowable(&vma, THP_PMD, haddr) && (zero_pmd || self.thp_fault_room()) {
            return self.do_huge_pmd_anonymous_page(pid, mm, &vma, haddr, flags.write);
        }
        self.handle_pte_fault(pid, mm, &vma, addr, flags)
    }

    fn handle_pte_fault(&mut self, pid: Pid, mm: MmId, vma: &Vma, addr: u64, flags: FaultFlags) -> FaultResult {
        let a = page_align_down(addr);
        match self.mm(mm).pt.get(Level::Pte, a) {
            None if vma.is_anonymous() => self.do_anonymous_page(pid, mm, vma, a, flags.write),
            None => self.do_fault(pid, mm, vma, a, flags),
            Some(Entry::Swap { .. }) => self.do_swap_page(pid, mm, vma, a, flags),
            Some(Entry::Present(p)) => {
                if (flags.write || flags.unshare) && !p.write {
                    self.do_wp_page(pid, mm, vma, a, p, flags)
                } else {
                    if flags.write {
                        self.touch_leaf(mm, Level::Pte, a, true);
                    }
                    Ok(())
                }
            }
        }
    }

    /// Marks a present leaf young (and dirty for writes), as the hardware and
    /// the spurious-fault path do.
    pub(crate) fn touch_leaf(&mut self, mm: MmId, level: Level, addr: u64, write: bool) {
        self.mm_mut(mm).pt.update_present(level, addr, |p| touch(p, write));
    }

    /// `thp_vma_allowable_order()`: may a folio of `order` be faulted into
    /// `vma` at the aligned address `haddr`? Private anonymous VMAs only;
    /// the per-size setting (`inherit` → global) must be `always`, or
    /// `madvise` with MADV_HUGEPAGE; MADV_NOHUGEPAGE vetoes; the aligned
    /// range must lie inside the VMA.
    pub(crate) fn thp_vma_allowable(&self, vma: &Vma, order: u8, haddr: u64) -> bool {
        if !vma.is_anonymous() || vma.nohugepage || vma.hugetlb.is_some() {
            return false;
        }
        let ok = match self.settings.thp_mode(order) {
            ThpMode::Always => true,
            ThpMode::Madvise => vma.hugepage,
            ThpMode::Never | ThpMode::Inherit => false,
        };
        let size = PAGE_SIZE << order;
        ok && haddr >= vma.start && haddr + size <= vma.end
    }

    /// `do_anonymous_page()`: first touch of private anonymous memory.
    /// A read maps the shared zero page read-only (special PTE, no folio
    /// reference, no rmap). A write allocates a zeroed folio — the largest
    /// enabled mTHP order whose aligned range is inside the VMA and entirely
    /// unmapped (`alloc_anon_folio()`), else order 0 — maps every page
    /// writable (if VM_WRITE) and dirty, as a new exclusive anon folio.
    fn do_anonymous_page(&mut self, pid: Pid, mm: MmId, vma: &Vma, addr: u64, write: bool) -> FaultResult {
        if !write {
            self.mm_mut(mm).pt.set(
                Level::Pte,
                addr,
                Entry::Present(Present {
                    folio: ZERO_FOLIO,
                    page: 0,
                    write: false,
                    dirty: false,
                    young: true,
                    // A zero-page PTE is built from the protection alone
                    // (pte_mkspecial(pfn_pte())): no soft-dirty bit.
                    soft_dirty: false,
                    special: true,
                }),
            );
            self.event(pid, EventKind::Alloc, "do_anonymous_page", Some(addr), || "read fault → map the shared zero page".into());
            return Ok(());
        }
        // vmf_anon_prepare() comes before the allocation: a fault that then
        // finds no memory leaves the VMA with its anon_vma (what a later
        // fork's vma_needs_copy() looks at). `vma` is the fault's current
        // copy: one with an anon_vma needs no look-up of the mm's own.
        if vma.anon_vma.is_none() {
            self.ensure_anon_vma(mm, vma.start);
        }
        self.oom_reserve(pid, 1)?;
        // alloc_anon_folio(): an mTHP order without the memory for it falls
        // back to the next smaller one (no OOM kill for large folios).
        let free = self.free_ram_pages();
        let order = (THP_MIN..THP_PMD)
            .rev()
            .find(|&o| {
                let size = PAGE_SIZE << o;
                let a = align_down(addr, size);
                (1u64 << o) <= free && self.thp_vma_allowable(vma, o, a) && self.mm(mm).pt.ptes_none(a, a + size)
            })
            .unwrap_or(0);
        let size = PAGE_SIZE << order;
        let start = align_down(addr, size);
        let folio = self.alloc_anon_folio(order);
        let nr = 1u64 << order;
        self.add_new_anon_rmap(folio, mm, Rmap::Ptes { first: 0, nr });
        // The folio's PTEs lie in one PTE table (its order is below the
        // PMD's and its range aligned): filled after one look-up, as
        // `set_ptes()` fills a batch.
        let write = vma.prot.write;
        self.mm_mut(mm).pt.set_ptes(start, (0..nr).map(|i| pte(folio, i, write, true)));
        self.event(pid, EventKind::Alloc, "do_anonymous_page", Some(addr), || {
            if order == 0 {
                "write fault → new zeroed 4K anon page (exclusive)".into()
            } else {
                format!("write fault → new zeroed {}K anon mTHP (exclusive)", size / 1024)
            }
        });
        Ok(())
    }

    /// Gives the VMA an anon_vma identity if it has none (`anon_vma_prepare()`).
    pub(crate) fn ensure_anon_vma(&mut self, mm: MmId, vma_start: u64) {
        if self.mm(mm).vmas[&vma_start].anon_vma.is_none() {
            let id = self.fresh_id();
            self.mm_mut(mm).vmas.get_mut(&vma_start).expect("vma exists").anon_vma = Some(id);
        }
    }

    /// `do_fault()`: first touch of a file (or shmem) page. A read maps the
    /// page-cache folio (`do_read_fault()`), writable at once only in a shared
    /// mapping that needs no write notification; a write in a private mapping
    /// copies it into a new anon page (`do_cow_fault()`); a write in a shared
    /// mapping maps the cache folio writable and dirties it
    /// (`do_shared_fault()`). Beyond EOF → SIGBUS.
    fn do_fault(&mut self, pid: Pid, mm: MmId, vma: &Vma, addr: u64, flags: FaultFlags) -> FaultResult {
        let inode = vma.inode().ok_or(VmFault::Sigbus)?;
        let index = vma.page_index(addr);
        let cow = flags.write && !vma.shared;
        if cow {
            // do_cow_fault(): vmf_anon_prepare() first, so the VMA has its
            // anon_vma even when a later step finds no memory.
            self.ensure_anon_vma(mm, vma.start);
        }
        if vma.hugetlb.is_none() && self.pagecache_lookup(inode, index).is_none() {
            self.oom_reserve(pid, 1)?;
        }
        let (folio, page) = self.filemap_fault(inode, index)?;
        if cow {
            self.oom_reserve(pid, 1)?;
            let new = self.alloc_anon_folio_copy(folio, page);
            self.add_new_anon_rmap(new, mm, Rmap::pte(0));
            self.mm_mut(mm).pt.set(Level::Pte, addr, pte(new, 0, vma.prot.write, true));
            self.note_copy(1, false);
            self.event(pid, EventKind::Copy, "do_cow_fault", Some(addr), || {
                "private write to a file page → copy into a new anon page".into()
            });
            return Ok(());
        }
        let write = vma.shared && vma.prot.write && (flags.write || !self.vma_wants_writenotify(vma));
        self.rmap_add(folio, mm, Rmap::pte(page));
        self.mm_mut(mm).pt.set(Level::Pte, addr, pte(folio, page, write, flags.write));
        if flags.write {
            self.folios.get_mut(folio).dirty = true;
        }
        let func = if flags.write { "do_shared_fault" } else { "do_read_fault" };
        self.event(pid, EventKind::Fault, func, Some(addr), || {
            format!("map page-cache page {index}{}", if write { " writable" } else { " read-only" })
        });
        Ok(())
    }

    /// `vma_wants_writenotify()`: shared writable mappings whose PTEs must
    /// start read-only so the first write faults: files with `page_mkwrite`
    /// (disk filesystems) and VMAs under soft-dirty tracking.
    pub(crate) fn vma_wants_writenotify(&self, vma: &Vma) -> bool {
        if !vma.shared || !vma.prot.write {
            return false;
        }
        let disk = vma.inode().is_some_and(|i| self.inodes[&i].kind.needs_dirty_tracking());
        disk || !vma.softdirty
    }

    /// `do_wp_page()`: write or unshare fault on a present, read-only PTE.
    /// Shared mappings never copy (`wp_page_shared()`). In a private mapping
    /// an anon page is reused when it is anon-exclusive or
    /// `wp_can_reuse_anon_folio()` proves nobody else can see it; anything
    /// else (zero page, page-cache page, possibly shared anon page) is copied
    /// by `wp_page_copy()`. The reuse rule is a policy knob. Left out:
    /// userfaultfd-wp, KSM.
    pub(crate) fn do_wp_page(&mut self, pid: Pid, mm: MmId, vma: &Vma, addr: u64, p: Present, flags: FaultFlags) -> FaultResult {
        if let Some(c) = self.do_wp_page_begin(pid, mm, vma, addr, p, flags)? {
            self.wp_page_copy_finish(c);
        }
        Ok(())
    }

    /// [`Kernel::do_wp_page`] up to the point where `wp_page_copy()` has
    /// dropped the PTE lock and copied the page: the copy still to be
    /// installed, if the fault copies.
    /// Err(VmFault::Oom) when the copy found no memory and the OOM killer
    /// chose the faulting task.
    pub(crate) fn do_wp_page_begin(
        &mut self,
        pid: Pid,
        mm: MmId,
        vma: &Vma,
        addr: u64,
        p: Present,
        flags: FaultFlags,
    ) -> Result<Option<WpCopy>, VmFault> {
        if vma.shared {
            self.wp_page_shared(pid, mm, vma, addr, p);
            return Ok(None);
        }
        let f = self.folios.get(p.folio);
        if p.special || f.is_zero() || !f.is_anon() {
            let why = if p.special || f.is_zero() { WpReason::ZeroPage } else { WpReason::PageCache };
            return self.wp_page_copy_prepare(pid, mm, vma, addr, p, flags, why).map(Some);
        }
        let (reuse, why) = match self.policy.anon_reuse {
            AnonReuse::AnonExclusive if f.page_ae(p.page) => (true, WpReason::AnonExclusive),
            AnonReuse::AnonExclusive => self.wp_can_reuse_anon_folio(mm, p.folio),
            AnonReuse::Refcount => {
                let rc = f.refcount;
                (!f.is_large() && rc == 1, WpReason::RefcountRule { rc })
            }
            AnonReuse::Mapcount => {
                // reuse_swap_page(): mappings plus swap entries still
                // referring to the page's slot.
                let mc = f.mapcount;
                let swapped = self.swap_cache_of(p.folio).map_or(0, |s| self.swap_count(s));
                (mc + swapped == 1, WpReason::MapcountRule { mc, swapped })
            }
        };
        if reuse {
            self.wp_page_reuse(pid, mm, vma, addr, p, flags, why);
            Ok(None)
        } else {
            self.wp_page_copy_prepare(pid, mm, vma, addr, p, flags, why).map(Some)
        }
    }

    /// `wp_can_reuse_anon_folio()`. Small folio: reuse only if the refcount is
    /// exactly 1 after freeing a swap-cache slot nobody needs — any extra
    /// reference (another mapping, a pipe's FOLL_GET, a pin, I/O) copies.
    /// Large folio: [`Kernel::wp_can_reuse_large_anon_folio`]. Left out: LRU
    /// batch draining (the model has no per-CPU batches), KSM, the folio
    /// lock.
    pub(crate) fn wp_can_reuse_anon_folio(&mut self, _mm: MmId, folio: FolioId) -> (bool, WpReason) {
        let f = self.folios.get(folio);
        if f.is_large() {
            return self.wp_can_reuse_large_anon_folio(folio);
        }
        let rc = f.refcount;
        if rc > 3 {
            return (false, WpReason::RefcountOver3 { rc });
        }
        let in_cache = self.swap_cache_of(folio).is_some();
        if rc > 1 + in_cache as i64 {
            return (false, WpReason::Refcount { rc, in_cache });
        }
        if in_cache {
            self.folio_free_swap(folio);
        }
        let rc = self.folios.get(folio).refcount;
        if rc != 1 {
            return (false, WpReason::SwapSlotInUse { rc });
        }
        (true, WpReason::Refcount1)
    }

    /// `__wp_can_reuse_large_anon_folio()` (mm/memory.c, under
    /// CONFIG_TRANSPARENT_HUGEPAGE in 6.18; since 1da190f4d0a6 "mm:
    /// Copy-on-Write (COW) reuse support for PTE-mapped THP", 6.15). Reuse
    /// a page of a PTE-mapped large anon folio only if the folio is mapped
    /// more than once, the MM_ID shared bit is clear (the folio's mm slots
    /// say one mm maps it: see [`crate::rmap::MmIdSlots`], which can say
    /// "shared" when only one mm is left) and every reference is a mapping.
    /// Under `large_anon_reuse=never` (before 6.15) a large folio is never
    /// reused here. Left out: freeing the folio's swap-cache entry (the
    /// model's swap-in makes small folios only).
    fn wp_can_reuse_large_anon_folio(&self, folio: FolioId) -> (bool, WpReason) {
        let f = self.folios.get(folio);
        let (mc, rc) = (f.mapcount, f.refcount);
        if self.policy.large_anon_reuse == LargeAnonReuse::Never {
            return (false, WpReason::LargeNever);
        }
        if mc <= 1 {
            return (false, WpReason::LargeMappedOnce { mc });
        }
        if f.mm_ids.shared {
            return (false, WpReason::LargeShared);
        }
        if mc != rc {
            return (false, WpReason::LargeExtraRefs { mc, rc });
        }
        (true, WpReason::LargeAllMapped { mc })
    }

    /// `wp_page_reuse()`: keep the page, mark it anon-exclusive; a write makes
    /// the PTE writable (if VM_WRITE) and dirty, an unshare leaves it R/O.
    #[allow(clippy::too_many_arguments)]
    fn wp_page_reuse(&mut self, pid: Pid, mm: MmId, vma: &Vma, addr: u64, p: Present, flags: FaultFlags, why: WpReason) {
        self.folios.get_mut(p.folio).anon_exclusive.set(p.page, true);
        if flags.write {
            self.mm_mut(mm).pt.update_present(Level::Pte, addr, |e| {
                e.write = vma.prot.write;
                e.dirty = true;
                e.soft_dirty = true;
                e.young = true;
            });
        }
        let func = self.reuse_rule_name();
        self.event(pid, EventKind::Reuse, "do_wp_page", Some(addr), || format!("{} fault: {func}: {why} → reuse", flags.name()));
    }

    /// `wp_page_copy()`, first half: with the PTE lock dropped, allocate a
    /// new anon page (zeroed for the zero page, else a copy of the old one).
    #[allow(clippy::too_many_arguments)]
    fn wp_page_copy_prepare(
        &mut self,
        pid: Pid,
        mm: MmId,
        vma: &Vma,
        addr: u64,
        p: Present,
        flags: FaultFlags,
        why: WpReason,
    ) -> Result<WpCopy, VmFault> {
        // vmf_anon_prepare() before folio_prealloc(): the VMA keeps its
        // anon_vma whether the allocation or the recheck then fails.
        if vma.anon_vma.is_none() {
            self.ensure_anon_vma(mm, vma.start);
        }
        self.oom_reserve(pid, 1)?;
        let old_is_zero = p.special || self.folios.get(p.folio).is_zero();
        let new = if old_is_zero { self.alloc_anon_folio(0) } else { self.alloc_anon_folio_copy(p.folio, p.page) };
        Ok(WpCopy { pid, mm, vma_write: vma.prot.write, addr, orig: p, new, flags, why })
    }

    /// `wp_page_copy()`, second half: retake the PTE lock and recheck that
    /// the PTE is still the one the fault started from (`pte_same()`); if
    /// not, someone else resolved the fault or unmapped the page: drop the
    /// copy and let the access retry. Otherwise map the copy exclusively —
    /// writable+dirty for a write, read-only with the soft-dirty bit kept
    /// for an unshare — and only then drop the old page's mapping and
    /// reference. Returns whether the copy was installed.
    pub(crate) fn wp_page_copy_finish(&mut self, c: WpCopy) -> bool {
        let WpCopy { pid, mm, vma_write, addr, orig: p, new, flags, why } = c;
        let entry = if flags.unshare {
            Entry::Present(Present {
                folio: new,
                page: 0,
                write: false,
                dirty: false,
                young: true,
                soft_dirty: p.soft_dirty,
                special: false,
            })
        } else {
            pte(new, 0, vma_write, true)
        };
        // pte_same() and set_pte_at() under one PTE lock: one table walk.
        // Nothing between here and the rmap updates below looks at the PTE.
        if !self.mm_mut(mm).pt.replace_pte(addr, Entry::Present(p), entry) {
            self.folio_put(new);
            self.event(pid, EventKind::Note, "wp_page_copy", Some(addr), || {
                "PTE changed while copying (pte_same failed) → drop the copy, retry".into()
            });
            return false;
        }
        let old_is_zero = p.special || self.folios.get(p.folio).is_zero();
        self.add_new_anon_rmap(new, mm, Rmap::pte(0));
        if !old_is_zero {
            self.rmap_remove(p.folio, mm, Rmap::pte(p.page));
            self.free_swap_cache(p.folio);
            self.note_copy(1, flags.unshare);
        }
        let func = self.folios.get(p.folio).is_anon().then(|| self.reuse_rule_name());
        self.event(pid, EventKind::Copy, "wp_page_copy", Some(addr), || {
            if old_is_zero {
                format!("{} fault on the zero page → new zeroed anon page", flags.name())
            } else {
                let func = func.map(|f| format!("{f}: ")).unwrap_or_default();
                format!("{} fault: {func}{why} → copy", flags.name())
            }
        });
        true
    }

    /// The kernel function that makes the anon reuse decision under the
    /// current policy.
    fn reuse_rule_name(&self) -> &'static str {
        match self.policy.anon_reuse {
            AnonReuse::AnonExclusive => "wp_can_reuse_anon_folio",
            AnonReuse::Refcount => "do_wp_page (page_count)",
            AnonReuse::Mapcount => "reuse_swap_page",
        }
    }

    /// `wp_page_shared()`: a write to a read-only page of a shared mapping
    /// (write notification, after `page_mkwrite`) makes it writable and dirty.
    fn wp_page_shared(&mut self, pid: Pid, mm: MmId, vma: &Vma, addr: u64, p: Present) {
        self.mm_mut(mm).pt.update_present(Level::Pte, addr, |e| {
            e.write = vma.prot.write;
            e.dirty = true;
            e.soft_dirty = true;
        });
        self.folios.get_mut(p.folio).dirty = true;
        self.event(pid, EventKind::Reuse, "wp_page_shared", Some(addr), || "shared mapping → make writable (no COW)".into());
    }

    /// Counts one copy of a page of `pages` base pages (1, 512 or 262144),
    /// made by an unshare fault or not.
    pub(crate) fn note_copy(&mut self, pages: u64, unshare: bool) {
        self.stats.copies += 1;
        self.stats.pages_copied += pages;
        match pages {
            1 => self.stats.copied_4k += 1,
            HPAGE_PMD_NR => self.stats.copied_2m += 1,
            _ => self.stats.copied_1g += 1,
        }
        if unshare {
            self.stats.unshare_copies += 1;
        }
    }

    /// `zap_page_range_single()` / `unmap_page_range()` run to completion:
    /// the [`Zap`] step machine driven to its end.
    /// Swap entries free their slot, and swap-cache folios nothing maps any
    /// more leave the swap cache when the gathered references are dropped
    /// (`free_pages_and_swap_cache()`).
    pub(crate) fn zap_page_range(&mut self, pid: Pid, mm: MmId, start: u64, end: u64) {
        let mut z = Zap::begin(pid, mm, start, end);
        while self.zap_step(&mut z) {}
    }

    /// One atomic step of a zap; false once done.
    pub fn zap_step(&mut self, z: &mut Zap) -> bool {
        match z.state {
            ZapState::Split => {
                let huge: Vec<_> = self.mm(z.mm).pt.huge_leaves(z.start, z.end).collect();
                for leaf in huge {
                    if (leaf.addr < z.start || leaf.addr + leaf.level.size() > z.end)
                        && self.folio_of_leaf(&leaf).is_some_and(|f| self.folios.get(f).hugetlb.is_none())
                    {
                        self.split_huge_pmd(z.pid, z.mm, leaf.addr);
                    }
                }
                z.state = ZapState::Clear { addr: z.start };
                true
            }
            ZapState::Clear { addr } => {
                // One look-up of the mm for finding and clearing the entry.
                let pt = &mut self.mm_mut(z.mm).pt;
                let Some((leaf, cleared)) = pt.take_next_leaf(addr, z.end) else {
                    z.state = ZapState::Flush;
                    return true;
                };
                z.state = ZapState::Clear { addr: leaf.addr + leaf.level.size() };
                if !cleared {
                    // A hugetlb leaf the range only cuts (callers align
                    // hugetlb ranges, so nothing is left behind).
                    return true;
                }
                self.work.add(leaf.level.size() / PAGE_SIZE);
                match leaf.entry {
                    Entry::Present(p) if p.special => {}
                    Entry::Present(p) => {
                        if let Some(h) = self.folios.get(p.folio).hugetlb {
                            crate::hugetlb::note_hugetlb_unmap(self, z.mm, leaf.addr, h, p.folio);
                        }
                        let refs = self.folio_remove_rmap(p.folio, z.mm, Rmap::leaf(leaf.level, p.page));
                        // The pages of a folio come one after another: they
                        // join the last batch entry. A folio met again later
                        // gets a second entry, which drops the same total.
                        if refs > 0 {
                            match z.gathered.last_mut() {
                                Some((f, n)) if *f == p.folio => *n += refs,
                                _ => z.gathered.push((p.folio, refs)),
                            }
                        }
                    }
                    Entry::Swap { slot, .. } => self.free_swap_and_cache(slot),
                }
                true
            }
            ZapState::Flush => {
                for (f, n) in std::mem::take(&mut z.gathered) {
                    self.folio_put_refs(f, n as i64);
                    self.free_swap_cache(f);
                }
                z.state = ZapState::Done;
                false
            }
            ZapState::Done => false,
        }
    }

    pub(crate) fn folio_of_leaf(&self, leaf: &crate::pgtable::Leaf) -> Option<FolioId> {
        leaf.entry.present().filter(|p| !p.special).map(|p| p.folio)
    }

    /// Whether `folio` is anon.
    pub(crate) fn folio_is_anon(&self, folio: FolioId) -> bool {
        self.folios.get(folio).kind == FolioKind::Anon
    }
}

/// The smallest mTHP order (16 KiB) and the PMD order.
const THP_MIN: u8 = crate::kernel::THP_MIN_ORDER;
const THP_PMD: u8 = crate::kernel::THP_PMD_ORDER;

/// Where a zap stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ZapState {
    /// Next: split the PMD-mapped THPs the range only partly covers
    /// (`__split_huge_pmd()`, under the PMD lock).
    Split,
    /// Next: clear the first entry at or after `addr` (`zap_pte_range()`
    /// and its PMD/PUD twins, under the page-table lock).
    Clear {
        addr: u64,
    },
    /// Every entry cleared; next: `tlb_finish_mmu()` flushes the TLB and
    /// only then frees the pages the zap gathered.
    Flush,
    Done,
}

/// One zap of `[start, end)` in progress (`zap_page_range_single()` →
/// `unmap_page_range()` → `zap_pte_range()`, then `tlb_finish_mmu()`).
///
/// A zap clears one entry per step and takes the mapping out of the rmap
/// at once, but the mapping's folio reference goes into the mmu_gather
/// batch and is dropped only after the TLB flush, as `tlb_finish_mmu()`
/// does: until then another CPU may still be using the old translation.
/// The model's TLB flush does not wait for CPUs that run with interrupts
/// off (broadcast invalidation, as arm64 and x86 INVLPGB do), so GUP-fast
/// may run across it; that is why it must recheck what it read. Left out:
/// page-table freeing (the model never frees a table under a walker), the
/// batch size limit, dirty/accessed transfer to the folio.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Zap {
    pub pid: Pid,
    pub mm: MmId,
    pub start: u64,
    pub end: u64,
    pub state: ZapState,
    /// References gathered for freeing after the flush.
    pub gathered: Vec<(FolioId, u64)>,
}

impl Zap {
    pub fn begin(pid: Pid, mm: MmId, start: u64, end: u64) -> Zap {
        Zap { pid, mm, start, end, state: ZapState::Split, gathered: Vec::new() }
    }

    /// The kernel function the next step plays.
    pub fn next_func(&self) -> &'static str {
        match self.state {
            ZapState::Split => "__split_huge_pmd",
            ZapState::Clear { .. } => "zap_pte_range",
            ZapState::Flush => "tlb_finish_mmu",
            ZapState::Done => "",
        }
    }

    /// References held outside the kernel's books (folio, count, FOLL_PIN).
    pub fn held(&self) -> Vec<(FolioId, u64, bool)> {
        self.gathered.iter().map(|&(f, n)| (f, n, false)).collect()
    }
}

/// A copy `wp_page_copy()` made with the PTE lock dropped, waiting to be
/// installed by [`Kernel::wp_page_copy_finish`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WpCopy {
    pid: Pid,
    mm: MmId,
    /// VM_WRITE of the VMA as the fault found it: the new PTE's write bit
    /// (all the second half reads of the VMA).
    vma_write: bool,
    addr: u64,
    /// The PTE the fault started from, for `pte_same()`.
    orig: Present,
    new: FolioId,
    flags: FaultFlags,
    why: WpReason,
}

/// Why a write or unshare fault reuses or copies a page: the rule that
/// decided and the counts it read. Kept as values and put into words only
/// for the event log, so a run without narration formats nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum WpReason {
    ZeroPage,
    PageCache,
    AnonExclusive,
    /// The 5.9–5.18 rule: reuse a small page with refcount 1.
    RefcountRule {
        rc: i64,
    },
    /// The pre-5.8 rule: mappings plus swap references.
    MapcountRule {
        mc: i64,
        swapped: i64,
    },
    RefcountOver3 {
        rc: i64,
    },
    Refcount {
        rc: i64,
        in_cache: bool,
    },
    SwapSlotInUse {
        rc: i64,
    },
    Refcount1,
    LargeNever,
    LargeMappedOnce {
        mc: i64,
    },
    LargeShared,
    LargeExtraRefs {
        mc: i64,
        rc: i64,
    },
    LargeAllMapped {
        mc: i64,
    },
}

impl std::fmt::Display for WpReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            WpReason::ZeroPage => f.write_str("zero page"),
            WpReason::PageCache => f.write_str("page-cache page"),
            WpReason::AnonExclusive => f.write_str("PageAnonExclusive"),
            WpReason::RefcountRule { rc } => write!(f, "refcount rule (5.9–5.18): refcount {rc}"),
            WpReason::MapcountRule { mc, swapped } => write!(f, "mapcount rule (pre-5.8): mapcount {mc} + swap references {swapped}"),
            WpReason::RefcountOver3 { rc } => write!(f, "refcount {rc} > 3"),
            WpReason::Refcount { rc, in_cache } => write!(f, "refcount {rc}{}", if in_cache { " (1 swap cache)" } else { "" }),
            WpReason::SwapSlotInUse { rc } => write!(f, "refcount {rc} (swap slot still in use)"),
            WpReason::Refcount1 => f.write_str("refcount 1"),
            WpReason::LargeNever => f.write_str("large folio: never reused before 6.15"),
            WpReason::LargeMappedOnce { mc } => write!(f, "large folio mapped {mc}× → copy the page, let the folio go"),
            WpReason::LargeShared => f.write_str("large folio: MM_ID shared bit set (maybe mapped by more than one mm)"),
            WpReason::LargeExtraRefs { mc, rc } => write!(f, "large folio: mapcount {mc} ≠ refcount {rc}"),
            WpReason::LargeAllMapped { mc } => {
                write!(f, "large folio: every reference is a mapping of this mm (mapcount {mc} = refcount {mc})")
            }
        }
    }
}

/// Where a store by a task stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WpFaultState {
    /// Next: store at `addr` if it is mapped writable, else fault.
    Access {
        addr: u64,
    },
    /// `wp_page_copy()` copied the page with the PTE lock dropped; next:
    /// retake the lock, recheck the PTE, install.
    Copied {
        addr: u64,
        copy: WpCopy,
    },
    Done,
}

/// A user store of `data` at `start` racing other paths: the write fault
/// (`handle_mm_fault()` → `do_wp_page()` → `wp_page_copy()`) split where
/// the kernel drops the PTE lock to copy, then the store itself. Faults
/// other than a write to a present read-only PTE (first touch, swap-in,
/// huge PMDs, hugetlb) run as one step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WpFault {
    pub pid: Pid,
    pub mm: MmId,
    pub start: u64,
    pub data: crate::contents::Contents,
    pub state: WpFaultState,
    /// Faults taken for the current page (bounded like a user access).
    faults: u32,
    pub result: Option<SysResult<()>>,
    /// Who stores: the task, or the kernel on its behalf (`copy_to_user()`,
    /// where a fault it cannot resolve is EFAULT rather than a signal).
    pub by: crate::uaccess::AccessBy,
    /// The store runs to its end with no other step in between
    /// ([`Kernel::write_mem`]), so a run of writable PTEs mapping
    /// consecutive pages of one folio may take the store as one step: per
    /// PTE the same bits are set, and the folio's bytes end the same; and a
    /// fault, both halves of a `wp_page_copy()` and the retried store are
    /// one step too. Off for a driver that interleaves steps (the race
    /// explorer), where every page is its own step as on a CPU. The step
    /// that stores all of `data` at once moves it out (nothing reads it
    /// after the end).
    pub whole: bool,
}

/// Faults one page of a store may take before the model calls it a livelock.
const MAX_STORE_FAULTS: u32 = 8;

impl WpFault {
    pub fn begin(pid: Pid, mm: MmId, start: u64, data: crate::contents::Contents) -> WpFault {
        WpFault {
            pid,
            mm,
            start,
            data,
            state: WpFaultState::Access { addr: start },
            faults: 0,
            result: None,
            by: crate::uaccess::AccessBy::Task,
            whole: false,
        }
    }

    /// The kernel function the next step plays.
    pub fn next_func(&self) -> &'static str {
        match self.state {
            WpFaultState::Access { .. } => "handle_mm_fault",
            WpFaultState::Copied { .. } => "wp_page_copy",
            WpFaultState::Done => "",
        }
    }

    /// Between the two halves of `wp_page_copy()` (mmap_lock held for reading).
    pub fn in_fault(&self) -> bool {
        matches!(self.state, WpFaultState::Copied { .. })
    }

    /// The next step faults (it needs mmap_lock) rather than just storing.
    pub fn needs_fault(&self, k: &Kernel) -> bool {
        match self.state {
            WpFaultState::Access { addr } => !k.mm(self.mm).pt.lookup(addr).is_some_and(|l| l.entry.present().is_some_and(|p| p.write)),
            WpFaultState::Copied { .. } => true,
            WpFaultState::Done => false,
        }
    }

    /// The new page of a copy not yet installed.
    pub fn held(&self) -> Vec<(FolioId, u64, bool)> {
        match &self.state {
            WpFaultState::Copied { copy, .. } => vec![(copy.new, 1, false)],
            _ => Vec::new(),
        }
    }
}

impl Kernel {
    /// One atomic step of a store; false once done.
    pub fn wp_fault_step(&mut self, w: &mut WpFault) -> bool {
        let r = match std::mem::replace(&mut w.state, WpFaultState::Done) {
            WpFaultState::Done => return false,
            WpFaultState::Copied { addr, copy } => {
                self.wp_page_copy_finish(copy);
                w.state = WpFaultState::Access { addr };
                return true;
            }
            WpFaultState::Access { addr } => self.store_step(w, addr),
        };
        match r {
            Ok(()) => !matches!(w.state, WpFaultState::Done),
            Err(e) => {
                w.result = Some(Err(e));
                false
            }
        }
    }

    /// A store at `a`, as the MMU does it, page by page (or, for a store
    /// run to its end, [`WpFault::whole`], the whole store with its faults
    /// and COW copies in this one step): a present writable entry
    /// (whose protection key the task's PKRU allows) takes the store
    /// without the VMA being looked at; anything else faults, and only the
    /// fault handler asks the VMA (`do_user_addr_fault()` →
    /// `access_error()`, SIGSEGV). So an entry left writable in a
    /// read-only VMA — the bug mkdirty.c looks for — shows as a store that
    /// succeeds.
    fn store_step(&mut self, w: &mut WpFault, a: u64) -> SysResult<()> {
        let (pid, mm) = (w.pid, w.mm);
        let end = w.start + w.data.len();
        // A store run to its end ([`WpFault::whole`]) takes its faults and
        // then the store in this one step: nothing can come in between.
        loop {
            // The VMA and the leaf are looked up once; the VMA is cloned
            // only for a fault: the store itself needs its end and
            // protection key alone.
            let m = self.mm(mm);
            let Some(vma) = m.vma(a) else {
                return self.access_failed(w.by, pid, Signal::SIGSEGV, a);
            };
            let (vma_end, permitted) = (vma.end, self.arch_vma_access_permitted(vma));
            let leaf = m.pt.lookup(a);
            let Some(leaf) = leaf.filter(|l| permitted && l.entry.present().is_some_and(|p| p.write)) else {
                let vma = vma.clone();
                if self.access_error(&vma, true) {
                    return self.access_failed(w.by, pid, Signal::SIGSEGV, a);
                }
                w.faults += 1;
                if w.faults > MAX_STORE_FAULTS {
                    return Err(SysError::Livelock);
                }
                w.state = WpFaultState::Access { addr: a };
                if let Some(Entry::Present(p)) = leaf.filter(|l| l.level == Level::Pte && vma.hugetlb.is_none()).map(|l| l.entry) {
                    // handle_pte_fault(): a write to a present read-only PTE.
                    self.stats.faults += 1;
                    match self.do_wp_page_begin(pid, mm, &vma, page_align_down(a), p, FaultFlags::WRITE) {
                        // Run to its end, the copy is installed at once:
                        // the Copied step would come next, with nothing
                        // between.
                        Ok(Some(copy)) if w.whole => {
                            self.wp_page_copy_finish(copy);
                        }
                        Ok(Some(copy)) => {
                            w.state = WpFaultState::Copied { addr: a, copy };
                            return Ok(());
                        }
                        Ok(None) => {}
                        Err(e) => return self.deliver_fault(w.by, pid, e, a),
                    }
                } else if let Err(e) = self.handle_mm_fault(pid, mm, a, FaultFlags::WRITE) {
                    return self.deliver_fault(w.by, pid, e, a);
                }
                if w.whole {
                    continue;
                }
                return Ok(());
            };
            let (folio, page) = leaf.page_for(a).expect("present");
            let mut n = (leaf.addr + leaf.level.size() - a).min(end - a);
            if leaf.level == Level::Pte {
                // This PTE and, in a store run to its end, the run after
                // it through the same folio (touching does not change what
                // makes a run) are found and touched in one walk.
                let run_end = if w.whole { end.min(vma_end) } else { a + n };
                let ptes = self.mm_mut(mm).pt.touch_write_run(leaf.addr, run_end);
                n += (leaf.addr + ptes * PAGE_SIZE).min(run_end).saturating_sub(a + n);
            } else {
                self.touch_leaf(mm, leaf.level, leaf.addr, true);
            }
            let off = page * PAGE_SIZE + a % PAGE_SIZE;
            let f = self.folios.get_mut(folio);
            if let Some(byte) = w.data.fill_byte() {
                // A fill (what memset() stores) is stored as its byte: no
                // piece of it is cut out.
                f.data.overwrite_fill(off, n, byte);
            } else {
                // A store run to its end that takes all its bytes in this
                // one step hands them over rather than cutting a copy.
                let whole = w.whole && a == w.start && n == w.data.len();
                let chunk = if whole { std::mem::take(&mut w.data) } else { w.data.slice(a - w.start, n) };
                f.data.overwrite_owned(off, chunk);
            }
            // The CPU dirties the PTE only: an anon folio's PG_dirty
            // follows when a dirty PTE is taken down (MADV_FREE tells
            // the two apart). Page-cache folios keep the model's
            // simpler rule: dirty on every store.
            if !f.is_anon() {
                f.dirty = true;
            }
            self.work.add(n.div_ceil(PAGE_SIZE));
            w.faults = 0;
            w.state = if a + n >= end { WpFaultState::Done } else { WpFaultState::Access { addr: a + n } };
            if a + n >= end {
                w.result = Some(Ok(()));
            }
            return Ok(());
        }
    }
}

impl Kernel {
    /// How many bytes from the page-aligned `from` on (up to `end`, which
    /// the caller keeps inside one VMA) are mapped by present PTEs that go
    /// on through `folio` page after page, its page `next` at `from`, none
    /// special (a store's run is `PageTable::touch_write_run`'s). A
    /// task's access through
    /// such a run meets the same entry state at every page, so the model
    /// takes the run as one piece where the MMU takes it page by page (the
    /// idea of `folio_pte_batch()`, mm/internal.h, which batches the PTEs
    /// of one large folio for fork and zap; a user access needs no such
    /// thing in the kernel, since the CPU makes it).
    pub(crate) fn pte_run_of_folio(&self, mm: MmId, from: u64, end: u64, folio: FolioId, mut next: u64) -> u64 {
        let pt = &self.mm(mm).pt;
        let mut b = from;
        // A PTE table at a time, its slots read in a row.
        'tables: while b < end {
            let table_end = (align_down(b, PMD_SIZE) + PMD_SIZE).min(end.next_multiple_of(PAGE_SIZE));
            let Some(slots) = pt.pte_run(b, table_end) else { break };
            for slot in slots {
                match slot.get() {
                    Some(Entry::Present(p)) if p.folio == folio && p.page == next && !p.special => {}
                    _ => break 'tables,
                }
                next += 1;
                b += PAGE_SIZE;
            }
        }
        b.min(end).saturating_sub(from)
    }
}

/// What [`Kernel::access_remote_vm`] moves: bytes into the target mm, or a
/// length to read out of it.
pub(crate) enum RemoteAccess<'a> {
    Write(&'a crate::contents::Contents),
    Read(u64),
}

impl Kernel {
    /// `__access_remote_vm()` (mm/memory.c): copy to or from another
    /// address space page by page, each page taken with
    /// `get_user_pages_remote()` (the caller's FOLL_* flags plus
    /// FOLL_TOUCH|FOLL_REMOTE), written or read through the kernel's
    /// mapping of it and released; a write marks the folio dirty
    /// (`folio_mark_dirty_lock()`). Errors are not reported: the first page
    /// GUP refuses ends the copy, and the caller learns only how many bytes
    /// moved. `mm` is the target, `owner` its task (the model's faults are
    /// taken in its name). Left out: stack expansion (the model has no
    /// growing stacks), `vm_ops->access` for VM_IO/VM_PFNMAP mappings,
    /// address tagging, `flush_dcache_page()` (x86 needs none).
    pub(crate) fn access_remote_vm(
        &mut self,
        owner: Pid,
        mm: MmId,
        addr: u64,
        what: RemoteAccess<'_>,
        flags: crate::gup::GupFlags,
    ) -> (u64, crate::contents::Contents) {
        let flags = crate::gup::GupFlags { remote: true, ..flags };
        let len = match &what {
            RemoteAccess::Write(d) => d.len(),
            RemoteAccess::Read(n) => *n,
        };
        let mut out = crate::contents::Contents::default();
        let Ok(lock) = self.mmap_read_lock(mm) else { return (0, out) };
        let mut done = 0;
        while done < len {
            let a = addr + done;
            let (pages, err) = self.get_user_pages_slow(&lock, owner, page_align_down(a), 1, flags);
            let Some((folio, page)) = pages.get(0).filter(|_| err.is_none()) else {
                self.release_pages(&pages, flags.pin);
                break;
            };
            let n = (len - done).min(PAGE_SIZE - a % PAGE_SIZE);
            match &what {
                RemoteAccess::Write(d) => {
                    let f = self.folios.get_mut(folio);
                    f.data.overwrite(page * PAGE_SIZE + a % PAGE_SIZE, &d.slice(done, n));
                    f.dirty = true;
                }
                RemoteAccess::Read(_) => out.append(&self.read_pages(&pages, a % PAGE_SIZE, n)),
            }
            self.release_pages(&pages, flags.pin);
            done += n;
        }
        (done, out)
    }
}
