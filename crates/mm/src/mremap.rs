//! mremap(2) (mm/mremap.c).
//!
//! The steps follow 6.18's `do_mremap()`: `check_mremap_params()` on the
//! raw arguments, then either `remap_move()` (MREMAP_FIXED with equal
//! lengths: every VMA in the range moves, gaps kept) or one VMA through
//! `check_prep_vma()` and `mremap_to()` / `mremap_at()`. MREMAP_DONTUNMAP
//! moves the page tables and leaves the source VMA mapped and empty.
//! Memory accounting follows `vrm_calc_charge()`: an accounted VMA asks
//! `vm_enough_memory()` for the growth, or for the whole new length with
//! MREMAP_DONTUNMAP, at the point the kernel asks. Left out: mlock
//! population of a grown range, userfaultfd, sealing, and the kernel's
//! committed-memory counter itself (the model sums accounted VMAs, so the
//! charge 6.18 leaks on a move that also shrinks is not kept:
//! docs/divergences.md).

use crate::folio::MmId;
use crate::kernel::Kernel;
use crate::pgtable::{Leaf, Level};
use crate::types::*;
use crate::vma::Vma;

/// What `vrm_remap_type()` decides from the two lengths.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RemapType {
    NoResize,
    Shrink,
    Expand,
}

/// The MREMAP_* flags besides MREMAP_FIXED (which is `new_addr`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MremapFlags {
    pub maymove: bool,
    /// MREMAP_DONTUNMAP: move the pages, keep the source VMA.
    pub dontunmap: bool,
}

impl MremapFlags {
    pub const MAYMOVE: MremapFlags = MremapFlags { maymove: true, dontunmap: false };
}

fn remap_type(old_len: u64, new_len: u64) -> RemapType {
    match old_len.cmp(&new_len) {
        std::cmp::Ordering::Equal => RemapType::NoResize,
        std::cmp::Ordering::Greater => RemapType::Shrink,
        std::cmp::Ordering::Less => RemapType::Expand,
    }
}

impl Kernel {
    /// mremap(2) with MREMAP_MAYMOVE and MREMAP_DONTUNMAP in `flags` and
    /// MREMAP_FIXED as `new_addr` (mm/mremap.c: `do_mremap()`). Lengths
    /// are page-aligned as the kernel does, wrapping: an old length within
    /// a page of 2^64 is 0, which asks to duplicate a shared mapping
    /// (EINVAL for a private one). MREMAP_DONTUNMAP always moves: to
    /// `new_addr`, or without MREMAP_FIXED to a free place found as for a
    /// NULL hint (the caller's hint is not modelled).
    pub fn mremap(&mut self, pid: Pid, addr: u64, old_len: u64, new_len: u64, flags: MremapFlags, new_addr: Option<u64>) -> SysResult<u64> {
        let mm = self.mm_of(pid)?;
        let (old_len, new_len) = (page_align(old_len), page_align(new_len));
        check_mremap_params(addr, old_len, new_len, flags, new_addr)?;
        if let Some(t) = new_addr.filter(|_| old_len == new_len) {
            return self.remap_move(pid, mm, addr, old_len, t, flags.dontunmap);
        }
        let vma = self.mm(mm).vma(addr).cloned().ok_or(Errno::EFAULT)?;
        let (old_len, new_len) = check_prep_vma(&vma, addr, old_len, new_len, new_addr, flags.dontunmap)?;
        // resize_is_valid(): growth must fit RLIMIT_AS.
        if new_len > old_len && !self.may_expand_vm(mm, (new_len - old_len) / PAGE_SIZE) {
            return Err(Errno::ENOMEM.into());
        }
        let delta = old_len.abs_diff(new_len);
        if new_addr.is_some() || flags.dontunmap {
            // MREMAP_DONTUNMAP without MREMAP_FIXED goes through mremap_to()
            // too; vrm_set_new_addr() picks the place.
            return self.mremap_to(pid, mm, addr, old_len, new_len, new_addr, flags.dontunmap, delta);
        }
        self.mremap_at(pid, mm, &vma, addr, old_len, new_len, flags.maymove)
    }

    /// `remap_move()`: MREMAP_FIXED without resizing moves every VMA of
    /// `[addr, addr + len)`, each to the same offset from `target`; a gap
    /// before the first VMA is EFAULT. Every kind of VMA the model has may
    /// be moved in a batch (`vma_multi_allowed()`: no file, shmem, hugetlb,
    /// or a file system using `thp_get_unmapped_area`).
    fn remap_move(&mut self, pid: Pid, mm: MmId, addr: u64, len: u64, target: u64, dontunmap: bool) -> SysResult<u64> {
        let end = addr + len;
        let pieces: Vec<(u64, u64)> =
            self.mm(mm).vmas.values().filter(|v| v.start < end && addr < v.end).map(|v| (v.start.max(addr), v.end.min(end))).collect();
        match pieces.first() {
            Some(&(s, _)) if s == addr => {}
            _ => return Err(Errno::EFAULT.into()),
        }
        for (s, e) in pieces {
            let vma = self.mm(mm).vma(s).cloned().ok_or(Errno::EFAULT)?;
            let (ol, nl) = check_prep_vma(&vma, s, e - s, e - s, Some(target + (s - addr)), dontunmap)?;
            self.mremap_to(pid, mm, s, ol, nl, Some(target + (s - addr)), dontunmap, 0)?;
        }
        Ok(target)
    }

    /// `mremap_to()`: with MREMAP_FIXED (`target`) unmap the target first;
    /// shrink the source if the new length is smaller; with
    /// MREMAP_DONTUNMAP the mapping gains `old_len` bytes of address
    /// space, which must fit RLIMIT_AS (`may_expand_vm()`); without
    /// MREMAP_FIXED pick the place (`vrm_set_new_addr()`); then move.
    /// `delta` is the difference of the lengths as the call gave them,
    /// before any shrink (`vrm_set_delta()`), which `move_vma()` charges.
    /// Refused up front when the mm is within five VMAs of
    /// `vm.max_map_count` (both ranges might be cut in three).
    #[allow(clippy::too_many_arguments)]
    fn mremap_to(
        &mut self,
        pid: Pid,
        mm: MmId,
        addr: u64,
        mut old_len: u64,
        new_len: u64,
        target: Option<u64>,
        dontunmap: bool,
        delta: u64,
    ) -> SysResult<u64> {
        self.map_count_check(mm, 5)?;
        if let Some(t) = target {
            self.do_munmap(pid, mm, t, new_len)?;
            if self.mm(mm).vma(addr).is_none() {
                return Err(Errno::EFAULT.into());
            }
        }
        if remap_type(old_len, new_len) == RemapType::Shrink {
            self.shrink_vma(pid, mm, addr, old_len, new_len)?;
            old_len = new_len;
        }
        if dontunmap && !self.may_expand_vm(mm, old_len / PAGE_SIZE) {
            return Err(Errno::ENOMEM.into());
        }
        let target = match target {
            Some(t) => t,
            None => self.get_unmapped_area(mm, None, new_len, move_align(new_len)).ok_or(Errno::ENOMEM)?,
        };
        let vma = self.mm(mm).vma(addr).cloned().ok_or(Errno::EFAULT)?;
        let charge = if dontunmap { new_len } else { delta };
        self.move_vma(pid, mm, &vma, addr, old_len, new_len, target, dontunmap, charge)
    }

    /// `mremap_at()`: no move asked for. Same size is a no-op, a shrink
    /// unmaps the tail (whatever VMAs it spans), growth happens in place
    /// when the range ends its VMA and the addresses after it are free
    /// (`vma_expandable()`), else the mapping moves with MREMAP_MAYMOVE
    /// and is ENOMEM without.
    #[allow(clippy::too_many_arguments)]
    fn mremap_at(&mut self, pid: Pid, mm: MmId, vma: &Vma, addr: u64, old_len: u64, new_len: u64, maymove: bool) -> SysResult<u64> {
        match remap_type(old_len, new_len) {
            RemapType::NoResize => Ok(addr),
            RemapType::Shrink => {
                self.shrink_vma(pid, mm, addr, old_len, new_len)?;
                Ok(addr)
            }
            RemapType::Expand => {
                let delta = new_len - old_len;
                let grow_end = vma.end.checked_add(delta);
                let expandable = vma.end - addr == old_len
                    && grow_end.is_some_and(|e| e <= TASK_SIZE && !self.mm(mm).vmas.values().any(|v| v.start < e && vma.end < v.end));
                if let (true, Some(e)) = (expandable, grow_end) {
                    // expand_vma_in_place(): an accounted VMA charges the
                    // growth (vrm_calc_charge()), then vma_merge_extend()
                    // grows it and may merge it with the one that follows.
                    if vma.account {
                        self.vm_enough_memory(Some(mm), delta / PAGE_SIZE)?;
                    }
                    self.mm_mut(mm).vmas.get_mut(&vma.start).expect("looked up by the caller").end = e;
                    self.merge_vmas(mm, vma.start, e);
                    return Ok(addr);
                }
                if !maymove {
                    return Err(Errno::ENOMEM.into());
                }
                let target = self.get_unmapped_area(mm, None, new_len, move_align(new_len)).ok_or(Errno::ENOMEM)?;
                self.move_vma(pid, mm, vma, addr, old_len, new_len, target, false, delta)
            }
        }
    }

    /// `shrink_vma()`: unmaps the tail `[addr + new_len, addr + old_len)`
    /// whatever VMAs it spans. The old length was never checked against the
    /// address space, so `do_vmi_munmap()`'s own checks decide: a range
    /// past TASK_SIZE is EINVAL.
    fn shrink_vma(&mut self, pid: Pid, mm: MmId, addr: u64, old_len: u64, new_len: u64) -> SysResult<()> {
        let start = addr + new_len;
        let len = old_len - new_len;
        if start > TASK_SIZE || len > TASK_SIZE - start {
            return Err(Errno::EINVAL.into());
        }
        self.do_munmap(pid, mm, start, len)
    }

    /// `move_vma()`: an accounted VMA first charges `charge` bytes
    /// (`vrm_calc_charge()`: the growth, or with MREMAP_DONTUNMAP the whole
    /// new length, since the source stays; for a move that also shrank,
    /// 6.18 charges the shrunk amount again, which can make that move
    /// ENOMEM under `vm.overcommit_memory=2`). Then a copy of the VMA
    /// covering `[addr, addr + old_len)`
    /// is placed at `target` with `new_len` bytes and the same file
    /// offsets (`copy_vma()`), the page-table entries move with it
    /// (`move_page_tables()`: PMD leaves move whole only when both
    /// addresses are PMD-aligned alike, else they are split first), and the
    /// source range is unmapped. A hugetlb source gives its reservation to
    /// the copy: its unmap returns none (`fixup_hugetlb_reservations()`).
    /// The kernel clears the reservation map of the whole source VMA, so
    /// what stays behind of a partly moved hugetlb VMA no longer owns its
    /// reservations and they are never returned; the model clears only the
    /// moved piece's (divergence left open: the leak is not modelled). An
    /// old length of 0 duplicates a shared mapping: nothing moves and the
    /// source stays.
    ///
    /// With MREMAP_DONTUNMAP the source range is not unmapped
    /// (`dontunmap_complete()`): its VMA stays, with no entries, so a
    /// private anonymous source reads zeros again while a shared one
    /// faults its file's pages back in; if the whole source VMA was
    /// copied, it loses its anon_vma (`unlink_anon_vmas()`), so what it
    /// faults in later is in no anon_vma the copy shares.
    #[allow(clippy::too_many_arguments)]
    fn move_vma(
        &mut self,
        pid: Pid,
        mm: MmId,
        vma: &Vma,
        addr: u64,
        old_len: u64,
        new_len: u64,
        target: u64,
        dontunmap: bool,
        charge: u64,
    ) -> SysResult<u64> {
        // The unmap of the source may cut a VMA in three: refused within
        // three VMAs of `vm.max_map_count` (prep_move_vma()).
        self.map_count_check(mm, 3)?;
        if vma.account {
            self.vm_enough_memory(Some(mm), charge / PAGE_SIZE)?;
        }
        let mut copy = vma.clone();
        copy.pgoff = vma.page_index(addr);
        copy.start = target;
        copy.end = target + new_len;
        let moved = old_len.min(new_len);
        // Only PMD leaves are split: the PTE tables need no walk here.
        let huge: Vec<Leaf> = self.mm(mm).pt.huge_leaves(addr, addr + moved).filter(|l| l.level == Level::Pmd).collect();
        for leaf in huge {
            let whole = leaf.addr >= addr && leaf.addr + PMD_SIZE <= addr + moved;
            if vma.hugetlb.is_none() && (addr % PMD_SIZE != target % PMD_SIZE || !whole) {
                self.split_huge_pmd(pid, mm, leaf.addr);
            }
        }
        for leaf in self.mm(mm).pt.leaves(addr, addr + moved) {
            let m = self.mm_mut(mm);
            m.pt.clear(leaf.level, leaf.addr);
            m.pt.set(leaf.level, leaf.addr - addr + target, leaf.entry);
        }
        self.insert_vma(mm, copy);
        if dontunmap {
            if addr == vma.start && addr + old_len == vma.end {
                if let Some(v) = self.mm_mut(mm).vmas.get_mut(&vma.start) {
                    v.anon_vma = None;
                    v.fork_child = false;
                }
            }
            return Ok(target);
        }
        if old_len > 0 {
            if vma.hugetlb.is_some() {
                self.split_vmas_around(mm, addr, addr + old_len)?;
                self.mm_mut(mm).vmas.get_mut(&addr).expect("split at addr above").resv = None;
            }
            self.do_munmap(pid, mm, addr, old_len)?;
        }
        Ok(target)
    }
}

/// `vrm_set_new_addr()` without MREMAP_FIXED: a free place aligned as a
/// new anonymous mapping of that size would be.
fn move_align(len: u64) -> u64 {
    if len >= PMD_SIZE {
        PMD_SIZE
    } else {
        PAGE_SIZE
    }
}

/// `check_mremap_params()`: the checks on the raw arguments. With
/// MREMAP_FIXED or MREMAP_DONTUNMAP (`vrm_implies_new_addr()`) the new
/// address (for DONTUNMAP alone the hint, NULL here) must be sane,
/// MREMAP_MAYMOVE given, DONTUNMAP may not resize, and the ranges may not
/// overlap. The overlap test adds as the kernel does, in wrapping
/// `unsigned long`s.
fn check_mremap_params(addr: u64, old_len: u64, new_len: u64, flags: MremapFlags, new_addr: Option<u64>) -> SysResult<()> {
    if !is_aligned(addr, PAGE_SIZE) || new_len == 0 || new_len > TASK_SIZE {
        return Err(Errno::EINVAL.into());
    }
    if new_addr.is_none() && !flags.dontunmap {
        return Ok(());
    }
    let t = new_addr.unwrap_or(0);
    if t > TASK_SIZE - new_len || !is_aligned(t, PAGE_SIZE) || !flags.maymove {
        return Err(Errno::EINVAL.into());
    }
    if flags.dontunmap && old_len != new_len {
        return Err(Errno::EINVAL.into());
    }
    if addr.wrapping_add(old_len) > t && t + new_len > addr {
        return Err(Errno::EINVAL.into());
    }
    Ok(())
}

/// `check_prep_vma()`: hugetlb lengths are rounded up to the huge page
/// size (`align_hugetlb()`: both addresses must be aligned to it and the
/// mapping may not grow); a move or growth of a private mapping from an old
/// length of 0 is EINVAL, so is MREMAP_DONTUNMAP of a VM_DONTEXPAND mapping
/// (hugetlb, the only kind the model has); the old range (after a shrink:
/// the part that stays) must lie in the VMA; a growing file offset must
/// not wrap. Returns the lengths as aligned.
fn check_prep_vma(vma: &Vma, addr: u64, old_len: u64, new_len: u64, new_addr: Option<u64>, dontunmap: bool) -> SysResult<(u64, u64)> {
    let (mut old_len, mut new_len) = (old_len, new_len);
    if let Some(h) = vma.hugetlb {
        let size = h.bytes();
        let align = |x: u64| x.wrapping_add(size - 1) & !(size - 1);
        (old_len, new_len) = (align(old_len), align(new_len));
        if !is_aligned(addr, size) || !is_aligned(new_addr.unwrap_or(0), size) || new_len > old_len {
            return Err(Errno::EINVAL.into());
        }
    }
    let kind = remap_type(old_len, new_len);
    if kind != RemapType::Expand && new_addr.is_none() && !dontunmap {
        return Ok((old_len, new_len));
    }
    if old_len == 0 && !vma.shared {
        return Err(Errno::EINVAL.into());
    }
    if dontunmap && vma.hugetlb.is_some() {
        return Err(Errno::EINVAL.into());
    }
    let kept = if kind == RemapType::Shrink { new_len } else { old_len };
    if kept > vma.end - addr {
        return Err(Errno::EFAULT.into());
    }
    if new_len == kept {
        return Ok((old_len, new_len));
    }
    if vma.page_index(addr).checked_add(new_len / PAGE_SIZE).is_none() {
        return Err(Errno::EINVAL.into());
    }
    Ok((old_len, new_len))
}
