//! mprotect(2) (mm/mprotect.c) and soft-dirty clearing
//! (fs/proc/task_mmu.c: clear_refs_write() with "4").

use crate::folio::MmId;
use crate::kernel::Kernel;
use crate::pgtable::{Entry, Level};
use crate::types::*;
use crate::vma::Vma;

impl Kernel {
    /// mprotect(2): split VMAs at the range, change VM_READ/VM_WRITE, then
    /// `change_protection()` over the entries: removing write permission
    /// write-protects them; granting it leaves them read-only except where
    /// a write fault would reuse the page anyway (the "map writable early"
    /// optimisation, `can_change_pte_writable()`). Re-merges VMAs after.
    pub fn mprotect(&mut self, pid: Pid, addr: u64, len: u64, prot: Prot) -> SysResult<()> {
        let mm = self.mm_of(pid)?;
        if !is_aligned(addr, PAGE_SIZE) {
            return Err(Errno::EINVAL.into());
        }
        if len == 0 {
            return Ok(());
        }
        // do_mprotect_pkey(): a length that wraps, or an end past 2^64, is
        // ENOMEM.
        let end = match addr.checked_add(page_align(len)) {
            Some(e) if e > addr => e,
            _ => return Err(Errno::ENOMEM.into()),
        };
        self.check_fully_mapped(mm, addr, end)?;
        for v in self.mm(mm).vmas.values().filter(|v| v.start < end && addr < v.end) {
            if prot.write && !v.maywrite {
                return Err(Errno::EACCES.into());
            }
        }
        // mprotect_fixup(): a VMA that already has the protection is
        // neither split nor touched (its huge PMDs stay whole).
        if self.mm(mm).vmas.values().all(|v| !(v.start < end && addr < v.end) || v.prot == prot) {
            return Ok(());
        }
        self.split_vmas_around(mm, addr, end)?;
        let keys: Vec<u64> = self.mm(mm).vmas.range(addr..end).map(|(k, _)| *k).collect();
        for k in keys {
            if self.mm(mm).vmas[&k].prot == prot {
                continue;
            }
            // mprotect_fixup(): a private VMA becoming writable for the
            // first time is charged and gets VM_ACCOUNT.
            let v = &self.mm(mm).vmas[&k];
            let charge = prot.write && !v.account && !v.prot.write && v.hugetlb.is_none() && !v.shared && !v.noreserve;
            if charge {
                let pages = v.len() / PAGE_SIZE;
                self.vm_enough_memory(Some(mm), pages)?;
                self.mm_mut(mm).vmas.get_mut(&k).expect("listed").account = true;
            }
            self.mm_mut(mm).vmas.get_mut(&k).expect("listed").prot = prot;
            let v = self.mm(mm).vmas[&k].clone();
            self.change_protection(mm, &v);
        }
        self.merge_vmas(mm, addr, end);
        Ok(())
    }

    /// ENOMEM unless every page of `[start, end)` is inside some VMA.
    pub(crate) fn check_fully_mapped(&self, mm: MmId, start: u64, end: u64) -> SysResult<()> {
        let mut a = start;
        while a < end {
            match self.mm(mm).vma(a) {
                Some(v) => a = v.end,
                None => return Err(Errno::ENOMEM.into()),
            }
        }
        Ok(())
    }

    /// `change_protection()` for a whole VMA after its flags changed.
    fn change_protection(&mut self, mm: MmId, v: &Vma) {
        let upgrade = self.vma_wants_manual_pte_write_upgrade(v);
        for leaf in self.mm(mm).pt.leaves(v.start, v.end) {
            let Entry::Present(p) = leaf.entry else { continue };
            let write = if !v.prot.write {
                false
            } else if v.hugetlb.is_some() {
                // hugetlb_change_protection() has no early-writable shortcut.
                p.write
            } else if v.shared && !upgrade {
                true
            } else {
                upgrade && self.can_change_pte_writable(v, leaf.level, p)
            };
            if let Some(Entry::Present(e)) = self.mm_mut(mm).pt.get_mut(leaf.level, leaf.addr) {
                e.write = write && !e.special;
            }
        }
    }

    /// `vma_wants_manual_pte_write_upgrade()`: private writable VMAs, and
    /// shared ones whose PTEs write notification keeps read-only.
    fn vma_wants_manual_pte_write_upgrade(&self, v: &Vma) -> bool {
        if v.shared {
            self.vma_wants_writenotify(v)
        } else {
            v.prot.write
        }
    }

    /// `can_change_pte_writable()` / `can_change_pmd_writable()`: never while
    /// soft-dirty tracking wants the write fault; in a private mapping only
    /// for an anon-exclusive page; in a shared one only if already dirty.
    fn can_change_pte_writable(&self, v: &Vma, level: Level, p: crate::pgtable::Present) -> bool {
        if p.special {
            return false;
        }
        if crate::gup::pte_needs_soft_dirty_wp(v, p) {
            return false;
        }
        if !v.shared {
            let f = self.folios.get(p.folio);
            let page = if level == Level::Pte { p.page } else { 0 };
            return f.is_anon() && f.page_ae(page);
        }
        p.dirty
    }

    /// `echo 4 > /proc/self/clear_refs`: clear soft-dirty on every VMA and
    /// entry, write-protecting the entries so the next write is seen.
    pub fn clear_soft_dirty(&mut self, pid: Pid) -> SysResult<()> {
        let mm = self.mm_of(pid)?;
        let m = self.mm_mut(mm);
        m.softdirty_armed = true;
        for v in m.vmas.values_mut() {
            v.softdirty = false;
        }
        let leaves = m.pt.leaves(0, TASK_SIZE);
        for leaf in leaves {
            match self.mm_mut(mm).pt.get_mut(leaf.level, leaf.addr) {
                Some(Entry::Present(p)) => {
                    p.soft_dirty = false;
                    p.write = false;
                }
                Some(Entry::Swap { soft_dirty, .. }) => *soft_dirty = false,
                None => {}
            }
        }
        Ok(())
    }
}
