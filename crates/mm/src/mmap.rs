//! mmap(), munmap() and VMA bookkeeping (mm/mmap.c, mm/vma.c).

use crate::folio::MmId;
use crate::kernel::{File, Kernel};
use crate::types::*;
use crate::vma::{Backing, Vma};

/// Arguments of mmap(2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MmapRequest {
    /// Hint, or the exact address with `fixed`.
    pub addr: Option<u64>,
    pub len: u64,
    pub prot: Prot,
    /// MAP_SHARED (else MAP_PRIVATE).
    pub shared: bool,
    /// MAP_FIXED: replace whatever is mapped there.
    pub fixed: bool,
    /// MAP_FIXED_NOREPLACE: EEXIST if anything is mapped there.
    pub fixed_noreplace: bool,
    /// MAP_NORESERVE.
    pub noreserve: bool,
    /// MAP_HUGETLB with this page size (anonymous mappings).
    pub hugetlb: Option<HugeSize>,
    /// MAP_POPULATE.
    pub populate: bool,
    /// A file descriptor (None = MAP_ANONYMOUS).
    pub fd: Option<Fd>,
    /// File offset in bytes.
    pub offset: u64,
}

impl MmapRequest {
    /// Private anonymous read/write memory of `len` bytes.
    pub fn anon(len: u64) -> Self {
        MmapRequest {
            addr: None,
            len,
            prot: Prot::RW,
            shared: false,
            fixed: false,
            fixed_noreplace: false,
            noreserve: false,
            hugetlb: None,
            populate: false,
            fd: None,
            offset: 0,
        }
    }
}

impl Kernel {
    /// mmap(2) (mm/mmap.c: do_mmap()). Modelled: placement (top-down, hints,
    /// MAP_FIXED replacing, MAP_FIXED_NOREPLACE), anonymous private and shared
    /// (shmem) mappings, file mappings, MAP_HUGETLB with reservations,
    /// MAP_POPULATE, VMA merging, `vm.max_map_count`, RLIMIT_AS and the
    /// overcommit charge ([`Kernel::vm_enough_memory`]). MAP_FIXED_NOREPLACE
    /// is MAP_FIXED (do_mmap() adds it) whose range must be free: EEXIST if
    /// any VMA intersects it, with or without MAP_FIXED given too. Left out:
    /// mlock, stack guard gaps, THP alignment of file mappings.
    pub fn mmap(&mut self, pid: Pid, req: MmapRequest) -> SysResult<u64> {
        let mm = self.mm_of(pid)?;
        if req.len == 0 {
            return Err(Errno::EINVAL.into());
        }
        if !req.offset.is_multiple_of(PAGE_SIZE) {
            return Err(Errno::EINVAL.into());
        }
        // The file, if any, decides hugetlb-ness (hugetlbfs, memfd MFD_HUGETLB).
        let inode = match req.fd {
            None => None,
            Some(fd) => match self.task(pid)?.fds.get(&fd.0) {
                Some(File::Inode(i)) => Some(*i),
                Some(_) => return Err(Errno::ENXIO.into()),
                None => return Err(Errno::EBADF.into()),
            },
        };
        self.do_mmap(pid, mm, req, inode)
    }

    /// `do_mmap()` once the file, if any, is known: also the way in for
    /// mappings that have no file descriptor (a SysV shm attach).
    pub(crate) fn do_mmap(&mut self, pid: Pid, mm: MmId, req: MmapRequest, inode: Option<crate::folio::InodeId>) -> SysResult<u64> {
        let hugetlb = match inode {
            Some(i) => self.inodes[&i].hugetlb,
            None => req.hugetlb,
        };
        let align = hugetlb.map_or(PAGE_SIZE, |h| h.bytes());
        if hugetlb.is_some() && !req.offset.is_multiple_of(align) {
            return Err(Errno::EINVAL.into());
        }
        let len = req.len.checked_next_multiple_of(align).ok_or(Errno::ENOMEM)?;
        if len > TASK_SIZE {
            return Err(Errno::ENOMEM.into());
        }
        // do_mmap(): too many mappings already.
        if self.mm(mm).vmas.len() as u64 > self.machine.max_map_count {
            return Err(Errno::ENOMEM.into());
        }
        let exact = req.fixed || req.fixed_noreplace;
        let start = if exact {
            let a = req.addr.unwrap_or(0);
            if !is_aligned(a, align) || a.checked_add(len).is_none_or(|e| e > TASK_SIZE) || a == 0 {
                return Err(Errno::EINVAL.into());
            }
            if req.fixed_noreplace && self.mm(mm).vmas.values().any(|v| v.start < a + len && a < v.end) {
                return Err(Errno::EEXIST.into());
            }
            a
        } else {
            let thp_align = if hugetlb.is_none() && inode.is_none() && len >= PMD_SIZE { PMD_SIZE } else { align };
            self.get_unmapped_area(mm, req.addr, len, thp_align).ok_or(Errno::ENOMEM)?
        };

        // __mmap_setup(): RLIMIT_AS, then the commit charge of a private
        // writable mapping (`accountable_mapping()`); MAP_NORESERVE is
        // honoured unless overcommit is strict. What MAP_FIXED replaces is
        // given back first (`vms->nr_pages`, `vms->nr_accounted`).
        let (replaced, replaced_accounted) = if req.fixed {
            self.mm(mm).vmas.values().filter(|v| v.start < start + len && start < v.end).fold((0, 0), |(all, acc), v| {
                let n = (v.end.min(start + len) - v.start.max(start)) / PAGE_SIZE;
                (all + n, acc + if v.account { n } else { 0 })
            })
        } else {
            (0, 0)
        };
        if !self.may_expand_vm(mm, len / PAGE_SIZE - replaced) {
            return Err(Errno::ENOMEM.into());
        }
        let noreserve = req.noreserve && self.machine.overcommit != crate::kernel::Overcommit::Never;
        let account = hugetlb.is_none() && !req.shared && req.prot.write && !noreserve;
        if account && len / PAGE_SIZE > replaced_accounted {
            self.vm_enough_memory(Some(mm), len / PAGE_SIZE - replaced_accounted)?;
        }
        // shmem_zero_setup() → shmem_acct_size(): an anonymous shared
        // mapping is charged too (the model does not keep it in the
        // committed total, see `committed_pages()`).
        if inode.is_none() && req.shared && hugetlb.is_none() && !noreserve {
            self.vm_enough_memory(Some(mm), len / PAGE_SIZE)?;
        }
        // An anonymous shared mapping is a shmem object of its own.
        let inode = match (inode, req.shared) {
            (Some(i), _) => Some(i),
            (None, true) => {
                let kind = if hugetlb.is_some() { crate::shmem::InodeKind::Hugetlbfs } else { crate::shmem::InodeKind::Shmem };
                Some(self.create_inode(kind, hugetlb, len))
            }
            (None, false) => None,
        };
        if let Some(h) = hugetlb {
            if inode.is_none() && self.hstates.get(h).is_none() {
                return Err(Errno::EINVAL.into());
            }
        }
        let mut vma = Vma {
            start,
            end: start + len,
            prot: req.prot,
            shared: req.shared,
            maywrite: true,
            dontcopy: false,
            wipeonfork: false,
            hugepage: false,
            nohugepage: false,
            // VM_NORESERVE: hugetlb honours MAP_NORESERVE always, the rest
            // only when overcommit is not strict.
            noreserve: if hugetlb.is_some() { req.noreserve } else { noreserve },
            account,
            softdirty: true,
            backing: inode.map_or(Backing::Anon, Backing::File),
            pgoff: if inode.is_some() { req.offset / PAGE_SIZE } else { start / PAGE_SIZE },
            anon_vma: None,
            fork_child: false,
            hugetlb,
            resv: None,
        };
        // MAP_FIXED: the VMAs in the way are split first (`__mmap_region()`
        // gathers them before the file's mmap hook reserves anything), so a
        // split the kernel refuses (a hugetlb VMA cut off its page size)
        // fails the call before a reservation is taken.
        if req.fixed {
            self.split_vmas_for_munmap(mm, start, start + len)?;
        }
        if hugetlb.is_some() {
            crate::hugetlb::hugetlb_reserve_pages(self, pid, &mut vma)?;
            // hugetlbfs_file_mmap(): a mapping with VM_WRITE (shared or
            // private) that reaches past EOF grows the file to its end.
            if let (Some(ino), true) = (inode, vma.prot.write) {
                let i = self.inodes.get_mut(&ino).expect("mapped inodes are live");
                i.size = i.size.max(req.offset + len);
            }
        }
        if req.fixed {
            self.do_munmap(pid, mm, start, len)?;
        }
        self.insert_vma(mm, vma);
        if req.populate {
            self.populate(pid, start, len);
        }
        Ok(start)
    }

    /// Top-down search for a free range (`vm_unmapped_area()` with the
    /// top-down allocator); a free hint is taken as is.
    pub(crate) fn get_unmapped_area(&self, mm: MmId, hint: Option<u64>, len: u64, align: u64) -> Option<u64> {
        let m = self.mm(mm);
        let free = |a: u64| a + len <= TASK_SIZE && !m.vmas.values().any(|v| v.start < a + len && a < v.end);
        if let Some(h) = hint {
            if h != 0 && is_aligned(h, align) && free(h) {
                return Some(h);
            }
        }
        let mut top = MMAP_BASE;
        for v in m.vmas.values().rev().filter(|v| v.start < MMAP_BASE) {
            let cand = align_down(top.checked_sub(len)?, align);
            if cand >= v.end.min(top) {
                return Some(cand);
            }
            top = top.min(v.start);
        }
        let cand = align_down(top.checked_sub(len)?, align);
        (cand >= PAGE_SIZE * 16).then_some(cand)
    }

    /// Adds a VMA and merges it with compatible neighbours.
    pub(crate) fn insert_vma(&mut self, mm: MmId, vma: Vma) {
        let (s, e) = (vma.start, vma.end);
        self.mm_mut(mm).vmas.insert(vma.start, vma);
        self.merge_vmas(mm, s, e);
    }

    /// Merges compatible neighbouring VMAs touching `[start, end]`
    /// (mm/vma.c: vma_merge_existing_range() in spirit).
    pub(crate) fn merge_vmas(&mut self, mm: MmId, start: u64, end: u64) {
        let m = self.mm_mut(mm);
        let keys: Vec<u64> = m.vmas.range(..=end).rev().take_while(|(_, v)| v.end >= start).map(|(k, _)| *k).collect();
        let mut keys = keys;
        keys.reverse();
        // Also consider the VMA right before the range.
        if let Some((&k, _)) = m.vmas.range(..start).next_back() {
            if !keys.contains(&k) {
                keys.insert(0, k);
            }
        }
        let mut i = 0;
        while i + 1 < keys.len() {
            let (a, b) = (keys[i], keys[i + 1]);
            let mergeable = {
                let (va, vb) = (&m.vmas[&a], &m.vmas[&b]);
                va.can_merge_with(vb)
            };
            if mergeable {
                let vb = m.vmas.remove(&b).expect("key taken from the map");
                let va = m.vmas.get_mut(&a).expect("key taken from the map");
                va.end = vb.end;
                if va.anon_vma.is_none() {
                    va.anon_vma = vb.anon_vma;
                    va.fork_child = vb.fork_child;
                }
                keys.remove(i + 1);
            } else {
                i += 1;
            }
        }
    }

    /// Splits VMAs so that `addr` is a VMA boundary (`__split_vma()`, which
    /// does not look at `vm.max_map_count`); splitting a hugetlb VMA off its
    /// page size is EINVAL (hugetlb_vm_op_split()).
    fn split_vma_at(&mut self, mm: MmId, addr: u64) -> SysResult<()> {
        let m = self.mm(mm);
        let Some(v) = m.vma(addr) else { return Ok(()) };
        if v.start == addr {
            return Ok(());
        }
        if let Some(h) = v.hugetlb {
            if !is_aligned(addr, h.bytes()) {
                return Err(Errno::EINVAL.into());
            }
        }
        let key = v.start;
        // A PMD/PUD leaf straddling the cut must become PTEs first.
        self.split_huge_leaf_at(mm, addr);
        let m = self.mm_mut(mm);
        let v = m.vmas.get_mut(&key).expect("found above");
        let hi = v.split_off(addr);
        m.vmas.insert(hi.start, hi);
        Ok(())
    }

    /// Whether a VMA would be cut at `addr`.
    fn splits_at(&self, mm: MmId, addr: u64) -> bool {
        self.mm(mm).vma(addr).is_some_and(|v| v.start != addr)
    }

    /// Splits VMAs at both ends of `[start, end)` as `vma_modify()` does for
    /// mprotect and madvise: each cut is a `split_vma()`, ENOMEM when the
    /// mm already has `vm.max_map_count` VMAs.
    pub(crate) fn split_vmas_around(&mut self, mm: MmId, start: u64, end: u64) -> SysResult<()> {
        self.split_range(mm, start, end, true)
    }

    /// The cuts of munmap and of MAP_FIXED (`vms_gather_munmap_vmas()`):
    /// only a range strictly inside one VMA, which leaves one VMA more
    /// behind, is refused at `vm.max_map_count`; the cuts themselves do not
    /// check (the count may pass the limit for a moment).
    pub(crate) fn split_vmas_for_munmap(&mut self, mm: MmId, start: u64, end: u64) -> SysResult<()> {
        if self.splits_at(mm, start) && self.mm(mm).vma(start).is_some_and(|v| end < v.end) {
            self.map_count_check(mm, 0)?;
        }
        self.split_range(mm, start, end, false)
    }

    fn split_range(&mut self, mm: MmId, start: u64, end: u64, split_vma_rule: bool) -> SysResult<()> {
        if let Some(v) = self.mm(mm).vma(start) {
            if let Some(h) = v.hugetlb {
                if !is_aligned(start, h.bytes()) {
                    return Err(Errno::EINVAL.into());
                }
            }
        }
        if let Some(v) = self.mm(mm).vma(end.saturating_sub(1)) {
            if let Some(h) = v.hugetlb {
                if !is_aligned(end, h.bytes()) && end < v.end {
                    return Err(Errno::EINVAL.into());
                }
            }
        }
        for at in [start, end] {
            if split_vma_rule && self.splits_at(mm, at) {
                self.map_count_check(mm, 0)?;
            }
            self.split_vma_at(mm, at)?;
        }
        Ok(())
    }

    /// munmap(2) (mm/vma.c: do_vmi_munmap()).
    pub fn munmap(&mut self, pid: Pid, addr: u64, len: u64) -> SysResult<()> {
        let mm = self.mm_of(pid)?;
        if !is_aligned(addr, PAGE_SIZE) || len == 0 || addr.checked_add(len).is_none_or(|e| e > TASK_SIZE) {
            return Err(Errno::EINVAL.into());
        }
        let len = len.next_multiple_of(PAGE_SIZE);
        // hugetlb ranges must be huge-page aligned at both ends.
        for v in self.mm(mm).vmas.values().filter(|v| v.start < addr + len && addr < v.end) {
            if let Some(h) = v.hugetlb {
                let end = (addr + len).min(v.end);
                if !is_aligned(addr.max(v.start), h.bytes()) || !is_aligned(end, h.bytes()) {
                    return Err(Errno::EINVAL.into());
                }
            }
        }
        self.do_munmap(pid, mm, addr, len)
    }

    pub(crate) fn do_munmap(&mut self, pid: Pid, mm: MmId, addr: u64, len: u64) -> SysResult<()> {
        let end = addr + len;
        self.split_vmas_for_munmap(mm, addr, end)?;
        self.zap_page_range(pid, mm, addr, end);
        let keys: Vec<u64> = self.mm(mm).vmas.range(addr..end).map(|(k, _)| *k).collect();
        for k in keys {
            let v = self.mm_mut(mm).vmas.remove(&k).expect("key taken from the map");
            self.remove_vma(&v);
        }
        self.free_pgtables(mm, addr, end);
        Ok(())
    }

    /// `remove_vma()` for a VMA already taken out of its mm: the VMA's
    /// close (hugetlb reservations) and the drop of its file reference,
    /// which may be the file's last.
    pub(crate) fn remove_vma(&mut self, v: &crate::vma::Vma) {
        crate::hugetlb::hugetlb_vm_op_close(self, v);
        if let Some(ino) = v.inode() {
            self.iput(ino);
        }
    }

    /// `free_pgtables()`: PTE tables of ranges no VMA covers any more go.
    pub(crate) fn free_pgtables(&mut self, mm: MmId, start: u64, end: u64) {
        let m = self.mm_mut(mm);
        let ranges: Vec<(u64, u64)> = m.vmas.values().map(|v| (v.start, v.end)).collect();
        m.pt.free_empty_tables(start, end, |s, e| ranges.iter().any(|&(vs, ve)| vs < e && s < ve));
    }

    /// MAP_POPULATE: fault every page in, as GUP would (mm/gup.c:
    /// `__mm_populate()` → `populate_vma_page_range()`): writable private
    /// mappings with write faults, everything else with read faults and
    /// FOLL_FORCE, so PROT_WRITE-only and PROT_EXEC-only memory is populated
    /// too — unless `check_vma_flags()` refuses the VMA, as it does an
    /// execute-only one under protection keys. A PROT_NONE VMA is left
    /// alone, and a failure only ends the population of its VMA: mmap()
    /// never reports it.
    fn populate(&mut self, pid: Pid, start: u64, len: u64) {
        let Ok(mm) = self.mm_of(pid) else { return };
        let mut addr = start;
        while addr < start + len {
            let Some(v) = self.mm(mm).vma(addr).cloned() else { break };
            let write = v.prot.write && !v.shared;
            let flags = crate::gup::GupFlags { write, force: !write, ..crate::gup::GupFlags::GET };
            let step = v.hugetlb.map_or(PAGE_SIZE, |h| h.bytes());
            let ok = v.is_accessible()
                && self.check_vma_flags(&v, flags).is_ok()
                && self.handle_mm_fault(pid, mm, addr, crate::memory::FaultFlags { write, unshare: false }).is_ok();
            self.work.add(step / PAGE_SIZE);
            addr = if ok { addr + step } else { v.end };
        }
    }
}
