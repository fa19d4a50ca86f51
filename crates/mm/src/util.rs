//! The machine's memory limits as the system calls check them
//! (mm/util.c: __vm_enough_memory(), vm_commit_limit(); mm/mmap.c:
//! may_expand_vm()). The sizes come from [`crate::kernel::Machine`].

use crate::folio::MmId;
use crate::kernel::{Kernel, Overcommit};
use crate::types::*;

/// `sysctl_user_reserve_kbytes`'s ceiling (128 MiB) in pages.
const USER_RESERVE_MAX_PAGES: u64 = (128 << 20) / PAGE_SIZE;

impl Kernel {
    /// `__vm_enough_memory()`: may `pages` more pages of address space be
    /// committed? Mode 1 always says yes; mode 0 refuses only a request
    /// larger than RAM plus swap on its own; mode 2 refuses when the
    /// committed total with the request would reach `vm_commit_limit()`
    /// less the user reserve (the smaller of the mm's size / 32 and
    /// `user_reserve_kbytes`, which the kernel sizes at boot as 1/32 of free
    /// memory up to 128 MiB; the model takes RAM for free memory). The
    /// scenario's tasks are root, so the admin reserve is not subtracted.
    /// The model has no swap space for reclaim (its swap device serves
    /// MADV_PAGEOUT only), so `total_swap_pages` is 0.
    pub(crate) fn vm_enough_memory(&self, mm: Option<MmId>, pages: u64) -> SysResult<()> {
        let ok = match self.machine.overcommit {
            Overcommit::Always => true,
            Overcommit::Guess => pages <= self.machine.ram / PAGE_SIZE,
            Overcommit::Never => {
                let mut allowed = self.vm_commit_limit();
                if let Some(mm) = mm {
                    let reserve = (self.machine.ram / PAGE_SIZE / 32).min(USER_RESERVE_MAX_PAGES);
                    allowed = allowed.saturating_sub((self.total_vm(mm) / 32).min(reserve));
                }
                self.committed_pages().saturating_add(pages) < allowed
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Errno::ENOMEM.into())
        }
    }

    /// `vm_commit_limit()`: `overcommit_kbytes`, or `overcommit_ratio`
    /// percent of the RAM outside the hugetlb pools (plus swap, 0 here).
    pub fn vm_commit_limit(&self) -> u64 {
        if self.machine.overcommit_kbytes != 0 {
            return self.machine.overcommit_kbytes / (PAGE_SIZE / 1024);
        }
        let pools: u64 = [HugeSize::Size2M, HugeSize::Size1G]
            .into_iter()
            .map(|h| self.hugetlb_pool(h).nr.saturating_mul(h.bytes() / PAGE_SIZE))
            .fold(0, u64::saturating_add);
        ((self.machine.ram / PAGE_SIZE).saturating_sub(pools) as u128 * self.machine.overcommit_ratio as u128 / 100).min(u64::MAX as u128)
            as u64
    }

    /// `vm_committed_as`: pages of every VMA carrying VM_ACCOUNT. The kernel
    /// keeps a counter; the model adds the VMAs up when mode 2 asks. Left
    /// out: shmem's own accounting (anonymous MAP_SHARED), which the model
    /// checks against the heuristic at mmap but does not count here.
    pub fn committed_pages(&self) -> u64 {
        self.mms.values().flat_map(|m| m.vmas.values()).filter(|v| v.account).map(|v| v.len() / PAGE_SIZE).sum()
    }

    /// `mm->total_vm` in pages.
    pub(crate) fn total_vm(&self, mm: MmId) -> u64 {
        self.mm(mm).vmas.values().map(|v| v.len() / PAGE_SIZE).sum()
    }

    /// `may_expand_vm()`: would `pages` more pages keep the mm within
    /// RLIMIT_AS? Left out: RLIMIT_DATA (unlimited here, as by default).
    pub(crate) fn may_expand_vm(&self, mm: MmId, pages: u64) -> bool {
        match self.machine.rlimit_as {
            None => true,
            Some(limit) => self.total_vm(mm).saturating_add(pages) <= limit / PAGE_SIZE,
        }
    }

    /// The `vm.max_map_count` test of `split_vma()` (mm/vma.c), of
    /// `vms_gather_munmap_vmas()` and of mremap: ENOMEM when the mm already
    /// has `max_map_count - slack` VMAs or more.
    pub(crate) fn map_count_check(&self, mm: MmId, slack: u64) -> SysResult<()> {
        if self.mm(mm).vmas.len() as u64 >= self.machine.max_map_count.saturating_sub(slack) {
            return Err(Errno::ENOMEM.into());
        }
        Ok(())
    }
}
