//! A task's own loads and stores: how a program touches its memory, and
//! the kernel's copies to and from it on the task's behalf.
//!
//! Each access checks the VMA and its protection like the MMU and
//! `lock_mm_and_find_vma()` would (no VMA, or [`Kernel::access_error`] →
//! SIGSEGV), and faults when the leaf is missing or not writable enough. A
//! fatal signal ends the task and is returned as the outcome. The kernel's
//! own accesses (`copy_to_user()`, `copy_from_user()`) fault the same way,
//! but a fault they cannot resolve is fixed up from the exception table
//! (arch/x86/mm/fault.c, `kernelmode_fixup_or_oops()`): the copy ends
//! short and no signal is sent.

use crate::contents::Contents;
use crate::events::EventKind;
use crate::kernel::{Kernel, TaskState};
use crate::memory::FaultFlags;
use crate::pgtable::{Entry, Level};
use crate::types::*;

/// A bound on faults for one page of one access; the kernel would retry
/// until it succeeds or a signal is pending.
const MAX_ACCESS_RETRIES: u32 = 8;

/// Who makes an access to user memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessBy {
    /// The task's own load or store: an unresolvable fault is a fatal
    /// signal.
    Task,
    /// The kernel on the task's behalf (`copy_to_user()` and friends): an
    /// unresolvable fault ends the copy short, with EFAULT.
    Kernel,
}

impl Kernel {
    /// Stores `data` at `addr` in `pid`'s memory: the store step machine
    /// ([`crate::memory::WpFault`], which faults like the MMU would) run to
    /// its end.
    pub fn write_mem(&mut self, pid: Pid, addr: u64, data: &Contents) -> SysResult<()> {
        let mm = self.mm_of(pid)?;
        if addr.checked_add(data.len()).is_none_or(|e| e > TASK_SIZE) {
            return self.deliver(pid, Signal::SIGSEGV, addr);
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut w = crate::memory::WpFault::begin(pid, mm, addr, data.clone());
        w.whole = true;
        while self.wp_fault_step(&mut w) {}
        w.result.unwrap_or(Ok(()))
    }

    /// Loads `len` bytes from `addr` in `pid`'s memory.
    pub fn read_mem(&mut self, pid: Pid, addr: u64, len: u64) -> SysResult<Contents> {
        let mut out = Contents::default();
        self.access(pid, addr, len, AccessBy::Task, |k, folio, off, _, n| out.append(&k.folios.get(folio).data.slice(off, n)))?;
        Ok(out)
    }

    /// `copy_from_user()` (include/linux/uaccess.h) of `len` bytes at
    /// `addr` in `pid`'s memory: loads that fault like the task's own, but
    /// stop at the first fault the kernel cannot resolve. The bytes before
    /// it are returned (fewer than `len`: the caller's EFAULT or short
    /// count); `Err` only for a livelock. Left out: x86 copies up to the
    /// faulting byte, the model up to the faulting page.
    pub fn copy_from_user(&mut self, pid: Pid, addr: u64, len: u64) -> SysResult<Contents> {
        let mut out = Contents::default();
        match self.access(pid, addr, len, AccessBy::Kernel, |k, folio, off, _, n| out.append(&k.folios.get(folio).data.slice(off, n))) {
            Ok(()) | Err(SysError::Errno(Errno::EFAULT)) => Ok(out),
            Err(e) => Err(e),
        }
    }

    /// `copy_to_user()`: stores `data` at `addr` in `pid`'s memory page by
    /// page through the store machine, faulting like the task's own stores
    /// (COW is broken the same way), and stops at the first page whose
    /// fault the kernel cannot resolve. Returns how many bytes were
    /// stored; `Err` only for a livelock.
    pub fn copy_to_user(&mut self, pid: Pid, addr: u64, data: &Contents) -> SysResult<u64> {
        let mm = self.mm_of(pid)?;
        let mut done = 0;
        while done < data.len() {
            let a = addr + done;
            if a >= TASK_SIZE {
                return Ok(done);
            }
            let n = (PAGE_SIZE - a % PAGE_SIZE).min(data.len() - done);
            let mut w = crate::memory::WpFault::begin(pid, mm, a, data.slice(done, n));
            w.by = AccessBy::Kernel;
            while self.wp_fault_step(&mut w) {}
            match w.result.unwrap_or(Ok(())) {
                Ok(()) => done += n,
                Err(SysError::Errno(Errno::EFAULT)) => return Ok(done),
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Walks `[addr, addr+len)` leaf by leaf, faulting as needed, and hands
    /// each mapped piece (folio, byte offset in it, offset in the access,
    /// length) to `f`.
    fn access(
        &mut self,
        pid: Pid,
        addr: u64,
        len: u64,
        by: AccessBy,
        mut f: impl FnMut(&mut Kernel, crate::folio::FolioId, u64, u64, u64),
    ) -> SysResult<()> {
        let mm = self.mm_of(pid)?;
        if addr.checked_add(len).is_none_or(|e| e > TASK_SIZE) {
            return self.access_failed(by, pid, Signal::SIGSEGV, addr);
        }
        let mut done = 0u64;
        while done < len {
            let a = addr + done;
            let mut tries = 0;
            let (leaf, vma_end) = loop {
                // The VMA and the leaf from one look-up of the mm.
                let m = self.mm(mm);
                let Some(vma) = m.vma(a) else { return self.access_failed(by, pid, Signal::SIGSEGV, a) };
                if self.access_error(vma, false) {
                    return self.access_failed(by, pid, Signal::SIGSEGV, a);
                }
                let vma_end = vma.end;
                if let Some(leaf) = m.pt.lookup(a) {
                    if let Entry::Present(_) = leaf.entry {
                        break (leaf, vma_end);
                    }
                }
                tries += 1;
                if tries > MAX_ACCESS_RETRIES {
                    self.stats.livelocks += 1;
                    return Err(SysError::Livelock);
                }
                if let Err(e) = self.handle_mm_fault(pid, mm, a, FaultFlags::READ) {
                    return self.deliver_fault(by, pid, e, a);
                }
            };
            let (folio, page) = leaf.page_for(a).expect("present");
            let p = leaf.entry.present().expect("present");
            let (folio, page) = if p.special { (crate::folio::ZERO_FOLIO, 0) } else { (folio, page) };
            let in_page = a % PAGE_SIZE;
            let leaf_end = leaf.addr + leaf.level.size();
            let mut n = (leaf_end - a).min(len - done);
            // The zero folio is one page when mapped by PTEs; its bytes are zero.
            let zero = self.folios.get(folio).is_zero();
            if leaf.level == Level::Pte && !zero {
                // The present PTEs after this one that go on through the
                // same folio: one piece, read with one copy.
                n += self.pte_run_of_folio(mm, leaf_end, (addr + len).min(vma_end), folio, page + 1);
            }
            let off = if zero { 0 } else { page * PAGE_SIZE + in_page };
            if zero {
                self.zero_read(&mut f, folio, done, n);
            } else {
                f(self, folio, off, done, n);
            }
            self.work.add(n.div_ceil(PAGE_SIZE));
            done += n;
        }
        Ok(())
    }

    /// A zero folio read in page-sized pieces (the small zero folio is one
    /// page, whatever range maps it).
    fn zero_read(
        &mut self,
        f: &mut impl FnMut(&mut Kernel, crate::folio::FolioId, u64, u64, u64),
        folio: crate::folio::FolioId,
        done: u64,
        n: u64,
    ) {
        let mut left = n;
        let mut d = done;
        while left > 0 {
            let m = left.min(PAGE_SIZE);
            f(self, folio, 0, d, m);
            d += m;
            left -= m;
        }
    }

    /// `access_error()` (arch/x86/mm/fault.c) together with what the MMU
    /// allows without a fault: may the task itself load from (`write`
    /// false) or store to this VMA? A store needs VM_WRITE. A load needs
    /// the VMA to be accessible at all (`vma_is_accessible()`): x86 page
    /// tables cannot express write-only or execute-only, so PROT_WRITE
    /// and PROT_EXEC pages are readable. Protection keys can still forbid
    /// the access ([`Kernel::arch_vma_access_permitted`]): with them an
    /// execute-only mapping faults on loads (SEGV_PKUERR). Left out: shadow
    /// stacks, SGX, instruction fetches (the model runs no code).
    pub fn access_error(&self, vma: &crate::vma::Vma, write: bool) -> bool {
        let allowed = if write { vma.prot.write } else { vma.is_accessible() };
        !allowed || !self.arch_vma_access_permitted(vma)
    }

    /// `arch_vma_access_permitted()` (arch/x86/include/asm/mmu_context.h)
    /// for a data access by the VMA's own task (a FOLL_REMOTE GUP, as
    /// `/proc/PID/mem` makes, is not asked: see [`Kernel::check_vma_flags`]): with
    /// protection keys, the PKRU of the task denies the execute-only key
    /// that an exec-only VMA carries, for loads and stores alike. The key
    /// is a function of the protection here, since a scenario cannot call
    /// pkey_mprotect(): mmap() and mprotect() give PROT_EXEC alone the
    /// execute-only key, and any other protection key 0. PKRU is per
    /// thread and inherited by fork; the model's tasks are single-threaded,
    /// so the owner's PKRU is the one that counts.
    pub fn arch_vma_access_permitted(&self, vma: &crate::vma::Vma) -> bool {
        !(self.policy.pkeys && vma.prot == Prot::EXEC)
    }

    /// What a failed user fault does to the task: the signal it means, or
    /// the livelock. An OOM fault's SIGKILL was sent by the OOM killer
    /// already. A fault in a kernel copy is fixed up instead
    /// ([`Kernel::access_failed`]).
    pub(crate) fn deliver_fault<T>(&mut self, by: AccessBy, pid: Pid, e: crate::memory::VmFault, addr: u64) -> SysResult<T> {
        match e.to_sys_error() {
            SysError::Signal(s) if e != crate::memory::VmFault::Oom => self.access_failed(by, pid, s, addr),
            other => Err(other),
        }
    }

    /// An access fault nothing resolves: the task's own access dies of
    /// `sig`; the kernel's is fixed up and its copy fails with EFAULT.
    pub(crate) fn access_failed<T>(&mut self, by: AccessBy, pid: Pid, sig: Signal, addr: u64) -> SysResult<T> {
        match by {
            AccessBy::Task => self.deliver(pid, sig, addr),
            AccessBy::Kernel => {
                self.event(pid, EventKind::Note, "kernelmode_fixup_or_oops", Some(addr), || {
                    format!("a kernel copy faulted ({sig} for a user access) → fixed up, EFAULT")
                });
                Err(Errno::EFAULT.into())
            }
        }
    }

    /// Ends the task with a fatal signal and reports it.
    pub(crate) fn deliver<T>(&mut self, pid: Pid, sig: Signal, addr: u64) -> SysResult<T> {
        self.fatal_signal(pid, sig, "force_sig_fault", Some(addr))
    }

    /// A signal whose default action ends the task, sent by `func` (the
    /// model's tasks neither catch nor ignore signals): the task dies with
    /// it, and that is the outcome of the call that sent it.
    pub(crate) fn fatal_signal<T>(&mut self, pid: Pid, sig: Signal, func: &'static str, addr: Option<u64>) -> SysResult<T> {
        self.stats.signals += 1;
        if sig == Signal::SIGBUS {
            self.stats.sigbus += 1;
        }
        self.event(pid, EventKind::Signal, func, addr, || format!("{sig}"));

        self.do_exit(pid, TaskState::Killed(sig));
        Err(SysError::Signal(sig))
    }
}
