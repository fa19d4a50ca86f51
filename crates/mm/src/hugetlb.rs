//! hugetlb: pools, reservations, faults and COW (mm/hugetlb.c).
//!
//! Pools are per huge page size (`struct hstate`) with the counters of
//! /proc/meminfo. Reservations follow mm/hugetlb.c: hugetlb_reserve_pages():
//! a private mapping reserves its whole size and becomes the owner
//! (HPAGE_RESV_OWNER), a shared mapping reserves the file range not yet
//! reserved in the inode's region map, MAP_NORESERVE reserves nothing.
//! Left out: subpools (hugetlbfs mount limits), NUMA nodes, PMD sharing,
//! gigantic-page allocation from CMA, the fault mutex and VMA lock (the
//! model runs faults atomically), hwpoison, userfaultfd.

use crate::events::EventKind;
use crate::folio::{FolioId, FolioKind, InodeId, MmId};
use crate::kernel::Kernel;
use crate::memory::{FaultFlags, FaultResult, VmFault};
use crate::pgtable::{Entry, Level, Present};
use crate::policy::{HugetlbCowFail, HugetlbPudFork, HugetlbReuse};
use crate::rmap::Rmap;
use crate::types::*;
use crate::vma::Vma;
use std::collections::{BTreeMap, BTreeSet};

/// Pool counters of one huge page size (`struct hstate`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Hstate {
    /// HugePages_Total: pages owned by the pool, surplus included.
    pub nr: u64,
    /// HugePages_Free.
    pub free: u64,
    /// HugePages_Rsvd. An `unsigned long` in the kernel that can go below
    /// zero for a while: when the reservation owner unmaps a page that
    /// another process (or a pipe) still holds, the page's reservation is
    /// restored to the owner's map and flagged on the folio
    /// ([`note_hugetlb_unmap`]); closing the VMA then gives that reservation
    /// back *before* the folio is freed and adds it again. The kernel shows
    /// 18446744073709551615 in between; the model keeps the same wrapping
    /// arithmetic and observers read it as a signed -1.
    pub resv: u64,
    /// HugePages_Surp.
    pub surplus: u64,
    /// nr_overcommit_hugepages.
    pub overcommit: u64,
}

impl Hstate {
    /// `available_huge_pages()`: free pages nobody has reserved, computed
    /// as the kernel does (unsigned, so a wrapped `resv` makes it larger than
    /// `free`; callers that take a page also need `free > 0`).
    pub fn available(&self) -> u64 {
        self.free.wrapping_sub(self.resv)
    }
}

/// Both sizes of x86-64, empty pools at boot.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Hstates {
    pools: BTreeMap<HugeSize, Hstate>,
}

impl Default for Hstates {
    fn default() -> Self {
        Hstates { pools: [HugeSize::Size2M, HugeSize::Size1G].into_iter().map(|h| (h, Hstate::default())).collect() }
    }
}

impl Hstates {
    pub fn get(&self, h: HugeSize) -> Option<&Hstate> {
        self.pools.get(&h)
    }

    fn get_mut(&mut self, h: HugeSize) -> &mut Hstate {
        self.pools.get_mut(&h).expect("both sizes always exist")
    }
}

/// A private hugetlb VMA's reservation state (resv_map + HPAGE_RESV_* bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct VmaResv {
    /// HPAGE_RESV_OWNER: this VMA made the reservation at mmap time.
    pub owner: bool,
    /// HPAGE_RESV_UNMAPPED: an owner stole a page from this VMA; any later
    /// fault that finds no page gets SIGBUS.
    pub unmapped: bool,
    /// Huge-page indices whose reservation has been consumed.
    pub consumed: BTreeSet<u64>,
}

fn huge_index(vma: &Vma, h: HugeSize, addr: u64) -> u64 {
    vma.page_index(addr) / (h.bytes() / PAGE_SIZE)
}

fn level_of(h: HugeSize) -> Level {
    match h {
        HugeSize::Size2M => Level::Pmd,
        HugeSize::Size1G => Level::Pud,
    }
}

impl Kernel {
    /// The pool counters of one size.
    pub fn hugetlb_pool(&self, h: HugeSize) -> Hstate {
        self.hstates.get(h).copied().unwrap_or_default()
    }

    /// Writes `nr_hugepages` (mm/hugetlb.c: set_max_huge_pages()): grows the
    /// persistent pool, or shrinks it by freeing unreserved free pages and
    /// turning pages in use into surplus. Growing stops when the machine's
    /// RAM has no room for another huge page, as the kernel's allocation
    /// loop stops at the first failed allocation (fragmentation, which can
    /// stop it earlier, is not modelled).
    pub fn set_nr_hugepages(&mut self, h: HugeSize, n: u64) {
        let room = self.free_ram_pages() / (h.bytes() / PAGE_SIZE);
        let hs = self.hstates.get_mut(h);
        let n = n.min((hs.nr - hs.surplus).saturating_add(room));
        let persistent = hs.nr - hs.surplus;
        if n >= persistent {
            // New pages first absorb surplus pages in use.
            let mut add = n - persistent;
            let absorb = add.min(hs.surplus);
            hs.surplus -= absorb;
            add -= absorb;
            hs.nr += add;
            hs.free += add;
        } else {
            let mut remove = persistent - n;
            let freeable = remove.min(hs.available()).min(hs.free);
            hs.free -= freeable;
            hs.nr -= freeable;
            remove -= freeable;
            hs.surplus += remove;
        }
    }

    /// Writes `nr_overcommit_hugepages`.
    pub fn set_overcommit_hugepages(&mut self, h: HugeSize, n: u64) {
        self.hstates.get_mut(h).overcommit = n;
    }
}

/// `hugetlb_acct_memory()`: raise `resv` by `delta`, allocating surplus
/// pages if the free pages do not cover it (`gather_surplus_pages()`);
/// ENOMEM if impossible. Then the cpuset check: `delta` must not exceed
/// the free pages of the nodes the task may use (`allowed_mems_nr()`; one
/// node here, so all free pages). It fails only while `resv` is below zero
/// (a reservation restored to an owner whose page a child still maps,
/// docs/divergences.md §4): the free pages then cover the count but not
/// the new pages. Failing, `return_unused_surplus_pages()` undoes the
/// raise and frees up to `delta` free surplus pages. Each ENOMEM has a
/// trace line saying what was short (the kernel prints nothing).
fn hugetlb_acct_memory(k: &mut Kernel, pid: Pid, h: HugeSize, delta: u64) -> SysResult<()> {
    let room = k.free_ram_pages() / (h.bytes() / PAGE_SIZE);
    let hs = k.hstates.get_mut(h);
    // gather_surplus_pages() computes this in a signed long.
    let needed = hs.resv.wrapping_add(delta).wrapping_sub(hs.free) as i64;
    if needed > 0 {
        let needed = needed as u64;
        // Surplus pages come from RAM (alloc_surplus_hugetlb_folio()).
        if hs.surplus.saturating_add(needed) > hs.overcommit || needed > room {
            let hs = *hs;
            k.event(pid, EventKind::Hugetlb, "hugetlb_acct_memory", None, || {
                format!(
                    "{}K pool: {delta} page(s) to reserve, {} free of which {} already reserved → {needed} short; \
                     surplus {}/{} allowed (overcommit), room in RAM for {room} → ENOMEM",
                    h.kb(),
                    hs.free,
                    hs.resv,
                    hs.surplus,
                    hs.overcommit
                )
            });
            return Err(Errno::ENOMEM.into());
        }
        hs.surplus += needed;
        hs.nr += needed;
        hs.free += needed;
    }
    if delta > hs.free {
        let n = delta.min(hs.surplus).min(hs.free);
        hs.surplus -= n;
        hs.nr -= n;
        hs.free -= n;
        let free = hs.free + n;
        k.event(pid, EventKind::Hugetlb, "hugetlb_acct_memory", None, || {
            format!("{}K pool: {delta} page(s) to reserve but {free} free on the allowed nodes (resv below zero) → ENOMEM", h.kb())
        });
        return Err(Errno::ENOMEM.into());
    }
    hs.resv = hs.resv.wrapping_add(delta);
    Ok(())
}

/// Gives back `n` reservations (and surplus pages no longer needed).
fn hugetlb_unacct(k: &mut Kernel, h: HugeSize, n: u64) {
    let hs = k.hstates.get_mut(h);
    hs.resv = hs.resv.wrapping_sub(n);
    return_unused_surplus_pages(hs);
}

/// `return_unused_surplus_pages()`: free surplus pages nobody reserved.
fn return_unused_surplus_pages(hs: &mut Hstate) {
    let n = hs.surplus.min(hs.available()).min(hs.free);
    hs.surplus -= n;
    hs.nr -= n;
    hs.free -= n;
}

/// `hugetlb_reserve_pages()` at mmap.
pub(crate) fn hugetlb_reserve_pages(k: &mut Kernel, pid: Pid, vma: &mut Vma) -> SysResult<()> {
    let h = vma.hugetlb.expect("hugetlb VMA");
    // hugetlbfs_file_mmap(): a SysV shm segment's file (S_PRIVATE)
    // reserved its pages when it was created, so its mappings reserve
    // nothing.
    if vma.noreserve || vma.inode().is_some_and(|i| k.inodes[&i].s_private) {
        return Ok(());
    }
    let per = h.bytes() / PAGE_SIZE;
    let first = vma.pgoff / per;
    let n = vma.len() / h.bytes();
    match vma.inode().filter(|_| vma.shared) {
        Some(ino) => hugetlb_reserve_inode_pages(k, pid, ino, h, first, n)?,
        None => {
            hugetlb_acct_memory(k, pid, h, n)?;
            vma.resv = Some(VmaResv { owner: true, unmapped: false, consumed: BTreeSet::new() });
        }
    }
    Ok(())
}

/// `hugetlb_reserve_pages()` for the shared case: the huge indices
/// `[first, first + n)` of the file that have neither a reservation nor a
/// page get one (the region map), and the pool's `resv` grows by that
/// many (ENOMEM, and nothing reserved, if the pool cannot cover them).
pub(crate) fn hugetlb_reserve_inode_pages(k: &mut Kernel, pid: Pid, ino: InodeId, h: HugeSize, first: u64, n: u64) -> SysResult<()> {
    let per = h.bytes() / PAGE_SIZE;
    let new: Vec<u64> =
        (first..first + n).filter(|i| !k.inodes[&ino].resv.contains(i) && k.pagecache_lookup(ino, i * per).is_none()).collect();
    hugetlb_acct_memory(k, pid, h, new.len() as u64)?;
    k.inodes.get_mut(&ino).expect("present").resv.extend(new);
    Ok(())
}

/// `hugetlb_vm_op_close()`: an owner's VMA (piece) gives back the
/// reservations of its range that were never consumed.
pub(crate) fn hugetlb_vm_op_close(k: &mut Kernel, vma: &Vma) {
    let (Some(h), Some(resv)) = (vma.hugetlb, &vma.resv) else { return };
    if !resv.owner {
        return;
    }
    let first = huge_index(vma, h, vma.start);
    let n = vma.len() / h.bytes();
    let consumed = resv.consumed.range(first..first + n).count() as u64;
    hugetlb_unacct(k, h, n - consumed);
}

/// `hugetlb_unreserve_pages()` on truncate: reservations from `first_page`
/// on are returned.
pub(crate) fn hugetlb_unreserve_pages(k: &mut Kernel, ino: InodeId, first_page: u64) {
    let Some(h) = k.inodes[&ino].hugetlb else { return };
    let per = h.bytes() / PAGE_SIZE;
    let first = first_page.div_ceil(per);
    let inode = k.inodes.get_mut(&ino).expect("present");
    let gone: Vec<u64> = inode.resv.range(first..).copied().collect();
    for i in &gone {
        inode.resv.remove(i);
    }
    hugetlb_unacct(k, h, gone.len() as u64);
}

/// `free_huge_folio()`: a surplus page leaves the pool, any other returns
/// to the free list; a still-flagged reservation is restored.
pub(crate) fn free_huge_folio(k: &mut Kernel, h: HugeSize, restore_reserve: bool) {
    let hs = k.hstates.get_mut(h);
    if restore_reserve {
        hs.resv = hs.resv.wrapping_add(1);
    }
    if hs.surplus > 0 {
        hs.surplus -= 1;
        hs.nr -= 1;
    } else {
        hs.free += 1;
    }
}

/// Does `vma` hold a reservation for the huge page at `addr`
/// (`vma_needs_reservation()` inverted)?
fn vma_has_reservation(k: &Kernel, vma: &Vma, h: HugeSize, addr: u64) -> bool {
    if vma.noreserve && !vma.shared {
        return false;
    }
    let idx = huge_index(vma, h, addr);
    match (vma.shared, vma.inode(), &vma.resv) {
        (true, Some(ino), _) => k.inodes[&ino].resv.contains(&idx),
        (false, _, Some(r)) => r.owner && !r.consumed.contains(&idx),
        _ => false,
    }
}

/// `alloc_hugetlb_folio(vma, addr, cow_from_owner)`: use the VMA's
/// reservation for this offset if it has one (and this is not a COW by the
/// owner, which needs an extra page), else an unreserved free page, else a
/// surplus page within the overcommit limit; otherwise fail (ENOSPC). The
/// reservation is consumed at once (the model does not separate allocation
/// from mapping, so "restore reserve on free" never triggers on this path).
fn alloc_hugetlb_folio(k: &mut Kernel, mm: MmId, vma: &Vma, h: HugeSize, addr: u64, cow_from_owner: bool) -> Option<FolioId> {
    let use_resv = !cow_from_owner && vma_has_reservation(k, vma, h, addr);
    if !dequeue_huge_page(k, h, use_resv) {
        return None;
    }
    note_pool_use(k, h);
    if use_resv {
        let idx = huge_index(vma, h, addr);
        if vma.shared {
            let ino = vma.inode().expect("shared hugetlb VMAs have an inode");
            k.inodes.get_mut(&ino).expect("present").resv.remove(&idx);
        } else if let Some(r) = k.mm_mut(mm).vmas.get_mut(&vma.start).and_then(|v| v.resv.as_mut()) {
            r.consumed.insert(idx);
        }
    }
    Some(k.folios.alloc(h.order(), FolioKind::Anon, Some(h)))
}

/// Takes one page from the pool: a reserved one (`use_resv`), else an
/// unreserved free page, else a new surplus page within the overcommit
/// limit (`dequeue_hugetlb_folio_vma()` / `alloc_surplus_hugetlb_folio()`).
///
/// A reservation does not guarantee a free page: after the owner unmapped a
/// page another process still maps, its reservation is restored while the
/// page stays in use (see [`Hstate::resv`]), and a refault by the owner
/// finds the free list empty, as in the kernel (SIGBUS without overcommit).
/// Since 6.13 `alloc_hugetlb_folio()` consumes the global reservation on the
/// surplus path as well.
fn dequeue_huge_page(k: &mut Kernel, h: HugeSize, use_resv: bool) -> bool {
    let room = k.free_ram_pages() >= h.bytes() / PAGE_SIZE;
    let hs = k.hstates.get_mut(h);
    if hs.free > 0 && (use_resv || hs.available() > 0) {
        hs.free -= 1;
    } else if hs.surplus < hs.overcommit && room {
        hs.surplus += 1;
        hs.nr += 1;
    } else {
        return false;
    }
    if use_resv {
        hs.resv = hs.resv.wrapping_sub(1);
    }
    true
}

/// Raises the peak of pool pages in use after a page was taken.
fn note_pool_use(k: &mut Kernel, h: HugeSize) {
    let hs = k.hugetlb_pool(h);
    let used = hs.nr - hs.free;
    let peak = match h {
        HugeSize::Size2M => &mut k.stats.hugetlb_peak_2m,
        HugeSize::Size1G => &mut k.stats.hugetlb_peak_1g,
    };
    *peak = (*peak).max(used);
}

/// Page-cache allocation for hugetlbfs files (fallocate, shared faults):
/// uses the inode's reservation for the index if there is one.
pub(crate) fn alloc_hugetlb_folio_for_inode(k: &mut Kernel, ino: InodeId, h: HugeSize, head_page: u64) -> Result<FolioId, VmFault> {
    let idx = head_page / (h.bytes() / PAGE_SIZE);
    let use_resv = k.inodes[&ino].resv.contains(&idx);
    if !dequeue_huge_page(k, h, use_resv) {
        return Err(VmFault::Sigbus);
    }
    note_pool_use(k, h);
    if use_resv {
        k.inodes.get_mut(&ino).expect("present").resv.remove(&idx);
    }
    Ok(k.folios.alloc(h.order(), FolioKind::File { inode: ino, index: head_page }, Some(h)))
}

/// Called when a hugetlb leaf is zapped: in the owner's private VMA, an
/// anon page's reservation is re-established when no surplus pages exist
/// (`__unmap_hugepage_range()` → `vma_add_reservation()`), so that a later
/// refault cannot fail.
pub(crate) fn note_hugetlb_unmap(k: &mut Kernel, mm: MmId, addr: u64, h: HugeSize, folio: FolioId) {
    if !k.folio_is_anon(folio) || k.hugetlb_pool(h).surplus > 0 {
        return;
    }
    let Some(vma) = k.mm(mm).vma(addr).cloned() else { return };
    let idx = huge_index(&vma, h, addr);
    if let Some(r) = k.mm_mut(mm).vmas.get_mut(&vma.start).and_then(|v| v.resv.as_mut()) {
        if r.owner && r.consumed.remove(&idx) {
            k.folios.get_mut(folio).restore_reserve = true;
        }
    }
}

/// `hugetlb_fault()`: an empty entry goes to `hugetlb_no_page()`; a write or
/// unshare on a read-only entry runs `hugetlb_wp()` with the fault path's
/// own extra folio reference held (`folio_get()` before the call, which is
/// why a plain refcount test could never see 1 there).
pub(crate) fn hugetlb_fault(k: &mut Kernel, pid: Pid, mm: MmId, vma: &Vma, addr: u64, flags: FaultFlags) -> FaultResult {
    let h = vma.hugetlb.expect("hugetlb VMA");
    let haddr = align_down(addr, h.bytes());
    let level = level_of(h);
    match k.mm(mm).pt.get(level, haddr) {
        None => hugetlb_no_page(k, pid, mm, vma, h, haddr, flags),
        Some(Entry::Present(p)) if (flags.write || flags.unshare) && !p.write => {
            k.folio_ref_add(p.folio, 1);
            let r = hugetlb_wp(k, pid, mm, vma, h, haddr, flags, 1);
            k.folio_put(p.folio);
            r
        }
        Some(_) => {
            k.touch_leaf(mm, level, haddr, flags.write);
            Ok(())
        }
    }
}

/// `hugetlb_no_page()`. There is no zero page: even a read allocates.
/// A VMA marked HPAGE_RESV_UNMAPPED (its page was stolen) gets SIGBUS, and
/// the kernel logs `PID <pid> killed due to inadequate hugepage pool`
/// (the model logs it every time; the kernel's pr_warn_ratelimited() drops
/// it after 10 in 5 s). A file page not in the page cache at or past the file's last whole
/// huge page is SIGBUS too (shared or private mapping).
/// Shared mappings use (or fill) the page cache and map writable; private
/// mappings map a page-cache page read-only, or a new anon page read-only
/// and then, for a write, run `hugetlb_wp()` at once (which reuses it). No
/// extra reference is held for that call: the new anon page's only
/// reference is its mapping.
fn hugetlb_no_page(k: &mut Kernel, pid: Pid, mm: MmId, vma: &Vma, h: HugeSize, haddr: u64, flags: FaultFlags) -> FaultResult {
    let level = level_of(h);
    if vma.resv.as_ref().is_some_and(|r| r.unmapped) {
        k.event(pid, EventKind::Signal, "hugetlb_no_page", Some(haddr), || {
            "VMA marked HPAGE_RESV_UNMAPPED: killed due to inadequate hugepage pool".into()
        });
        k.event(pid, EventKind::Printk, "hugetlb_no_page", None, || format!("PID {} killed due to inadequate hugepage pool", pid.0));
        return Err(VmFault::Sigbus);
    }
    let cached = vma.inode().and_then(|ino| k.pagecache_lookup(ino, vma.page_index(haddr)));
    // A file page not in the page cache must lie inside the file, for
    // private mappings too: a fault at or past i_size is SIGBUS. (A
    // writable mmap grew the file to cover itself; see mmap.)
    if let (Some(ino), None) = (vma.inode(), cached) {
        if vma.page_index(haddr) * PAGE_SIZE >= align_down(k.inodes[&ino].size, h.bytes()) {
            k.event(pid, EventKind::Signal, "hugetlb_no_page", Some(haddr), || "index at or past EOF → SIGBUS".into());
            return Err(VmFault::Sigbus);
        }
    }
    if vma.shared {
        let ino = vma.inode().expect("shared hugetlb VMAs have an inode");
        let (folio, _) = match cached {
            Some(c) => c,
            None => {
                let idx = vma.page_index(haddr);
                let f = alloc_hugetlb_folio(k, mm, vma, h, haddr, false).ok_or(VmFault::Sigbus)?;
                k.folios.get_mut(f).kind = FolioKind::File { inode: ino, index: idx };
                k.inodes.get_mut(&ino).expect("present").cache.insert(idx, f);
                (f, 0)
            }
        };
        k.rmap_add(folio, mm, Rmap::Entire);
        k.mm_mut(mm).pt.set(level, haddr, crate::memory::pte(folio, 0, vma.prot.write, flags.write));
        k.event(pid, EventKind::Fault, "hugetlb_no_page", Some(haddr), || format!("shared: map the {}K page-cache page", h.kb()));
        return Ok(());
    }
    if let Some((folio, _)) = cached {
        k.rmap_add(folio, mm, Rmap::Entire);
        k.mm_mut(mm).pt.set(level, haddr, crate::memory::pte(folio, 0, false, false));
        k.event(pid, EventKind::Fault, "hugetlb_no_page", Some(haddr), || {
            format!("private: map the {}K page-cache page read-only", h.kb())
        });
    } else {
        let Some(folio) = alloc_hugetlb_folio(k, mm, vma, h, haddr, false) else {
            k.event(pid, EventKind::Signal, "hugetlb_no_page", Some(haddr), || "no huge page available → SIGBUS".into());
            return Err(VmFault::Sigbus);
        };
        k.ensure_anon_vma(mm, vma.start);
        k.add_new_anon_rmap(folio, mm, Rmap::Entire);
        k.mm_mut(mm).pt.set(level, haddr, crate::memory::pte(folio, 0, false, false));
        k.event(pid, EventKind::Alloc, "hugetlb_no_page", Some(haddr), || format!("new {}K anon huge page, mapped read-only", h.kb()));
    }
    if flags.write || flags.unshare {
        return hugetlb_wp(k, pid, mm, vma, h, haddr, flags, 0);
    }
    Ok(())
}

/// How many times an owner may steal and retry before the model reports a
/// livelock (only reachable with the refcount rule and a foreign reference).
const MAX_STEAL_RETRIES: u32 = 3;

/// `hugetlb_wp()`: write or unshare on a read-only private huge page.
/// Shared mappings are just made writable. The 6.18 rule reuses when the
/// folio is anon and mapped once (`folio_mapcount() == 1`), ignoring every
/// other reference; the `refcount` policy reuses only if all references are
/// explained (the mapping + `caller_refs`, the references the calling fault
/// path holds: 1 from `hugetlb_fault()`, 0 from `hugetlb_no_page()`); the
/// `refcount_naive` policy reuses only at refcount 1, whatever the caller
/// holds. Otherwise a new page is
/// allocated — for the owner of an anon page as `cow_from_owner`, which may
/// not use the reservation. If none is available, the owner steals the
/// page from its children (`unmap_ref_private()`) and retries; anyone else
/// gets SIGBUS.
#[allow(clippy::too_many_arguments)]
fn hugetlb_wp(k: &mut Kernel, pid: Pid, mm: MmId, vma: &Vma, h: HugeSize, haddr: u64, flags: FaultFlags, caller_refs: i64) -> FaultResult {
    let level = level_of(h);
    let mut retries = 0;
    loop {
        let Some(Entry::Present(p)) = k.mm(mm).pt.get(level, haddr) else { return Ok(()) };
        if vma.shared {
            make_huge_writable(k, mm, level, haddr, vma, p.folio);
            return Ok(());
        }
        let f = k.folios.get(p.folio);
        let anon = f.is_anon();
        let (mc, rc) = (f.mapcount, f.refcount);
        let (reuse, why) = match k.policy.hugetlb_reuse {
            HugetlbReuse::Mapcount if !anon => (false, "page-cache folio (private COW)".to_string()),
            HugetlbReuse::Mapcount => (mc == 1, format!("folio_mapcount {mc}")),
            // Exclusive (a pinned page stays so), or mapped once with nothing
            // but that mapping and the fault path's own reference holding it.
            HugetlbReuse::Refcount if anon && f.page_ae(0) => (true, "PageAnonExclusive".to_string()),
            HugetlbReuse::Refcount => (
                anon && mc == 1 && rc == 1 + caller_refs,
                format!("mapcount {mc}, refcount {rc} (expected: 1 mapping + {caller_refs} fault path)"),
            ),
            HugetlbReuse::RefcountNaive => {
                (anon && rc == 1, format!("refcount {rc} (naive: 1 expected, the fault path's {caller_refs} counted)"))
            }
        };
        if reuse {
            k.folios.get_mut(p.folio).anon_exclusive.set_all(true);
            if flags.write {
                make_huge_writable(k, mm, level, haddr, vma, p.folio);
            }
            if caller_refs > 0 {
                k.stats.hugetlb_reuses_mapped += 1;
            }
            k.event(pid, EventKind::Reuse, "hugetlb_wp", Some(haddr), || format!("{why} → reuse"));
            return Ok(());
        }
        let cow_from_owner = anon && vma.resv.as_ref().is_some_and(|r| r.owner);
        if let Some(new) = alloc_hugetlb_folio(k, mm, vma, h, haddr, cow_from_owner) {
            let data = k.folios.get(p.folio).data.clone();
            k.folios.get_mut(new).data = data;
            k.ensure_anon_vma(mm, vma.start);
            k.add_new_anon_rmap(new, mm, Rmap::Entire);
            let write = flags.write && vma.prot.write;
            k.mm_mut(mm).pt.set(level, haddr, crate::memory::pte(new, 0, write, write));
            k.rmap_remove(p.folio, mm, Rmap::Entire);
            k.note_copy(h.bytes() / PAGE_SIZE, flags.unshare);
            k.event(pid, EventKind::Copy, "hugetlb_wp", Some(haddr), || {
                format!("{why} → copy to a new {}K page{}", h.kb(), if cow_from_owner { " (cow_from_owner)" } else { "" })
            });
            return Ok(());
        }
        if !(cow_from_owner && k.policy.hugetlb_cow_fail == HugetlbCowFail::Steal) {
            k.event(pid, EventKind::Signal, "hugetlb_wp", Some(haddr), || format!("{why}, no huge page for the copy → SIGBUS"));
            return Err(VmFault::Sigbus);
        }
        if retries == MAX_STEAL_RETRIES {
            k.stats.livelocks += 1;
            k.event(pid, EventKind::Note, "hugetlb_wp", Some(haddr), || "steal and retry keeps failing → livelock".into());
            return Err(VmFault::Livelock);
        }
        retries += 1;
        unmap_ref_private(k, pid, mm, p.folio, haddr, h);
    }
}

fn make_huge_writable(k: &mut Kernel, mm: MmId, level: Level, haddr: u64, vma: &Vma, folio: FolioId) {
    k.mm_mut(mm).pt.update_present(level, haddr, |e| {
        e.write = vma.prot.write;
        e.dirty = true;
    });
    k.folios.get_mut(folio).dirty = true;
}

/// `unmap_ref_private()`: the owner cannot COW, so it unmaps `folio` from
/// every other private VMA mapping it (its fork children) and marks those
/// VMAs HPAGE_RESV_UNMAPPED: their next touch of the range is SIGBUS. The
/// kernel finds those VMAs by file offset in the hugetlbfs file's i_mmap,
/// so a VMA moved by mremap is found at its new address; the model looks
/// for the same offset (`page_index`) and the same folio in every other mm.
fn unmap_ref_private(k: &mut Kernel, pid: Pid, mm: MmId, folio: FolioId, haddr: u64, h: HugeSize) {
    let level = level_of(h);
    let Some(idx) = k.mm(mm).vma(haddr).map(|v| v.page_index(haddr)) else { return };
    let victims: Vec<(MmId, u64, u64)> = k
        .mms
        .values()
        .filter(|m| m.id != mm)
        .flat_map(|m| {
            m.vmas.values().filter(|v| v.hugetlb == Some(h) && !v.shared && !v.resv.as_ref().is_some_and(|r| r.owner)).filter_map(
                move |v| {
                    let a = v.start.checked_add(idx.checked_sub(v.pgoff)?.checked_mul(PAGE_SIZE)?)?;
                    (a < v.end && matches!(m.pt.get(level, a), Some(Entry::Present(Present { folio: f, .. })) if f == folio))
                        .then_some((m.id, v.start, a))
                },
            )
        })
        .collect();
    for (victim, vstart, a) in victims {
        k.mm_mut(victim).pt.clear(level, a);
        k.rmap_remove(folio, victim, Rmap::Entire);
        let v = k.mm_mut(victim).vmas.get_mut(&vstart).expect("found above");
        v.resv.get_or_insert_with(VmaResv::default).unmapped = true;
        k.stats.stolen += 1;
        let victim_pid = k.pid_of_mm(victim);
        k.event(pid, EventKind::Hugetlb, "unmap_ref_private", Some(a), || {
            format!("no page for the owner's COW → unmap it from pid {} (VMA marked HPAGE_RESV_UNMAPPED)", victim_pid.0)
        });
    }
}

/// `copy_hugetlb_page_range()` (mm/hugetlb.c) for one present leaf: fork
/// copies one entry per step, in the forking task `pid` (its events are
/// that task's, as the kernel runs this in the parent's fork()). Page-cache
/// folios are shared (read-only in COW mappings). Anon folios are shared
/// read-only unless they may be pinned and are exclusive
/// (`hugetlb_try_dup_anon_rmap()` fails): then the child gets its own copy
/// now, from a page without reservation; if none can be had, fork fails
/// with ENOMEM. That early copy came to hugetlb in 5.12 (4eae4efa2c29
/// "hugetlb: do early cow when page pinned on src mm"); with
/// `hugetlb_fork_copy_pinned=off` fork shares a pinned hugetlb page as it
/// does any other, and the pin stays with whichever side keeps the page.
///
/// With `hugetlb_pud_fork=skip` a 1 GiB entry is not copied at all: the
/// child's VMA stays empty and the parent's entry is left as it was
/// (writable, exclusive). This is what 6.18 does on this machine in some
/// runs (docs/divergences.md §1): the function skips entries whose child
/// page table page "is shared" (`ptdesc_pmd_is_shared(dst)`), and for a PUD
/// table that reads a `pt_share_count` nobody initialised. The kernel then
/// skips the whole rest of that PUD table; the model skips entry by entry,
/// which is the same for every 1 GiB entry of one table.
#[allow(clippy::too_many_arguments)]
pub(crate) fn copy_hugetlb_page_range(
    k: &mut Kernel,
    pid: Pid,
    parent: MmId,
    child: MmId,
    pvma: &Vma,
    h: HugeSize,
    addr: u64,
    p: Present,
) -> SysResult<()> {
    let level = level_of(h);
    if h == HugeSize::Size1G && k.policy.hugetlb_pud_fork == HugetlbPudFork::Skip {
        k.event(pid, EventKind::Hugetlb, "copy_hugetlb_page_range", Some(addr), || {
            "the child's PUD table looks shared (stale pt_share_count) → entry not copied".into()
        });
        return Ok(());
    }
    let anon = k.folio_is_anon(p.folio);
    let cow = pvma.is_cow_mapping();
    let has_pinned = k.mm(parent).has_pinned && k.policy.hugetlb_fork_copy_pinned;
    if anon && !k.hugetlb_try_dup_anon_rmap(p.folio, has_pinned) {
        let cvma = k.mm(child).vmas[&pvma.start].clone();
        let new = alloc_hugetlb_folio(k, child, &cvma, h, addr, false).ok_or(Errno::ENOMEM)?;
        let data = k.folios.get(p.folio).data.clone();
        k.folios.get_mut(new).data = data;
        k.ensure_anon_vma(child, cvma.start);
        k.add_new_anon_rmap(new, child, Rmap::Entire);
        k.mm_mut(child).pt.set(level, addr, crate::memory::pte(new, 0, pvma.prot.write, true));
        k.note_copy(h.bytes() / PAGE_SIZE, false);
        k.event(pid, EventKind::Copy, "copy_hugetlb_page_range", Some(addr), || {
            "maybe-pinned exclusive huge page → copy for the child".into()
        });
        return Ok(());
    }
    k.rmap_add(p.folio, child, Rmap::Entire);
    let mut e = p;
    if cow {
        e.write = false;
        k.mm_mut(parent).pt.update_present(level, addr, |pp| pp.write = false);
    }
    k.mm_mut(child).pt.set(level, addr, Entry::Present(e));
    Ok(())
}

/// hugetlb MADV_DONTNEED (mm/madvise.c: madvise_dontneed_free_valid_vma()):
/// the start must be huge-aligned (EINVAL otherwise) and the length is
/// rounded down to whole huge pages.
pub(crate) fn hugetlb_dontneed_range(vma: &Vma, start: u64, end: u64) -> SysResult<(u64, u64)> {
    let h = vma.hugetlb.expect("hugetlb VMA");
    if !is_aligned(start, h.bytes()) {
        return Err(Errno::EINVAL.into());
    }
    Ok((start, align_down(end, h.bytes()).max(start)))
}
