//! mremap(2) (mm/mremap.c).

use crate::kernel::Kernel;
use crate::pgtable::Level;
use crate::types::*;

impl Kernel {
    /// mremap(2). Modelled: shrinking in place, and moving a range that lies
    /// in one VMA to `new_addr` (MREMAP_MAYMOVE|MREMAP_FIXED) or to a free
    /// place (MREMAP_MAYMOVE) with its page-table entries — PMD leaves move
    /// whole only when both addresses are PMD-aligned, else they are split
    /// first (`move_page_tables()`). Growing in place is not modelled: the
    /// mapping moves instead when MAYMOVE is given, else ENOMEM.
    pub fn mremap(&mut self, pid: Pid, old: u64, old_len: u64, new_len: u64, maymove: bool, new_addr: Option<u64>) -> SysResult<u64> {
        let mm = self.mm_of(pid)?;
        if !is_aligned(old, PAGE_SIZE) || new_len == 0 || (new_addr.is_some() && !maymove) {
            return Err(Errno::EINVAL.into());
        }
        let old_len = old_len.next_multiple_of(PAGE_SIZE);
        let new_len = new_len.next_multiple_of(PAGE_SIZE);
        let vma = self.mm(mm).vma(old).cloned().ok_or(Errno::EFAULT)?;
        if let Some(h) = vma.hugetlb {
            if !is_aligned(old, h.bytes()) || !is_aligned(old_len, h.bytes()) || !is_aligned(new_len, h.bytes()) {
                return Err(Errno::EINVAL.into());
            }
        }
        // Shrinking in place only unmaps the tail, whatever VMAs it spans;
        // the old range must lie in one VMA only to grow or move it.
        // hugetlb mappings never grow (EINVAL, checked on 6.18).
        if vma.hugetlb.is_some() && new_len > old_len {
            return Err(Errno::EINVAL.into());
        }
        if new_addr.is_none() && new_len <= old_len {
            if new_len < old_len {
                self.do_munmap(pid, mm, old + new_len, old_len - new_len)?;
            }
            return Ok(old);
        }
        if old + old_len > vma.end {
            return Err(Errno::EFAULT.into());
        }
        // Grow in place when the range ends the VMA and the addresses after
        // it are free (`vma_expandable()` → `vma_expand()`).
        let grow_end = old.checked_add(new_len).ok_or(Errno::EINVAL)?;
        if new_addr.is_none()
            && old + old_len == vma.end
            && grow_end <= TASK_SIZE
            && !self.mm(mm).vmas.values().any(|v| v.start < grow_end && vma.end < v.end)
        {
            self.mm_mut(mm).vmas.get_mut(&vma.start).expect("looked up above").end = grow_end;
            return Ok(old);
        }
        if !maymove {
            return Err(Errno::ENOMEM.into());
        }
        let len = old_len.min(new_len);
        let target = match new_addr {
            Some(t) => {
                if !is_aligned(t, PAGE_SIZE) || (t < old + old_len && old < t + new_len) {
                    return Err(Errno::EINVAL.into());
                }
                self.do_munmap(pid, mm, t, new_len)?;
                t
            }
            None => {
                let req = crate::mmap::MmapRequest { prot: Prot::NONE, ..crate::mmap::MmapRequest::anon(new_len) };
                let t = self.mmap(pid, req)?;
                self.do_munmap(pid, mm, t, new_len)?;
                t
            }
        };
        self.split_vmas_around(mm, old, old + old_len)?;
        if old_len > len {
            self.do_munmap(pid, mm, old + len, old_len - len)?;
        }
        // Entries: PMD leaves move whole only if both sides are aligned.
        let aligned = (old % PMD_SIZE) == (target % PMD_SIZE);
        for leaf in self.mm(mm).pt.leaves(old, old + len) {
            if leaf.level == Level::Pmd && (!aligned || leaf.addr < old || leaf.addr + PMD_SIZE > old + len) {
                self.split_huge_pmd(pid, mm, leaf.addr);
            }
        }
        for leaf in self.mm(mm).pt.leaves(old, old + len) {
            let m = self.mm_mut(mm);
            m.pt.clear(leaf.level, leaf.addr);
            m.pt.set(leaf.level, leaf.addr - old + target, leaf.entry);
        }
        // The moved VMA grows in place at its new home (vma_expand()): the
        // same file and offsets go on, so a shared anonymous mapping grows
        // past its shmem object, whose size stays (SIGBUS there).
        let mut v = self.mm_mut(mm).vmas.remove(&old).expect("split above");
        v.start = target;
        v.end = target + new_len.max(len);
        self.insert_vma(mm, v);
        self.free_pgtables(mm, old, old + len);
        Ok(target)
    }
}
