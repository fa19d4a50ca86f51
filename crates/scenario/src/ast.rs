//! The scenario syntax tree.
//!
//! One [`Item`] per non-empty source line. Everything a later stage may need
//! to point at carries a [`Span`], so the checker and the runner can report
//! errors and expectation results at the exact token.

use crate::diag::Span;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A parsed scenario file.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub items: Vec<Item>,
}

/// A value with the span of the text it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Spanned<T> {
        Spanned { value, span }
    }
}

/// A task or object name as written.
pub type Ident = Spanned<String>;

/// One statement (one line).
#[derive(Clone, Debug)]
pub struct Item {
    /// 1-based source line.
    pub line: usize,
    /// The statement without its comment.
    pub span: Span,
    pub kind: ItemKind,
}

#[derive(Clone, Debug)]
pub enum ItemKind {
    /// `profile linux-6.18`: which kernel's rules the model follows.
    Profile(Spanned<String>),
    /// `set anon_reuse=mapcount`: one policy knob for this scenario.
    Set { knob: Spanned<String>, value: Spanned<String> },
    /// `xfail "REASON"`: the scenario is expected to fail (a known bug or
    /// an old rule it records): a failed run is XFAIL, a passing one XPASS.
    Xfail(Spanned<String>),
    /// `thp 2M always` / `thp all never`.
    Thp { size: Spanned<ThpSize>, mode: ThpMode },
    /// `thp use_zero_page on`.
    ThpZeroPage(bool),
    /// `hugetlb 2M pages=1 [overcommit=N]`.
    Hugetlb { size: Spanned<u64>, pages: u64, overcommit: Option<u64> },
    /// `task P`: a new process.
    Task(Ident),
    /// `P: …`: an operation by a task.
    Step(Step),
    /// `expect …` (or `P: expect …`): a check on the current state.
    Expect(Expectation),
    /// `race {`: the operations up to `}` run concurrently, each as its own
    /// thread of the process that names it;
    /// `cowlab explore` tries every interleaving of their atomic steps,
    /// `cowlab run` runs them in the order written (one interleaving).
    RaceBegin,
    /// `}`: the end of a `race {` block.
    RaceEnd,
    /// `expect … in some interleaving`: after a race, the expectation must
    /// hold at the end of at least one interleaving (plain expectations
    /// must hold at the end of all of them).
    ExpectSome(Expectation),
}

/// Which THP size a `thp` line sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ThpSize {
    All,
    Bytes(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ThpMode {
    Always,
    Madvise,
    Never,
    Inherit,
}

impl fmt::Display for ThpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ThpMode::Always => "always",
            ThpMode::Madvise => "madvise",
            ThpMode::Never => "never",
            ThpMode::Inherit => "inherit",
        })
    }
}

/// `TASK: [NAME =] OP [expect OUTCOME]`.
#[derive(Clone, Debug)]
pub struct Step {
    pub task: Ident,
    /// The name the result is bound to (`A = mmap …`).
    pub bind: Option<Ident>,
    pub op: Op,
    /// Span of the operation keyword.
    pub op_span: Span,
    pub expect: Option<Spanned<StepExpect>>,
}

/// What a step's inline `expect` says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepExpect {
    /// `expect ok`, `expect SIGBUS`, `expect EINVAL`.
    Outcome(Outcome),
    /// `expect any`: do not judge the outcome.
    Any,
    /// `expect fill 0x00` / `expect bytes …` (reads only; implies ok).
    Data(DataSpec),
    /// `expect same as step N` (reads only): the bytes the read at step N
    /// returned (their first LEN bytes when this read is shorter) — a
    /// snapshot taken then, as the selftests' children `memcpy()` their
    /// memory right after fork and `memcmp()` it later.
    SameAs(Spanned<usize>),
    /// `expect count 4K`: the call succeeded and returned this byte count
    /// (vmsplice, write, pwrite, an io_uring CQE's res).
    Count(u64),
    /// `expect one of ok, EFAULT, count 4K`: any one of these.
    OneOf(Vec<StepExpect>),
}

/// How an operation ended.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "name")]
pub enum Outcome {
    Ok,
    Signal(String),
    Errno(String),
    /// The kernel retried without progress (live: the step did not finish
    /// within the step timeout and its task was killed).
    Livelock,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Ok => f.write_str("ok"),
            Outcome::Signal(s) | Outcome::Errno(s) => f.write_str(s),
            Outcome::Livelock => f.write_str("livelock"),
        }
    }
}

/// Signals a scenario can name.
pub const SIGNALS: &[&str] = &["SIGBUS", "SIGSEGV", "SIGKILL", "SIGPIPE"];
/// Errnos a scenario can name.
pub const ERRNOS: &[&str] = &[
    "EPERM",
    "EACCES",
    "ESRCH",
    "EINTR",
    "EBADF",
    "EAGAIN",
    "ENOMEM",
    "EFAULT",
    "EBUSY",
    "EEXIST",
    "EINVAL",
    "ENOSPC",
    "EOVERFLOW",
    "EOPNOTSUPP",
    "EPIPE",
    "ENXIO",
    "EMLINK",
    "EIO",
];

/// Bytes to write, or to expect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataSpec {
    /// `fill 0xff`: every byte (length from the range).
    Fill(u8),
    /// `bytes "abc"` or `bytes 01 02 ff`.
    Bytes(Vec<u8>),
}

impl fmt::Display for DataSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataSpec::Fill(b) => write!(f, "fill 0x{b:02x}"),
            DataSpec::Bytes(v) => {
                f.write_str("bytes")?;
                for b in v.iter().take(16) {
                    write!(f, " {b:02x}")?;
                }
                if v.len() > 16 {
                    write!(f, " … ({} bytes)", v.len())?;
                }
                Ok(())
            }
        }
    }
}

/// `NAME[+OFFSET] [LEN]`: a piece of a named object.
#[derive(Clone, Debug)]
pub struct Range {
    pub name: Ident,
    pub offset: Option<Spanned<u64>>,
    pub len: Option<Spanned<u64>>,
    pub span: Span,
}

impl Range {
    pub fn off(&self) -> u64 {
        self.offset.as_ref().map(|o| o.value).unwrap_or(0)
    }
}

/// An address: a literal or a place in a named region.
#[derive(Clone, Debug)]
pub enum Addr {
    Literal(Spanned<u64>),
    Name { name: Ident, offset: Option<Spanned<u64>> },
}

impl Addr {
    pub fn span(&self) -> Span {
        match self {
            Addr::Literal(l) => l.span,
            Addr::Name { name, offset } => match offset {
                Some(o) => name.span.to(o.span),
                None => name.span,
            },
        }
    }
}

/// PROT_* as written: `none` or the letters `r`, `w`, `x` in that order
/// (`r`, `rw`, `w`, `x`, `rx`, `wx`, `rwx`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prot {
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl fmt::Display for Prot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.read && !self.write && !self.exec {
            return f.write_str("none");
        }
        if self.read {
            f.write_str("r")?;
        }
        if self.write {
            f.write_str("w")?;
        }
        if self.exec {
            f.write_str("x")?;
        }
        Ok(())
    }
}

/// What backs a mapping.
#[derive(Clone, Debug)]
pub enum Backing {
    Anon,
    File(Ident),
}

#[derive(Clone, Debug)]
pub struct MmapArgs {
    pub len: Spanned<u64>,
    pub shared: bool,
    pub backing: Backing,
    pub prot: Prot,
    pub fixed: Option<Addr>,
    /// `fixed_noreplace=ADDR`: the address in `fixed` is
    /// MAP_FIXED_NOREPLACE's (EEXIST where something is mapped).
    pub noreplace: bool,
    pub offset: Option<Spanned<u64>>,
    pub noreserve: bool,
    pub hugetlb: Option<Spanned<u64>>,
    pub populate: bool,
    /// `align=SIZE`: place the mapping at a SIZE-aligned address, the way
    /// the selftests do it (map SIZE more, unmap the unaligned ends).
    pub align: Option<Spanned<u64>>,
}

/// madvise() advice, named like MADV_* without the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Advice {
    Dontneed,
    Free,
    Remove,
    Dontfork,
    Dofork,
    Wipeonfork,
    Keeponfork,
    Hugepage,
    Nohugepage,
    Collapse,
    Pageout,
    Cold,
    PopulateRead,
    PopulateWrite,
}

pub const ADVICES: &[(&str, Advice)] = &[
    ("dontneed", Advice::Dontneed),
    ("free", Advice::Free),
    ("remove", Advice::Remove),
    ("dontfork", Advice::Dontfork),
    ("dofork", Advice::Dofork),
    ("wipeonfork", Advice::Wipeonfork),
    ("keeponfork", Advice::Keeponfork),
    ("hugepage", Advice::Hugepage),
    ("nohugepage", Advice::Nohugepage),
    ("collapse", Advice::Collapse),
    ("pageout", Advice::Pageout),
    ("cold", Advice::Cold),
    ("populate_read", Advice::PopulateRead),
    ("populate_write", Advice::PopulateWrite),
];

impl fmt::Display for Advice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = ADVICES.iter().find(|(_, a)| a == self).map(|(n, _)| *n).unwrap_or("?");
        f.write_str(name)
    }
}

/// The four gup_test-style entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GupKind {
    GetUserPages,
    GetUserPagesFast,
    PinUserPages,
    PinUserPagesFast,
}

impl GupKind {
    pub fn name(self) -> &'static str {
        match self {
            GupKind::GetUserPages => "get_user_pages",
            GupKind::GetUserPagesFast => "get_user_pages_fast",
            GupKind::PinUserPages => "pin_user_pages",
            GupKind::PinUserPagesFast => "pin_user_pages_fast",
        }
    }
    pub fn is_pin(self) -> bool {
        matches!(self, GupKind::PinUserPages | GupKind::PinUserPagesFast)
    }
    pub fn is_fast(self) -> bool {
        matches!(self, GupKind::GetUserPagesFast | GupKind::PinUserPagesFast)
    }
}

/// FOLL_* flags a scenario may pass (FOLL_GET/FOLL_PIN come from the entry
/// point's name, as in the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Foll {
    Write,
    Longterm,
    Force,
}

pub const FOLL_FLAGS: &[(&str, Foll)] = &[("FOLL_WRITE", Foll::Write), ("FOLL_LONGTERM", Foll::Longterm), ("FOLL_FORCE", Foll::Force)];

/// One iovec of an io_uring buffer registration.
#[derive(Clone, Debug)]
pub enum IoVec {
    /// A piece of a region.
    Range(Range),
    /// `sparse`: a NULL base with length 0, an empty slot of the table.
    Sparse(Span),
}

/// Which end of a pipe `close` closes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PipeEnd {
    Read,
    Write,
}

impl fmt::Display for PipeEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PipeEnd::Read => "read",
            PipeEnd::Write => "write",
        })
    }
}

/// What an operation does.
#[derive(Clone, Debug)]
pub enum Op {
    Mmap(MmapArgs),
    Munmap(Range),
    Mprotect(Range, Prot),
    Madvise(Range, Spanned<Advice>),
    /// `mremap A[+off] [OLDLEN] NEWLEN [to ADDR] [dontunmap]`.
    Mremap {
        old: Range,
        new_len: Spanned<u64>,
        to: Option<Addr>,
        /// MREMAP_DONTUNMAP: the source stays mapped, emptied.
        dontunmap: bool,
    },
    Fork(Ident),
    /// `exit [CODE]`: _exit(CODE), 0 by default.
    Exit(u8),
    /// `write A[+off] [LEN] fill 0xff` (memory, a file, a pipe).
    Write(Range, DataSpec),
    /// `read A[+off] [LEN]` (memory, a pipe, a file, or through a pin).
    Read(Range),
    Pipe,
    /// `vmsplice p A[+off] [LEN]`.
    Vmsplice {
        pipe: Ident,
        range: Range,
    },
    /// `memfd SIZE [hugetlb=SIZE] [sparse]`: memfd_create (MFD_HUGETLB),
    /// ftruncate and, unless `sparse`, fallocate.
    Memfd(Spanned<u64>, Option<Spanned<u64>>, bool),
    /// `tmpfile SIZE [local] [sparse]`: an unlinked disk file (O_TMPFILE)
    /// in /tmp, or with `local` in the working directory (gup_longterm's
    /// "local tmpfile"); ftruncate and, unless `sparse`, fallocate.
    Tmpfile(Spanned<u64>, bool, bool),
    IoUring,
    /// `io_uring register r A 4K, sparse, B` (the list may be empty).
    IoUringRegister {
        ring: Ident,
        bufs: Vec<IoVec>,
    },
    IoUringUnregister(Ident),
    /// `io_uring write_fixed r A[+off] [LEN] to F[+off]` (write = memory →
    /// file; read_fixed is file → memory, written with `from`).
    IoUringFixed {
        ring: Ident,
        write: bool,
        buf: Range,
        file: Ident,
        file_off: Option<Spanned<u64>>,
    },
    ClearSoftDirty,
    Gup {
        kind: GupKind,
        range: Range,
        flags: Vec<Spanned<Foll>>,
    },
    Unpin(Ident),
    /// `close p read|write` (one end of a pipe), `close F`, `close r`:
    /// close(2) of the task's file descriptor.
    Close {
        name: Ident,
        end: Option<Spanned<PipeEnd>>,
    },
    /// `H = mmget T`: take a reference on task T's address space
    /// (`mm_users`), so that T's exit leaves its mappings until `mmput H`.
    Mmget(Ident),
    /// `mmput H`: drop it; the last user of an exited task's mm tears it down.
    Mmput(Ident),
    /// `fallocate F[+OFF] LEN [punch_hole]`: fallocate(2) mode 0 (allocate,
    /// the size grows), or FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE.
    Fallocate {
        file: Range,
        punch: bool,
    },
    /// `S = shmget SIZE [hugetlb=SIZE]`: a SysV shared memory segment
    /// (IPC_PRIVATE; SHM_HUGETLB of that page size).
    Shmget {
        size: Spanned<u64>,
        hugetlb: Option<Spanned<u64>>,
    },
    /// `A = shmat S`: attach the segment where the kernel chooses.
    Shmat(Ident),
    /// `shmdt A`: detach the segment attached at region A.
    Shmdt(Ident),
    /// `shmctl S rmid`: IPC_RMID.
    ShmRmid(Ident),
    /// `proc_mem_write T A[+off] [LEN] fill 0x01`: write(2) of these bytes
    /// to `/proc/T/mem` at the address of `A` in task T (T may be the task
    /// itself: `/proc/self/mem`): forced GUP, so read-only private memory
    /// is written too. Succeeds with the byte count.
    ProcMemWrite {
        target: Ident,
        range: Range,
        data: DataSpec,
    },
    /// `proc_mem_read T A[+off] [LEN]`: read(2) of `/proc/T/mem` (forced
    /// GUP: PROT_NONE and write-only memory read too).
    ProcMemRead {
        target: Ident,
        range: Range,
    },
    /// `mbind A[+off] [LEN] local move`: mbind(MPOL_LOCAL, no nodes,
    /// MPOL_MF_MOVE), which migrates the range's unshared pages.
    MbindLocalMove(Range),
    /// `uffdio_copy A[+off] [LEN] fill 0x01`: a userfaultfd registered
    /// (MISSING) over the range, UFFDIO_COPY of these bytes into it, closed.
    UffdioCopy(Range, DataSpec),
    /// `process_vm_readv T A[+off] [LEN] into B[+off]` (task T's A → this
    /// task's B) and `process_vm_writev T A[+off] [LEN] from B[+off]` (this
    /// task's B → T's A): `remote` names T's memory, `local` the caller's.
    ProcessVm {
        write: bool,
        target: Ident,
        remote: Range,
        local: Ident,
        local_off: Option<Spanned<u64>>,
    },
    /// `odirect pread A[+off] [LEN] from F[+off]` (file → buffer) and
    /// `odirect pwrite A[+off] [LEN] to F[+off]` (buffer → file), through a
    /// descriptor with O_DIRECT set.
    DirectIo {
        write: bool,
        buf: Range,
        file: Ident,
        file_off: Option<Spanned<u64>>,
    },
}

/// The operations a `race { }` block can run: those whose kernel path is
/// a step machine (mm's GUP-fast, fork, zap, write fault, collapse,
/// swap-out) — returns the reason another one cannot be raced.
pub fn race_step_machine(op: &Op) -> Result<(), &'static str> {
    match op {
        Op::Fork(_) | Op::Write(..) => Ok(()),
        Op::Gup { kind: GupKind::GetUserPagesFast | GupKind::PinUserPagesFast, .. } => Ok(()),
        Op::Madvise(_, a) if matches!(a.value, Advice::Dontneed | Advice::Pageout | Advice::Collapse) => Ok(()),
        Op::Madvise(..) => Err("only madvise dontneed, pageout and collapse are step machines"),
        Op::Gup { .. } => Err("slow GUP runs under mmap_lock as one step; race its fast variant"),
        _ => Err("its kernel path is not split into steps"),
    }
}

impl Op {
    /// The operation's keyword, as written.
    pub fn keyword(&self) -> &'static str {
        match self {
            Op::Mmap(_) => "mmap",
            Op::Munmap(_) => "munmap",
            Op::Mprotect(..) => "mprotect",
            Op::Madvise(..) => "madvise",
            Op::Mremap { .. } => "mremap",
            Op::Fork(_) => "fork",
            Op::Exit(_) => "exit",
            Op::Write(..) => "write",
            Op::Read(_) => "read",
            Op::Pipe => "pipe",
            Op::Vmsplice { .. } => "vmsplice",
            Op::Memfd(..) => "memfd",
            Op::Tmpfile(..) => "tmpfile",
            Op::IoUring => "io_uring",
            Op::IoUringRegister { .. } => "io_uring register",
            Op::IoUringUnregister(_) => "io_uring unregister",
            Op::IoUringFixed { write: true, .. } => "io_uring write_fixed",
            Op::IoUringFixed { write: false, .. } => "io_uring read_fixed",
            Op::ClearSoftDirty => "clear_soft_dirty",
            Op::Gup { kind, .. } => kind.name(),
            Op::Unpin(_) => "unpin",
            Op::Close { .. } => "close",
            Op::Mmget(_) => "mmget",
            Op::Mmput(_) => "mmput",
            Op::Fallocate { .. } => "fallocate",
            Op::Shmget { .. } => "shmget",
            Op::Shmat(_) => "shmat",
            Op::Shmdt(_) => "shmdt",
            Op::ShmRmid(_) => "shmctl",
            Op::ProcMemWrite { .. } => "proc_mem_write",
            Op::ProcMemRead { .. } => "proc_mem_read",
            Op::MbindLocalMove(_) => "mbind",
            Op::UffdioCopy(..) => "uffdio_copy",
            Op::ProcessVm { write: false, .. } => "process_vm_readv",
            Op::ProcessVm { write: true, .. } => "process_vm_writev",
            Op::DirectIo { write: false, .. } => "odirect pread",
            Op::DirectIo { write: true, .. } => "odirect pwrite",
        }
    }

    /// Operations a real program cannot perform (the kernel's gup_test
    /// module aside): a backend that cannot do them skips the scenario.
    pub fn is_model_only(&self) -> bool {
        matches!(self, Op::Gup { .. } | Op::Unpin(_))
    }
}

/// A place in one task's address space: `A+4K in P`, or a range of
/// places `A..A+2M in P` (every page from the first offset up to, not
/// including, the second).
#[derive(Clone, Debug)]
pub struct Loc {
    pub name: Ident,
    pub offset: Option<Spanned<u64>>,
    /// `..A+END`: the end offset of a range.
    pub end: Option<Spanned<u64>>,
    /// The task; from `in P` or from a `P:` prefix.
    pub task: Ident,
    pub span: Span,
}

impl Loc {
    pub fn off(&self) -> u64 {
        self.offset.as_ref().map(|o| o.value).unwrap_or(0)
    }
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name.value)?;
        if let Some(o) = &self.offset {
            write!(f, "+{}", fmt_size(o.value))?;
        }
        if let Some(e) = &self.end {
            write!(f, "..{}+{}", self.name.value, fmt_size(e.value))?;
        }
        write!(f, " in {}", self.task.value)
    }
}

/// Page-table-level facts (pagemap-observable, except `anon_exclusive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PagePred {
    Present,
    Swapped,
    ZeroPage,
    Thp,
    Hugetlb,
    /// pagemap's "exclusively mapped" bit (mapped by this mm only).
    Exclusive,
    /// PageAnonExclusive: model-only.
    AnonExclusive,
    /// The PTE/PMD allows writes without a fault: model-only.
    Writable,
    /// A VMA covers the place (whether or not a page is there).
    Mapped,
    /// An anonymous page (KPF_ANON).
    Anon,
    /// A page-cache page (present, neither anonymous nor a zero page).
    Pagecache,
    /// Mapped by one leaf entry above the PTE level: a PMD-mapped THP, a
    /// hugetlb page (PAGEMAP_SCAN's PAGE_IS_HUGE).
    PmdMapped,
    /// Present and mapped by a PTE.
    PteMapped,
    /// pagemap's soft-dirty bit (PM_SOFT_DIRTY, bit 55): the entry, or
    /// the VMA (VM_SOFTDIRTY), was written since the last
    /// `clear_soft_dirty`; holes of a soft-dirty VMA show it too.
    SoftDirty,
}

pub const PAGE_PREDS: &[(&str, PagePred)] = &[
    ("present", PagePred::Present),
    ("swapped", PagePred::Swapped),
    ("zero_page", PagePred::ZeroPage),
    ("thp", PagePred::Thp),
    ("hugetlb", PagePred::Hugetlb),
    ("exclusive", PagePred::Exclusive),
    ("anon_exclusive", PagePred::AnonExclusive),
    ("writable", PagePred::Writable),
    ("mapped", PagePred::Mapped),
    ("anon", PagePred::Anon),
    ("pagecache", PagePred::Pagecache),
    ("pmd_mapped", PagePred::PmdMapped),
    ("pte_mapped", PagePred::PteMapped),
    ("soft_dirty", PagePred::SoftDirty),
];

impl fmt::Display for PagePred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = PAGE_PREDS.iter().find(|(_, p)| p == self).map(|(n, _)| *n).unwrap_or("?");
        f.write_str(n)
    }
}

/// Folio and page counters (refcount and pincount are model-only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Counter {
    Refcount,
    /// The folio's mapcount (`folio_mapcount()`).
    Mapcount,
    Pincount,
    /// This page's own mapcount (`folio_precise_page_mapcount()`, what
    /// /proc/kpagecount shows): for a large folio, the PTEs mapping this
    /// subpage plus the folio's PMD/PUD mappings.
    PageMapcount,
}

pub const COUNTERS: &[(&str, Counter)] = &[
    ("refcount", Counter::Refcount),
    ("mapcount", Counter::Mapcount),
    ("pincount", Counter::Pincount),
    ("page_mapcount", Counter::PageMapcount),
];

impl fmt::Display for Counter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Counter::Refcount => "refcount",
            Counter::Mapcount => "mapcount",
            Counter::Pincount => "pincount",
            Counter::PageMapcount => "page_mapcount",
        })
    }
}

/// hugetlb pool counters of one size (like /sys/kernel/mm/hugepages/*).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolField {
    Total,
    Free,
    Resv,
    Surp,
}

pub const POOL_FIELDS: &[(&str, PoolField)] =
    &[("total", PoolField::Total), ("free", PoolField::Free), ("resv", PoolField::Resv), ("surp", PoolField::Surp)];

impl fmt::Display for PoolField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PoolField::Total => "total",
            PoolField::Free => "free",
            PoolField::Resv => "resv",
            PoolField::Surp => "surp",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Cmp {
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Cmp {
    pub fn holds(self, a: i64, b: i64) -> bool {
        match self {
            Cmp::Eq => a == b,
            Cmp::Ne => a != b,
            Cmp::Lt => a < b,
            Cmp::Le => a <= b,
            Cmp::Gt => a > b,
            Cmp::Ge => a >= b,
        }
    }
}

impl fmt::Display for Cmp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cmp::Eq => "==",
            Cmp::Ne => "!=",
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Gt => ">",
            Cmp::Ge => ">=",
        })
    }
}

/// The state a task is expected to be in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TaskStateExp {
    Running,
    /// `exited` (any status) or `exited CODE`.
    Exited(Option<u8>),
    Killed(String),
}

/// A standalone expectation.
#[derive(Clone, Debug)]
pub enum Expectation {
    /// `expect A in P same page as A in C` (negated: `different page from`).
    SamePage { a: Loc, b: Loc, same: bool },
    /// `expect A in P changed since step 3` / `unchanged since step 3`.
    Since { loc: Loc, step: Spanned<usize>, changed: bool },
    /// `expect A in P zero_page`, `expect A in P not present`.
    Page { loc: Loc, pred: Spanned<PagePred>, holds: bool },
    /// `expect A in P refcount == 1025`.
    Counter { loc: Loc, counter: Spanned<Counter>, cmp: Cmp, value: i64 },
    /// `expect hugetlb 2M free == 0`.
    Pool { size: Spanned<u64>, field: PoolField, cmp: Cmp, value: i64 },
    /// `expect C killed SIGBUS`, `expect C running`.
    Task { task: Ident, state: TaskStateExp },
    /// `expect log "TEXT"`: a kernel log line the previous step produced
    /// contains TEXT; `expect no log ["TEXT"]`: none does (none at all
    /// without TEXT).
    Log { text: Option<Spanned<String>>, present: bool },
}

/// Human form of a byte count: `4K`, `2M`, `1G`, or plain bytes.
pub fn fmt_size(n: u64) -> String {
    Size(n).to_string()
}

/// A byte count written as [`fmt_size`] writes it, for use in format
/// arguments: scenario generators write thousands of sizes into their
/// text, and this writes each straight into it, with no `String` of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const G: u64 = 1 << 30;
        const M: u64 = 1 << 20;
        const K: u64 = 1 << 10;
        let n = self.0;
        let (mut v, unit) = if n != 0 && n.is_multiple_of(G) {
            (n / G, Some(b'G'))
        } else if n != 0 && n.is_multiple_of(M) {
            (n / M, Some(b'M'))
        } else if n != 0 && n.is_multiple_of(K) {
            (n / K, Some(b'K'))
        } else {
            (n, None)
        };
        // Written right to left into a buffer and out in one piece: this
        // runs for most lines of every generated test, where a nested
        // `write!` per size cost more than the rest of the line. Like
        // that `write!`, it pays no heed to width or fill.
        let mut buf = [0u8; 21];
        let mut at = buf.len();
        if let Some(u) = unit {
            at -= 1;
            buf[at] = u;
        }
        loop {
            at -= 1;
            buf[at] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        f.write_str(std::str::from_utf8(&buf[at..]).map_err(|_| std::fmt::Error)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_written_in_the_largest_unit_that_divides_them() {
        let cases = [
            (0, "0"),
            (1, "1"),
            (1023, "1023"),
            (4096, "4K"),
            (12 << 10, "12K"),
            (2 << 20, "2M"),
            (2044 << 10, "2044K"),
            (1 << 30, "1G"),
            (3 << 30, "3G"),
            ((1 << 30) + 4096, "1048580K"),
            (u64::MAX, "18446744073709551615"),
            (u64::MAX - (1 << 30) + 1, "17179869183G"),
        ];
        for (n, text) in cases {
            assert_eq!(fmt_size(n), text, "{n}");
            assert_eq!(format!("<{}>", Size(n)), format!("<{text}>"));
        }
    }
}
