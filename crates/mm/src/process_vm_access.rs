//! process_vm_readv(2) / process_vm_writev(2) (mm/process_vm_access.c:
//! `process_vm_rw()`, `process_vm_rw_core()`, `process_vm_rw_single_vec()`,
//! `process_vm_rw_pages()`).
//!
//! One task copies between its own memory and another task's without
//! either mapping the other: the target's pages are pinned with
//! `pin_user_pages_remote()` — FOLL_PIN (plus FOLL_TOUCH and FOLL_REMOTE),
//! with FOLL_WRITE only for `process_vm_writev()`, never FOLL_LONGTERM — a
//! chunk at a time, copied to or from the caller's buffer with the kernel's
//! own user copies, and unpinned (`unpin_user_pages_dirty_lock()`, dirtying
//! them after a write). Being a short-term R/O pin, a read of a target page
//! that is not anon-exclusive (COW-shared after fork) must unshare it first
//! (`gup_must_unshare()`): the *target* gets its own copy. A write breaks
//! COW in the target as a write fault would. The caller's buffer is
//! touched by `copy_to_user()` / `copy_from_user()`: it faults like the
//! caller's own accesses, but a fault that cannot be resolved ends the copy
//! short instead of killing the caller.
//!
//! What the model leaves out: the iovec arrays (one local and one remote
//! range per call), `mm_access()`'s ptrace permission check (cowlab's tasks
//! run as root), the zombie window (a target that has exited is ESRCH
//! either way: `find_get_task_by_vpid()` fails for a reaped task and
//! `mm_access()` finds no mm for a zombie) and the `flags` argument (0).

use crate::events::EventKind;
use crate::gup::GupFlags;
use crate::kernel::Kernel;
use crate::types::*;

/// PVM_MAX_USER_PAGES: how many pages one `pin_user_pages_remote()` call
/// of `process_vm_rw_single_vec()` pins at most (two pages of pointers).
const PVM_MAX_USER_PAGES: u64 = 2 * PAGE_SIZE / 8;

impl Kernel {
    /// `process_vm_rw()` for one local range `[local, local+len)` of `pid`
    /// and one remote range of the same length at `remote` in `target`:
    /// `write` false is process_vm_readv (target → caller), true is
    /// process_vm_writev (caller → target). Returns the bytes copied; a
    /// failure after some bytes were copied is a short count, and a
    /// failure before any is its errno (EFAULT for pages that cannot be
    /// pinned, whatever GUP's own error was).
    pub fn process_vm_rw(&mut self, pid: Pid, target: Pid, local: u64, remote: u64, len: u64, write: bool) -> SysResult<u64> {
        self.task(pid)?;
        // import_iovec(): the local range must be user memory; an empty one
        // returns 0 before the target is looked up.
        if local.checked_add(len).is_none_or(|e| e > TASK_SIZE) {
            return Err(Errno::EFAULT.into());
        }
        if len == 0 {
            return Ok(0);
        }
        self.task(target)?;
        let func = if write { "process_vm_writev" } else { "process_vm_readv" };
        let flags = GupFlags { write, ..GupFlags::PIN };
        let mut pa = page_align_down(remote);
        let mut start = remote - pa;
        let mut nr_pages = (remote.saturating_add(len - 1)) / PAGE_SIZE - remote / PAGE_SIZE + 1;
        let mut left = len;
        let mut copied = 0u64;
        let mut rc: Option<SysError> = None;
        while nr_pages > 0 && left > 0 {
            let chunk = nr_pages.min(PVM_MAX_USER_PAGES);
            // pin_user_pages_remote(): slow GUP of the target's mm under its
            // mmap lock; a partial result is used, nothing pinned is EFAULT.
            let pages = match self.gup_pages_upto(target, pa, chunk, flags, false) {
                Ok((pages, _)) if !pages.is_empty() => pages,
                Ok((_, Some(SysError::Livelock))) | Err(SysError::Livelock) => {
                    rc = Some(SysError::Livelock);
                    break;
                }
                Ok(_) | Err(_) => {
                    rc = Some(Errno::EFAULT.into());
                    break;
                }
            };
            let got = pages.len();
            let bytes = (got * PAGE_SIZE - start).min(left);
            self.event(pid, EventKind::Gup, "pin_user_pages_remote", Some(pa), || {
                format!("{func}: {got} page(s) of pid {}, {flags}", target.0)
            });
            // process_vm_rw_pages(): the copy with the caller's buffer.
            let done = if write {
                match self.copy_from_user(pid, local + copied, bytes) {
                    Ok(data) => {
                        self.write_pages(&pages, start, &data);
                        Ok(data.len())
                    }
                    Err(e) => Err(e),
                }
            } else {
                let data = self.read_pages(&pages, start, bytes);
                self.copy_to_user(pid, local + copied, &data)
            };
            // unpin_user_pages_dirty_lock().
            self.release_pages(&pages, true);
            let done = match done {
                Ok(n) => n,
                Err(e) => {
                    rc = Some(e);
                    break;
                }
            };
            copied += done;
            if done < bytes {
                rc = Some(Errno::EFAULT.into());
                break;
            }
            left -= bytes;
            start = 0;
            nr_pages -= got;
            pa += got * PAGE_SIZE;
        }
        match rc {
            // A livelock never returns, whatever was copied before it.
            Some(SysError::Livelock) => Err(SysError::Livelock),
            _ if copied > 0 => Ok(copied),
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}
