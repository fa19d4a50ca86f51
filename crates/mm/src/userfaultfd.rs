//! userfaultfd (fs/userfaultfd.c, mm/userfaultfd.c): only UFFDIO_COPY into
//! missing pages of private anonymous memory, the way mkdirty.c places a
//! page in a read-only VMA.

use crate::contents::Contents;
use crate::events::EventKind;
use crate::kernel::Kernel;
use crate::memory::pte;
use crate::pgtable::{Level, PmdVal};
use crate::rmap::Rmap;
use crate::types::*;

impl Kernel {
    /// A userfaultfd opened, registered over `[addr, addr + len)` in
    /// MISSING mode, one UFFDIO_COPY of `data` (its length is `len`) to
    /// that range, and the descriptor closed again: the sequence of
    /// mkdirty.c's `test_uffdio_copy()`.
    ///
    /// `userfaultfd_register()`: the range must be page aligned and
    /// inside the task (EINVAL), covered by VMAs without a hole (EINVAL),
    /// each VM_MAYWRITE (EPERM) and one userfaultfd supports
    /// (`vma_can_userfault()`: anonymous, shmem or hugetlb; else EINVAL).
    /// `mfill_atomic()` → `mfill_atomic_pte_copy()` for each page: a new
    /// small anon folio with the bytes, installed by
    /// `mfill_atomic_install_pte()` only over an empty entry — writable
    /// only if the VMA has VM_WRITE, always dirty (and so soft-dirty on
    /// x86), anon-exclusive. An existing entry (or a PMD leaf) stops the
    /// copy: EEXIST if it was the first page, else EAGAIN (the ioctl's
    /// answer to a partial copy). Closing the descriptor unregisters the
    /// range (`userfaultfd_release()`), leaving the VMAs as they were.
    ///
    /// Left out: shmem and hugetlb destinations, which the kernel fills
    /// through their own paths (the model refuses them with EOPNOTSUPP, an
    /// answer the kernel does not give: docs/divergences.md), faults
    /// delivered to the userfaultfd (the model's tasks never touch the
    /// range while it is registered), the other ioctls and modes.
    pub fn uffdio_copy(&mut self, pid: Pid, addr: u64, data: &Contents) -> SysResult<u64> {
        let mm = self.mm_of(pid)?;
        let len = data.len();
        let end = addr.checked_add(len).filter(|&e| e <= TASK_SIZE && e > addr);
        let Some(end) = end.filter(|_| is_aligned(addr, PAGE_SIZE) && is_aligned(len, PAGE_SIZE)) else {
            return Err(Errno::EINVAL.into());
        };
        let mut at = addr;
        while at < end {
            let Some(v) = self.mm(mm).vma(at) else { return Err(Errno::EINVAL.into()) };
            if !v.maywrite {
                return Err(Errno::EPERM.into());
            }
            if !v.is_anonymous() {
                let supported_elsewhere = v.hugetlb.is_some() || v.inode().is_some_and(|i| !self.inodes[&i].kind.needs_dirty_tracking());
                return Err(if supported_elsewhere { Errno::EOPNOTSUPP } else { Errno::EINVAL }.into());
            }
            at = v.end;
        }
        let mut copied = 0;
        while copied < len {
            let a = addr + copied;
            let vma = self.mm(mm).vma(a).cloned().expect("checked above");
            let occupied = matches!(self.mm(mm).pt.pmd_val(a), PmdVal::Leaf(_)) || self.mm(mm).pt.get(Level::Pte, a).is_some();
            if occupied {
                self.event(pid, EventKind::Note, "mfill_atomic_install_pte", Some(a), || "the entry is not empty → EEXIST".into());
                return Err(if copied == 0 { Errno::EEXIST } else { Errno::EAGAIN }.into());
            }
            let folio = self.alloc_anon_folio(0);
            self.folios.get_mut(folio).data.overwrite(0, &data.slice(copied, PAGE_SIZE));
            self.ensure_anon_vma(mm, vma.start);
            self.add_new_anon_rmap(folio, mm, Rmap::pte(0));
            self.mm_mut(mm).pt.set(Level::Pte, a, pte(folio, 0, vma.prot.write, true));
            self.event(pid, EventKind::Alloc, "mfill_atomic_pte_copy", Some(a), || {
                format!("UFFDIO_COPY → new 4K anon page, {} and dirty", if vma.prot.write { "writable" } else { "read-only" })
            });
            copied += PAGE_SIZE;
        }
        Ok(copied)
    }
}
