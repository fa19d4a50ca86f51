//! Task exit (kernel/exit.c: do_exit() → exit_mm() → exit_mmap()).

use crate::kernel::{Kernel, TaskState};
use crate::types::*;

impl Kernel {
    /// exit(2): the task's mappings, files, pins and rings go away.
    pub fn exit(&mut self, pid: Pid) -> SysResult<()> {
        self.task(pid)?;
        self.do_exit(pid, TaskState::Exited);
        Ok(())
    }

    /// Tears a task down: GUP references it still holds (gup_test closes its
    /// file), file descriptors (pipes, rings), and its address space.
    pub(crate) fn do_exit(&mut self, pid: Pid, state: TaskState) {
        let Some(t) = self.tasks.get_mut(&pid) else { return };
        if t.state != TaskState::Running {
            return;
        }
        t.state = state;
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
        // exit_mmap(): unmap everything first, then close each VMA as the
        // zap left it (unmapping can hand a hugetlb reservation back to the
        // VMA's map, which close then returns).
        let ranges: Vec<(u64, u64)> = self.mm(mm).vmas.values().map(|v| (v.start, v.end)).collect();
        for (start, end) in ranges {
            self.zap_page_range(pid, mm, start, end);
        }
        for v in std::mem::take(&mut self.mm_mut(mm).vmas).into_values() {
            self.remove_vma(&v);
        }
    }
}
