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
    /// optimisation, `can_change_pte_writable()`). Re-merges VMAs after. A
    /// hole or a refusing VMA stops the walk; what came before it keeps its
    /// new protection.
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
        // do_mprotect_pkey(): the range must start inside a VMA (ENOMEM,
        // nothing done); then VMA by VMA in address order, and the first
        // problem — a hole (ENOMEM), a VMA that may not become writable
        // (EACCES), a split hugetlb refuses (EINVAL) — ends the call with
        // the VMAs before it already changed.
        if self.mm(mm).vma(addr).is_none() {
            return Err(Errno::ENOMEM.into());
        }
        let mut a = addr;
        let mut result = Ok(());
        while a < end {
            let Some(v) = self.mm(mm).vma(a).cloned() else {
                result = Err(Errno::ENOMEM.into());
                break;
            };
            if prot.write && !v.maywrite {
                result = Err(Errno::EACCES.into());
                break;
            }
            let e = v.end.min(end);
            // mprotect_fixup(): a VMA that already has the protection is
            // neither split nor touched (its huge PMDs stay whole).
            if v.prot != prot {
                if let Err(err) = self.split_vmas_around(mm, a, e) {
                    result = Err(err);
                    break;
                }
                // mprotect_fixup(): a private VMA becoming writable for the
                // first time is charged and gets VM_ACCOUNT.
                let v = &self.mm(mm).vmas[&a];
                let charge = prot.write && !v.account && !v.prot.write && v.hugetlb.is_none() && !v.shared && !v.noreserve;
                if charge {
                    let pages = v.len() / PAGE_SIZE;
                    if let Err(err) = self.vm_enough_memory(Some(mm), pages) {
                        result = Err(err);
                        break;
                    }
                    self.mm_mut(mm).vmas.get_mut(&a).expect("split at a").account = true;
                }
                self.mm_mut(mm).vmas.get_mut(&a).expect("split at a").prot = prot;
                let v = self.mm(mm).vmas[&a].clone();
                self.change_protection(mm, &v);
            }
            a = e;
        }
        if a > addr {
            self.merge_vmas(mm, addr, a);
        }
        result
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
            self.mm_mut(mm).pt.update_present(leaf.level, leaf.addr, |e| e.write = write && !e.special);
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
            self.mm_mut(mm).pt.update(leaf.level, leaf.addr, |e| match e {
                Entry::Present(p) => {
                    p.soft_dirty = false;
                    p.write = false;
                }
                Entry::Swap { soft_dirty, .. } => *soft_dirty = false,
            });
        }
        Ok(())
    }
}
