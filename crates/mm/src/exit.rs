//! Task exit and the address space's last user (kernel/exit.c: do_exit() →
//! exit_mm(); kernel/fork.c: mmget(), mmput() → __mmput() → exit_mmap()).

use crate::events::EventKind;
use crate::folio::MmId;
use crate::kernel::{Kernel, MmHold, TaskState};
use crate::types::*;

impl Kernel {
    /// exit(2): the task's mappings, files, pins and rings go away — the
    /// mappings only once nobody else holds the address space.
    pub fn exit(&mut self, pid: Pid) -> SysResult<()> {
        self.task(pid)?;
        self.do_exit(pid, TaskState::Exited);
        Ok(())
    }

    /// Tears a task down: GUP references it still holds (gup_test closes its
    /// file), file descriptors (pipes, rings), the address-space references
    /// it holds on others, and its own address space (`exit_mm()` →
    /// `mmput()`): torn down now unless another task still holds it.
    pub(crate) fn do_exit(&mut self, pid: Pid, state: TaskState) {
        let Some(t) = self.tasks.get_mut(&pid) else { return };
        if t.state != TaskState::Running {
            return;
        }
        t.state = state;
        self.nr_running -= 1;
        let mm = t.mm;
        let fds = std::mem::take(&mut t.fds);
        let handles: Vec<_> = self.gup.iter().filter(|(_, r)| r.pid == pid).map(|(h, _)| *h).collect();
        for h in handles {
            let rec = self.gup.remove(&h).expect("listed above");
            self.release_pages(&rec.pages, rec.pin);
        }
        for file in fds.into_values() {
            self.file_put(file);
        }
        let held: Vec<MmHold> = self.mm_holds.iter().filter(|(_, (holder, _))| *holder == pid).map(|(h, _)| *h).collect();
        for h in held {
            self.drop_mm_hold(pid, h);
        }
        if self.mm_users_besides_owner(mm) > 0 {
            self.event(pid, EventKind::Note, "exit_mm", None, || {
                "another task holds this mm (mm_users > 1) → its mappings stay until the last mmput()".into()
            });
            return;
        }
        self.exit_mmap(pid, mm);
    }

    /// `exit_mmap()`: unmap everything first, then close each VMA as the
    /// zap left it (unmapping can hand a hugetlb reservation back to the
    /// VMA's map, which close then returns).
    fn exit_mmap(&mut self, pid: Pid, mm: MmId) {
        let ranges: Vec<(u64, u64)> = self.mm(mm).vmas.values().map(|v| (v.start, v.end)).collect();
        for (start, end) in ranges {
            self.zap_page_range(pid, mm, start, end);
        }
        for v in std::mem::take(&mut self.mm_mut(mm).vmas).into_values() {
            self.remove_vma(&v);
        }
    }

    fn mm_users_besides_owner(&self, mm: MmId) -> usize {
        self.mm_holds.values().filter(|(_, m)| *m == mm).count()
    }

    /// `mmget()` by `holder` on `target`'s address space (`get_task_mm()`):
    /// while held, `target`'s exit leaves its mappings in place — its pages
    /// stay mapped, counted and COW-shared — until the holder's `mmput()`.
    ///
    /// In 6.18 the holders of `mm_users` across another task's exit are a
    /// `/proc/PID/mem` read or write in progress (`mem_rw()`), a
    /// `process_vm_readv()`/`_writev()` in progress, or a process created
    /// with CLONE_VM but not CLONE_THREAD. Opening `/proc/PID/mem` takes
    /// only `mm_count` (`proc_mem_open()`: `mmgrab()`), and io_uring only
    /// `mmgrab()`s its creator's mm: neither delays `exit_mmap()`. The model
    /// leaves out `mm_count` (which keeps the struct, not the mappings).
    pub fn mmget(&mut self, holder: Pid, target: Pid) -> SysResult<MmHold> {
        self.task(holder)?;
        let mm = self.mm_of(target)?;
        let h = MmHold(self.fresh_id());
        self.mm_holds.insert(h, (holder, mm));
        self.event(holder, EventKind::Note, "mmget", None, || format!("holds the mm of pid {}", target.0));
        Ok(h)
    }

    /// `mmput()` of a hold taken by [`Kernel::mmget`]: the last user of an
    /// exited task's address space tears it down (`__mmput()` →
    /// `exit_mmap()`), as the task's own exit would have.
    pub fn mmput(&mut self, holder: Pid, h: MmHold) -> SysResult<()> {
        self.task(holder)?;
        match self.mm_holds.get(&h) {
            Some((p, _)) if *p == holder => {}
            _ => return Err(Errno::EINVAL.into()),
        }
        self.drop_mm_hold(holder, h);
        Ok(())
    }

    fn drop_mm_hold(&mut self, holder: Pid, h: MmHold) {
        let Some((_, mm)) = self.mm_holds.remove(&h) else { return };
        let owner_gone = self.tasks.values().filter(|t| t.mm == mm).all(|t| t.state != TaskState::Running);
        if owner_gone && self.mm_users_besides_owner(mm) == 0 {
            self.event(holder, EventKind::Note, "mmput", None, || "last user of an exited task's mm → exit_mmap()".into());
            let owner = self.pid_of_mm(mm);
            self.exit_mmap(owner, mm);
        }
    }
}
