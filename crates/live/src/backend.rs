//! [`LiveBackend`]: the scenario `Backend` trait on the host kernel.
//!
//! The controller side: it owns the zygote, one socket and one pidfd per
//! task, the settings journal and the run lock. Each call is one command
//! to one agent with a time bound; a task that does not answer in time is
//! killed (through its pidfd, so only that very process).

use crate::proto::{self, Cmd, PageInfo, Reply, Ret as R};
use crate::settings::Change;
use crate::settings::{self, Settings};
use crate::swap;
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use scenario::ast::{Advice, ThpMode, ThpSize};
use scenario::backend::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a live run is bounded and where it keeps its state.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Longest a single step may take before its task is killed.
    pub step_timeout: Duration,
    /// Directory for the run lock and the settings journal.
    pub state_dir: PathBuf,
    /// Root of the mm sysfs tree (`/sys/kernel/mm`).
    pub sysfs: PathBuf,
    /// Longest a new run waits for the machine's run lock while another
    /// run holds it (`COWLAB_LIVE_LOCK_WAIT` seconds, default 300).
    pub lock_wait: Duration,
    /// Directory for a run's swap file: on a local disk filesystem
    /// (swapon refuses tmpfs, where `state_dir` usually is).
    pub swap_dir: PathBuf,
}

impl Default for LiveOptions {
    fn default() -> Self {
        let state_dir = std::env::var_os("COWLAB_LIVE_STATE_DIR").map(PathBuf::from).unwrap_or_else(|| {
            if Path::new("/run").is_dir() {
                PathBuf::from("/run/cowlab")
            } else {
                std::env::temp_dir().join("cowlab")
            }
        });
        let lock_wait = std::env::var("COWLAB_LIVE_LOCK_WAIT").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(300);
        let swap_dir = std::env::var_os("COWLAB_LIVE_SWAP_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/var/tmp"));
        LiveOptions {
            step_timeout: Duration::from_secs(10),
            state_dir,
            sysfs: PathBuf::from("/sys/kernel/mm"),
            lock_wait: Duration::from_secs(lock_wait),
            swap_dir,
        }
    }
}

#[derive(Debug)]
struct TaskH {
    pid: i32,
    sock: Option<OwnedFd>,
    pidfd: Option<OwnedFd>,
    state: TaskObs,
}

impl TaskH {
    /// The task has ended (exit, or the signal it reported): wait until it
    /// is really gone, at most until `deadline`. Its reply or "killed by"
    /// frame is written *before* the process dies, and the kernel tears its
    /// address space down (freeing pages, returning hugetlb reservations)
    /// before the pidfd becomes readable: without this wait an observation
    /// right after `exit` would race with that teardown.
    fn end(&mut self, state: TaskObs, deadline: Instant) {
        self.state = state;
        self.sock = None;
        if let Some(p) = &self.pidfd {
            if wait_readable(p, deadline) {
                if let (TaskObs::Exited(_), Some(status)) = (&self.state, exit_status(p, deadline)) {
                    // The kernel's wait status: exited with a code, or a
                    // signal after all.
                    self.state = match (status & 0x7f, (status >> 8) & 0xff) {
                        (0, code) => TaskObs::Exited(Some(code as u8)),
                        (sig, _) => TaskObs::Killed(signal_name(sig)),
                    };
                }
            }
        }
    }
}

/// include/uapi/linux/pidfd.h: `struct pidfd_info` (second version, 72
/// bytes).
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    ids: [u32; 11],
    exit_code: i32,
    coredump_mask: u32,
    spare: u32,
}

/// PIDFD_GET_INFO = _IOWR(0xFF, 11, struct pidfd_info); PIDFD_INFO_EXIT.
const PIDFD_GET_INFO: u64 = (3 << 30) | ((std::mem::size_of::<PidfdInfo>() as u64) << 16) | (0xff << 8) | 11;
const PIDFD_INFO_EXIT: u64 = 1 << 3;

/// The wait status of an ended process, as the kernel keeps it for its
/// pidfd (fs/pidfs.c, `pidfd_info()` with PIDFD_INFO_EXIT, 6.15 on): works
/// for processes that are not our children and were reaped at once. The
/// exit information is stored when the process is released, a moment
/// after the pidfd turns readable: retried until `deadline`.
fn exit_status(pidfd: &OwnedFd, deadline: Instant) -> Option<i32> {
    loop {
        let mut info = PidfdInfo { mask: PIDFD_INFO_EXIT, ..PidfdInfo::default() };
        // SAFETY: a valid pidfd and a correctly sized struct the kernel
        // fills in.
        let r = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_INFO as _, &mut info as *mut PidfdInfo) };
        if r == 0 && info.mask & PIDFD_INFO_EXIT != 0 {
            return Some(info.exit_code);
        }
        if Instant::now() >= deadline || (r != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        s => format!("signal {s}"),
    }
}

/// How often a hugetlb pool came up short and memory was compacted for
/// it, and how often the pool was then filled: per page size, for this
/// process (a selftest run starts many backends).
pub struct Compactions(std::sync::Mutex<BTreeMap<u64, (u64, u64)>>);

impl Compactions {
    fn record(&self, size: u64, filled: bool) {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let e = m.entry(size).or_default();
        e.0 += 1;
        e.1 += u64::from(filled);
    }

    /// Page size → (compactions, pools filled after one).
    pub fn counts(&self) -> BTreeMap<u64, (u64, u64)> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The compactions of this process's live runs.
pub static COMPACTIONS: Compactions = Compactions(std::sync::Mutex::new(BTreeMap::new()));

/// A process sharing a task's address space (CLONE_VM) that holds its
/// `mm_users` for a scenario's `mmget`; `mmput` kills it.
#[derive(Debug)]
struct MmHolder {
    /// The scenario task that took the hold (its exit drops it).
    holder: TaskId,
    pidfd: Option<OwnedFd>,
}

impl MmHolder {
    /// Kills the holder and waits until it is gone: its exit drops the
    /// last reference of an exited task's mm, and the kernel tears the
    /// address space down (`exit_mm()` → `mmput()` → `exit_mmap()`) before
    /// the pidfd turns readable.
    fn release(self, deadline: Instant) {
        if let Some(p) = &self.pidfd {
            let _ = rustix::process::pidfd_send_signal(p, rustix::process::Signal::KILL);
            wait_readable(p, deadline);
        }
    }
}

/// What this machine can do, probed once.
#[derive(Clone, Debug)]
struct Caps {
    hugetlb: Option<String>,
    thp: Option<String>,
    io_uring: Option<String>,
    gup: String,
    soft_dirty: Option<String>,
    /// The CPU has x86 protection keys and the kernel uses them (flags
    /// `pku` and `ospke` in /proc/cpuinfo): PROT_EXEC-only memory gets the
    /// execute-only key (the model's machine knob `pkeys`).
    pkeys: bool,
}

pub struct LiveBackend {
    opts: LiveOptions,
    zygote: Option<Child>,
    zsock: Option<OwnedFd>,
    tasks: BTreeMap<u32, TaskH>,
    next: u32,
    settings: Settings,
    caps: Caps,
    profile: String,
    /// The swap device kind the scenario asks for (`swap=`).
    swap_kind: SwapKind,
    /// Held for the backend's life: one live run at a time per machine.
    _lock: std::fs::File,
    /// What happened at start (a stale journal restored …).
    pub notes: Vec<String>,
    /// /dev/kmsg, read without blocking from where it stood when the run
    /// began (or why it cannot be read).
    kmsg: Result<std::fs::File, String>,
    /// Trace lines of the current step so far.
    trace: Vec<TraceLine>,
    /// A call of the current step has been made (the kernel log before
    /// it belongs to no step).
    in_step: bool,
    /// The `mmget` holds, by handle.
    holds: BTreeMap<u64, MmHolder>,
    next_hold: u64,
}

/// /dev/kmsg positioned after the last record already logged.
fn open_kmsg() -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .map_err(|e| format!("cannot read /dev/kmsg: {e}"))?;
    rustix::fs::seek(&f, rustix::fs::SeekFrom::End(0)).map_err(|e| format!("cannot seek /dev/kmsg: {e}"))?;
    Ok(f)
}

/// The message of one /dev/kmsg record (`PRI,SEQ,TS,FLAGS;TEXT\n` then
/// dictionary lines), if it comes from the kernel (facility 0) rather than
/// from user space writing to /dev/kmsg.
fn kmsg_text(record: &str) -> Option<&str> {
    let (head, rest) = record.split_once(';')?;
    let pri: u32 = head.split(',').next()?.parse().ok()?;
    (pri >> 3 == 0).then(|| rest.split('\n').next().unwrap_or(""))
}

/// The pids a log line names (`PID 123`, `pid 123`, `comm[123]`): the
/// kernel writes the task a message is about in one of these forms.
fn pids_named(text: &str) -> Vec<i32> {
    let mut out = Vec::new();
    let num = |s: &str| -> Option<i32> { s.split(|c: char| !c.is_ascii_digit()).next().filter(|n| !n.is_empty())?.parse().ok() };
    for key in ["PID ", "pid "] {
        for (k, _) in text.match_indices(key) {
            out.extend(num(&text[k + key.len()..]));
        }
    }
    for (k, _) in text.match_indices('[') {
        if k > 0 && !text[..k].ends_with(' ') {
            if let Some(n) = num(&text[k + 1..]).filter(|n| text[k + 1..].starts_with(&format!("{n}]"))) {
                out.push(n);
            }
        }
    }
    out
}

/// `linux-6.18` for the running kernel.
pub fn kernel_profile() -> String {
    let u = rustix::system::uname();
    let rel = u.release().to_string_lossy().into_owned();
    let mut it = rel.split(['.', '-']);
    match (it.next(), it.next()) {
        (Some(a), Some(b)) => format!("linux-{a}.{b}"),
        _ => format!("linux-{rel}"),
    }
}

fn probe(sysfs: &Path) -> Caps {
    let hugetlb =
        if sysfs.join("hugepages").is_dir() { None } else { Some("no hugetlb pools (/sys/kernel/mm/hugepages missing)".to_string()) };
    let thp = if sysfs.join("transparent_hugepage/enabled").exists() {
        None
    } else {
        Some("no THP sysfs (/sys/kernel/mm/transparent_hugepage)".to_string())
    };
    let io_uring = match std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        Ok(s) if s.trim() == "2" => Some("io_uring is disabled (kernel.io_uring_disabled=2)".into()),
        _ => match io_uring::IoUring::new(1) {
            Ok(_) => None,
            Err(e) => Some(format!("io_uring_setup failed: {e}")),
        },
    };
    let gup = if Path::new("/sys/kernel/debug/gup_test").exists() {
        "gup_test exists, but the live backend does not drive it yet".to_string()
    } else {
        "gup_test not available (no /sys/kernel/debug/gup_test: debugfs not mounted or CONFIG_GUP_TEST off)".to_string()
    };
    let soft_dirty = if Path::new("/proc/self/clear_refs").exists() { None } else { Some("no /proc/self/clear_refs".into()) };
    let pkeys = std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| cpu_has_pkeys(&c));
    Caps { hugetlb, thp, io_uring, gup, soft_dirty, pkeys }
}

/// Whether /proc/cpuinfo's first `flags` line has both `pku` (the CPU has
/// protection keys) and `ospke` (the kernel turned them on).
fn cpu_has_pkeys(cpuinfo: &str) -> bool {
    let Some(flags) = cpuinfo.lines().find_map(|l| l.strip_prefix("flags")) else { return false };
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    has("pku") && has("ospke")
}

fn pair() -> Result<(OwnedFd, OwnedFd), String> {
    socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None).map_err(|e| format!("socketpair: {e}"))
}

/// Waits until `fd` is readable or `deadline` passes.
fn wait_readable(fd: &OwnedFd, deadline: Instant) -> bool {
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        let left = deadline - now;
        let ts = rustix::time::Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as i64 };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return true,
        }
    }
}

/// The pid holding a flock on the file with inode `ino`, from /proc/locks
/// (`N: FLOCK  ADVISORY  WRITE PID MAJ:MIN:INODE START END`).
fn flock_holder(ino: u64) -> Option<i32> {
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let inode = f.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
        (f.get(1) == Some(&"FLOCK") && inode == ino).then(|| f.get(4)?.parse().ok()).flatten()
    })
}

/// Who holds the run lock: the pid the kernel names in /proc/locks (a
/// holder may be an older cowlab that does not record itself), else the
/// one written into the lock file; with its command line.
fn lock_holder(lock: &std::fs::File, path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let recorded = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok());
    let ino = rustix::fs::fstat(lock).map(|st| st.st_ino).ok();
    let pid = ino.and_then(flock_holder).or(recorded);
    let Some(pid) = pid else {
        return "a process that did not say who it is".into();
    };
    // The live command line, not the recorded one, when the process is
    // still there (the record could be older than a pid reuse).
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| String::from_utf8_lossy(&b).split('\0').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| if Some(pid) == recorded { text.lines().nth(1).unwrap_or("?").to_string() } else { "?".into() });
    format!("pid {pid} ({cmd})")
}

/// Takes the machine's run lock (one live run at a time: they would change
/// the same sysfs settings). While another run holds it, says once who that
/// is and waits, polling, at most `wait`; then gives up with a message that
/// names the holder. The holder's pid and command line go into the file.
fn take_run_lock(path: &Path, wait: Duration) -> Result<std::fs::File, String> {
    use std::io::Write;
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open the run lock {}: {e}", path.display()))?;
    let start = Instant::now();
    let mut told = false;
    loop {
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::WOULDBLOCK) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("cannot take the run lock {}: {e}", path.display())),
        }
        let holder = lock_holder(&lock, path);
        if start.elapsed() >= wait {
            return Err(format!(
                "gave up after {} s waiting for the live run lock {}: held by {holder} (another live run; \
                 wait for it, or raise COWLAB_LIVE_LOCK_WAIT)",
                wait.as_secs(),
                path.display()
            ));
        }
        if !told {
            eprintln!("cowlab: live: waiting up to {} s for the run lock, held by {holder}", wait.as_secs());
            told = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let cmd = std::fs::read("/proc/self/cmdline")
        .map(|b| String::from_utf8_lossy(&b).split('\0').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let _ = lock.set_len(0);
    let _ = lock.write_all(format!("{}\n{cmd}\n", std::process::id()).as_bytes());
    Ok(lock)
}

/// The errno's name as the scenario language spells it.
pub fn errno_name(e: i32) -> String {
    let n = match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::EOVERFLOW => "EOVERFLOW",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ENOSYS => "ENOSYS",
        _ => return format!("E#{e}"),
    };
    n.to_string()
}

impl LiveBackend {
    /// Starts the zygote. `Err` says in one line why this machine cannot
    /// run live scenarios (not root, …).
    pub fn new(opts: LiveOptions) -> Result<LiveBackend, String> {
        if !rustix::process::geteuid().is_root() {
            return Err("the live backend needs root (pagemap PFNs, kpageflags, sysfs settings)".into());
        }
        // prctl(PR_SET_THP_DISABLE) is inherited across fork and kept
        // across exec, so a flag set on cowlab (by its parent, or by
        // mimalloc when MIMALLOC_ALLOW_THP=0) reaches the zygote and every
        // task: the kernel would then give no THP where the scenario asks
        // for one, a divergence that is not the kernel's rule.
        if rustix::thread::transparent_huge_pages_are_disabled().unwrap_or(false) {
            return Err("THP is disabled for this process (prctl PR_SET_THP_DISABLE, inherited from the parent or set by MIMALLOC_ALLOW_THP=0): the kernel would give no THP".into());
        }
        std::fs::create_dir_all(&opts.state_dir).map_err(|e| format!("cannot create {}: {e}", opts.state_dir.display()))?;
        let lock = take_run_lock(&opts.state_dir.join("lock"), opts.lock_wait)?;
        let journal = opts.state_dir.join("settings.journal");
        let mut notes = Vec::new();
        if let Some(n) = settings::restore_stale(&journal) {
            eprintln!("cowlab: live: {n}");
            notes.push(n);
        }
        let me = std::process::id() as i32;
        let caps = probe(&opts.sysfs);
        let (ours, theirs) = pair()?;
        // /proc/self/exe, not the path: it is this very binary even when a
        // rebuild has replaced (or is just writing) the file meanwhile.
        let child = Command::new("/proc/self/exe")
            .env(crate::ZYGOTE_ENV, me.to_string())
            .env(crate::JOURNAL_ENV, &journal)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the zygote: {e}"))?;
        let mut settings = Settings::new(journal.clone(), me);
        settings.set_zygote(child.id() as i32);
        let be = LiveBackend {
            opts,
            zygote: Some(child),
            zsock: Some(ours),
            tasks: BTreeMap::new(),
            next: 1,
            settings,
            caps,
            profile: kernel_profile(),
            swap_kind: SwapKind::default(),
            _lock: lock,
            notes,
            kmsg: open_kmsg(),
            trace: Vec::new(),
            in_step: false,
            holds: BTreeMap::new(),
            next_hold: 1,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let hello = match &be.zsock {
            Some(z) if wait_readable(z, deadline) => proto::recv::<Reply>(z.as_fd()),
            _ => Ok(None),
        };
        match hello {
            Ok(Some(Reply::Hello(_))) => {}
            other => return Err(format!("the zygote did not start (does this binary call live::enter_if_zygote() first?): {other:?}")),
        }
        if let Some(z) = &be.zsock {
            crate::signals::arm(z.as_raw_fd(), journal);
        }
        Ok(be)
    }

    /// The profile this machine's kernel is (`linux-6.18`).
    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// Sends a command, waits for the reply within the step bound.
    fn request(&mut self, task: TaskId, cmd: &Cmd, fd: Option<&OwnedFd>) -> Result<Reply, Failure> {
        let timeout = self.opts.step_timeout;
        let t = self.tasks.get_mut(&task.0).ok_or_else(|| Failure::Backend(format!("no task {}", task.0)))?;
        let Some(sock) = &t.sock else {
            return Err(Failure::Backend(format!("task {} is gone ({:?})", task.0, t.state)));
        };
        let sent = proto::send(sock.as_fd(), cmd).and_then(|_| match fd {
            Some(f) => proto::send_fd(sock.as_fd(), f.as_fd()),
            None => Ok(()),
        });
        if let Err(e) = sent {
            return Err(Failure::Backend(format!("cannot reach task {}: {e}", task.0)));
        }
        if !wait_readable(sock, Instant::now() + timeout) {
            if let Some(p) = &t.pidfd {
                let _ = rustix::process::pidfd_send_signal(p, rustix::process::Signal::KILL);
            }
            t.state = TaskObs::Killed("SIGKILL".into());
            t.sock = None;
            // A call the kernel does not finish is how a livelock (a fault
            // retried forever) shows from user space.
            if let Cmd::Op(_) | Cmd::ProcMem { .. } = cmd {
                let text = format!("no answer within {} s: the call did not finish (livelock); the task was killed", timeout.as_secs_f64());
                self.trace.push(TraceLine { task: Some(task), text, log: false });
                return Err(Failure::Livelock);
            }
            return Err(Failure::Backend(format!("no answer within {} s; the task was killed", timeout.as_secs_f64())));
        }
        let exit = matches!(cmd, Cmd::Op(Call::Exit { .. }));
        let deadline = Instant::now() + timeout;
        match proto::recv::<Reply>(sock.as_fd()) {
            Ok(Some(Reply::Killed(sig))) => {
                t.end(TaskObs::Killed(sig.clone()), deadline);
                Err(Failure::Signal(sig))
            }
            Ok(Some(r)) => {
                if exit {
                    t.end(TaskObs::Exited(None), deadline);
                }
                Ok(r)
            }
            Ok(None) | Err(_) => {
                t.end(TaskObs::Killed("unknown signal".into()), deadline);
                Err(Failure::Backend(format!("task {} died without saying why", task.0)))
            }
        }
    }

    fn add_task(&mut self, pid: i32, sock: OwnedFd) -> TaskId {
        let id = self.next;
        self.next += 1;
        let pidfd =
            rustix::process::Pid::from_raw(pid).and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
        self.tasks.insert(id, TaskH { pid, sock: Some(sock), pidfd, state: TaskObs::Running });
        TaskId(id)
    }

    fn thp_dir(&self, size: u64) -> PathBuf {
        self.opts.sysfs.join(format!("transparent_hugepage/hugepages-{}kB", size / 1024))
    }

    fn hugetlb_dir(&self, size: u64) -> PathBuf {
        self.opts.sysfs.join(format!("hugepages/hugepages-{}kB", size / 1024))
    }

    /// Moves the kernel log records that arrived since the last read into
    /// the step's trace. The log is the whole machine's: a line that names
    /// a pid (`PID 123`, `comm[123]`) that is none of this run's tasks is
    /// another process's and is left out; a line that names none is kept.
    /// Lines the kernel rate-limited away (`pr_warn_ratelimited()`: 10 per
    /// 5 s per call site) are simply not there.
    fn read_kmsg(&mut self) {
        let Ok(f) = &self.kmsg else { return };
        let mut buf = vec![0u8; 8192];
        loop {
            match rustix::io::read(f, &mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let Some(text) = kmsg_text(&rec) else { continue };
                    let named = pids_named(text);
                    let task = self.tasks.iter().find(|(_, t)| named.contains(&t.pid)).map(|(id, _)| TaskId(*id));
                    if named.is_empty() || task.is_some() {
                        self.trace.push(TraceLine { task, text: text.to_string(), log: true });
                    }
                }
                // Records overwritten before we read them: go on with the
                // next one.
                Err(rustix::io::Errno::PIPE) => continue,
                Err(_) => break,
            }
        }
    }

    /// Swap this run set up, if any.
    fn own_swap(&self) -> bool {
        self.settings.has(|c| matches!(c, Change::SwapFile(_) | Change::Zram(_)))
    }

    /// Why MADV_PAGEOUT cannot swap out here with the device kind the
    /// scenario asks for. Without swap it reclaims nothing anonymous, so the
    /// model's swap-outs would not happen; swap of another kind would take
    /// other do_swap_page() paths.
    fn swap_unavailable(&self) -> Option<String> {
        if self.own_swap() {
            return None;
        }
        let host = swap::active();
        if let Some(s) = host.first() {
            if host.iter().all(|s| s.kind == self.swap_kind) {
                return None;
            }
            return Some(format!(
                "the host swaps to {} ({}), but the scenario asks for swap={}; cowlab leaves swap it did not create alone",
                s.name,
                s.kind.name(),
                self.swap_kind.name()
            ));
        }
        match self.swap_kind {
            SwapKind::Zram => swap::zram_unusable(),
            SwapKind::File if self.opts.swap_dir.is_dir() => None,
            SwapKind::File => Some(format!("no directory {} for a swap file", self.opts.swap_dir.display())),
        }
    }

    /// Before the first MADV_PAGEOUT on a host without swap: create the
    /// run's swap device of the scenario's kind, journaled first.
    fn ensure_swap(&mut self) -> Result<(), String> {
        if self.own_swap() || !swap::active().is_empty() {
            return Ok(());
        }
        if let Some(why) = self.swap_unavailable() {
            return Err(why);
        }
        match self.swap_kind {
            SwapKind::File => {
                let path = swap::file_path(&self.opts.swap_dir, std::process::id() as i32);
                self.settings.record(Change::SwapFile(path.clone()))?;
                swap::create_file(&path)
            }
            SwapKind::Zram => {
                self.settings.record(Change::Zram(swap::ZRAM.into()))?;
                swap::create_zram()
            }
        }
        .map_err(|e| format!("cannot set up swap for the run: {e}"))
    }

    /// Pid of a task (for experiments that look at /proc/PID).
    pub fn pid(&self, task: TaskId) -> Option<i32> {
        self.tasks.get(&task.0).map(|t| t.pid)
    }

    /// Raw pagemap/kpageflags/kpagecount of a page (for experiments).
    pub fn page_info(&mut self, task: TaskId, addr: u64) -> Result<Option<PageInfo>, String> {
        match self.request(task, &Cmd::Page { addr }, None) {
            Ok(Reply::Ok(R::Page(p))) => Ok(p),
            Ok(r) => Err(format!("unexpected reply {r:?}")),
            Err(f) => Err(f.to_string()),
        }
    }

    /// A call's reply as the backend trait returns it.
    fn ret_of(&mut self, r: Reply) -> Result<Ret, Failure> {
        match r {
            Reply::Ok(ret) => Ok(match ret {
                R::Done => Ret::Done,
                R::Addr(a) => Ret::Addr(a),
                R::Pipe(r, w) => Ret::Pipe { read: Fd(r), write: Fd(w) },
                R::Fd(f) => Ret::Fd(Fd(f)),
                R::Count(n) => Ret::Count(n),
                R::Data(d) => Ret::Data(d),
                R::Shm(id) => {
                    // A segment outlives its processes: journaled, so that
                    // every restore path removes it.
                    self.settings.record(Change::ShmSegment(id)).map_err(Failure::Backend)?;
                    Ret::Shm(id as u64)
                }
                R::Pid(_) | R::Page(_) => return Err(Failure::Backend("unexpected reply".into())),
            }),
            Reply::Errno(e) => Err(Failure::Errno(errno_name(e))),
            Reply::Error(m) => Err(Failure::Backend(m)),
            Reply::Killed(s) => Err(Failure::Signal(s)),
            Reply::Hello(_) => Err(Failure::Backend("unexpected hello".into())),
        }
    }

    /// The pid of a task that is still running.
    fn running_pid(&self, task: TaskId) -> Option<i32> {
        self.tasks.get(&task.0).filter(|t| t.state == TaskObs::Running).map(|t| t.pid)
    }

    /// `mmget`: the target's agent starts a CLONE_VM holder (see
    /// `agent::hold_mm`); as in the model, the target must be running
    /// (ESRCH otherwise: an exited task has no mm to take).
    fn mmget(&mut self, holder: TaskId, target: TaskId) -> Result<Ret, Failure> {
        if self.running_pid(holder).is_none() || self.running_pid(target).is_none() {
            return Err(Failure::Errno("ESRCH".into()));
        }
        match self.request(target, &Cmd::HoldMm, None)? {
            Reply::Ok(R::Pid(pid)) => {
                let pidfd = rustix::process::Pid::from_raw(pid)
                    .and_then(|p| rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok());
                let id = self.next_hold;
                self.next_hold += 1;
                self.holds.insert(id, MmHolder { holder, pidfd });
                Ok(Ret::Hold(id))
            }
            r => self.ret_of(r).and_then(|_| Err(Failure::Backend("mmget: no holder pid".into()))),
        }
    }

    /// `mmput`: only the task that took a hold drops it (EINVAL otherwise,
    /// as in the model).
    fn mmput(&mut self, task: TaskId, hold: u64) -> Result<Ret, Failure> {
        match self.holds.get(&hold) {
            Some(h) if h.holder == task => {}
            _ => return Err(Failure::Errno("EINVAL".into())),
        }
        let h = self.holds.remove(&hold).expect("checked above");
        h.release(Instant::now() + self.opts.step_timeout);
        Ok(Ret::Done)
    }

    /// A hold belongs to the task that took it and ends with it.
    fn drop_holds_of_ended_tasks(&mut self) {
        let ended: Vec<u64> = self.holds.iter().filter(|(_, h)| self.running_pid(h.holder).is_none()).map(|(id, _)| *id).collect();
        for id in ended {
            let h = self.holds.remove(&id).expect("listed above");
            h.release(Instant::now() + self.opts.step_timeout);
        }
    }

    fn shutdown(&mut self) {
        crate::signals::disarm();
        if let Some(z) = self.zsock.take() {
            let _ = proto::send(z.as_fd(), &Cmd::Shutdown);
            let _ = wait_readable(&z, Instant::now() + Duration::from_secs(10));
            let _ = proto::recv::<Reply>(z.as_fd());
        }
        for t in self.tasks.values_mut() {
            t.sock = None;
        }
        if let Some(mut c) = self.zygote.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match c.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                    Ok(None) => {
                        let _ = c.kill();
                        let _ = c.wait();
                        break;
                    }
                }
            }
        }
        for e in self.settings.restore() {
            eprintln!("cowlab: live: {e}");
        }
    }
}

impl Drop for LiveBackend {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// PageObs from the raw pagemap entry, kpageflags and kpagecount
/// (include/uapi/linux/kernel-page-flags.h; fs/proc/page.c,
/// `stable_page_flags()` and `get_kpage_count()` in 6.18):
///
/// - kpageflags are the *folio's* flags (the head page's), read from a
///   snapshot of the folio. Bit 34 (KPF_OWNER_2) is PG_owner_2, which on an
///   anon page is PG_anon_exclusive. For a small folio, a hugetlb folio or
///   a PMD-mapped THP that is PageAnonExclusive of the page as the kernel
///   keeps it (on the head); for a tail page of a PTE-mapped THP the
///   kernel keeps the bit per page and kpageflags shows the head's, so
///   `anon_exclusive` is unknown there.
/// - kpagecount is `folio_precise_page_mapcount()` with
///   CONFIG_PAGE_MAPCOUNT=y (this kernel): this page's PTE mappings plus
///   the folio's entire mappings, 0 for the zero pages. That is the folio's
///   mapcount only where every mapping covers every page: small folios and
///   hugetlb. For a THP it is per page, so `mapcount` is unknown there.
///   (Without CONFIG_PAGE_MAPCOUNT the kernel shows the folio's average
///   instead; this backend assumes the config of the kernel it runs on.)
pub fn page_obs(p: &PageInfo) -> Option<PageObs> {
    let present = p.pagemap >> 63 & 1 == 1;
    let swapped = p.pagemap >> 62 & 1 == 1;
    let soft_dirty = p.pagemap >> 55 & 1 == 1;
    if !present && !swapped {
        return p.vma.then(|| PageObs { soft_dirty, ..PageObs::default() });
    }
    let pfn = p.pagemap & ((1 << 55) - 1);
    const KPF_ANON: u64 = 12;
    const KPF_COMPOUND_TAIL: u64 = 16;
    const KPF_HUGE: u64 = 17;
    const KPF_THP: u64 = 22;
    const KPF_ZERO_PAGE: u64 = 24;
    const KPF_OWNER_2: u64 = 34;
    const PAGE_IS_HUGE: u64 = 1 << 6;
    let f = |bit: u64| present && p.kflags >> bit & 1 == 1;
    let pmd_mapped = if present { p.scan.map(|c| c & PAGE_IS_HUGE != 0) } else { None };
    let zero = f(KPF_ZERO_PAGE);
    let thp = f(KPF_THP) && !zero;
    let anon = f(KPF_ANON);
    let per_page_ae = thp && f(KPF_COMPOUND_TAIL) && pmd_mapped != Some(true);
    let count = p.kcount as i64;
    Some(PageObs {
        anon: present.then_some(anon),
        pmd_mapped,
        anon_exclusive: (present && !per_page_ae).then_some(anon && f(KPF_OWNER_2)),
        mapcount: (present && !thp).then_some(count),
        page_mapcount: present.then_some(count),
        present,
        swapped,
        pfn: if present && pfn != 0 { Some(pfn) } else { None },
        zero_page: f(KPF_ZERO_PAGE),
        // The huge zero page also carries KPF_THP; the model calls it a
        // zero page, not a THP.
        thp: f(KPF_THP) && !f(KPF_ZERO_PAGE),
        hugetlb: f(KPF_HUGE),
        exclusive: present && p.pagemap >> 56 & 1 == 1,
        soft_dirty,
        writable: None,
    })
}

impl Backend for LiveBackend {
    fn name(&self) -> &str {
        "live"
    }

    fn lacks(&self, f: Feature) -> Option<String> {
        match f {
            Feature::Gup => Some(self.caps.gup.clone()),
            Feature::FolioCounters => {
                Some("the kernel does not show folio refcounts or pincounts to user space (mapcounts come from /proc/kpagecount)".into())
            }
            Feature::AnonExclusive => None,
            Feature::PteWritable => Some("PTE write bits are not visible to user space".into()),
            Feature::PageFrames => None,
            Feature::HugetlbPool | Feature::Hugetlb => self.caps.hugetlb.clone(),
            Feature::Thp => self.caps.thp.clone(),
            Feature::IoUring => self.caps.io_uring.clone(),
            Feature::Files => None,
            Feature::SoftDirty => self.caps.soft_dirty.clone(),
            Feature::Swap => self.swap_unavailable(),
            Feature::Knobs => Some("the live kernel's rules cannot be changed".into()),
            Feature::KernelLog => self.kmsg.as_ref().err().cloned(),
            Feature::MmHold => None,
        }
    }

    fn configure(&mut self, profile: &str, knobs: &[(String, String)]) -> Result<(), ConfigError> {
        if profile != self.profile {
            return Err(ConfigError::UnknownProfile { known: vec![self.profile.clone()] });
        }
        for (index, (k, v)) in knobs.iter().enumerate() {
            // The machine knobs: which swap device the run has (made for
            // it), and whether the CPU has protection keys (only matched).
            match k.as_str() {
                "swap" => {
                    self.swap_kind = SwapKind::parse(v)
                        .ok_or_else(|| ConfigError::Knob { index, message: "knob `swap` takes one of: file, zram".into() })?;
                }
                "pkeys" => {
                    let want = match v.as_str() {
                        "on" => true,
                        "off" => false,
                        _ => return Err(ConfigError::Knob { index, message: "knob `pkeys` takes one of: on, off".into() }),
                    };
                    if want != self.caps.pkeys {
                        let why = if self.caps.pkeys {
                            "this CPU has protection keys"
                        } else {
                            "this CPU has no protection keys (no `pku`/`ospke` in /proc/cpuinfo)"
                        };
                        return Err(ConfigError::OtherMachine { index, why: why.into() });
                    }
                }
                _ => return Err(ConfigError::Knob { index, message: "the live kernel's rules cannot be changed".into() }),
            }
        }
        Ok(())
    }

    fn machine(&self) -> Vec<(String, String)> {
        vec![("pkeys".into(), if self.caps.pkeys { "on" } else { "off" }.into())]
    }

    fn set(&mut self, s: &Setting) -> Result<(), String> {
        match s {
            Setting::Thp { size, mode } => match size {
                ThpSize::All => {
                    if *mode == ThpMode::Inherit {
                        return Err("`inherit` is a per-size setting".into());
                    }
                    let g = self.opts.sysfs.join("transparent_hugepage/enabled");
                    self.settings.write(&g, &mode.to_string())?;
                    let dirs: Vec<PathBuf> = std::fs::read_dir(self.opts.sysfs.join("transparent_hugepage"))
                        .map_err(|e| e.to_string())?
                        .flatten()
                        .map(|e| e.path().join("enabled"))
                        .filter(|p| {
                            p.exists()
                                && p.parent().and_then(|d| d.file_name()).is_some_and(|n| n.to_string_lossy().starts_with("hugepages-"))
                        })
                        .collect();
                    for d in dirs {
                        self.settings.write(&d, "inherit")?;
                    }
                    Ok(())
                }
                ThpSize::Bytes(b) => {
                    let p = self.thp_dir(*b).join("enabled");
                    if !p.exists() {
                        return Err(format!("no THP size {} on this kernel", scenario::ast::fmt_size(*b)));
                    }
                    self.settings.write(&p, &mode.to_string())
                }
            },
            Setting::ThpUseZeroPage(on) => {
                let p = self.opts.sysfs.join("transparent_hugepage/use_zero_page");
                self.settings.write(&p, if *on { "1" } else { "0" })
            }
            Setting::HugetlbPool { size, pages, overcommit } => {
                let d = self.hugetlb_dir(*size);
                if !d.is_dir() {
                    return Err(format!("no hugetlb size {} on this kernel", scenario::ast::fmt_size(*size)));
                }
                self.settings.write(&d.join("nr_hugepages"), &pages.to_string())?;
                if let Some(o) = overcommit {
                    self.settings.write(&d.join("nr_overcommit_hugepages"), &o.to_string())?;
                }
                let got =
                    || -> u64 { std::fs::read_to_string(d.join("nr_hugepages")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0) };
                if got() >= *pages {
                    return Ok(());
                }
                // Free memory may be there but fragmented: compact it
                // (a trigger, not a setting: nothing to restore) and ask
                // for the pages once more.
                let compacted = std::fs::write("/proc/sys/vm/compact_memory", "1");
                self.settings.write(&d.join("nr_hugepages"), &pages.to_string())?;
                let after = got();
                COMPACTIONS.record(*size, after >= *pages);
                if after >= *pages {
                    return Ok(());
                }
                Err(format!(
                    "the kernel could allocate only {after} of {pages} {} hugetlb pages, even after compacting memory{}",
                    scenario::ast::fmt_size(*size),
                    match compacted {
                        Ok(()) => String::new(),
                        Err(e) => format!(" (which failed: {e})"),
                    }
                ))
            }
        }
    }

    fn spawn(&mut self) -> Result<TaskId, String> {
        let (ours, theirs) = pair()?;
        let z = self.zsock.as_ref().ok_or("the zygote is gone")?;
        proto::send(z.as_fd(), &Cmd::Fork).map_err(|e| e.to_string())?;
        proto::send_fd(z.as_fd(), theirs.as_fd()).map_err(|e| e.to_string())?;
        drop(theirs);
        if !wait_readable(z, Instant::now() + self.opts.step_timeout) {
            return Err("the zygote did not answer".into());
        }
        match proto::recv::<Reply>(z.as_fd()) {
            Ok(Some(Reply::Ok(R::Pid(pid)))) => Ok(self.add_task(pid, ours)),
            other => Err(format!("the zygote could not fork: {other:?}")),
        }
    }

    fn call(&mut self, task: TaskId, call: &Call) -> Result<Ret, Failure> {
        if !self.in_step {
            // What the kernel logged between steps is no step's.
            self.read_kmsg();
            self.trace.clear();
            self.in_step = true;
        }
        if let Call::Fork = call {
            let (ours, theirs) = pair().map_err(Failure::Backend)?;
            return match self.request(task, &Cmd::Fork, Some(&theirs))? {
                Reply::Ok(R::Pid(pid)) => {
                    drop(theirs);
                    Ok(Ret::Task(self.add_task(pid, ours)))
                }
                Reply::Errno(e) => Err(Failure::Errno(errno_name(e))),
                r => Err(Failure::Backend(format!("fork: {r:?}"))),
            };
        }
        if let Call::Gup { .. } | Call::Unpin { .. } | Call::ReadPinned { .. } = call {
            return Err(Failure::Backend("GUP operations need gup_test, which this kernel lacks".into()));
        }
        if let Call::Madvise { advice: Advice::Pageout, .. } = call {
            self.ensure_swap().map_err(Failure::Backend)?;
        }
        // Operations on another task's memory go to the caller's agent with
        // the target resolved to its pid; the pid of an ended task may
        // belong to another process.
        let remote = |this: &Self, target: &TaskId, cmd: &dyn Fn(i32) -> Cmd| match this.running_pid(*target) {
            Some(pid) => Ok(cmd(pid)),
            None => Err(Failure::Errno("ESRCH".into())),
        };
        let r = match call {
            Call::Mmget { task: target } => self.mmget(task, *target),
            Call::Mmput { hold } => self.mmput(task, *hold),
            Call::ProcessVm { write, task: target, remote: addr, local, len } => {
                remote(self, target, &|pid| Cmd::ProcessVm { pid, write: *write, remote: *addr, local: *local, len: *len })
                    .and_then(|cmd| self.request(task, &cmd, None))
                    .and_then(|r| self.ret_of(r))
            }
            Call::ProcMemWrite { task: target, addr, data } => {
                remote(self, target, &|pid| Cmd::ProcMem { pid, addr: *addr, data: Some(data.clone()), len: data.len() })
                    .and_then(|cmd| self.request(task, &cmd, None))
                    .and_then(|r| self.ret_of(r))
            }
            Call::ProcMemRead { task: target, addr, len } => {
                remote(self, target, &|pid| Cmd::ProcMem { pid, addr: *addr, data: None, len: *len })
                    .and_then(|cmd| self.request(task, &cmd, None))
                    .and_then(|r| self.ret_of(r))
            }
            _ => self.request(task, &Cmd::Op(call.clone()), None).and_then(|r| self.ret_of(r)),
        };
        self.drop_holds_of_ended_tasks();
        r
    }

    fn page(&mut self, task: TaskId, addr: u64) -> Result<Option<PageObs>, String> {
        Ok(self.page_info(task, addr)?.as_ref().and_then(page_obs))
    }

    fn folio(&mut self, _task: TaskId, _addr: u64) -> Result<Option<FolioObs>, String> {
        Err("folio counters are model-only".into())
    }

    fn pool(&mut self, size: u64) -> Result<PoolObs, String> {
        let d = self.hugetlb_dir(size);
        // The counters are unsigned longs; resv_hugepages wraps below zero
        // for a while after a reservation owner unmaps a page someone else
        // still holds (docs/divergences.md §4), so read them as the kernel
        // stores them and show them signed, as the model does.
        let rd = |f: &str| -> Result<i64, String> {
            std::fs::read_to_string(d.join(f))
                .map_err(|e| format!("{}: {e}", d.join(f).display()))?
                .trim()
                .parse::<u64>()
                .map(|v| v as i64)
                .map_err(|e| format!("{f}: {e}"))
        };
        Ok(PoolObs { total: rd("nr_hugepages")?, free: rd("free_hugepages")?, resv: rd("resv_hugepages")?, surp: rd("surplus_hugepages")? })
    }

    fn task_state(&mut self, task: TaskId) -> Result<TaskObs, String> {
        self.tasks.get(&task.0).map(|t| t.state.clone()).ok_or_else(|| format!("no task {}", task.0))
    }

    fn take_trace(&mut self) -> Vec<TraceLine> {
        self.read_kmsg();
        self.in_step = false;
        std::mem::take(&mut self.trace)
    }

    fn self_check(&mut self) -> Result<(), String> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Protection keys need both flags, whole words of the `flags` line
    /// (not `pku` inside another flag's name, nor a flag of another line).
    #[test]
    fn protection_keys_need_pku_and_ospke_in_the_flags_line() {
        let cpu = |flags: &str| format!("processor\t: 0\nmodel name\t: pku ospke\nflags\t\t: fpu {flags} sse\nbugs\t\t: spectre\n");
        assert!(cpu_has_pkeys(&cpu("pku ospke")));
        assert!(cpu_has_pkeys(&cpu("ospke avx pku")));
        assert!(!cpu_has_pkeys(&cpu("pku")), "the kernel did not turn them on");
        assert!(!cpu_has_pkeys(&cpu("ospke")));
        assert!(!cpu_has_pkeys(&cpu("xpku ospkex")));
        assert!(!cpu_has_pkeys("model name\t: pku ospke\n"), "no flags line");
    }

    /// A second run waits a bounded time, then names the holder; once the
    /// holder lets go the lock is free again. A private lock file: nothing
    /// of the host is touched.
    #[test]
    fn a_held_run_lock_names_its_holder_and_gives_up_in_time() {
        let dir = std::env::temp_dir().join(format!("cowlab-lock-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("lock");
        let held = take_run_lock(&path, Duration::from_secs(1)).expect("a free lock is taken at once");
        let t0 = Instant::now();
        let e = take_run_lock(&path, Duration::from_millis(300)).expect_err("the lock is held");
        assert!(t0.elapsed() >= Duration::from_millis(300), "gave up too early");
        assert!(e.contains(&format!("held by pid {}", std::process::id())), "{e}");
        assert!(e.contains("gave up after"), "{e}");
        drop(held);
        assert!(take_run_lock(&path, Duration::from_millis(300)).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
