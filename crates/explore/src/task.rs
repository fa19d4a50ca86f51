//! The racing operations and the step machines that carry them out.
//!
//! A task runs one [`Op`]. Its [`Machine`] wraps the model kernel's own step
//! machine for that path (mm's `Fork`, `GupFast`, `Zap`, `WpFault`,
//! `Collapse`, `TryToUnmap`), so an interleaving explored here runs exactly
//! the code a sequential run does, only with other tasks' steps in between.
//!
//! The explorer adds what the machines cannot know of each other: which
//! `mmap_lock` a path holds (fork, munmap and collapse hold it for writing,
//! faults, MADV_DONTNEED, MADV_PAGEOUT and slow GUP for reading), the
//! hugetlb VMA lock a hugetlb zap holds against hugetlb faults, and that
//! GUP-fast's interrupt-disabled walk holds off the IPI of
//! `tlb_remove_table_sync_one()`.

use mm::fork::Fork;
use mm::gup_fast::{GupFast, GupFastState};
use mm::khugepaged::{Collapse, CollapseState};
use mm::memory::{WpFault, WpFaultState, Zap, ZapState};
use mm::rmap::{TryToUnmap, TryToUnmapState};
use mm::Contents;
use mm::{FolioId, GupFlags, GupHandle, Kernel, MmId, Pid, SysError, PAGE_SIZE};
use std::fmt;

/// One operation a task runs in a race.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// fork(2): `dup_mmap()` and the page-table copy.
    Fork,
    /// pin_user_pages_fast() (FOLL_PIN) or get_user_pages_fast().
    GupFast { addr: u64, nr: u64, flags: GupFlags },
    /// madvise(MADV_DONTNEED): a zap of the range.
    DontNeed { addr: u64, len: u64 },
    /// A store of `fill` to every byte of `[addr, addr+len)`, faulting
    /// (write fault, `do_wp_page()`) where the page is not writable.
    Write { addr: u64, len: u64, fill: u8 },
    /// madvise(MADV_COLLAPSE) of one PMD-sized range.
    Collapse { addr: u64 },
    /// madvise(MADV_PAGEOUT): swap-out of the anon pages in the range.
    PageOut { addr: u64, len: u64 },
}

impl Op {
    /// The system call or library call a reader knows this by.
    pub fn describe(&self) -> String {
        match self {
            Op::Fork => "fork()".into(),
            Op::GupFast { addr, nr, flags } => {
                let f = if flags.pin { "pin_user_pages_fast" } else { "get_user_pages_fast" };
                format!("{f}({addr:#x}, {nr}, {flags})")
            }
            Op::DontNeed { addr, len } => format!("madvise({addr:#x}, {len:#x}, MADV_DONTNEED)"),
            Op::Write { addr, len, fill } => format!("write {fill:#04x} to [{addr:#x}, +{len:#x})"),
            Op::Collapse { addr } => format!("madvise({addr:#x}, 2M, MADV_COLLAPSE)"),
            Op::PageOut { addr, len } => format!("madvise({addr:#x}, {len:#x}, MADV_PAGEOUT)"),
        }
    }

    /// The page addresses the operation touches (for the state summary).
    pub fn pages(&self) -> Vec<u64> {
        let (a, n) = match *self {
            Op::Fork | Op::Collapse { .. } => return Vec::new(),
            Op::GupFast { addr, nr, .. } => (addr, nr),
            Op::DontNeed { addr, len } | Op::Write { addr, len, .. } | Op::PageOut { addr, len } => (addr, len.div_ceil(PAGE_SIZE)),
        };
        (0..n).map(|i| a + i * PAGE_SIZE).collect()
    }
}

/// A task of a race: who runs which operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TaskSpec {
    pub pid: Pid,
    pub op: Op,
}

/// How a machine holds or wants `mmap_lock`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Read,
    Write,
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    /// fork's new child.
    Forked(Pid),
    /// The GUP handle that now holds the pages.
    Pinned(GupHandle),
    Err(SysError),
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Forked(c) => write!(f, "child {c}"),
            Outcome::Pinned(_) => f.write_str("pages held"),
            Outcome::Err(e) => write!(f, "{e}"),
        }
    }
}

/// Where one task stands.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Machine {
    NotStarted,
    Fork(Fork),
    Gup(GupFast),
    Zap(Zap),
    Write(WpFault),
    Collapse(Collapse),
    PageOut(TryToUnmap),
    Done(Outcome),
}

impl Machine {
    pub fn is_done(&self) -> bool {
        matches!(self, Machine::Done(_))
    }

    /// The kernel function the task's next step plays.
    pub fn next_func(&self, op: &Op) -> &'static str {
        match self {
            Machine::NotStarted => match op {
                Op::Fork => "dup_mmap",
                Op::GupFast { .. } => "gup_fast",
                Op::DontNeed { .. } => "madvise_dontneed_single_vma",
                Op::Write { .. } => "handle_mm_fault",
                Op::Collapse { .. } => "collapse_huge_page",
                Op::PageOut { .. } => "madvise_cold_or_pageout_pte_range",
            },
            Machine::Fork(f) => f.next_func(),
            Machine::Gup(g) => g.next_func(),
            Machine::Zap(z) => z.next_func(),
            Machine::Write(w) => w.next_func(),
            Machine::Collapse(c) => c.next_func(),
            Machine::PageOut(t) => t.next_func(),
            Machine::Done(_) => "",
        }
    }

    /// References the machine holds outside the kernel's books.
    pub fn held(&self) -> Vec<(FolioId, u64, bool)> {
        match self {
            Machine::Gup(g) => g.held(),
            Machine::Zap(z) => z.held(),
            Machine::Write(w) => w.held(),
            Machine::Collapse(c) => c.held(),
            Machine::PageOut(t) => t.held(),
            _ => Vec::new(),
        }
    }

    /// `mmap_lock` held between steps.
    pub fn lock_held(&self, k: &Kernel, spec: &TaskSpec) -> Option<(MmId, LockMode)> {
        let mm = k.task_mm(spec.pid)?;
        match self {
            Machine::Fork(_) | Machine::Collapse(_) => Some((mm, LockMode::Write)),
            Machine::Zap(_) | Machine::PageOut(_) => Some((mm, LockMode::Read)),
            Machine::Write(w) if w.in_fault() => Some((mm, LockMode::Read)),
            _ => None,
        }
    }

    /// `mmap_lock` the next step needs (taken if not yet held).
    pub fn lock_wanted(&self, k: &Kernel, spec: &TaskSpec) -> Option<(MmId, LockMode)> {
        let mm = k.task_mm(spec.pid)?;
        match (self, &spec.op) {
            (Machine::NotStarted, Op::Fork | Op::Collapse { .. }) => Some((mm, LockMode::Write)),
            (Machine::NotStarted, Op::DontNeed { .. } | Op::PageOut { .. }) => Some((mm, LockMode::Read)),
            (Machine::Gup(g), _) if g.state == GupFastState::Slow => Some((mm, LockMode::Read)),
            (Machine::Write(w), _) if w.needs_fault(k) => Some((mm, LockMode::Read)),
            _ => self.lock_held(k, spec),
        }
    }

    /// The page-table lock held between steps: fork between its two halves
    /// of one PTE copy, swap-out from picking a folio until its swap
    /// entries are in. (The model has one page-table lock per mm; the races
    /// here stay within one PTE table.)
    pub fn ptl_held(&self, k: &Kernel, spec: &TaskSpec) -> Option<MmId> {
        let mm = k.task_mm(spec.pid)?;
        match self {
            Machine::Fork(f) if matches!(f.state, mm::fork::ForkState::Install { .. }) => Some(mm),
            Machine::PageOut(t)
                if matches!(
                    t.state,
                    TryToUnmapState::CheckPinned { .. }
                        | TryToUnmapState::Clear { .. }
                        | TryToUnmapState::Share { .. }
                        | TryToUnmapState::Swap { .. }
                ) =>
            {
                Some(mm)
            }
            _ => None,
        }
    }

    /// The hugetlb VMA lock held between steps, keyed by the mm and the
    /// VMA's start: a zap of a hugetlb range holds it for writing from
    /// `hugetlb_zap_begin()` to `hugetlb_zap_end()` (for a private mapping
    /// it is the reservation map's `rw_sema`). In 6.18 the zap frees its
    /// pages (`tlb_finish_mmu()`) before that end; with the policy
    /// `hugetlb_zap_free_first` off it lets go before the free.
    pub fn hugetlb_lock_held(&self, k: &Kernel, spec: &TaskSpec) -> Option<(MmId, u64)> {
        let Machine::Zap(z) = self else { return None };
        if z.state == ZapState::Flush && !k.policy.hugetlb_zap_free_first {
            return None;
        }
        hugetlb_vma(k, z.mm, z.start).filter(|_| k.task_mm(spec.pid) == Some(z.mm))
    }

    /// The hugetlb VMA lock the next step takes: a zap starting on a
    /// hugetlb range (for writing), a fault on one (`hugetlb_fault()`, for
    /// reading; it runs as one step here, so it holds nothing after). Only
    /// a zap holds the lock across steps, and for writing, so a holder
    /// excludes every other taker.
    pub fn hugetlb_lock_wanted(&self, k: &Kernel, spec: &TaskSpec) -> Option<(MmId, u64)> {
        let mm = k.task_mm(spec.pid)?;
        let writable = |addr: u64| k.mm(mm).pt.lookup(addr).is_some_and(|l| l.entry.present().is_some_and(|p| p.write));
        match (self, &spec.op) {
            (Machine::NotStarted, Op::DontNeed { addr, .. }) => hugetlb_vma(k, mm, *addr),
            // A store to a writable page takes no lock at all.
            (Machine::NotStarted, Op::Write { addr, .. }) if !writable(*addr) => hugetlb_vma(k, mm, *addr),
            (Machine::Write(w), _) if w.needs_fault(k) => match w.state {
                WpFaultState::Access { addr } | WpFaultState::Copied { addr, .. } => hugetlb_vma(k, mm, addr),
                WpFaultState::Done => None,
            },
            _ => self.hugetlb_lock_held(k, spec),
        }
    }

    /// The page-table lock the next step takes: every step but GUP-fast's
    /// lockless walk and a store to a writable page.
    pub fn ptl_wanted(&self, k: &Kernel, spec: &TaskSpec) -> Option<MmId> {
        let mm = k.task_mm(spec.pid)?;
        match self {
            Machine::NotStarted => (!matches!(spec.op, Op::GupFast { .. })).then_some(mm),
            Machine::Gup(g) => (g.state == GupFastState::Slow).then_some(mm),
            Machine::Write(w) => w.needs_fault(k).then_some(mm),
            Machine::Done(_) => None,
            _ => Some(mm),
        }
    }

    /// The next step sends an IPI that must wait for every CPU running
    /// with interrupts off.
    pub fn waits_for_irqs(&self) -> bool {
        matches!(self, Machine::Collapse(c) if c.state == CollapseState::TableSync)
    }

    /// Inside a page-table-lock section whose middle no locking path can
    /// see: fork between clearing AE and write-protecting one PTE.
    pub fn in_pte_lock_window(&self) -> bool {
        matches!(self, Machine::Fork(f) if matches!(f.state, mm::fork::ForkState::Install { .. }))
    }

    /// GUP-fast between `local_irq_save()` and `local_irq_restore()`.
    pub fn irqs_disabled(&self) -> bool {
        matches!(self, Machine::Gup(g) if g.irqs_disabled())
    }
}

/// The hugetlb VMA at `addr` in `mm`, as (mm, VMA start).
fn hugetlb_vma(k: &Kernel, mm: MmId, addr: u64) -> Option<(MmId, u64)> {
    k.mm(mm).vma(addr).filter(|v| v.hugetlb.is_some()).map(|v| (mm, v.start))
}

/// Runs one atomic step of `spec`'s operation.
pub fn step(k: &mut Kernel, spec: &TaskSpec, m: &mut Machine) {
    let pid = spec.pid;
    let Some(mm) = k.task_mm(pid) else {
        *m = Machine::Done(Outcome::Err(mm::Errno::ESRCH.into()));
        return;
    };
    let next = match std::mem::replace(m, Machine::NotStarted) {
        Machine::NotStarted => match spec.op {
            Op::Fork => match k.fork_begin(pid) {
                Ok(f) => Machine::Fork(f),
                Err(e) => Machine::Done(Outcome::Err(e)),
            },
            Op::GupFast { addr, nr, flags } => {
                let mut g = k.gup_fast_begin(pid, mm, addr, nr, flags);
                k.gup_fast_step(&mut g);
                gup_settle(k, g)
            }
            Op::DontNeed { addr, len } => {
                let mut z = Zap::begin(pid, mm, addr, addr + len);
                if k.zap_step(&mut z) {
                    Machine::Zap(z)
                } else {
                    Machine::Done(Outcome::Ok)
                }
            }
            Op::Write { addr, len, fill } => {
                let mut w = WpFault::begin(pid, mm, addr, Contents::filled(len, fill));
                if k.wp_fault_step(&mut w) {
                    Machine::Write(w)
                } else {
                    Machine::Done(w.outcome())
                }
            }
            Op::Collapse { addr } => {
                let mut c = Collapse::begin(pid, mm, addr);
                if k.collapse_step(&mut c) {
                    Machine::Collapse(c)
                } else {
                    Machine::Done(c.outcome())
                }
            }
            Op::PageOut { addr, len } => {
                let mut t = TryToUnmap::begin(pid, mm, addr, addr + len);
                if k.try_to_unmap_step(&mut t) {
                    Machine::PageOut(t)
                } else {
                    Machine::Done(Outcome::Ok)
                }
            }
        },
        Machine::Fork(mut f) => {
            if k.fork_step(&mut f) {
                Machine::Fork(f)
            } else {
                match f.result {
                    Some(Ok(c)) => Machine::Done(Outcome::Forked(c)),
                    Some(Err(e)) => Machine::Done(Outcome::Err(e)),
                    None => Machine::Done(Outcome::Err(mm::Errno::EINVAL.into())),
                }
            }
        }
        Machine::Gup(mut g) => {
            k.gup_fast_step(&mut g);
            gup_settle(k, g)
        }
        Machine::Zap(mut z) => {
            if k.zap_step(&mut z) {
                Machine::Zap(z)
            } else {
                Machine::Done(Outcome::Ok)
            }
        }
        Machine::Write(mut w) => {
            if k.wp_fault_step(&mut w) {
                Machine::Write(w)
            } else {
                Machine::Done(w.outcome())
            }
        }
        Machine::Collapse(mut c) => {
            if k.collapse_step(&mut c) {
                Machine::Collapse(c)
            } else {
                Machine::Done(c.outcome())
            }
        }
        Machine::PageOut(mut t) => {
            if k.try_to_unmap_step(&mut t) {
                Machine::PageOut(t)
            } else {
                Machine::Done(Outcome::Ok)
            }
        }
        Machine::Done(o) => Machine::Done(o),
    };
    *m = next;
}

/// A finished GUP-fast hands its pages to a handle, like the gup_test
/// ioctl that called it.
fn gup_settle(k: &mut Kernel, g: GupFast) -> Machine {
    if g.state != GupFastState::Done {
        return Machine::Gup(g);
    }
    match k.gup_fast_into_handle(g) {
        Ok(h) => Machine::Done(Outcome::Pinned(h)),
        Err(e) => Machine::Done(Outcome::Err(e)),
    }
}

impl AsOutcome for WpFault {
    fn outcome(&self) -> Outcome {
        match self.result {
            Some(Err(e)) => Outcome::Err(e),
            _ => Outcome::Ok,
        }
    }
}

impl AsOutcome for Collapse {
    fn outcome(&self) -> Outcome {
        match self.result {
            Some(Err(e)) => Outcome::Err(e),
            _ => Outcome::Ok,
        }
    }
}

/// How a finished mm machine's result reads as an [`Outcome`].
trait AsOutcome {
    fn outcome(&self) -> Outcome;
}
