//! The model backend: runs scenarios on the cowlab kernel (`mm`).
//!
//! This is the only place where the scenario language meets `mm` types.
//! Everything is translated at the boundary: the scenario's names of errnos,
//! advice and flags into `mm` enums, `mm`'s observations into the backend's
//! plain structs, `mm` events into trace lines. The kernel is created in
//! [`Backend::configure`] because the policy is fixed at boot.

use crate::ast::{self, Foll, GupKind, ThpSize};
use crate::backend::*;
use mm::kernel::{Kernel, Machine, TaskState};

use mm::policy::{profile_names, Policy};
use mm::types::{HugeSize, Pid, SysError};
use std::cell::OnceCell;
use std::collections::BTreeMap;

/// The cowlab model kernel as a scenario backend.
pub struct ModelBackend {
    /// Booted by [`Backend::configure`] with the scenario's policy; asked
    /// for before that, the default policy's kernel is booted then. Not
    /// booted in [`ModelBackend::new`]: a run configures first thing, and
    /// booting (the zero folios, the tables) costs as much as a small test,
    /// so a backend made for one run boots one kernel, not two.
    kernel: OnceCell<Kernel>,
    /// Backend task ids are the model's pids.
    pins: BTreeMap<u64, (Pid, mm::kernel::GupHandle)>,
    next_pin: u64,
    /// Run `check_invariants()` after every step (on unless a bulk run such
    /// as `cowlab selftest` turns it off for speed; tests keep it on).
    self_check: bool,
    /// Describe the whole state after every step (`Backend::state_view`).
    state_views: bool,
    /// The status each exited task passed to _exit (the mm model has no
    /// exit codes: it is what wait() would report).
    exit_codes: BTreeMap<u32, u8>,
    /// Keep the kernel's event log for the trace (off for bulk runs that
    /// only want outcomes and counters, such as the policy lab).
    trace: bool,
}

impl Default for ModelBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl ModelBackend {
    /// Turns the invariant check after every step off or on.
    pub fn with_self_check(mut self, on: bool) -> ModelBackend {
        self.self_check = on;
        self
    }

    /// Turns on the state description after every step (for pictures).
    pub fn with_state_views(mut self, on: bool) -> ModelBackend {
        self.state_views = on;
        self
    }

    pub fn new() -> ModelBackend {
        ModelBackend {
            kernel: OnceCell::new(),
            pins: BTreeMap::new(),
            next_pin: 1,
            self_check: true,
            state_views: false,
            exit_codes: BTreeMap::new(),
            trace: true,
        }
    }

    /// A backend over a kernel some other driver ran (the race explorer's
    /// end states), to judge expectations on it. Its pins are the kernel's
    /// own GUP handles; the backend knows none by id.
    pub fn from_kernel(kernel: Kernel) -> ModelBackend {
        ModelBackend { kernel: OnceCell::from(kernel), ..ModelBackend::new().with_self_check(false) }
    }

    /// Turns the trace (the "what the kernel did" lines and the counter
    /// deltas, see [`Backend::narrates`]) off or on; outcomes, counters and
    /// kernel log lines are the same either way.
    pub fn with_trace(mut self, on: bool) -> ModelBackend {
        self.trace = on;
        if let Some(k) = self.kernel.get_mut() {
            k.set_event_log(on);
        }
        self
    }

    /// The kernel, for tests that want to look deeper than the trait allows.
    pub fn kernel(&self) -> &Kernel {
        self.kernel.get_or_init(|| boot(Policy::default(), Machine::default(), self.trace))
    }

    fn kernel_mut(&mut self) -> &mut Kernel {
        self.kernel();
        match self.kernel.get_mut() {
            Some(k) => k,
            None => unreachable!("booted by kernel() just above"),
        }
    }
}

/// A freshly booted kernel: `policy`'s rules on `machine`, its event log
/// kept when `trace` is on.
fn boot(policy: Policy, machine: Machine, trace: bool) -> Kernel {
    let mut k = Kernel::new(policy);
    k.machine = machine;
    k.set_event_log(trace);
    k
}

fn pid(t: TaskId) -> Pid {
    Pid(t.0)
}

fn fd(f: Fd) -> mm::types::Fd {
    mm::types::Fd(f.0)
}

fn bfd(f: mm::types::Fd) -> Fd {
    Fd(f.0)
}

fn failure(e: SysError) -> Failure {
    match e {
        SysError::Errno(e) => Failure::Errno(e.name().to_string()),
        SysError::Signal(s) => Failure::Signal(s.name().to_string()),
        SysError::Livelock => Failure::Livelock,
    }
}

fn prot(p: ast::Prot) -> mm::types::Prot {
    mm::types::Prot { read: p.read, write: p.write, exec: p.exec }
}

fn huge(size: u64) -> Result<HugeSize, Failure> {
    HugeSize::from_bytes(size).ok_or(Failure::Errno("EINVAL".into()))
}

/// A segment id as the model numbers them (any other number names no
/// segment: EINVAL, as shmat(2) says for an unknown id).
fn shm_id(id: u64) -> Result<mm::shm::ShmId, Failure> {
    u32::try_from(id).map(mm::shm::ShmId).map_err(|_| Failure::Errno("EINVAL".into()))
}

fn advice(a: ast::Advice) -> mm::madvise::Advice {
    use ast::Advice as A;
    use mm::madvise::Advice as M;
    match a {
        A::Dontneed => M::DontNeed,
        A::Remove => M::Remove,
        A::Dontfork => M::DontFork,
        A::Dofork => M::DoFork,
        A::Wipeonfork => M::WipeOnFork,
        A::Keeponfork => M::KeepOnFork,
        A::Hugepage => M::HugePage,
        A::Nohugepage => M::NoHugePage,
        A::Collapse => M::Collapse,
        A::Pageout => M::PageOut,
        A::PopulateRead => M::PopulateRead,
        A::PopulateWrite => M::PopulateWrite,
        A::Free => M::Free,
        A::Cold => M::Cold,
    }
}

impl Backend for ModelBackend {
    fn name(&self) -> &str {
        "model"
    }

    fn lacks(&self, f: Feature) -> Option<String> {
        match f {
            Feature::Gup
            | Feature::FolioCounters
            | Feature::AnonExclusive
            | Feature::PteWritable
            | Feature::PageFrames
            | Feature::HugetlbPool
            | Feature::Hugetlb
            | Feature::Thp
            | Feature::IoUring
            | Feature::Files
            | Feature::SoftDirty
            | Feature::Swap
            | Feature::MmHold
            | Feature::Knobs
            | Feature::KernelLog => None,
        }
    }

    fn configure(&mut self, profile: &str, knobs: &[(String, String)]) -> Result<(), ConfigError> {
        let Some(mut p) = Policy::profile(profile) else {
            return Err(ConfigError::UnknownProfile { known: profile_names().iter().map(|s| s.to_string()).collect() });
        };
        let mut machine = Machine::default();
        for (index, (k, v)) in knobs.iter().enumerate() {
            let r = machine.set(k, v).unwrap_or_else(|| p.set(k, v));
            if let Err(message) = r {
                return Err(ConfigError::Knob { index, message });
            }
        }
        self.kernel = OnceCell::from(boot(p, machine, self.trace));
        Ok(())
    }

    fn set(&mut self, s: &Setting) -> Result<(), String> {
        use mm::kernel::{ThpMode as M, THP_MIN_ORDER, THP_PMD_ORDER};
        let mode = |m: ast::ThpMode| match m {
            ast::ThpMode::Always => M::Always,
            ast::ThpMode::Madvise => M::Madvise,
            ast::ThpMode::Never => M::Never,
            ast::ThpMode::Inherit => M::Inherit,
        };
        match s {
            Setting::Thp { size, mode: m } => {
                let st = self.kernel_mut().settings_mut();
                match size {
                    ThpSize::All => {
                        if *m == ast::ThpMode::Inherit {
                            return Err("`inherit` is a per-size setting; the global one is always, madvise or never".into());
                        }
                        st.thp_global = mode(*m);
                        for o in THP_MIN_ORDER..=THP_PMD_ORDER {
                            st.thp_order[o as usize] = M::Inherit;
                        }
                    }
                    ThpSize::Bytes(b) => {
                        let order = (b / 4096).trailing_zeros() as u8;
                        if !(THP_MIN_ORDER..=THP_PMD_ORDER).contains(&order) {
                            return Err(format!("no THP size {}", ast::fmt_size(*b)));
                        }
                        st.thp_order[order as usize] = mode(*m);
                    }
                }
                Ok(())
            }
            Setting::ThpUseZeroPage(on) => {
                self.kernel_mut().settings_mut().use_zero_page = *on;
                Ok(())
            }
            Setting::HugetlbPool { size, pages, overcommit } => {
                let h = HugeSize::from_bytes(*size).ok_or_else(|| format!("no hugetlb size {}", ast::fmt_size(*size)))?;
                self.kernel_mut().set_nr_hugepages(h, *pages);
                if let Some(o) = overcommit {
                    self.kernel_mut().set_overcommit_hugepages(h, *o);
                }
                Ok(())
            }
        }
    }

    fn spawn(&mut self) -> Result<TaskId, String> {
        Ok(TaskId(self.kernel_mut().spawn().0))
    }

    fn call(&mut self, task: TaskId, call: &Call) -> Result<Ret, Failure> {
        let p = pid(task);
        let k = self.kernel_mut();
        let r = match call {
            Call::Mmap(m) => {
                let req = mm::mmap::MmapRequest {
                    addr: m.addr,
                    len: m.len,
                    prot: prot(m.prot),
                    shared: m.shared,
                    fixed: m.fixed && !m.noreplace,
                    fixed_noreplace: m.fixed && m.noreplace,
                    noreserve: m.noreserve,
                    hugetlb: match m.hugetlb {
                        Some(h) => Some(huge(h)?),
                        None => None,
                    },
                    populate: m.populate,
                    fd: m.file.map(|(f, _)| fd(f)),
                    offset: m.file.map(|(_, o)| o).unwrap_or(0),
                };
                k.mmap(p, req).map(Ret::Addr)
            }
            Call::Munmap { addr, len } => k.munmap(p, *addr, *len).map(|_| Ret::Done),
            Call::Mprotect { addr, len, prot: pr } => k.mprotect(p, *addr, *len, prot(*pr)).map(|_| Ret::Done),
            Call::Madvise { addr, len, advice: a } => k.madvise(p, *addr, *len, advice(*a)).map(|_| Ret::Done),
            Call::Mremap { old_addr, old_len, new_len, new_addr, dontunmap } => {
                let flags = mm::mremap::MremapFlags { maymove: true, dontunmap: *dontunmap };
                k.mremap(p, *old_addr, *old_len, *new_len, flags, *new_addr).map(Ret::Addr)
            }
            Call::Fork => k.fork(p).map(|c| Ret::Task(TaskId(c.0))),
            Call::Exit { code } => k.exit(p).map(|_| {
                self.exit_codes.insert(task.0, *code);
                Ret::Done
            }),
            Call::WriteMem { addr, data: d } => k.write_mem(p, *addr, d).map(|_| Ret::Done),
            Call::ReadMem { addr, len } => k.read_mem(p, *addr, *len).map(Ret::Data),
            Call::Pipe => k.pipe(p).map(|(r, w)| Ret::Pipe { read: bfd(r), write: bfd(w) }),
            Call::Vmsplice { fd: f, addr, len } => k.vmsplice(p, fd(*f), *addr, *len).map(Ret::Count),
            Call::ReadFd { fd: f, len } => k.read_fd(p, fd(*f), *len).map(Ret::Data),
            Call::WriteFd { fd: f, data: d } => k.write_fd(p, fd(*f), d).map(Ret::Count),
            Call::Pread { fd: f, offset, len } => k.pread(p, fd(*f), *offset, *len).map(Ret::Data),
            Call::Pwrite { fd: f, offset, data: d } => k.pwrite(p, fd(*f), *offset, d).map(Ret::Count),
            Call::Memfd { size, sparse, .. } | Call::Tmpfile { size, sparse, .. } => {
                let (kind, huge) = match call {
                    Call::Memfd { hugetlb: Some(h), .. } => match mm::HugeSize::from_bytes(*h) {
                        Some(h) => (mm::shmem::InodeKind::Hugetlbfs, Some(h)),
                        None => return Err(Failure::Errno("EINVAL".into())),
                    },
                    Call::Memfd { .. } => (mm::shmem::InodeKind::Shmem, None),
                    _ => (mm::shmem::InodeKind::DiskFile, None),
                };
                k.create_file(p, kind, huge).and_then(|f| {
                    let sized =
                        k.ftruncate(p, f, *size).and_then(|()| if *size > 0 && !*sparse { k.fallocate(p, f, 0, *size) } else { Ok(()) });
                    match sized {
                        Ok(()) => Ok(Ret::Fd(bfd(f))),
                        // The file is closed again, as the live agent
                        // drops it: its pages go with it.
                        Err(e) => {
                            k.close(p, f)?;
                            Err(e)
                        }
                    }
                })
            }
            Call::IoUringSetup => k.io_uring_setup(p).map(|f| Ret::Fd(bfd(f))),
            Call::IoUringRegister { ring, bufs } => k.io_uring_register_buffers(p, fd(*ring), bufs).map(|_| Ret::Done),
            Call::IoUringUnregister { ring } => k.io_uring_unregister_buffers(p, fd(*ring)).map(|_| Ret::Done),
            Call::IoUringWriteFixed { ring, buf_index, fd: f, file_offset, addr, len } => {
                k.io_uring_write_fixed(p, fd(*ring), *buf_index as usize, fd(*f), *file_offset, *addr, *len).map(Ret::Count)
            }
            Call::IoUringReadFixed { ring, buf_index, fd: f, file_offset, addr, len } => {
                k.io_uring_read_fixed(p, fd(*ring), *buf_index as usize, fd(*f), *file_offset, *addr, *len).map(Ret::Count)
            }
            Call::ClearSoftDirty => k.clear_soft_dirty(p).map(|_| Ret::Done),
            Call::Close { fd: f } => k.close(p, fd(*f)).map(|_| Ret::Done),
            Call::Gup { kind, addr, nr_pages, flags } => {
                let mut g = if kind.is_pin() { mm::gup::GupFlags::PIN } else { mm::gup::GupFlags::GET };
                for f in flags {
                    match f {
                        Foll::Write => g.write = true,
                        Foll::Longterm => g.longterm = true,
                        Foll::Force => g.force = true,
                    }
                }
                let fast = matches!(kind, GupKind::GetUserPagesFast | GupKind::PinUserPagesFast);
                match k.gup(p, *addr, *nr_pages, g, fast) {
                    Ok(h) => {
                        let id = self.next_pin;
                        self.next_pin += 1;
                        self.pins.insert(id, (p, h));
                        Ok(Ret::Pin(PinId(id)))
                    }
                    Err(e) => Err(e),
                }
            }
            Call::Unpin { pin } => match self.pins.remove(&pin.0) {
                Some((owner, h)) => self.kernel_mut().unpin(owner, h).map(|_| Ret::Done),
                None => return Err(Failure::Backend(format!("no pin {}", pin.0))),
            },
            Call::Fallocate { fd: f, offset, len, punch: false } => k.fallocate(p, fd(*f), *offset, *len).map(|_| Ret::Done),
            Call::Fallocate { fd: f, offset, len, punch: true } => k.fallocate_punch_hole(p, fd(*f), *offset, *len).map(|_| Ret::Done),
            Call::Shmget { size, hugetlb } => {
                let h = match hugetlb {
                    Some(h) => Some(huge(*h)?),
                    None => None,
                };
                k.shmget(p, *size, h, false).map(|id| Ret::Shm(u64::from(id.0)))
            }
            Call::Shmat { shm } => k.shmat(p, shm_id(*shm)?).map(Ret::Addr),
            Call::Shmdt { addr } => k.shmdt(p, *addr).map(|_| Ret::Done),
            Call::ShmRmid { shm } => k.shmctl_rmid(p, shm_id(*shm)?).map(|_| Ret::Done),
            Call::Mmget { task } => self.kernel_mut().mmget(p, pid(*task)).map(|h| Ret::Hold(u64::from(h.0))),
            Call::Mmput { hold } => match u32::try_from(*hold) {
                Ok(h) => self.kernel_mut().mmput(p, mm::kernel::MmHold(h)).map(|_| Ret::Done),
                Err(_) => return Err(Failure::Backend(format!("no mm hold {hold}"))),
            },
            Call::MbindLocalMove { addr, len } => k.do_mbind(p, *addr, *len).map(|_| Ret::Done),
            Call::UffdioCopy { addr, data: d } => k.uffdio_copy(p, *addr, d).map(|_| Ret::Done),
            Call::ProcMemWrite { task: t, addr, data: d } => k.proc_mem_write(p, pid(*t), *addr, d).map(Ret::Count),
            Call::ProcMemRead { task: t, addr, len } => k.proc_mem_read(p, pid(*t), *addr, *len).map(Ret::Data),
            Call::ProcessVm { write, task: target, remote, local, len } => {
                k.process_vm_rw(p, pid(*target), *local, *remote, *len, *write).map(Ret::Count)
            }
            Call::DirectIo { write, fd: f, file_offset, addr, len } => {
                k.direct_io(p, fd(*f), *file_offset, *addr, *len, *write).map(Ret::Count)
            }
            Call::ReadPinned { pin, offset, len } => match self.pins.get(&pin.0) {
                Some((_, h)) => self.kernel().gup_read(*h, *offset, *len).map(Ret::Data),
                None => return Err(Failure::Backend(format!("no pin {} (already released)", pin.0))),
            },
        };
        r.map_err(failure)
    }

    fn page(&mut self, task: TaskId, addr: u64) -> Result<Option<PageObs>, String> {
        let k = self.kernel();
        let e = k.pagemap(pid(task), addr).map_err(|e| e.to_string())?;
        if !e.present && !e.swapped {
            let vma = k.task_mm(pid(task)).is_some_and(|m| k.mm(m).vma(addr).is_some());
            return Ok(vma.then(|| PageObs { soft_dirty: e.soft_dirty, ..PageObs::default() }));
        }
        // PageAnonExclusive is a folio (page) flag, not a pagemap bit.
        let info = k.folio_info(pid(task), addr).ok().flatten();
        let ae = info.is_some_and(|f| f.anon && f.anon_exclusive);
        let zero = e.present && e.zero_page;
        Ok(Some(PageObs {
            anon: e.present.then_some(e.anon),
            pmd_mapped: e.present.then_some(e.level.is_some_and(|l| l != mm::pgtable::Level::Pte)),
            mapcount: if zero { Some(0) } else { info.map(|f| f.mapcount) },
            page_mapcount: k.page_mapcount(pid(task), addr).ok().flatten(),
            present: e.present,
            swapped: e.swapped,
            soft_dirty: e.soft_dirty,
            pfn: e.pfn,
            zero_page: e.zero_page,
            thp: e.thp,
            hugetlb: e.hugetlb,
            exclusive: e.exclusive,
            anon_exclusive: Some(ae),
            writable: Some(e.writable),
        }))
    }

    fn folio(&mut self, task: TaskId, addr: u64) -> Result<Option<FolioObs>, String> {
        match self.kernel().folio_info(pid(task), addr) {
            Ok(Some(f)) => Ok(Some(FolioObs {
                pfn: f.pfn,
                order: f.order,
                refcount: f.refcount,
                mapcount: f.mapcount,
                pincount: f.pincount,
                anon: f.anon,
                anon_exclusive: f.anon_exclusive,
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    fn pool(&mut self, size: u64) -> Result<PoolObs, String> {
        let h = HugeSize::from_bytes(size).ok_or_else(|| format!("no hugetlb size {}", ast::fmt_size(size)))?;
        let s = self.kernel().hugetlb_pool(h);
        Ok(PoolObs { total: s.nr as i64, free: s.free as i64, resv: s.resv as i64, surp: s.surplus as i64 })
    }

    fn task_state(&mut self, task: TaskId) -> Result<TaskObs, String> {
        match self.kernel().task_state(pid(task)) {
            Some(TaskState::Running) => Ok(TaskObs::Running),
            Some(TaskState::Exited) => Ok(TaskObs::Exited(Some(self.exit_codes.get(&task.0).copied().unwrap_or(0)))),
            Some(TaskState::Killed(s)) => Ok(TaskObs::Killed(s.name().to_string())),
            None => Err(format!("no task {}", task.0)),
        }
    }

    fn take_trace(&mut self) -> Vec<TraceLine> {
        self.kernel_mut()
            .take_events()
            .into_iter()
            .map(|e| {
                let log = e.kind == mm::events::EventKind::Printk;
                TraceLine { task: Some(TaskId(e.pid.0)), text: if log { e.detail } else { e.to_string() }, log }
            })
            .collect()
    }

    fn self_check(&mut self) -> Result<(), String> {
        if !self.self_check {
            return Ok(());
        }
        self.kernel().check_invariants().map_err(|v| v.to_string())
    }

    fn state_view(&mut self) -> Option<mm::view::StateView> {
        self.state_views.then(|| self.kernel().view())
    }

    fn narrates(&self) -> bool {
        self.trace
    }

    fn work_counter(&self) -> Option<mm::WorkCounter> {
        Some(self.kernel().work_counter())
    }
}
