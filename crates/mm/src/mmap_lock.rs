//! The mmap lock (include/linux/mmap_lock.h, mm/mmap_lock.c), as far as
//! the step machines need it.
//!
//! # The rule
//!
//! `dup_mmap()` (mm/mmap.c) holds the parent's mmap lock for writing from
//! its first VMA to its last, so nothing that takes the lock, for reading
//! or writing, runs in the parent's mm while a fork is half done. GUP-fast
//! takes no lock and may run then; its slow-path fallback
//! (`__gup_longterm_locked()` → `__get_user_pages()`) takes the lock for
//! reading and so waits until the fork is over.
//!
//! In the model every system call is one atomic step except fork and
//! GUP-fast, which are step machines an explorer interleaves. The lock is
//! therefore recorded only for the one holder that lives across steps: a
//! fork between [`Kernel::fork_begin`] and its last step
//! ([`Mm::mmap_lock`](crate::kernel::Mm::mmap_lock)). Reading under the
//! lock is proved by a `MmapReadGuard`: the slow GUP path cannot be
//! called without one, and `mmap_read_trylock()` / `mmap_read_lock()`
//! refuse one while a fork holds the lock. A guard lives within one kernel
//! call (it is never stored in a step machine), so a fork starting later
//! never finds a reader.
//!
//! Left out: per-VMA locks, through which the kernel's page faults run. A
//! fork write-locks each VMA as it reaches it (`vma_start_write()`), so a
//! fault in the parent waits on the VMAs already reached and may run on the
//! others. The model does not refuse faults during a fork: a driver that
//! interleaves a fault with fork's steps keeps that rule itself. Also left
//! out: lock fairness, killable waits.

use crate::folio::MmId;
use crate::kernel::Kernel;
use crate::types::SysError;

/// Who holds an mm's mmap lock across steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum MmapLock {
    /// Nobody: every system call takes and drops it within its own step.
    #[default]
    Free,
    /// A fork's `dup_mmap()` holds it for writing until the fork's last step.
    ForkWriting,
}

/// Proof that the mmap lock of [`MmapReadGuard::mm`] is held for reading.
/// Only [`Kernel::mmap_read_lock`] makes one, and only while no fork holds
/// the lock for writing. Neither `Clone` nor constructible outside this
/// module.
#[derive(Debug)]
pub(crate) struct MmapReadGuard {
    mm: MmId,
}

impl MmapReadGuard {
    /// The address space the guard covers: the only one a holder may walk.
    pub(crate) fn mm(&self) -> MmId {
        self.mm
    }
}

impl Kernel {
    /// `mmap_read_lock()`: a read guard for `mm`, or `None` while a fork
    /// holds the lock for writing (the kernel's caller would sleep until it
    /// is released).
    pub(crate) fn mmap_read_trylock(&self, mm: MmId) -> Option<MmapReadGuard> {
        (self.mm(mm).mmap_lock == MmapLock::Free).then_some(MmapReadGuard { mm })
    }

    /// `mmap_read_lock()` for a call that runs to completion in one step:
    /// with a fork of this mm half done, the caller would wait for a fork
    /// that only its own driver can finish, forever: reported as a livelock
    /// (it cannot happen in a scenario, whose forks are single steps).
    pub(crate) fn mmap_read_lock(&self, mm: MmId) -> Result<MmapReadGuard, SysError> {
        self.mmap_read_trylock(mm).ok_or(SysError::Livelock)
    }

    /// Whether a fork of `mm` holds its mmap lock for writing now (the
    /// steps that need the lock cannot run: for an explorer, whose
    /// threads are enabled).
    pub fn mmap_write_locked(&self, mm: MmId) -> bool {
        self.mm(mm).mmap_lock == MmapLock::ForkWriting
    }

    /// `mmap_write_lock()` / `mmap_write_unlock()` by a fork.
    pub(crate) fn set_fork_mmap_lock(&mut self, mm: MmId, held: bool) {
        self.mm_mut(mm).mmap_lock = if held { MmapLock::ForkWriting } else { MmapLock::Free };
    }
}
