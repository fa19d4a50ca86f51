//! A task's own loads and stores: how a program touches its memory.
//!
//! Each access checks the VMA and its protection like the MMU and
//! `lock_mm_and_find_vma()` would (no VMA or no permission → SIGSEGV), and
//! faults when the leaf is missing or not writable enough. A fatal signal
//! ends the task and is returned as the outcome.

use crate::contents::Contents;
use crate::events::EventKind;
use crate::kernel::{Kernel, TaskState};
use crate::memory::FaultFlags;
use crate::pgtable::Entry;
use crate::types::*;

/// A bound on faults for one page of one access; the kernel would retry
/// until it succeeds or a signal is pending.
const MAX_ACCESS_RETRIES: u32 = 8;

impl Kernel {
    /// Stores `src` at `addr` in `pid`'s memory.
    pub fn write_mem(&mut self, pid: Pid, addr: u64, src: &Contents) -> SysResult<()> {
        self.access(pid, addr, src.len(), true, |k, folio, off, done, n| {
            let chunk = src.slice(done, n);
            let f = k.folios.get_mut(folio);
            f.data.overwrite(off, &chunk);
            f.dirty = true;
        })
    }

    /// Loads `len` bytes from `addr` in `pid`'s memory.
    pub fn read_mem(&mut self, pid: Pid, addr: u64, len: u64) -> SysResult<Contents> {
        let mut out = Contents::default();
        self.access(pid, addr, len, false, |k, folio, off, _, n| out.append(&k.folios.get(folio).data.slice(off, n)))?;
        Ok(out)
    }

    /// Walks `[addr, addr+len)` leaf by leaf, faulting as needed, and hands
    /// each mapped piece (folio, byte offset in it, offset in the access,
    /// length) to `f`.
    fn access(
        &mut self,
        pid: Pid,
        addr: u64,
        len: u64,
        write: bool,
        mut f: impl FnMut(&mut Kernel, crate::folio::FolioId, u64, u64, u64),
    ) -> SysResult<()> {
        let mm = self.mm_of(pid)?;
        if addr.checked_add(len).is_none_or(|e| e > TASK_SIZE) {
            return self.deliver(pid, Signal::SIGSEGV, addr);
        }
        let mut done = 0u64;
        while done < len {
            let a = addr + done;
            let mut tries = 0;
            let leaf = loop {
                let Some(vma) = self.mm(mm).vma(a) else { return self.deliver(pid, Signal::SIGSEGV, a) };
                if (write && !vma.prot.write) || (!write && !vma.prot.read) {
                    return self.deliver(pid, Signal::SIGSEGV, a);
                }
                if let Some(leaf) = self.mm(mm).pt.lookup(a) {
                    if let Entry::Present(p) = leaf.entry {
                        if !write || p.write {
                            break leaf;
                        }
                    }
                }
                tries += 1;
                if tries > MAX_ACCESS_RETRIES {
                    self.stats.livelocks += 1;
                    return Err(SysError::Livelock);
                }
                let flags = if write { FaultFlags::WRITE } else { FaultFlags::READ };
                if let Err(e) = self.handle_mm_fault(pid, mm, a, flags) {
                    return match e.to_sys_error() {
                        SysError::Signal(s) => self.deliver(pid, s, a),
                        other => Err(other),
                    };
                }
            };
            let (folio, page) = leaf.page_for(a).expect("present");
            let p = leaf.entry.present().expect("present");
            let (folio, page) = if p.special { (crate::folio::ZERO_FOLIO, 0) } else { (folio, page) };
            let in_page = a % PAGE_SIZE;
            let leaf_end = leaf.addr + leaf.level.size();
            let n = (leaf_end - a).min(len - done);
            // The zero folio is one page when mapped by PTEs; its bytes are zero.
            let off = if self.folios.get(folio).is_zero() { 0 } else { page * PAGE_SIZE + in_page };
            if write {
                self.touch_leaf(mm, leaf.level, leaf.addr, true);
            }
            if self.folios.get(folio).is_zero() {
                self.zero_read(&mut f, folio, done, n);
            } else {
                f(self, folio, off, done, n);
            }
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

    /// Ends the task with a fatal signal and reports it.
    pub(crate) fn deliver<T>(&mut self, pid: Pid, sig: Signal, addr: u64) -> SysResult<T> {
        self.stats.signals += 1;
        if sig == Signal::SIGBUS {
            self.stats.sigbus += 1;
        }
        self.event(pid, EventKind::Signal, "force_sig_fault", Some(addr), || format!("{sig}"));
        self.do_exit(pid, TaskState::Killed(sig));
        Err(SysError::Signal(sig))
    }
}
