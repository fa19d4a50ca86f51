//! Identifiers, sizes and the outcomes a program can see.

use std::fmt;

/// Base page size of the modelled machine (x86-64).
pub const PAGE_SIZE: u64 = 4096;
/// Size mapped by one PMD leaf (THP, 2 MiB hugetlb).
pub const PMD_SIZE: u64 = 2 << 20;
/// Size mapped by one PUD leaf (1 GiB hugetlb).
pub const PUD_SIZE: u64 = 1 << 30;
/// Pages per PMD-mapped folio.
pub const HPAGE_PMD_NR: u64 = PMD_SIZE / PAGE_SIZE;
/// Highest user address + 1 (47-bit user space, 4-level paging).
pub const TASK_SIZE: u64 = 1 << 47;
/// `GUP_PIN_COUNTING_BIAS`: what one FOLL_PIN adds to a small folio's refcount.
pub const GUP_PIN_COUNTING_BIAS: i64 = 1024;
/// Where the model's top-down mmap allocator starts when no hint is given.
pub const MMAP_BASE: u64 = 0x7f00_0000_0000;

/// `PAGE_ALIGN()` on an `unsigned long`, as system calls apply it to
/// lengths: it wraps to 0 within a page of 2^64, and each call decides what
/// that means (EINVAL, ENOMEM, or nothing to do).
pub fn page_align(x: u64) -> u64 {
    x.wrapping_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

pub fn page_align_down(x: u64) -> u64 {
    x & !(PAGE_SIZE - 1)
}

pub fn align_down(x: u64, a: u64) -> u64 {
    x & !(a - 1)
}

pub fn is_aligned(x: u64, a: u64) -> bool {
    x & (a - 1) == 0
}

/// Process id of a modelled task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid(pub u32);

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {}", self.0)
    }
}

/// A file descriptor in one task's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fd(pub i32);

/// The errno values the modelled system calls return.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Errno {
    EPERM,
    ESRCH,
    EINTR,
    EBADF,
    EAGAIN,
    EACCES,
    ENOMEM,
    EFAULT,
    EBUSY,
    EEXIST,
    EINVAL,
    ENOSPC,
    EOVERFLOW,
    EOPNOTSUPP,
    EPIPE,
    ENXIO,
    EIO,
}

impl Errno {
    pub fn name(self) -> &'static str {
        match self {
            Errno::EPERM => "EPERM",
            Errno::ESRCH => "ESRCH",
            Errno::EINTR => "EINTR",
            Errno::EBADF => "EBADF",
            Errno::EAGAIN => "EAGAIN",
            Errno::EACCES => "EACCES",
            Errno::ENOMEM => "ENOMEM",
            Errno::EFAULT => "EFAULT",
            Errno::EBUSY => "EBUSY",
            Errno::EEXIST => "EEXIST",
            Errno::EINVAL => "EINVAL",
            Errno::ENOSPC => "ENOSPC",
            Errno::EOVERFLOW => "EOVERFLOW",
            Errno::EOPNOTSUPP => "EOPNOTSUPP",
            Errno::EPIPE => "EPIPE",
            Errno::ENXIO => "ENXIO",
            Errno::EIO => "EIO",
        }
    }

    pub fn from_name(s: &str) -> Option<Errno> {
        ALL_ERRNOS.iter().copied().find(|e| e.name().eq_ignore_ascii_case(s))
    }
}

const ALL_ERRNOS: [Errno; 17] = [
    Errno::EPERM,
    Errno::ESRCH,
    Errno::EINTR,
    Errno::EBADF,
    Errno::EAGAIN,
    Errno::EACCES,
    Errno::ENOMEM,
    Errno::EFAULT,
    Errno::EBUSY,
    Errno::EEXIST,
    Errno::EINVAL,
    Errno::ENOSPC,
    Errno::EOVERFLOW,
    Errno::EOPNOTSUPP,
    Errno::EPIPE,
    Errno::ENXIO,
    Errno::EIO,
];

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Signals the model delivers. A fatal one ends the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum Signal {
    SIGBUS,
    SIGSEGV,
    /// A write to a pipe nobody reads (default action: terminate).
    SIGPIPE,
    /// The OOM killer (VM_FAULT_OOM from a user fault).
    SIGKILL,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::SIGBUS => "SIGBUS",
            Signal::SIGSEGV => "SIGSEGV",
            Signal::SIGPIPE => "SIGPIPE",
            Signal::SIGKILL => "SIGKILL",
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a program sees when an operation does not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SysError {
    /// The system call returned -1 with this errno.
    Errno(Errno),
    /// The task took this signal (and, being fatal, is now dead).
    Signal(Signal),
    /// The kernel would retry forever (a policy variant with no way out);
    /// reported after a bounded number of retries instead of looping.
    Livelock,
}

impl From<Errno> for SysError {
    fn from(e: Errno) -> Self {
        SysError::Errno(e)
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SysError::Errno(e) => write!(f, "{e}"),
            SysError::Signal(s) => write!(f, "{s}"),
            SysError::Livelock => f.write_str("livelock"),
        }
    }
}

pub type SysResult<T> = Result<T, SysError>;

/// PROT_* bits of a mapping (VM_READ / VM_WRITE / VM_EXEC).
///
/// On x86 a present user PTE is always readable by the CPU: PROT_WRITE
/// alone or PROT_EXEC alone still maps pages the program can load from,
/// unless a protection key says otherwise (see
/// [`Kernel::access_error`](crate::kernel::Kernel::access_error)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl Prot {
    pub const NONE: Prot = Prot { read: false, write: false, exec: false };
    pub const READ: Prot = Prot { read: true, write: false, exec: false };
    pub const RW: Prot = Prot { read: true, write: true, exec: false };
    pub const WRITE: Prot = Prot { read: false, write: true, exec: false };
    pub const EXEC: Prot = Prot { read: false, write: false, exec: true };
}

impl fmt::Display for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Prot::NONE {
            return f.write_str("none");
        }
        for (on, c) in [(self.read, "r"), (self.write, "w"), (self.exec, "x")] {
            if on {
                f.write_str(c)?;
            }
        }
        Ok(())
    }
}

/// Sizes of hugetlb pages the model knows (x86-64: PMD and PUD leaves).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HugeSize {
    Size2M,
    Size1G,
}

impl HugeSize {
    pub fn bytes(self) -> u64 {
        match self {
            HugeSize::Size2M => PMD_SIZE,
            HugeSize::Size1G => PUD_SIZE,
        }
    }

    pub fn from_bytes(b: u64) -> Option<HugeSize> {
        match b {
            PMD_SIZE => Some(HugeSize::Size2M),
            PUD_SIZE => Some(HugeSize::Size1G),
            _ => None,
        }
    }

    pub fn order(self) -> u8 {
        (self.bytes() / PAGE_SIZE).trailing_zeros() as u8
    }

    pub fn kb(self) -> u64 {
        self.bytes() / 1024
    }
}
