//! Running out of RAM: the OOM killer (mm/oom_kill.c: out_of_memory(),
//! select_bad_process(), oom_badness(), oom_kill_process()).
//!
//! The kernel's page allocator, failing an allocation a fault needs, calls
//! the OOM killer and retries; the model asks before each such allocation
//! ([`Kernel::oom_reserve`]). The victim is the task with the highest
//! badness: its resident pages plus its swap entries (`oom_badness()`; all
//! tasks have `oom_score_adj` 0, the model does not count page-table pages).
//! Ties go to the task found last, the newest (the kernel's process list is
//! in creation order and a later equal score replaces the chosen one).
//! The victim dies of SIGKILL and its address space is torn down at once
//! (the oom reaper's work); if it was the faulting task, the fault fails
//! with VM_FAULT_OOM. Left out: memory cgroups, cpusets, mempolicies,
//! `oom_score_adj`, reclaim and compaction before the kill (the model's
//! swap serves MADV_PAGEOUT only, so there is nothing to reclaim),
//! `panic_on_oom`.

use crate::events::EventKind;
use crate::folio::MmId;
use crate::kernel::{Kernel, TaskState};
use crate::memory::VmFault;
use crate::pgtable::Entry;
use crate::types::*;

impl Kernel {
    /// Makes room for `nr` base pages a fault of `pid` is about to
    /// allocate: Ok once they are free, after killing as many victims as it
    /// takes; Err(VmFault::Oom) when `pid` itself was chosen (it is dead
    /// now) or nothing is left to kill.
    pub(crate) fn oom_reserve(&mut self, pid: Pid, nr: u64) -> Result<(), VmFault> {
        while self.free_ram_pages() < nr {
            let Some((victim, points)) = self.select_bad_process() else {
                self.event(pid, EventKind::Signal, "out_of_memory", None, || {
                    "out of memory and no task left to kill → the fault fails (VM_FAULT_OOM)".into()
                });
                self.do_exit(pid, TaskState::Killed(Signal::SIGKILL));
                return Err(VmFault::Oom);
            };
            self.oom_kill_process(pid, victim, points, nr);
            if victim == pid {
                return Err(VmFault::Oom);
            }
        }
        Ok(())
    }

    /// `select_bad_process()`: the running task with the highest
    /// [`Kernel::oom_badness`], the newest among equals; None when no task
    /// holds any memory the kill could free.
    fn select_bad_process(&self) -> Option<(Pid, u64)> {
        let mut best: Option<(Pid, u64)> = None;
        for t in self.tasks.values().filter(|t| t.state == TaskState::Running) {
            let points = self.oom_badness(t.mm);
            if points > 0 && best.is_none_or(|(_, b)| points >= b) {
                best = Some((t.pid, points));
            }
        }
        best
    }

    /// `oom_badness()`: resident pages (`get_mm_rss()`: anonymous, file and
    /// shmem pages mapped, the zero page and hugetlb pages not) plus swap
    /// entries.
    pub fn oom_badness(&self, mm: MmId) -> u64 {
        self.mm(mm)
            .pt
            .leaves(0, TASK_SIZE)
            .iter()
            .map(|l| match l.entry {
                Entry::Present(p) => {
                    let f = self.folios.get(p.folio);
                    if p.special || f.is_zero() || f.hugetlb.is_some() {
                        0
                    } else {
                        l.level.size() / PAGE_SIZE
                    }
                }
                Entry::Swap { .. } => 1,
            })
            .sum()
    }

    /// `oom_kill_process()`: SIGKILL to the victim, whose memory goes back
    /// at once.
    fn oom_kill_process(&mut self, pid: Pid, victim: Pid, points: u64, nr: u64) {
        let free = self.free_ram_pages();
        self.event(pid, EventKind::Signal, "out_of_memory", None, || {
            format!("{nr} page(s) needed, {free} free → OOM killer: victim pid {} (rss+swap {points} pages)", victim.0)
        });
        self.event(victim, EventKind::Signal, "oom_kill_process", None, || format!("Out of memory: killed (rss+swap {points} pages)"));
        self.stats.signals += 1;
        self.do_exit(victim, TaskState::Killed(Signal::SIGKILL));
    }
}
