//! The boundary between the scenario language and whatever executes it.
//!
//! A [`Backend`] is a machine that runs programs: the model kernel today, the
//! host kernel later. The trait is deliberately narrow — the system calls a
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
use serde::Serialize;
use std::fmt;

/// A task as the backend knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TaskId(pub u32);

/// A file descriptor in a task's table (inherited by `fork`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Fd(pub i32);

/// A set of pages taken by one GUP call (model-only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct PinId(pub u64);

/// Capabilities a backend may lack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// get/pin_user_pages[_fast], unpin, reads through a pin (model-only:
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
    /// Overriding policy knobs (`set`, `--set`): only a model can change
    /// the kernel's rules.
    Knobs,
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
            Feature::Knobs => "policy knobs",
        })
    }
}

/// Bytes, stored as runs so that a 1 GiB fill costs nothing.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Contents {
    runs: Vec<Run>,
}

/// One stretch of [`Contents`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Run {
    Fill { byte: u8, len: u64 },
    Bytes(Vec<u8>),
}

impl Contents {
    pub fn fill(byte: u8, len: u64) -> Contents {
        let mut c = Contents::default();
        c.push_fill(byte, len);
        c
    }

    pub fn bytes(b: &[u8]) -> Contents {
        let mut c = Contents::default();
        c.push_bytes(b);
        c
    }

    pub fn push_fill(&mut self, byte: u8, len: u64) {
        if len == 0 {
            return;
        }
        if let Some(Run::Fill { byte: b, len: l }) = self.runs.last_mut() {
            if *b == byte {
                *l += len;
                return;
            }
        }
        self.runs.push(Run::Fill { byte, len });
    }

    pub fn push_bytes(&mut self, b: &[u8]) {
        if b.is_empty() {
            return;
        }
        if let Some(Run::Bytes(v)) = self.runs.last_mut() {
            v.extend_from_slice(b);
            return;
        }
        self.runs.push(Run::Bytes(b.to_vec()));
    }

    /// The runs, in order (adjacent runs may hold equal bytes).
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    pub fn len(&self) -> u64 {
        self.runs
            .iter()
            .map(|r| match r {
                Run::Fill { len, .. } => *len,
                Run::Bytes(v) => v.len() as u64,
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The byte at `off`, if in range.
    pub fn byte_at(&self, mut off: u64) -> Option<u8> {
        for r in &self.runs {
            match r {
                Run::Fill { byte, len } => {
                    if off < *len {
                        return Some(*byte);
                    }
                    off -= len;
                }
                Run::Bytes(v) => {
                    if let Some(b) = usize::try_from(off).ok().and_then(|o| v.get(o)) {
                        return Some(*b);
                    }
                    off -= v.len() as u64;
                }
            }
        }
        None
    }

    /// Offset of the first byte that is not `byte`.
    pub fn first_not(&self, byte: u8) -> Option<u64> {
        let mut off = 0;
        for r in &self.runs {
            match r {
                Run::Fill { byte: b, len } => {
                    if *b != byte {
                        return Some(off);
                    }
                    off += len;
                }
                Run::Bytes(v) => {
                    if let Some(k) = v.iter().position(|x| *x != byte) {
                        return Some(off + k as u64);
                    }
                    off += v.len() as u64;
                }
            }
        }
        None
    }

    /// The contents as maximal (byte, length) runs, whatever mix of fills
    /// and literal bytes built them: two equal byte strings give equal runs.
    pub fn byte_runs(&self) -> Vec<(u8, u64)> {
        let mut out: Vec<(u8, u64)> = Vec::new();
        let mut push = |b: u8, l: u64| match out.last_mut() {
            Some((x, n)) if *x == b => *n += l,
            _ => out.push((b, l)),
        };
        for r in &self.runs {
            match r {
                Run::Fill { byte, len } => push(*byte, *len),
                Run::Bytes(v) => v.iter().for_each(|b| push(*b, 1)),
            }
        }
        out
    }

    /// Offset of the first byte where `prefix` differs from the start of
    /// `self` (`memcmp(self, prefix, prefix.len())`); a `prefix` longer than
    /// `self` differs where `self` ends. `None` when `prefix` is a prefix.
    pub fn first_difference_from(&self, prefix: &Contents) -> Option<u64> {
        let (a, b) = (self.byte_runs(), prefix.byte_runs());
        let mut off = 0;
        let mut ai = a.iter().copied();
        let mut cur = ai.next();
        for (byte, mut len) in b {
            while len > 0 {
                let Some((x, n)) = cur.filter(|(_, n)| *n > 0) else {
                    return Some(off);
                };
                if x != byte {
                    return Some(off);
                }
                let k = n.min(len);
                off += k;
                len -= k;
                cur = if n > k { Some((x, n - k)) } else { ai.next() };
            }
        }
        None
    }

    /// Short human form: `fill 0x00 ×4096`, `bytes 61 62 …`.
    pub fn describe(&self) -> String {
        if self.runs.is_empty() {
            return "(empty)".into();
        }
        let mut parts = Vec::new();
        for r in self.runs.iter().take(4) {
            parts.push(match r {
                Run::Fill { byte, len } => format!("fill 0x{byte:02x} ×{len}"),
                Run::Bytes(v) => {
                    let mut s = "bytes".to_string();
                    for b in v.iter().take(8) {
                        s.push_str(&format!(" {b:02x}"));
                    }
                    if v.len() > 8 {
                        s.push_str(&format!(" … ({} bytes)", v.len()));
                    }
                    s
                }
            });
        }
        if self.runs.len() > 4 {
            parts.push(format!("… ({} runs)", self.runs.len()));
        }
        parts.join(", ")
    }
}

/// An mmap request with everything resolved to numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MmapCall {
    /// A hint, or the address with `fixed`.
    pub addr: Option<u64>,
    pub len: u64,
    pub prot: Prot,
    pub shared: bool,
    pub fixed: bool,
    pub noreserve: bool,
    pub hugetlb: Option<u64>,
    pub populate: bool,
    /// A file mapping: the descriptor and the offset into the file.
    pub file: Option<(Fd, u64)>,
}

/// One program operation.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// `new_addr: Some` is MREMAP_MAYMOVE|MREMAP_FIXED; `None` is MAYMOVE.
    Mremap {
        old_addr: u64,
        old_len: u64,
        new_len: u64,
        new_addr: Option<u64>,
    },
    Fork,
    Exit,
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
    /// memfd_create (MFD_HUGETLB with a page size) + ftruncate + fallocate.
    Memfd {
        size: u64,
        hugetlb: Option<u64>,
    },
    /// An unlinked regular file on a disk filesystem, of this size,
    /// allocated with fallocate; in /tmp, or in the working directory
    /// (`local`). The model does not tell them apart.
    Tmpfile {
        size: u64,
        local: bool,
    },
    IoUringSetup,
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
    /// Model-only: read the pinned pages' bytes (gup_test READ).
    ReadPinned {
        pin: PinId,
        offset: u64,
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
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Errno(e) | Failure::Signal(e) => f.write_str(e),
            Failure::Backend(m) => write!(f, "backend error: {m}"),
        }
    }
}

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
}

/// What pagemap-style observation shows about one virtual page.
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
    /// Model-only details, `None` where the backend cannot see them.
    pub anon_exclusive: Option<bool>,
    pub writable: Option<bool>,
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
    Exited,
    Killed(String),
}

/// One line of what the kernel did, attributed to a task where known.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceLine {
    pub task: Option<TaskId>,
    pub text: String,
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
}

#[cfg(test)]
mod tests {
    use super::Contents;

    #[test]
    fn byte_runs_merge_fills_and_bytes() {
        let mut a = Contents::default();
        a.push_fill(0, 3);
        a.push_bytes(&[0, 0, 1]);
        assert_eq!(a.byte_runs(), vec![(0, 5), (1, 1)]);
    }

    #[test]
    fn a_prefix_compares_byte_by_byte_whatever_the_runs() {
        let mut whole = Contents::fill(1, 4);
        whole.push_bytes(&[2, 2, 3]);
        assert_eq!(whole.first_difference_from(&Contents::bytes(&[1, 1, 1, 1, 2])), None);
        assert_eq!(whole.first_difference_from(&whole), None);
        assert_eq!(whole.first_difference_from(&Contents::fill(1, 5)), Some(4));
        assert_eq!(whole.first_difference_from(&Contents::bytes(&[1, 9])), Some(1));
        assert_eq!(whole.first_difference_from(&Contents::fill(1, 4)), None);
        let mut longer = whole.clone();
        longer.push_fill(3, 1);
        assert_eq!(whole.first_difference_from(&longer), Some(7), "a longer read differs where the snapshot ends");
        assert_eq!(Contents::default().first_difference_from(&Contents::default()), None);
    }
}
