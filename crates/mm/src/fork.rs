//! fork: dup_mmap() and copy_page_range() (mm/mmap.c, mm/memory.c,
//! mm/huge_memory.c: copy_huge_pmd(), mm/hugetlb.c).
//!
//! fork holds the parent's mmap_lock for writing from [`Kernel::fork_begin`]
//! to its last step (crate::mmap_lock), so slow GUP cannot run meanwhile;
//! GUP-fast can. The copy is a step machine — one page-table
//! entry per step, and for a shareable anon page two steps (the pin check
//! with the AE clear, then the write-protect and install) — so that an
//! explorer can put GUP-fast between them. `write_protect_seq` is odd while
//! a COW mapping's entries are being copied.

use crate::events::EventKind;
use crate::folio::{Folio, FolioArena, MmId, HUGE_ZERO_FOLIO};
use crate::kernel::{Kernel, Mm, Task, TaskState};
use crate::pgtable::{Entry, Leaf, Level, Present, PteSlot};
use crate::rmap::{folio_add_rmap, folio_try_dup_anon_rmap, Rmap};
use crate::swap::SwapDevice;
use crate::types::*;

/// What copying one VMA's entries needs to know of the VMA, read once at
/// its `Vma` step, as `copy_page_range()` takes its `src_vma` once for the
/// whole range: fork holds the parent's mmap_lock for writing, so the VMA
/// cannot change while its entries are copied, and no entry's copy needs a
/// VMA look-up of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CopyVma {
    /// Index of the VMA in [`Fork::vmas`].
    pub index: usize,
    /// Where the VMA ends.
    pub end: u64,
    /// `is_cow_mapping()`.
    pub cow: bool,
    /// VM_WRITE, for the child's copy of a maybe-pinned page.
    pub write: bool,
}

/// Where a fork stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ForkState {
    /// Next: set up the child's copy of the parent VMA at index `vma`.
    Vma {
        vma: usize,
    },
    /// Next: copy the leaf at or after `addr` in VMA `vma`.
    Copy {
        vma: CopyVma,
        addr: u64,
    },
    /// `folio_try_dup_anon_rmap_pte()` (or `_pmd()`) succeeded for `leaf`; next:
    /// write-protect it in the parent and install it in the child.
    Install {
        vma: CopyVma,
        leaf: Leaf,
    },
    /// All copied: the child becomes runnable.
    Finish,
    Done,
}

/// One fork in progress.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fork {
    pub parent: Pid,
    pub child: Pid,
    pub pmm: MmId,
    pub cmm: MmId,
    /// Start addresses of the parent's VMAs, in order.
    pub vmas: Vec<u64>,
    pub state: ForkState,
    pub result: Option<SysResult<Pid>>,
}

impl Fork {
    /// The kernel function the next step plays.
    pub fn next_func(&self) -> &'static str {
        match self.state {
            ForkState::Vma { .. } | ForkState::Finish => "dup_mmap",
            ForkState::Copy { .. } => "copy_present_pte",
            ForkState::Install { .. } => "ptep_set_wrprotect",
            ForkState::Done => "",
        }
    }
}

/// Entries that fork gives the child as they are, without the anon rules:
/// special ones (the zero page, PFN maps) and page-cache pages
/// (`vm_normal_page()` finding no page, or a folio that is not anon, in
/// `copy_present_ptes()`), and the huge zero folio (`copy_huge_pmd()`; the
/// kernel skips other non-anon PMDs, which the model never maps).
fn shared_as_is(p: &Present, folio: &Folio) -> bool {
    p.special || p.folio == HUGE_ZERO_FOLIO || !folio.is_anon()
}

/// [`Kernel::copy_pte_range`]'s pass for the entries that are not
/// shareable anon pages: a swap entry gets `copy_nonpresent_pte()`'s work
/// and a zero or page-cache page [`Kernel::copy_shared_leaf`]'s, as their
/// `Copy` step would give them (the parent's entry and the child's);
/// hugetlb ends the pass (None). Kept out of the pass's loop, which the
/// anon pages fill.
#[cold]
#[inline(never)]
fn copy_other_pte(folios: &mut FolioArena, swap: &mut SwapDevice, cmm: MmId, cow: bool, e: Entry) -> Option<(PteSlot, PteSlot)> {
    let p = match e {
        Entry::Present(p) => p,
        Entry::Swap { slot, soft_dirty, .. } => {
            swap.dup(slot);
            let e = PteSlot::new(Entry::Swap { slot, exclusive: false, soft_dirty });
            return Some((e, e));
        }
    };
    let folio = folios.get_mut(p.folio);
    if folio.hugetlb.is_some() {
        return None;
    }
    let (pp, c) = share_leaf(folio, cmm, Rmap::pte(p.page), p, cow);
    Some((PteSlot::new(Entry::Present(pp)), PteSlot::new(Entry::Present(c))))
}

/// The non-anon half of `__copy_present_ptes()` (mm/memory.c), and the
/// huge zero folio's path of `copy_huge_pmd()` (mm/huge_memory.c): a zero
/// page or page-cache page is shared as it is. The child's mapping is counted (`r`), both entries are
/// write-protected in a COW mapping, the child's is clean in any other
/// (the kernel cleans it for VM_SHARED; the rest, a MAP_SHARED mapping of
/// a read-only file, can hold no dirty entry) and old (`pte_mkold()`,
/// `pmd_mkold()`). Returns the parent's entry and the child's.
fn share_leaf(folio: &mut Folio, cmm: MmId, r: Rmap, mut p: Present, cow: bool) -> (Present, Present) {
    folio_add_rmap(folio, cmm, r);
    if cow {
        p.write = false;
    }
    let mut c = Present { young: false, ..p };
    if !cow {
        c.dirty = false;
    }
    (p, c)
}

/// The install half for an anon page `folio_try_dup_anon_rmap_pte()` (or
/// `_pmd()`) let the child share (`__copy_present_ptes()`, and the PMD
/// part of `copy_huge_pmd()`): counts the child's mapping at `level`,
/// write-protects the parent's entry `pp` in a COW mapping, and returns the
/// child's entry: read-only there too, and old.
fn dup_present(folio: &mut Folio, cmm: MmId, level: Level, pp: &mut Present, cow: bool) -> Present {
    folio_add_rmap(folio, cmm, Rmap::leaf(level, pp.page));
    if cow {
        pp.write = false;
    }
    Present { young: false, ..*pp }
}

impl Kernel {
    /// fork(2) run to completion.
    ///
    /// Nothing runs between its steps, so where the next step is a `Copy`,
    /// [`Kernel::copy_pte_range`] first takes the run of PTEs ahead that
    /// need only the steps' bookkeeping (shareable anon pages, zero and
    /// page-cache pages, swap entries) in one pass, with the steps' own
    /// rules: the same state as stepping through them, without looking up
    /// the mm, the page table and the folio again for every entry.
    pub fn fork(&mut self, pid: Pid) -> SysResult<Pid> {
        let mut f = self.fork_begin(pid)?;
        loop {
            if let ForkState::Copy { vma, addr } = f.state {
                self.copy_pte_range(&mut f, vma, addr);
            }
            if !self.fork_step(&mut f) {
                break;
            }
        }
        f.result.expect("set when done")
    }

    /// Creates the child (not yet runnable) with an empty mm and takes the
    /// parent's mmap lock for writing (`dup_mmap()`), held until the fork's
    /// last step. A second fork of the same mm would wait for the first;
    /// called while one is half done, it reports that wait as a livelock.
    pub fn fork_begin(&mut self, pid: Pid) -> SysResult<Fork> {
        let parent = self.task(pid)?.clone();
        if self.mmap_write_locked(parent.mm) {
            return Err(SysError::Livelock);
        }
        // copy_process(): no task beyond `kernel.threads-max` (root is not
        // exempt), held against the running tasks (`nr_threads`); an exited
        // one is reaped at once.
        if self.nr_running >= self.machine.threads_max() {
            return Err(Errno::EAGAIN.into());
        }
        self.set_fork_mmap_lock(parent.mm, true);
        let child = Pid(self.fresh_id());
        let cmm = MmId(self.fresh_id());
        let mut m = Mm::new(cmm);
        m.has_pinned = false;
        self.mms.insert(cmm, m);
        self.tasks.insert(child, Task { pid: child, parent: Some(pid), mm: cmm, state: TaskState::Running, fds: Default::default() });
        self.nr_running += 1;
        let vmas = self.mm(parent.mm).vmas.keys().copied().collect();
        Ok(Fork { parent: pid, child, pmm: parent.mm, cmm, vmas, state: ForkState::Vma { vma: 0 }, result: None })
    }

    /// One atomic step of the fork; false once done.
    pub fn fork_step(&mut self, f: &mut Fork) -> bool {
        match f.state.clone() {
            ForkState::Vma { vma } => {
                let Some(&start) = f.vmas.get(vma) else {
                    f.state = ForkState::Finish;
                    return true;
                };
                let pv = self.mm(f.pmm).vmas[&start].clone();
                if pv.dontcopy {
                    f.state = ForkState::Vma { vma: vma + 1 };
                    return true;
                }
                // dup_mmap(): the child's copy of an accounted VMA is charged.
                if pv.account {
                    if let Err(e) = self.vm_enough_memory(Some(f.pmm), pv.len() / PAGE_SIZE) {
                        return self.fork_abort(f, e);
                    }
                }
                // dup_mmap(): the child's VMA; hugetlb_dup_vma_private() drops
                // the private reservation (children are never owners).
                let mut cv = pv.clone();
                cv.resv = None;
                if pv.wipeonfork {
                    cv.anon_vma = None;
                    cv.fork_child = false;
                } else {
                    // anon_vma_fork(): the child's chain links the parent's
                    // anon_vma too.
                    cv.fork_child = pv.anon_vma.is_some();
                }
                self.mm_mut(f.cmm).vmas.insert(start, cv);
                // vma_needs_copy(): only VMAs with anon pages are copied
                // eagerly; the rest refault in the child.
                if pv.wipeonfork || pv.anon_vma.is_none() {
                    f.state = ForkState::Vma { vma: vma + 1 };
                    return true;
                }
                let cow = pv.is_cow_mapping();
                if cow {
                    self.mm_mut(f.pmm).write_protect_seq += 1;
                }
                let vma = CopyVma { index: vma, end: pv.end, cow, write: pv.prot.write };
                f.state = ForkState::Copy { vma, addr: start };
                true
            }
            ForkState::Copy { vma, addr } => {
                let Some(leaf) = self.mm(f.pmm).pt.next_leaf(addr, vma.end) else {
                    if vma.cow {
                        self.mm_mut(f.pmm).write_protect_seq += 1;
                    }
                    f.state = ForkState::Vma { vma: vma.index + 1 };
                    return true;
                };
                let next = leaf.addr + leaf.level.size();
                self.work.add(leaf.level.size() / PAGE_SIZE);
                match self.copy_one_leaf(f, vma, &leaf) {
                    Err(e) => return self.fork_abort(f, e),
                    Ok(true) => f.state = ForkState::Install { vma, leaf },
                    Ok(false) => {
                        // A split PMD is revisited as PTEs from the same address.
                        let again = leaf.level == Level::Pmd && self.mm(f.pmm).pt.get(leaf.level, leaf.addr).is_none();
                        f.state = ForkState::Copy { vma, addr: if again { leaf.addr } else { next } };
                    }
                }
                true
            }
            ForkState::Install { vma, leaf } => {
                self.copy_install(f, vma, &leaf);
                f.state = ForkState::Copy { vma, addr: leaf.addr + leaf.level.size() };
                true
            }
            ForkState::Finish => {
                let fds = self.tasks[&f.parent].fds.clone();
                for file in fds.values() {
                    self.file_get(*file);
                }
                self.tasks.get_mut(&f.child).expect("created at begin").fds = fds;
                self.set_fork_mmap_lock(f.pmm, false);
                let (p, c) = (f.parent, f.child);
                self.event(p, EventKind::Note, "dup_mmap", None, || format!("forked child pid {}", c.0));
                f.result = Some(Ok(f.child));
                f.state = ForkState::Done;
                false
            }
            ForkState::Done => false,
        }
    }

    /// fork failed (hugetlb copy without a page): undo the child, leave
    /// write_protect_seq even again.
    fn fork_abort(&mut self, f: &mut Fork, e: SysError) -> bool {
        if self.mm(f.pmm).write_protect_seq % 2 == 1 {
            self.mm_mut(f.pmm).write_protect_seq += 1;
        }
        self.set_fork_mmap_lock(f.pmm, false);
        let ranges: Vec<(u64, u64)> = self.mm(f.cmm).vmas.values().map(|v| (v.start, v.end)).collect();
        for (s, e) in ranges {
            self.zap_page_range(f.child, f.cmm, s, e);
        }
        self.mms.remove(&f.cmm);
        self.tasks.remove(&f.child);
        self.nr_running -= 1;
        self.event(f.parent, EventKind::Note, "dup_mmap", None, || format!("fork failed: {e}"));
        f.result = Some(Err(e));
        f.state = ForkState::Done;
        false
    }

    /// The first half of copying one leaf. Returns Ok(true) when an anon page
    /// was made shareable and still needs [`Kernel::copy_install`].
    fn copy_one_leaf(&mut self, f: &Fork, vma: CopyVma, leaf: &Leaf) -> SysResult<bool> {
        match leaf.entry {
            Entry::Swap { slot, soft_dirty, .. } => {
                // copy_nonpresent_pte(): both now share the slot; neither may
                // assume exclusivity any more.
                self.swap_dup(slot);
                self.mm_mut(f.pmm).pt.set(leaf.level, leaf.addr, Entry::Swap { slot, exclusive: false, soft_dirty });
                self.mm_mut(f.cmm).pt.set(leaf.level, leaf.addr, Entry::Swap { slot, exclusive: false, soft_dirty });
                Ok(false)
            }
            Entry::Present(p) => {
                let folio = self.folios.get(p.folio);
                if let Some(h) = folio.hugetlb {
                    let pv = self.mm(f.pmm).vma(leaf.addr).expect("leaf inside a VMA").clone();
                    crate::hugetlb::copy_hugetlb_page_range(self, f.parent, f.pmm, f.cmm, &pv, h, leaf.addr, p)?;
                    return Ok(false);
                }
                if shared_as_is(&p, folio) {
                    self.copy_shared_leaf(f, leaf, p, vma.cow);
                    return Ok(false);
                }
                Ok(match leaf.level {
                    Level::Pte => self.copy_present_ptes(f, vma.write, leaf, p)?,
                    _ => self.copy_huge_pmd(f, leaf, p),
                })
            }
        }
    }

    /// A zero page or page-cache page at `leaf`, shared as it is
    /// ([`share_leaf`]).
    fn copy_shared_leaf(&mut self, f: &Fork, leaf: &Leaf, p: Present, cow: bool) {
        let (pp, c) = share_leaf(self.folios.get_mut(p.folio), f.cmm, Rmap::leaf(leaf.level, p.page), p, cow);
        if pp != p {
            self.wrprotect(f.pmm, leaf);
        }
        self.mm_mut(f.cmm).pt.set(leaf.level, leaf.addr, Entry::Present(c));
    }

    /// `copy_present_ptes()` (mm/memory.c) for one PTE of an anon page: if
    /// `folio_try_dup_anon_rmap_pte()` lets the child share it, the install
    /// step follows (true); if the page may be pinned and is exclusive,
    /// `copy_present_page()` gives the child its own copy now (false). The
    /// kernel batches the PTEs of a large folio, but when any page of the
    /// batch may be pinned it retries them one by one, so the outcome per
    /// page is the model's.
    ///
    /// Without a free page for the copy (`folio_prealloc()` failing) the
    /// fork fails with ENOMEM; the model does not run the OOM killer for
    /// it, where the kernel's allocator would first try.
    fn copy_present_ptes(&mut self, f: &Fork, vm_write: bool, leaf: &Leaf, p: Present) -> SysResult<bool> {
        let has_pinned = self.mm(f.pmm).has_pinned;
        if self.folio_try_dup_anon_rmap_pte(p.folio, p.page, has_pinned) {
            return Ok(true);
        }
        if self.free_ram_pages() == 0 {
            return Err(Errno::ENOMEM.into());
        }
        self.copy_present_page(f, vm_write, leaf, p);
        Ok(false)
    }

    /// `copy_huge_pmd()` (mm/huge_memory.c) for a PMD-mapped anon THP: shared
    /// with the child (install step next, true) if
    /// `folio_try_dup_anon_rmap_pmd()` allows it; a maybe-pinned exclusive THP
    /// instead has the parent's PMD split, and the range is redone page by
    /// page (false).
    fn copy_huge_pmd(&mut self, f: &Fork, leaf: &Leaf, p: Present) -> bool {
        let has_pinned = self.mm(f.pmm).has_pinned;
        if self.folio_try_dup_anon_rmap_pmd(p.folio, has_pinned) {
            return true;
        }
        self.event(f.parent, EventKind::Split, "copy_huge_pmd", Some(leaf.addr), || {
            "maybe-pinned exclusive THP → split the parent's PMD".into()
        });
        self.split_huge_pmd(f.parent, f.pmm, leaf.addr);
        false
    }

    /// `copy_present_page()`: the page may be pinned and is exclusive, so the
    /// child gets its own copy now, writable; the parent keeps its page
    /// writable and exclusive, pin intact. `vm_write`: the VMA's VM_WRITE.
    fn copy_present_page(&mut self, f: &Fork, vm_write: bool, leaf: &Leaf, p: Present) {
        let new = self.alloc_anon_folio(0);
        self.copy_page_data(new, 0, p.folio, p.page);
        self.add_new_anon_rmap(new, f.cmm, Rmap::pte(0));
        self.mm_mut(f.cmm).pt.set(Level::Pte, leaf.addr, crate::memory::pte(new, 0, vm_write, true));
        self.note_copy(1, false);
        self.event(f.parent, EventKind::Copy, "copy_present_page", Some(leaf.addr), || {
            "maybe-pinned exclusive page → copy for the child at fork".into()
        });
    }

    /// Second half: count the child's mapping, write-protect the parent's
    /// entry in a COW mapping, install the child's read-only entry.
    fn copy_install(&mut self, f: &Fork, vma: CopyVma, leaf: &Leaf) {
        // Re-read: the entry may have changed between the two steps only in
        // ways fork's locks allow (GUP-fast adds references, never entries).
        let Kernel { mms, folios, .. } = self;
        let pm = mms.get_mut(&f.pmm).expect("the parent mm lives while it forks");
        let mut child = None;
        pm.pt.update_present(leaf.level, leaf.addr, |pp| {
            child = Some(dup_present(folios.get_mut(pp.folio), f.cmm, leaf.level, pp, vma.cow))
        });
        if let Some(c) = child {
            self.mm_mut(f.cmm).pt.set(leaf.level, leaf.addr, Entry::Present(c));
        }
    }

    /// `copy_pte_range()` (mm/memory.c) over the PTE table at `addr` in VMA
    /// `vma`, for the entries that need nothing but the steps' bookkeeping:
    /// present PTEs of anon folios that are not hugetlb, whose
    /// `folio_try_dup_anon_rmap_pte()` succeeds, get the `Copy` step's
    /// check and the `Install` step's write-protect and child entry, back to
    /// back; swap entries (`copy_nonpresent_pte()`) and zero or page-cache
    /// pages ([`Kernel::copy_shared_leaf`]) get their one `Copy` step's
    /// work. All in address order, as [`Kernel::fork_step`] would give them;
    /// the walk stops at the first other entry (hugetlb, one to copy now),
    /// which the steps then take, and leaves the fork at `Copy` where it
    /// stopped. Only for a fork that nothing interleaves with
    /// ([`Kernel::fork`]): GUP-fast between the two halves sees them in the
    /// explorer, which steps. Left out, as in the steps: the kernel's
    /// batching of a large folio's PTEs (`folio_pte_batch_flags()`), which
    /// gives the same counts.
    fn copy_pte_range(&mut self, f: &mut Fork, vma: CopyVma, addr: u64) {
        let may_refuse = self.policy.fork_copies_pinned() && self.mm(f.pmm).has_pinned;
        let Some(mut cm) = self.mms.remove(&f.cmm) else { return };
        let Kernel { mms, folios, swap, .. } = self;
        let pm = mms.get_mut(&f.pmm).expect("the parent mm lives while it forks");
        let cmm = f.cmm;
        let stop = pm.pt.copy_pte_table(&mut cm.pt, addr, vma.end, |e| {
            // The common entry first, with nothing else in its path: a
            // present PTE of an anon folio fork may share.
            if let Entry::Present(mut pp) = e {
                let folio = folios.get_mut(pp.folio);
                if folio.hugetlb.is_none() && !shared_as_is(&pp, folio) {
                    if !folio_try_dup_anon_rmap(folio, pp.page, 1, may_refuse) {
                        return None;
                    }
                    let child = dup_present(folio, cmm, Level::Pte, &mut pp, vma.cow);
                    return Some((PteSlot::new(Entry::Present(pp)), PteSlot::new(Entry::Present(child))));
                }
            }
            copy_other_pte(folios, swap, cmm, vma.cow, e)
        });
        self.mms.insert(cmm, cm);
        self.work.add((stop - addr) / PAGE_SIZE);
        f.state = ForkState::Copy { vma, addr: stop };
    }

    fn wrprotect(&mut self, mm: MmId, leaf: &Leaf) {
        self.mm_mut(mm).pt.update_present(leaf.level, leaf.addr, |pp| pp.write = false);
    }
}
