//! The boundary between the scenario language and whatever executes it.
//!
//! A [`Backend`] is a machine that runs programs: the model kernel
//! ([`crate::model`]) or the host kernel (the `live` crate). The trait is deliberately narrow — the system calls a
//! program can make, the few model-only GUP entry points (what the kernel's
//! `gup_test` module offers), and observations of the kind `/proc/*/pagemap`,
//! `/proc/kpagecount` and sysfs give. Nothing model-internal crosses it: no
//! folio references, no VMAs, no policy structs; knobs and profiles travel as
//! strings, errnos and signals by name, so a live backend can implement it
//! without linking the model.
//!
//! A backend says what it cannot do through [`Backend::lacks`]; the runner
//! skips a scenario that needs a missing operation and skips (with a note)
//! an expectation it cannot observe.

use crate::ast::{Advice, Foll, GupKind, Prot, ThpMode, ThpSize};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A task as the backend knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskId(pub u32);

/// A file descriptor in a task's table (inherited by `fork`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fd(pub i32);

/// A set of pages taken by one GUP call (model-only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PinId(pub u64);

/// Capabilities a backend may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// `get/pin_user_pages[_fast]`, unpin, reads through a pin (model-only:
    /// a live kernel needs CONFIG_GUP_TEST).
    Gup,
    /// Folio refcount / mapcount / pincount.
    FolioCounters,
    /// PageAnonExclusive of a mapped page.
    AnonExclusive,
    /// Whether the PTE/PMD is writable without a fault.
    PteWritable,
    /// Page-frame identity and pagemap bits (present, zero page, THP…).
    PageFrames,
    /// hugetlb pool counters.
    HugetlbPool,
    /// hugetlb mappings and pools at all.
    Hugetlb,
    /// Per-size THP settings and MADV_(NO)HUGEPAGE/COLLAPSE.
    Thp,
    IoUring,
    /// memfd and on-disk temporary files.
    Files,
    /// Writing 4 to /proc/PID/clear_refs.
    SoftDirty,
    /// Swap space, so that MADV_PAGEOUT swaps anon pages out.
    Swap,
    /// Holding another process's address space (`mm_users`) across its
    /// exit: `mmget` / `mmput`.
    MmHold,
    /// Overriding policy knobs (`set`, `--set`): only a model can change
    /// the kernel's rules.
    Knobs,
    /// The kernel log lines a step produced (`expect log`).
    KernelLog,
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Feature::Gup => "GUP (get/pin_user_pages)",
            Feature::FolioCounters => "folio counters",
            Feature::AnonExclusive => "PageAnonExclusive",
            Feature::PteWritable => "PTE write bits",
            Feature::PageFrames => "page frames (pagemap)",
            Feature::HugetlbPool => "hugetlb pool counters",
            Feature::Hugetlb => "hugetlb",
            Feature::Thp => "THP settings",
            Feature::IoUring => "io_uring",
            Feature::Files => "files",
            Feature::SoftDirty => "soft-dirty tracking",
            Feature::Swap => "swap space",
            Feature::MmHold => "holding another task's mm (mmget)",
            Feature::Knobs => "policy knobs",
            Feature::KernelLog => "the kernel log",
        })
    }
}

/// Bytes of memory, a file or a pipe: the model's own byte strings, so a
/// 1 GiB fill is one run on both sides of the boundary.
pub use mm::Contents;

/// An mmap request with everything resolved to numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MmapCall {
    /// A hint, or the address with `fixed`.
    pub addr: Option<u64>,
    pub len: u64,
    pub prot: Prot,
    pub shared: bool,
    pub fixed: bool,
    /// With `fixed`: MAP_FIXED_NOREPLACE instead of MAP_FIXED.
    #[serde(default)]
    pub noreplace: bool,
    pub noreserve: bool,
    pub hugetlb: Option<u64>,
    pub populate: bool,
    /// A file mapping: the descriptor and the offset into the file.
    pub file: Option<(Fd, u64)>,
}

/// One program operation. Serialisable: the live backend sends it to its
/// task agents as it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    Mmap(MmapCall),
    Munmap {
        addr: u64,
        len: u64,
    },
    Mprotect {
        addr: u64,
        len: u64,
        prot: Prot,
    },
    Madvise {
        addr: u64,
        len: u64,
        advice: Advice,
    },
    /// `new_addr: Some` is MREMAP_MAYMOVE|MREMAP_FIXED; `None` is MAYMOVE;
    /// `dontunmap` adds MREMAP_DONTUNMAP.
    Mremap {
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        new_addr: Option<u64>,
        #[serde(default)]
        dontunmap: bool,
    },
    Fork,
    /// _exit(code).
    Exit {
        code: u8,
    },
    /// A store of these bytes at `addr` (faults as a CPU store would).
    WriteMem {
        addr: u64,
        data: Contents,
    },
    /// A load of `len` bytes at `addr`.
    ReadMem {
        addr: u64,
        len: u64,
    },
    Pipe,
    Vmsplice {
        fd: Fd,
        addr: u64,
        len: u64,
    },
    /// read(2) on a pipe.
    ReadFd {
        fd: Fd,
        len: u64,
    },
    /// write(2) on a pipe.
    WriteFd {
        fd: Fd,
        data: Contents,
    },
    Pread {
        fd: Fd,
        offset: u64,
        len: u64,
    },
    Pwrite {
        fd: Fd,
        offset: u64,
        data: Contents,
    },
    /// memfd_create (MFD_HUGETLB with a page size) + ftruncate +
    /// fallocate (not when `sparse`).
    Memfd {
        size: u64,
        hugetlb: Option<u64>,
        sparse: bool,
    },
    /// An unlinked regular file on a disk filesystem, of this size,
    /// allocated with fallocate unless `sparse`; in /tmp, or in the working
    /// directory (`local`). The model does not tell them apart.
    Tmpfile {
        size: u64,
        local: bool,
        sparse: bool,
    },
    IoUringSetup,
    /// IORING_REGISTER_BUFFERS; `(0, 0)` is a sparse slot.
    IoUringRegister {
        ring: Fd,
        bufs: Vec<(u64, u64)>,
    },
    IoUringUnregister {
        ring: Fd,
    },
    /// IORING_OP_WRITE_FIXED: buffer → file.
    IoUringWriteFixed {
        ring: Fd,
        buf_index: u32,
        fd: Fd,
        file_offset: u64,
        addr: u64,
        len: u64,
    },
    /// IORING_OP_READ_FIXED: file → buffer.
    IoUringReadFixed {
        ring: Fd,
        buf_index: u32,
        fd: Fd,
        file_offset: u64,
        addr: u64,
        len: u64,
    },
    /// `echo 4 > /proc/self/clear_refs`.
    ClearSoftDirty,
    /// close(2).
    Close {
        fd: Fd,
    },
    /// Model-only: gup_test's GET/PIN ioctls.
    Gup {
        kind: GupKind,
        addr: u64,
        nr_pages: u64,
        flags: Vec<Foll>,
    },
    /// Model-only: drop what one `Gup` took.
    Unpin {
        pin: PinId,
    },
    /// Take a reference on a task's address space (`mmget`).
    Mmget {
        task: TaskId,
    },
    /// Drop what one `Mmget` took.
    Mmput {
        hold: u64,
    },
    /// fallocate(2): mode 0, or FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE.
    Fallocate {
        fd: Fd,
        offset: u64,
        len: u64,
        punch: bool,
    },
    /// shmget(IPC_PRIVATE, size, IPC_CREAT | 0600 [| SHM_HUGETLB of that
    /// page size]).
    Shmget {
        size: u64,
        hugetlb: Option<u64>,
    },
    /// shmat(id, NULL, 0).
    Shmat {
        shm: u64,
    },
    /// shmdt(addr).
    Shmdt {
        addr: u64,
    },
    /// shmctl(id, IPC_RMID, NULL).
    ShmRmid {
        shm: u64,
    },
    /// Model-only: read the pinned pages' bytes (gup_test READ).
    ReadPinned {
        pin: PinId,
        offset: u64,
        len: u64,
    },
    /// `pwrite()` of `data` at offset `addr` of `/proc/TASK/mem`; returns
    /// the count written.
    ProcMemWrite {
        task: TaskId,
        addr: u64,
        data: Contents,
    },
    /// mbind(addr, len, MPOL_LOCAL, NULL, 0x7ff, MPOL_MF_MOVE).
    MbindLocalMove {
        addr: u64,
        len: u64,
    },
    /// userfaultfd(), UFFDIO_API, UFFDIO_REGISTER (MISSING) over the
    /// range, UFFDIO_COPY of `data` to `addr`, close().
    UffdioCopy {
        addr: u64,
        data: Contents,
    },
    /// `pread()` of `len` bytes at offset `addr` of `/proc/TASK/mem`.
    ProcMemRead {
        task: TaskId,
        addr: u64,
        len: u64,
    },
    /// process_vm_readv (`write` false: `task`'s `remote` → the caller's
    /// `local`) or process_vm_writev (the caller's `local` → `task`'s
    /// `remote`), one iovec each side.
    ProcessVm {
        write: bool,
        task: TaskId,
        remote: u64,
        local: u64,
        len: u64,
    },
    /// pread (`write` false: file → buffer) or pwrite (buffer → file) with
    /// O_DIRECT set on the descriptor for the call.
    DirectIo {
        write: bool,
        fd: Fd,
        file_offset: u64,
        addr: u64,
        len: u64,
    },
}

/// What a successful call returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ret {
    Done,
    Addr(u64),
    Task(TaskId),
    Pipe {
        read: Fd,
        write: Fd,
    },
    Fd(Fd),
    /// A byte count (vmsplice, write).
    Count(u64),
    Data(Contents),
    Pin(PinId),
    /// An `mmget` handle.
    Hold(u64),
    /// A SysV shm segment id.
    Shm(u64),
}

/// Why a call did not succeed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The call returned -1 with this errno (by name: "EINVAL").
    Errno(String),
    /// The task took this signal and died ("SIGBUS").
    Signal(String),
    /// The backend could not carry the call out at all (not a kernel
    /// outcome: a missing feature, a broken environment).
    Backend(String),
    /// The kernel retried without making progress: the model detects it,
    /// the live kernel shows it as a step that does not finish within the
    /// step timeout (its task is then killed).
    Livelock,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Livelock => f.write_str("livelock"),
            Failure::Errno(e) | Failure::Signal(e) => f.write_str(e),
            Failure::Backend(m) => write!(f, "backend error: {m}"),
        }
    }
}

/// The swap device kind a run asks for with the machine knob `swap=`; the
/// model follows it, a live backend creates such a device.
pub use mm::policy::SwapKind;

/// A sysfs-like system setting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Setting {
    Thp { size: ThpSize, mode: ThpMode },
    ThpUseZeroPage(bool),
    HugetlbPool { size: u64, pages: u64, overcommit: Option<u64> },
}

/// Why `configure` failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    UnknownProfile {
        known: Vec<String>,
    },
    /// The `index`-th knob was refused.
    Knob {
        index: usize,
        message: String,
    },
    /// The `index`-th knob is a machine knob whose value this machine does
    /// not have and cannot be given (a CPU without protection keys asked
    /// for `pkeys=on`): the run is skipped with `why`, as for a feature the
    /// backend lacks.
    OtherMachine {
        index: usize,
        why: String,
    },
}

/// What pagemap-style observation shows about one virtual page. A backend
/// returns one whenever a VMA covers the address (`present: false` when no
/// page is there yet) and `None` only when nothing is mapped at all.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct PageObs {
    pub present: bool,
    pub swapped: bool,
    pub pfn: Option<u64>,
    pub zero_page: bool,
    pub thp: bool,
    pub hugetlb: bool,
    /// Mapped by this mm only (pagemap bit 56).
    pub exclusive: bool,
    /// Details a backend may not see: `None` where it cannot.
    /// PageAnonExclusive (live: kpageflags bit 34 of an anon page, where
    /// it is the page's own flag).
    pub anon_exclusive: Option<bool>,
    pub writable: Option<bool>,
    /// An anonymous page (live: KPF_ANON), as opposed to page cache.
    pub anon: Option<bool>,
    /// Mapped by one leaf entry above the PTE level (a PMD-mapped THP, a
    /// hugetlb page; live: PAGEMAP_SCAN's PAGE_IS_HUGE).
    pub pmd_mapped: Option<bool>,
    /// The folio's mapcount (`folio_mapcount()`; live: /proc/kpagecount
    /// where it equals it — small folios and hugetlb).
    pub mapcount: Option<i64>,
    /// This page's own mapcount, `folio_precise_page_mapcount()` (live:
    /// /proc/kpagecount with CONFIG_PAGE_MAPCOUNT=y).
    pub page_mapcount: Option<i64>,
    /// pagemap's PM_SOFT_DIRTY (bit 55), present or not.
    pub soft_dirty: bool,
}

/// Model-only counters of the folio mapped at an address.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct FolioObs {
    pub pfn: u64,
    pub order: u8,
    pub refcount: i64,
    pub mapcount: i64,
    pub pincount: i64,
    pub anon: bool,
    pub anon_exclusive: bool,
}

/// hugetlb pool counters of one size.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize)]
pub struct PoolObs {
    pub total: i64,
    pub free: i64,
    pub resv: i64,
    pub surp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskObs {
    Running,
    /// Ended with _exit(code) (the kernel's wait status, where the backend
    /// can read it; `None` where it cannot).
    Exited(Option<u8>),
    Killed(String),
}

/// One line of what the kernel did, attributed to a task where known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceLine {
    pub task: Option<TaskId>,
    pub text: String,
    /// A line of the kernel log (printk, what /dev/kmsg shows) rather
    /// than a narrated decision; `expect log` judges these.
    pub log: bool,
}

/// A machine that runs scenario programs.
pub trait Backend {
    /// Short name for reports: "model", "live".
    fn name(&self) -> &str;

    /// `None` if the backend can do `f`, otherwise why not.
    fn lacks(&self, f: Feature) -> Option<String>;

    /// Select the kernel rules: a profile name and knob overrides in order.
    /// Called once, before anything else.
    fn configure(&mut self, profile: &str, knobs: &[(String, String)]) -> Result<(), ConfigError>;

    /// The machine knobs ([`mm::policy::MACHINE_KNOBS`]) whose value this
    /// backend's machine fixes, such as whether its CPU has protection
    /// keys: a model run compared with this backend takes them as its
    /// defaults ([`crate::RunOptions::machine`]). None for the model, whose
    /// machine is what its knobs say.
    fn machine(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Change a system setting (THP sizes, hugetlb pools).
    fn set(&mut self, s: &Setting) -> Result<(), String>;

    /// Start a new process.
    fn spawn(&mut self) -> Result<TaskId, String>;

    /// Perform one operation as `task`.
    fn call(&mut self, task: TaskId, call: &Call) -> Result<Ret, Failure>;

    /// The page mapped at `addr` in `task` (no fault is taken). `Ok(None)`:
    /// nothing mapped there.
    fn page(&mut self, task: TaskId, addr: u64) -> Result<Option<PageObs>, String>;

    /// Counters of the folio mapped at `addr` in `task` (model-only).
    fn folio(&mut self, task: TaskId, addr: u64) -> Result<Option<FolioObs>, String>;

    fn pool(&mut self, size: u64) -> Result<PoolObs, String>;

    fn task_state(&mut self, task: TaskId) -> Result<TaskObs, String>;

    /// What the kernel did since the previous call: faults and their kind,
    /// reuse or copy and which function decided, unshare, split, pins,
    /// signals.
    fn take_trace(&mut self) -> Vec<TraceLine>;

    /// The backend's own consistency check after each step (the model's
    /// invariants); `Err` is a failure of the step.
    fn self_check(&mut self) -> Result<(), String>;

    /// The whole state after a step, for pictures and the JSON trace: only
    /// a model can see it, and only when asked (it costs a walk of every
    /// page table), so the default is `None`.
    fn state_view(&mut self) -> Option<mm::view::StateView> {
        None
    }

    /// Whether the runner should narrate: the kernel's decision lines and
    /// the counter deltas of the pages a step touched. Drivers that only
    /// judge outcomes (`cowlab selftest`, the policy lab) turn it off so a
    /// step costs the operation and its checks, not the observations around
    /// it; outcomes, checks and kernel log lines (`expect log`) are the same
    /// either way.
    fn narrates(&self) -> bool {
        true
    }

    /// A count of the pages the backend has handled, which another thread
    /// may read while a step runs (a progress display); `None` for a
    /// backend that cannot say (the live kernel's work is not visible).
    fn work_counter(&self) -> Option<mm::WorkCounter> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_round_trip_through_json_and_a_gibibyte_fill_stays_small() {
        let big = Contents::concat([&Contents::filled(1 << 30, 0xff), &Contents::from_bytes(b"xyz")]);
        let calls = [
            Call::WriteMem { addr: 1 << 21, data: big },
            Call::Mmap(MmapCall {
                addr: Some(0x7000_0000),
                len: 2 << 20,
                prot: Prot { read: true, write: false, exec: true },
                shared: true,
                fixed: false,
                noreplace: false,
                noreserve: true,
                hugetlb: Some(2 << 20),
                populate: false,
                file: Some((Fd(5), 4096)),
            }),
            Call::Madvise { addr: 0, len: 4096, advice: Advice::PopulateWrite },
            Call::Gup { kind: GupKind::PinUserPagesFast, addr: 4096, nr_pages: 2, flags: vec![Foll::Write, Foll::Longterm] },
            Call::Unpin { pin: PinId(3) },
        ];
        for c in calls {
            let json = serde_json::to_string(&c).unwrap();
            assert!(json.len() < 300, "{json}");
            assert_eq!(serde_json::from_str::<Call>(&json).unwrap(), c, "{json}");
        }
    }

    #[test]
    fn contents_read_from_the_wire_are_canonical() {
        let c: Contents = serde_json::from_str(r#"[{"Lit":[7,7]},{"Fill":{"len":40,"byte":7}}]"#).unwrap();
        assert_eq!(c, Contents::filled(42, 7));
    }
}
