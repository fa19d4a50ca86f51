//! [`LiveBackend`]: the scenario `Backend` trait on the host kernel.
//!
//! The controller side: it owns the zygote, one socket and one pidfd per
//! task, the settings journal and the run lock. Each call is one command
//! to one agent with a time bound; a task that does not answer in time is
//! killed (through its pidfd, so only that very process).

use crate::proto::{self, Cmd, PageInfo, Reply, Ret as R};
use crate::settings::{self, Settings};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fd::{AsFd, AsRawFd, OwnedFd};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use scenario::ast::{ThpMode, ThpSize};
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
        LiveOptions { step_timeout: Duration::from_secs(10), state_dir, sysfs: PathBuf::from("/sys/kernel/mm") }
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
    swap: Option<String>,
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
    /// Held for the backend's life: one live run at a time per machine.
    _lock: std::fs::File,
    /// What happened at start (a stale journal restored …).
    pub notes: Vec<String>,
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
    // Without swap MADV_PAGEOUT reclaims nothing anonymous: the model,
    // which always has swap, would swap out what the kernel keeps.
    let swap = match std::fs::read_to_string("/proc/swaps") {
        Ok(s) if s.lines().count() > 1 => None,
        _ => Some("no swap space (/proc/swaps lists none): MADV_PAGEOUT cannot swap anon pages out".into()),
    };
    Caps { hugetlb, thp, io_uring, gup, soft_dirty, swap }
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
        std::fs::create_dir_all(&opts.state_dir).map_err(|e| format!("cannot create {}: {e}", opts.state_dir.display()))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(opts.state_dir.join("lock"))
            .map_err(|e| format!("cannot open the run lock: {e}"))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| format!("cannot take the run lock: {e}"))?;
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
            _lock: lock,
            notes,
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
            return Err(Failure::Backend(format!("no answer within {} s; the task was killed", timeout.as_secs_f64())));
        }
        let exit = matches!(cmd, Cmd::Op(Call::Exit));
        let deadline = Instant::now() + timeout;
        match proto::recv::<Reply>(sock.as_fd()) {
            Ok(Some(Reply::Killed(sig))) => {
                t.end(TaskObs::Killed(sig.clone()), deadline);
                Err(Failure::Signal(sig))
            }
            Ok(Some(r)) => {
                if exit {
                    t.end(TaskObs::Exited, deadline);
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

/// PageObs from the raw pagemap entry and kpageflags.
pub fn page_obs(p: &PageInfo) -> Option<PageObs> {
    let present = p.pagemap >> 63 & 1 == 1;
    let swapped = p.pagemap >> 62 & 1 == 1;
    if !present && !swapped {
        return None;
    }
    let pfn = p.pagemap & ((1 << 55) - 1);
    const KPF_HUGE: u64 = 17;
    const KPF_THP: u64 = 22;
    const KPF_ZERO_PAGE: u64 = 24;
    let f = |bit: u64| present && p.kflags >> bit & 1 == 1;
    Some(PageObs {
        present,
        swapped,
        pfn: if present && pfn != 0 { Some(pfn) } else { None },
        zero_page: f(KPF_ZERO_PAGE),
        // The huge zero page also carries KPF_THP; the model calls it a
        // zero page, not a THP.
        thp: f(KPF_THP) && !f(KPF_ZERO_PAGE),
        hugetlb: f(KPF_HUGE),
        exclusive: present && p.pagemap >> 56 & 1 == 1,
        anon_exclusive: None,
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
            Feature::FolioCounters => Some("the kernel does not show folio refcount/mapcount/pincount to user space".into()),
            Feature::AnonExclusive => Some("PageAnonExclusive is not visible to user space".into()),
            Feature::PteWritable => Some("PTE write bits are not visible to user space".into()),
            Feature::PageFrames => None,
            Feature::HugetlbPool | Feature::Hugetlb => self.caps.hugetlb.clone(),
            Feature::Thp => self.caps.thp.clone(),
            Feature::IoUring => self.caps.io_uring.clone(),
            Feature::Files => None,
            Feature::SoftDirty => self.caps.soft_dirty.clone(),
            Feature::Swap => self.caps.swap.clone(),
            Feature::Knobs => Some("the live kernel's rules cannot be changed".into()),
            Feature::MmHold => Some(
                "the live agent cannot yet hold another process's mm_users across its exit (it would need a CLONE_VM sibling; \
                 opening /proc/PID/mem takes only mm_count on 6.18)"
                    .into(),
            ),
        }
    }

    fn configure(&mut self, profile: &str, knobs: &[(String, String)]) -> Result<(), ConfigError> {
        if profile != self.profile {
            return Err(ConfigError::UnknownProfile { known: vec![self.profile.clone()] });
        }
        if !knobs.is_empty() {
            return Err(ConfigError::Knob { index: 0, message: "the live kernel's rules cannot be changed".into() });
        }
        Ok(())
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
                let got: u64 = std::fs::read_to_string(d.join("nr_hugepages")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
                if got < *pages {
                    return Err(format!(
                        "the kernel could allocate only {got} of {pages} {} hugetlb pages (memory fragmented?)",
                        scenario::ast::fmt_size(*size)
                    ));
                }
                Ok(())
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
        let r = self.request(task, &Cmd::Op(call.clone()), None)?;
        match r {
            Reply::Ok(ret) => Ok(match ret {
                R::Done => Ret::Done,
                R::Addr(a) => Ret::Addr(a),
                R::Pipe(r, w) => Ret::Pipe { read: Fd(r), write: Fd(w) },
                R::Fd(f) => Ret::Fd(Fd(f)),
                R::Count(n) => Ret::Count(n),
                R::Data(d) => Ret::Data(d),
                R::Pid(_) | R::Page(_) => return Err(Failure::Backend("unexpected reply".into())),
            }),
            Reply::Errno(e) => Err(Failure::Errno(errno_name(e))),
            Reply::Error(m) => Err(Failure::Backend(m)),
            Reply::Killed(s) => Err(Failure::Signal(s)),
            Reply::Hello(_) => Err(Failure::Backend("unexpected hello".into())),
        }
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
        Vec::new()
    }

    fn self_check(&mut self) -> Result<(), String> {
        Ok(())
    }
}
