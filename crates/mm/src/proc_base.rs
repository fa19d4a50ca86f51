//! `/proc/PID/mem` (fs/proc/base.c): another way into an address space
//! than the task's own loads and stores — the kernel copies through
//! forced GUP, which is how debuggers write breakpoints into read-only
//! text and what mkdirty.c uses to populate pages in read-only mappings.

use crate::contents::Contents;
use crate::events::EventKind;
use crate::gup::GupFlags;
use crate::kernel::Kernel;
use crate::memory::RemoteAccess;
use crate::types::*;

impl Kernel {
    /// `mem_rw()` for a write(2) (`pwrite()` at `addr`) by `pid` to
    /// `/proc/TARGET/mem`: FOLL_FORCE|FOLL_WRITE through
    /// [`Kernel::access_remote_vm`] one page-sized chunk at a time; the
    /// count of bytes written, or EIO when not even the first byte could
    /// be. See [`Kernel::mem_rw`].
    pub fn proc_mem_write(&mut self, pid: Pid, target: Pid, addr: u64, data: &Contents) -> SysResult<u64> {
        self.mem_rw(pid, target, addr, RemoteAccess::Write(data)).map(|(n, _)| n)
    }

    /// `mem_rw()` for a read(2) (`pread()` at `addr`) of `len` bytes: the
    /// bytes read (fewer when a page cannot be got), or EIO when none
    /// could be.
    pub fn proc_mem_read(&mut self, pid: Pid, target: Pid, addr: u64, len: u64) -> SysResult<Contents> {
        self.mem_rw(pid, target, addr, RemoteAccess::Read(len)).map(|(_, c)| c)
    }

    /// `mem_rw()` (fs/proc/base.c): the copy loop behind `/proc/PID/mem`.
    /// FOLL_FORCE is added as `proc_mem_foll_force()` decides under the
    /// default `CONFIG_PROC_MEM_ALWAYS_FORCE` (this machine's build, and
    /// the Kconfig default): always. Chunks of at most a page go through
    /// `access_remote_vm()`; the first chunk that moves nothing ends the
    /// loop, with EIO if nothing moved at all. The file position is the
    /// address, so the selftests' `lseek()` + `write()` is one call here.
    ///
    /// Left out: the open-time access check (`mm_access()` with
    /// PTRACE_MODE_ATTACH: the model's tasks are all root, which passes),
    /// the other `proc_mem.force_override=` modes, a target that has
    /// exited (`mmget_not_zero()` fails and the kernel returns 0 bytes:
    /// the model refuses with ESRCH, the target's pid being gone), and
    /// offsets past 2^63 (`lseek()` refuses them).
    fn mem_rw(&mut self, pid: Pid, target: Pid, addr: u64, what: RemoteAccess<'_>) -> SysResult<(u64, Contents)> {
        self.task(pid)?;
        let mm = self.mm_of(target)?;
        let write = matches!(what, RemoteAccess::Write(_));
        let flags = GupFlags { write, force: true, ..GupFlags::GET };
        let (len, data) = match &what {
            RemoteAccess::Write(d) => (d.len(), Some(*d)),
            RemoteAccess::Read(n) => (*n, None),
        };
        let mut copied = 0u64;
        let mut out = Contents::default();
        while copied < len {
            let chunk = (len - copied).min(PAGE_SIZE);
            let Some(a) = addr.checked_add(copied) else { break };
            let piece = data.map(|d| d.slice(copied, chunk));
            let what = match &piece {
                Some(p) => RemoteAccess::Write(p),
                None => RemoteAccess::Read(chunk),
            };
            let (n, got) = self.access_remote_vm(target, mm, a, what, flags);
            if n == 0 {
                break;
            }
            out.append(&got);
            copied += n;
        }
        self.event(pid, EventKind::Gup, "mem_rw", Some(addr), || {
            format!("/proc/{}/mem {} {len} byte(s) with {flags}: {copied} moved", target.0, if write { "write" } else { "read" })
        });
        if copied == 0 && len > 0 {
            return Err(Errno::EIO.into());
        }
        Ok((copied, out))
    }
}
