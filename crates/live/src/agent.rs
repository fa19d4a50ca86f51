//! Task agents and the zygote: the processes that carry a scenario out.
//!
//! Process tree. cowlab (the *controller*, possibly multi-threaded) starts
//! the *zygote* by re-executing its own binary ([`crate::enter_if_zygote`]),
//! so every later `fork` happens in a clean single-threaded process. The
//! zygote calls `setsid` (its session is exactly the set of processes this
//! run started, and a terminal's Ctrl-C does not reach them), becomes the
//! child subreaper and ignores SIGCHLD (every process that ends is reaped by
//! the kernel, orphans included). A scenario `task` is a fork of the zygote;
//! a scenario `fork` is a fork of the task's agent. Each agent serves one
//! socket: it reads one command, performs it, writes one reply, so steps run
//! in exactly the scenario's order.
//!
//! Signals. An agent installs handlers for SIGBUS and SIGSEGV that write a
//! canned "killed by" frame to the agent's socket, restore the default
//! action, unblock the signal and raise it: the task dies of that very
//! signal inside the handler, so the faulting access is not run again and
//! the kernel handles the fault exactly once, as for a program without a
//! handler (a second fault would log "killed due to inadequate hugepage
//! pool" twice for one task). One difference stays: a handled signal is not
//! "unhandled", so x86's "segfault at …" log line (printed only for
//! unhandled SIGSEGV, `show_signal_msg()`) does not appear. Core dumps are
//! off (not dumpable, RLIMIT_CORE 0) so a 1 GiB mapping does not get
//! written out. SIGPIPE (a write or vmsplice into a pipe without readers)
//! gets the same handler: the Rust runtime ignores SIGPIPE, so the agent
//! must catch it to die of it as a program that left it alone does.
//!
//! Safety. This module holds the crate's `unsafe`: raw-address system calls
//! (mmap, munmap, mprotect, madvise, mremap, vmsplice, io_uring buffers),
//! loads and stores to scenario memory, fork and signal handlers. Every
//! address a scenario touches is checked against `/proc/self/maps` first:
//! an operation that would reach memory the agent itself uses (heap, stack,
//! libraries) is refused, so a scenario can fault or fail but never corrupt
//! the agent.

use crate::proto::{self, Cmd, PageInfo, Reply, Ret};
use io_uring::{opcode, types, IoUring};
use rustix::fd::{AsFd, AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use scenario::ast::{Advice, Prot};
use scenario::backend::{Call, Contents, Fd, MmapCall};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI32, Ordering};

/// The agent's socket, for the signal handler.
static SOCK: AtomicI32 = AtomicI32::new(-1);

const PAGE: u64 = 4096;

extern "C" fn on_fatal(sig: libc::c_int) {
    let fd = SOCK.load(Ordering::Relaxed);
    let f = proto::killed_frame(sig);
    // SAFETY: write(2), signal(2), sigprocmask(2) and raise(3) are
    // async-signal-safe; `f` is static. With the default action restored
    // and the signal unblocked, raise() ends the process here.
    unsafe {
        libc::write(fd, f.as_ptr().cast(), f.len());
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
}

fn install_fatal_handlers() {
    let handlers: [(libc::c_int, extern "C" fn(libc::c_int)); 3] =
        [(libc::SIGBUS, on_fatal), (libc::SIGSEGV, on_fatal), (libc::SIGPIPE, on_fatal)];
    for (sig, handler) in handlers {
        // SAFETY: a plain handler that only makes async-signal-safe calls.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = handler as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
    let _ = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable);
    let lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit with a valid struct.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) };
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn prot_bits(p: Prot) -> i32 {
    let mut v = libc::PROT_NONE;
    if p.read {
        v |= libc::PROT_READ;
    }
    if p.write {
        v |= libc::PROT_WRITE;
    }
    if p.exec {
        v |= libc::PROT_EXEC;
    }
    v
}

/// Address ranges the scenario created, `[start, end)`, disjoint.
#[derive(Default)]
struct Regions(Vec<(u64, u64)>);

impl Regions {
    fn remove(&mut self, s: u64, e: u64) {
        let mut out = Vec::new();
        for &(a, b) in &self.0 {
            if b <= s || a >= e {
                out.push((a, b));
                continue;
            }
            if a < s {
                out.push((a, s));
            }
            if b > e {
                out.push((e, b));
            }
        }
        self.0 = out;
    }
    fn add(&mut self, s: u64, e: u64) {
        self.remove(s, e);
        self.0.push((s, e));
        self.0.sort();
    }
    /// The parts of `[s, e)` not covered by scenario regions.
    fn uncovered(&self, s: u64, e: u64) -> Vec<(u64, u64)> {
        let mut rest = vec![(s, e)];
        for &(a, b) in &self.0 {
            let mut next = Vec::new();
            for (x, y) in rest {
                if b <= x || a >= y {
                    next.push((x, y));
                    continue;
                }
                if x < a {
                    next.push((x, a));
                }
                if y > b {
                    next.push((b, y));
                }
            }
            rest = next;
        }
        rest
    }
}

/// Whether `[addr, addr+len)` reaches memory the agent itself has mapped
/// (anything mapped that the scenario did not create).
fn touches_foreign(regions: &Regions, addr: u64, len: u64) -> bool {
    let end = addr.saturating_add(len.max(1));
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return true;
    };
    for line in maps.lines() {
        let Some((range, _)) = line.split_once(' ') else {
            continue;
        };
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if b <= addr || a >= end {
            continue;
        }
        if !regions.uncovered(a.max(addr), b.min(end)).is_empty() {
            return true;
        }
    }
    false
}

/// The end of the mapping that starts at `addr` (/proc/self/maps): how
/// far a shmat(2) mapped, the segment's size rounded up to its page size.
fn vma_end(addr: u64) -> Option<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let (a, b) = l.split_once(' ')?.0.split_once('-')?;
        (u64::from_str_radix(a, 16).ok()? == addr).then(|| u64::from_str_radix(b, 16).ok()).flatten()
    })
}

fn refuse() -> Reply {
    Reply::Error("refused: the range overlaps memory the task agent itself uses (not created by the scenario)".into())
}

struct Agent {
    sock: OwnedFd,
    regions: Regions,
    rings: BTreeMap<i32, IoUring>,
    zygote: bool,
}

/// Runs the zygote on `sock` (never returns). `journal` is restored if the
/// controller dies without cleaning up; `controller` is its pid.
pub fn zygote_main(sock: OwnedFd, journal: Option<std::path::PathBuf>, controller: i32) -> ! {
    let _ = rustix::process::setsid();
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    // SAFETY: setting dispositions and the signal mask of this
    // single-threaded process.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    pin_to_this_cpu();
    let me = rustix::process::getpid().as_raw_nonzero().get();
    let _ = proto::send(sock.as_fd(), &Reply::Hello(me));
    let mut a = Agent { sock, regions: Regions::default(), rings: BTreeMap::new(), zygote: true };
    a.serve(journal, controller)
}

/// Keeps the zygote, and so every task it forks, on the CPU it runs on
/// now. MADV_PAGEOUT drains only the calling CPU's batch of folios waiting
/// to go on the LRU (mm/madvise.c `madvise_pageout()` → `lru_add_drain()`),
/// and a folio still in another CPU's batch cannot be isolated and is not
/// paged out: whether a page a task just faulted in is reclaimed would
/// depend on where the scheduler ran the two steps
/// (docs/repro/pageout-lru-batch-other-cpu.py). On one CPU it always is.
fn pin_to_this_cpu() {
    // SAFETY: plain system calls on this process with a zeroed, then set,
    // cpu_set_t of the size passed.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Every process of this session except the caller, killed; waits until
/// they are gone (at most ~5 s).
fn kill_session() {
    let me = std::process::id() as i32;
    for _ in 0..100 {
        let mut left = 0;
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                if pid == me || session_of(pid) != Some(me) {
                    continue;
                }
                left += 1;
                // A pidfd pins the process: re-check the session through
                // it, then signal exactly that process.
                let Some(p) = rustix::process::Pid::from_raw(pid) else {
                    continue;
                };
                if let Ok(pfd) = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()) {
                    if session_of(pid) == Some(me) {
                        let _ = rustix::process::pidfd_send_signal(&pfd, rustix::process::Signal::KILL);
                    }
                }
            }
        }
        if left == 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Session id of a process from /proc/PID/stat (zombies count as gone).
pub fn session_of(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    if f.first() == Some(&"Z") || f.first() == Some(&"X") {
        return None;
    }
    f.get(3)?.parse().ok()
}

impl Agent {
    fn serve(&mut self, journal: Option<std::path::PathBuf>, controller: i32) -> ! {
        loop {
            let cmd: Option<Cmd> = proto::recv(self.sock.as_fd()).unwrap_or_default();
            let Some(cmd) = cmd else {
                // The controller is gone. The zygote is the watchdog: it
                // ends the run's processes and puts the settings back.
                if self.zygote {
                    kill_session();
                    if let Some(j) = &journal {
                        crate::settings::restore_journal_of(j, controller);
                    }
                }
                // SAFETY: _exit ends the process without running atexit
                // handlers inherited from the controller.
                unsafe { libc::_exit(0) }
            };
            let reply = match cmd {
                Cmd::Fork => match self.fork() {
                    Some(r) => r,
                    // The new child: its controller sent nothing yet.
                    None => continue,
                },
                Cmd::Shutdown if self.zygote => {
                    kill_session();
                    let _ = proto::send(self.sock.as_fd(), &Reply::Ok(Ret::Done));
                    // SAFETY: as above.
                    unsafe { libc::_exit(0) }
                }
                Cmd::Shutdown => Reply::Error("only the zygote shuts down".into()),
                Cmd::Page { addr } => Reply::Ok(Ret::Page(page_info(addr))),
                Cmd::ProcMem { pid, addr, data, len } if !self.zygote => self.proc_mem(pid, addr, data, len),
                Cmd::ProcessVm { pid, write, remote, local, len } if !self.zygote => self.process_vm(pid, write, remote, local, len),
                Cmd::HoldMm if !self.zygote => hold_mm(),
                Cmd::Op(Call::Exit { code }) => {
                    let _ = proto::send(self.sock.as_fd(), &Reply::Ok(Ret::Done));
                    // SAFETY: as above.
                    unsafe { libc::_exit(code.into()) }
                }
                Cmd::Op(op) if !self.zygote => self.op(op),
                Cmd::Op(_) | Cmd::ProcMem { .. } | Cmd::ProcessVm { .. } | Cmd::HoldMm => {
                    Reply::Error("the zygote runs no scenario operations".into())
                }
            };
            if proto::send(self.sock.as_fd(), &reply).is_err() {
                // SAFETY: as above.
                unsafe { libc::_exit(0) }
            }
        }
    }

    /// fork(2): the child serves the socket that came with the command.
    /// `None` in the child (which has nothing to answer).
    fn fork(&mut self) -> Option<Reply> {
        let child_sock = match proto::recv_fd(self.sock.as_fd()) {
            Ok(s) => s,
            Err(e) => return Some(Reply::Error(format!("no socket for the child: {e}"))),
        };
        // SAFETY: this process is single-threaded (agents and the zygote
        // never start threads; io_uring workers are kernel threads), so
        // the child may do anything after fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Some(Reply::Errno(errno()));
        }
        if pid == 0 {
            let old = std::mem::replace(&mut self.sock, child_sock);
            drop(old);
            SOCK.store(self.sock.as_raw_fd(), Ordering::Relaxed);
            if self.zygote {
                // A fresh task: no scenario state, its own handlers.
                self.zygote = false;
                let _ = rustix::process::set_child_subreaper(None);
                install_fatal_handlers();
            }
            return None;
        }
        drop(child_sock);
        Some(Reply::Ok(Ret::Pid(pid)))
    }

    /// One `pwrite()` or `pread()` of `/proc/PID/mem` (the kernel's
    /// `mem_rw()`: forced GUP on the target's memory), opened for just this
    /// call. The answer is the call's: the count written (short when a page
    /// cannot be got), the bytes read, or the errno (EIO when nothing
    /// moved). Into this agent's own memory only scenario memory is
    /// written; another agent's addresses come from its scenario regions.
    fn proc_mem(&mut self, pid: i32, addr: u64, data: Option<Contents>, len: u64) -> Reply {
        let own = pid == std::process::id() as i32;
        if own && touches_foreign(&self.regions, addr, len) {
            return refuse();
        }
        let Ok(off) = i64::try_from(addr) else { return Reply::Errno(libc::EINVAL) };
        let file = std::fs::OpenOptions::new().read(true).write(data.is_some()).open(format!("/proc/{pid}/mem"));
        let file = match file {
            Ok(f) => f,
            Err(e) => return Reply::Errno(e.raw_os_error().unwrap_or(libc::EIO)),
        };
        let fd = file.as_raw_fd();
        match data {
            Some(d) => {
                let bytes = d.to_vec();
                // SAFETY: a valid buffer of the given length.
                let r = unsafe { libc::pwrite(fd, bytes.as_ptr().cast(), bytes.len(), off as libc::off_t) };
                count_or_errno(r as i64)
            }
            None => {
                let mut buf = vec![0u8; len as usize];
                // SAFETY: a valid buffer of `len` bytes.
                let r = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off as libc::off_t) };
                if r < 0 {
                    return Reply::Errno(errno());
                }
                let mut out = Vec::new();
                for piece in buf[..r as usize].chunks(PAGE as usize) {
                    push(&mut out, piece);
                }
                Reply::Ok(Ret::Data(Contents::concat(&out)))
            }
        }
    }

    fn op(&mut self, call: Call) -> Reply {
        match call {
            Call::Mmap(MmapCall { addr, len, prot, shared, fixed, noreplace, noreserve, hugetlb, populate, file }) => {
                let mut flags = if shared { libc::MAP_SHARED } else { libc::MAP_PRIVATE };
                if file.is_none() {
                    flags |= libc::MAP_ANONYMOUS;
                }
                if fixed && noreplace {
                    // Never replaces anything: EEXIST where something is.
                    flags |= libc::MAP_FIXED_NOREPLACE;
                } else if fixed {
                    flags |= libc::MAP_FIXED;
                    if touches_foreign(&self.regions, addr.unwrap_or(0), len) {
                        return refuse();
                    }
                }
                if noreserve {
                    flags |= libc::MAP_NORESERVE;
                }
                if populate {
                    flags |= libc::MAP_POPULATE;
                }
                if let Some(h) = hugetlb {
                    flags |= libc::MAP_HUGETLB | ((h.trailing_zeros() as i32) << libc::MAP_HUGE_SHIFT);
                }
                let (fd, off) = file.map_or((-1, 0), |(f, o)| (f.0, o));
                // SAFETY: a new mapping, or MAP_FIXED over scenario memory
                // only (checked above); nothing in this process refers to it.
                let r = unsafe {
                    libc::mmap(addr.unwrap_or(0) as *mut libc::c_void, len as usize, prot_bits(prot), flags, fd, off as libc::off_t)
                };
                if r == libc::MAP_FAILED {
                    return Reply::Errno(errno());
                }
                let a = r as u64;
                let unit = hugetlb.unwrap_or(PAGE).max(PAGE);
                self.regions.add(a, a.saturating_add(len.div_ceil(unit).saturating_mul(unit)));
                Reply::Ok(Ret::Addr(a))
            }
            Call::Munmap { addr, len } => {
                if touches_foreign(&self.regions, addr, len) {
                    return refuse();
                }
                // SAFETY: scenario memory only (checked above).
                if unsafe { libc::munmap(addr as *mut libc::c_void, len as usize) } != 0 {
                    return Reply::Errno(errno());
                }
                self.regions.remove(addr, addr.saturating_add(len.div_ceil(PAGE) * PAGE));
                Reply::Ok(Ret::Done)
            }
            Call::Mprotect { addr, len, prot } => {
                if touches_foreign(&self.regions, addr, len) {
                    return refuse();
                }
                // SAFETY: scenario memory only.
                let r = unsafe { libc::mprotect(addr as *mut libc::c_void, len as usize, prot_bits(prot)) };
                done_or_errno(r)
            }
            Call::Madvise { addr, len, advice } => {
                if touches_foreign(&self.regions, addr, len) {
                    return refuse();
                }
                // SAFETY: scenario memory only.
                let r = unsafe { libc::madvise(addr as *mut libc::c_void, len as usize, madv(advice)) };
                done_or_errno(r)
            }
            Call::Mremap { old_addr, old_len, new_len, new_addr, dontunmap } => {
                if touches_foreign(&self.regions, old_addr, old_len) || new_addr.is_some_and(|n| touches_foreign(&self.regions, n, new_len))
                {
                    return refuse();
                }
                let mut flags = libc::MREMAP_MAYMOVE;
                if new_addr.is_some() {
                    flags |= libc::MREMAP_FIXED;
                }
                if dontunmap {
                    flags |= libc::MREMAP_DONTUNMAP;
                }
                // SAFETY: scenario memory only.
                let r = unsafe {
                    libc::mremap(
                        old_addr as *mut libc::c_void,
                        old_len as usize,
                        new_len as usize,
                        flags,
                        new_addr.unwrap_or(0) as *mut libc::c_void,
                    )
                };
                if r == libc::MAP_FAILED {
                    return Reply::Errno(errno());
                }
                let a = r as u64;
                if !dontunmap {
                    self.regions.remove(old_addr, old_addr.saturating_add(old_len));
                }
                self.regions.add(a, a.saturating_add(new_len.div_ceil(PAGE) * PAGE));
                Reply::Ok(Ret::Addr(a))
            }
            Call::Exit { .. } => Reply::Error("exit is handled by the loop".into()),
            // The controller sends fork as its own command and keeps GUP
            // calls (model-only) to itself.
            Call::Fork
            | Call::Gup { .. }
            | Call::Unpin { .. }
            | Call::ReadPinned { .. }
            | Call::Mmget { .. }
            | Call::Mmput { .. }
            | Call::ProcMemWrite { .. }
            | Call::ProcMemRead { .. } => Reply::Error("not an agent operation".into()),
            Call::WriteMem { addr, data } => {
                let len = data.len();
                if touches_foreign(&self.regions, addr, len) {
                    return refuse();
                }
                let mut p = addr;
                for run in data.runs() {
                    // SAFETY: scenario memory or nothing (checked above); a
                    // fault here is the scenario's signal, reported by the
                    // handler.
                    unsafe {
                        match run {
                            Ok((b, l)) => {
                                std::ptr::write_bytes(p as *mut u8, b, l as usize);
                                p += l;
                            }
                            Err(v) => {
                                std::ptr::copy_nonoverlapping(v.as_ptr(), p as *mut u8, v.len());
                                p += v.len() as u64;
                            }
                        }
                    }
                }
                Reply::Ok(Ret::Done)
            }
            Call::ReadMem { addr, len } => {
                if touches_foreign(&self.regions, addr, len) {
                    return refuse();
                }
                let mut out = Vec::new();
                let mut buf = vec![0u8; PAGE as usize];
                let mut off = 0;
                while off < len {
                    // Page-sized pieces (to the next page boundary), each a
                    // fill when it is one byte value.
                    let a = addr + off;
                    let n = (PAGE - a % PAGE).min(len - off) as usize;
                    // SAFETY: scenario memory or nothing (checked above).
                    unsafe { std::ptr::copy_nonoverlapping(a as *const u8, buf.as_mut_ptr(), n) };
                    push(&mut out, &buf[..n]);
                    off += n as u64;
                }
                Reply::Ok(Ret::Data(Contents::concat(&out)))
            }
            Call::Pipe => match rustix::pipe::pipe() {
                Ok((r, w)) => Reply::Ok(Ret::Pipe(r.into_raw_fd(), w.into_raw_fd())),
                Err(e) => Reply::Errno(e.raw_os_error()),
            },
            Call::Vmsplice { fd: Fd(fd), addr, len } => {
                let iov = libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: len as usize };
                // NONBLOCK: a full pipe answers EAGAIN (as the model does)
                // instead of hanging the task.
                // SAFETY: the kernel only reads the described user range.
                let r = unsafe { libc::vmsplice(fd, &iov, 1, libc::SPLICE_F_NONBLOCK) };
                count_or_errno(r as i64)
            }
            Call::ReadFd { fd: Fd(fd), len } => read_fd_nonblocking(fd, len),
            Call::WriteFd { fd: Fd(fd), data } => {
                let bytes = data.to_vec();
                let mut done = 0usize;
                while done < bytes.len() {
                    // SAFETY: a valid buffer of the given length.
                    let r = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
                    if r < 0 {
                        if done == 0 {
                            return Reply::Errno(errno());
                        }
                        break;
                    }
                    done += r as usize;
                }
                Reply::Ok(Ret::Count(done as u64))
            }
            Call::Pread { fd: Fd(fd), offset, len } => {
                let mut out = Vec::new();
                let mut buf = vec![0u8; 1 << 16];
                let mut off = 0u64;
                while off < len {
                    let n = buf.len().min((len - off) as usize);
                    // SAFETY: a valid buffer of at least n bytes.
                    let r = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), n, (offset + off) as libc::off_t) };
                    if r < 0 {
                        return Reply::Errno(errno());
                    }
                    if r == 0 {
                        break;
                    }
                    for piece in buf[..r as usize].chunks(PAGE as usize) {
                        push(&mut out, piece);
                    }
                    off += r as u64;
                }
                Reply::Ok(Ret::Data(Contents::concat(&out)))
            }
            Call::Pwrite { fd: Fd(fd), offset, data } => {
                let bytes = data.to_vec();
                let mut done = 0usize;
                while done < bytes.len() {
                    // SAFETY: a valid buffer.
                    let r = unsafe {
                        libc::pwrite(fd, bytes[done..].as_ptr().cast(), bytes.len() - done, (offset + done as u64) as libc::off_t)
                    };
                    if r < 0 {
                        return Reply::Errno(errno());
                    }
                    done += r as usize;
                }
                Reply::Ok(Ret::Count(done as u64))
            }
            Call::Memfd { size, hugetlb, sparse } => {
                let mut flags = 0u32;
                if let Some(h) = hugetlb {
                    flags = libc::MFD_HUGETLB | (h.trailing_zeros() << libc::MFD_HUGE_SHIFT);
                }
                match rustix::fs::memfd_create("cowlab", rustix::fs::MemfdFlags::from_bits_retain(flags)) {
                    Ok(f) => truncated(f, size, sparse),
                    Err(e) => Reply::Errno(e.raw_os_error()),
                }
            }
            Call::Tmpfile { size, local, sparse } => {
                // The agent's working directory is cowlab's.
                let dir = if local { ".".into() } else { std::env::var("COWLAB_LIVE_TMPDIR").unwrap_or_else(|_| "/tmp".into()) };
                match rustix::fs::open(
                    dir.as_str(),
                    rustix::fs::OFlags::TMPFILE | rustix::fs::OFlags::RDWR,
                    rustix::fs::Mode::from_raw_mode(0o600),
                ) {
                    Ok(f) if on_tmpfs(&f) => Reply::Error(format!(
                        "{dir} is on tmpfs: a scenario's tmpfile is a disk file (set COWLAB_LIVE_TMPDIR, or run from a disk directory)"
                    )),
                    Ok(f) => truncated(f, size, sparse),
                    Err(e) => Reply::Errno(e.raw_os_error()),
                }
            }
            Call::IoUringSetup => match IoUring::new(1) {
                Ok(r) => {
                    let fd = r.as_raw_fd();
                    self.rings.insert(fd, r);
                    Reply::Ok(Ret::Fd(fd))
                }
                Err(e) => Reply::Errno(e.raw_os_error().unwrap_or(libc::EINVAL)),
            },
            Call::IoUringRegister { ring: Fd(ring), bufs } => {
                let Some(r) = self.rings.get(&ring) else {
                    return Reply::Errno(libc::EBADF);
                };
                let iov: Vec<libc::iovec> =
                    bufs.iter().map(|(a, l)| libc::iovec { iov_base: *a as *mut libc::c_void, iov_len: *l as usize }).collect();
                // SAFETY: the kernel pins the described user ranges; this
                // process never frees them behind the kernel's back (the
                // scenario may munmap them, which the kernel handles).
                match unsafe { r.submitter().register_buffers(&iov) } {
                    Ok(()) => Reply::Ok(Ret::Done),
                    Err(e) => Reply::Errno(e.raw_os_error().unwrap_or(libc::EINVAL)),
                }
            }
            Call::IoUringUnregister { ring: Fd(ring) } => match self.rings.get(&ring) {
                Some(r) => match r.submitter().unregister_buffers() {
                    Ok(()) => Reply::Ok(Ret::Done),
                    Err(e) => Reply::Errno(e.raw_os_error().unwrap_or(libc::EINVAL)),
                },
                None => Reply::Errno(libc::EBADF),
            },
            Call::IoUringWriteFixed { ring: Fd(ring), buf_index, fd: Fd(fd), file_offset, addr, len }
            | Call::IoUringReadFixed { ring: Fd(ring), buf_index, fd: Fd(fd), file_offset, addr, len } => {
                let write = matches!(call, Call::IoUringWriteFixed { .. });
                let Some(r) = self.rings.get_mut(&ring) else {
                    return Reply::Errno(libc::EBADF);
                };
                let e = if write {
                    opcode::WriteFixed::new(types::Fd(fd), addr as *const u8, len as u32, buf_index as u16).offset(file_offset).build()
                } else {
                    opcode::ReadFixed::new(types::Fd(fd), addr as *mut u8, len as u32, buf_index as u16).offset(file_offset).build()
                };
                // SAFETY: the buffer is a registered fixed buffer (the
                // kernel checks the range) and we wait for completion.
                if unsafe { r.submission().push(&e) }.is_err() {
                    return Reply::Error("io_uring submission queue full".into());
                }
                if let Err(e) = r.submit_and_wait(1) {
                    return Reply::Errno(e.raw_os_error().unwrap_or(libc::EINVAL));
                }
                match r.completion().next() {
                    Some(c) if c.result() < 0 => Reply::Errno(-c.result()),
                    Some(c) => Reply::Ok(Ret::Count(c.result() as u64)),
                    None => Reply::Error("io_uring: no completion".into()),
                }
            }
            Call::Close { fd: Fd(fd) } => {
                if fd == self.sock.as_raw_fd() {
                    return Reply::Error("refused: that descriptor is the agent's own socket".into());
                }
                // An io_uring instance goes with its mappings of the rings.
                if self.rings.remove(&fd).is_some() {
                    return Reply::Ok(Ret::Done);
                }
                // SAFETY: close(2) of a descriptor a scenario step created.
                match unsafe { libc::close(fd) } {
                    0 => Reply::Ok(Ret::Done),
                    _ => Reply::Errno(errno()),
                }
            }
            Call::MbindLocalMove { addr, len } => {
                if touches_foreign(&self.regions, addr, len) {
                    return refuse();
                }
                const MPOL_LOCAL: libc::c_long = 4;
                const MPOL_MF_MOVE: libc::c_long = 1 << 1;
                // SAFETY: mbind only migrates pages of scenario memory
                // (checked above); the node mask pointer is NULL.
                let r = unsafe {
                    libc::syscall(
                        libc::SYS_mbind,
                        addr,
                        len,
                        MPOL_LOCAL,
                        std::ptr::null::<libc::c_ulong>(),
                        0x7ff as libc::c_ulong,
                        MPOL_MF_MOVE,
                    )
                };
                done_or_errno(r as i32)
            }
            Call::UffdioCopy { addr, data } => {
                if touches_foreign(&self.regions, addr, data.len()) {
                    return refuse();
                }
                uffdio_copy(addr, &data.to_vec())
            }
            Call::DirectIo { write, fd: Fd(fd), file_offset, addr, len } => {
                if touches_foreign(&self.regions, addr, len) {
                    return refuse();
                }
                direct_io(fd, write, file_offset, addr, len)
            }
            Call::ProcessVm { .. } => Reply::Error("process_vm_readv/writev comes as its own command".into()),
            Call::ClearSoftDirty => match std::fs::write("/proc/self/clear_refs", "4") {
                Ok(()) => Reply::Ok(Ret::Done),
                Err(e) => Reply::Errno(e.raw_os_error().unwrap_or(libc::EINVAL)),
            },
            Call::Fallocate { fd: Fd(fd), offset, len, punch } => {
                let mode = if punch { libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE } else { 0 };
                // SAFETY: fallocate(2) on a descriptor number; errors are reported.
                done_or_errno(unsafe { libc::fallocate(fd, mode, offset as libc::off_t, len as libc::off_t) })
            }
            Call::Shmget { size, hugetlb } => {
                let mut flags = libc::IPC_CREAT | 0o600;
                if let Some(h) = hugetlb {
                    // SHM_HUGE_SHIFT: the page size's log2 in bits 26..31.
                    flags |= libc::SHM_HUGETLB | ((h.trailing_zeros() as i32) << 26);
                }
                // SAFETY: shmget(2) with plain integer arguments.
                match unsafe { libc::shmget(libc::IPC_PRIVATE, size as usize, flags) } {
                    id if id >= 0 => Reply::Ok(Ret::Shm(id)),
                    _ => Reply::Errno(errno()),
                }
            }
            Call::Shmat { shm } => {
                // SAFETY: shmat(2) lets the kernel choose the address.
                let a = unsafe { libc::shmat(shm as i32, std::ptr::null(), 0) };
                if a as isize == -1 {
                    Reply::Errno(errno())
                } else {
                    let a = a as u64;
                    self.regions.add(a, vma_end(a).unwrap_or(a + PAGE));
                    Reply::Ok(Ret::Addr(a))
                }
            }
            Call::Shmdt { addr } => {
                let end = vma_end(addr);
                // SAFETY: shmdt(2) of an address a scenario step attached.
                let r = unsafe { libc::shmdt(addr as *const libc::c_void) };
                if let (0, Some(e)) = (r, end) {
                    self.regions.remove(addr, e);
                }
                done_or_errno(r)
            }
            // SAFETY: shmctl(2) IPC_RMID takes no buffer.
            Call::ShmRmid { shm } => done_or_errno(unsafe { libc::shmctl(shm as i32, libc::IPC_RMID, std::ptr::null_mut()) }),
        }
    }
}

/// include/uapi/linux/userfaultfd.h, for x86-64.
const UFFD_API: u64 = 0xAA;
const UFFDIO_API: libc::c_ulong = 0xc018_aa3f;
const UFFDIO_REGISTER: libc::c_ulong = 0xc020_aa00;
const UFFDIO_COPY: libc::c_ulong = 0xc028_aa03;
const UFFDIO_REGISTER_MODE_MISSING: u64 = 1;

/// `struct uffdio_api`.
#[repr(C)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

/// `struct uffdio_register`.
#[repr(C)]
struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

/// `struct uffdio_copy`.
#[repr(C)]
struct UffdioCopy {
    dst: u64,
    src: u64,
    len: u64,
    mode: u64,
    copy: i64,
}

/// mkdirty.c's `test_uffdio_copy()` sequence: a userfaultfd, the API
/// handshake, MISSING registration over the destination, one UFFDIO_COPY
/// from a buffer of `bytes`, close. The first failing call's errno is the
/// answer.
fn uffdio_copy(dst: u64, bytes: &[u8]) -> Reply {
    let len = bytes.len() as u64;
    // SAFETY: userfaultfd(2) takes flags only.
    let fd = unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if fd < 0 {
        return Reply::Errno(errno());
    }
    // SAFETY: a descriptor this function just opened and owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let fd = owned.as_raw_fd();
    let mut api = UffdioApi { api: UFFD_API, features: 0, ioctls: 0 };
    let mut reg = UffdioRegister { start: dst, len, mode: UFFDIO_REGISTER_MODE_MISSING, ioctls: 0 };
    let mut copy = UffdioCopy { dst, src: bytes.as_ptr() as u64, len, mode: 0, copy: 0 };
    // SAFETY: each ioctl gets a correctly sized struct it may read and
    // write; the copy reads `len` bytes of `bytes` and writes only the
    // registered scenario range.
    unsafe {
        if libc::ioctl(fd, UFFDIO_API, &mut api as *mut UffdioApi) < 0
            || libc::ioctl(fd, UFFDIO_REGISTER, &mut reg as *mut UffdioRegister) < 0
            || libc::ioctl(fd, UFFDIO_COPY, &mut copy as *mut UffdioCopy) < 0
        {
            return Reply::Errno(errno());
        }
    }
    Reply::Ok(Ret::Done)
}

impl Agent {
    /// process_vm_readv/writev(2) with one iovec on each side; the local
    /// one must be scenario memory (the kernel writes into it for a read).
    fn process_vm(&self, pid: i32, write: bool, remote: u64, local: u64, len: u64) -> Reply {
        if touches_foreign(&self.regions, local, len) {
            return refuse();
        }
        let l = libc::iovec { iov_base: local as *mut libc::c_void, iov_len: len as usize };
        let r = libc::iovec { iov_base: remote as *mut libc::c_void, iov_len: len as usize };
        // SAFETY: the kernel copies between the described ranges only; the
        // local one is scenario memory (checked above), the remote one is
        // another process's.
        let n = unsafe {
            if write {
                libc::process_vm_writev(pid, &l, 1, &r, 1, 0)
            } else {
                libc::process_vm_readv(pid, &l, 1, &r, 1, 0)
            }
        };
        count_or_errno(n as i64)
    }
}

/// One pread or pwrite with O_DIRECT set on the descriptor for the call
/// (F_SETFL; the file status flags belong to the open file description,
/// which a forked child shares, so they are put back at once — steps run
/// one at a time). One call, as a program makes it: a short count is the
/// kernel's answer.
fn direct_io(fd: i32, write: bool, off: u64, addr: u64, len: u64) -> Reply {
    // SAFETY: fcntl on a descriptor number; errors are reported.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 {
        return Reply::Errno(errno());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_DIRECT) } < 0 {
        return Reply::Errno(errno());
    }
    // SAFETY: the buffer is scenario memory (checked by the caller); the
    // kernel pins it for the I/O or faults on it.
    let r = unsafe {
        if write {
            libc::pwrite(fd, addr as *const libc::c_void, len as usize, off as libc::off_t)
        } else {
            libc::pread(fd, addr as *mut libc::c_void, len as usize, off as libc::off_t)
        }
    };
    let reply = count_or_errno(r as i64);
    // SAFETY: restores the flags read above.
    unsafe { libc::fcntl(fd, libc::F_SETFL, fl) };
    reply
}

/// Stacks for the address-space holders of [`hold_mm`]: in the agent's
/// own data, so starting a holder maps nothing new in the shared mm.
const HOLD_STACK: usize = 64 * 1024;
const MAX_HOLDS: usize = 8;
struct HoldStacks(std::cell::UnsafeCell<[[u8; HOLD_STACK]; MAX_HOLDS]>);
// SAFETY: each stack is handed to exactly one holder process (by index,
// below) and never touched by the agent itself.
unsafe impl Sync for HoldStacks {}
static HOLD_STACKS: HoldStacks = HoldStacks(std::cell::UnsafeCell::new([[0; HOLD_STACK]; MAX_HOLDS]));
static HOLDS_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The body of a holder: it shares the agent's address space, so it runs
/// only raw system calls. It closes its copy of the descriptor table first
/// (clone without CLONE_FILES copies it): a holder keeps the *mm* alive,
/// not the task's pipes, files and io_uring rings, which the task's exit
/// must still close. Then it sleeps until SIGKILL.
extern "C" fn holder_main(_: *mut libc::c_void) -> libc::c_int {
    // SAFETY: raw system calls without memory arguments.
    unsafe {
        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
        loop {
            libc::syscall(libc::SYS_pause);
        }
    }
}

/// `mmget` on the live kernel: a process created with CLONE_VM (and not
/// CLONE_THREAD) takes a reference on `mm_users` (kernel/fork.c,
/// `copy_mm()`), and drops it only when it exits — the one way a program
/// can hold another task's mappings across that task's exit on 6.18
/// (opening /proc/PID/mem takes only `mm_count`). Answers once the
/// holder's descriptor table is empty, so from the next step on it holds
/// nothing but the mm.
fn hold_mm() -> Reply {
    let i = HOLDS_STARTED.fetch_add(1, Ordering::Relaxed);
    if i >= MAX_HOLDS {
        return Reply::Error(format!("a task's address space can be held at most {MAX_HOLDS} times live"));
    }
    // SAFETY: stack `i` is this holder's alone; its top is 16-byte aligned
    // (HOLD_STACK is a multiple of 16 and the array starts aligned enough
    // for the rounding below). The holder runs only raw system calls.
    let pid = unsafe {
        let base = HOLD_STACKS.0.get().cast::<u8>().add(i * HOLD_STACK);
        let top = ((base as usize + HOLD_STACK) & !15) as *mut libc::c_void;
        libc::clone(holder_main, top, libc::CLONE_VM | libc::SIGCHLD, std::ptr::null_mut())
    };
    if pid < 0 {
        return Reply::Errno(errno());
    }
    let dir = format!("/proc/{pid}/fd");
    for _ in 0..1000 {
        match std::fs::read_dir(&dir).map(|mut d| d.next().is_none()) {
            Ok(true) => return Reply::Ok(Ret::Pid(pid)),
            Ok(false) => std::thread::sleep(std::time::Duration::from_millis(1)),
            Err(e) => return Reply::Error(format!("the mm holder {pid} is gone: {e}")),
        }
    }
    Reply::Error(format!("the mm holder {pid} did not close its descriptors"))
}

/// Is this file on tmpfs (shmem), where the model's disk-file rules
/// (dirty tracking, no writable long-term pins of shared mappings) do not
/// hold?
fn on_tmpfs(f: &OwnedFd) -> bool {
    rustix::fs::fstatfs(f).is_ok_and(|s| s.f_type == libc::TMPFS_MAGIC)
}

/// ftruncate + fallocate, as the cow selftest prepares its files (for
/// hugetlb this takes the huge pages now, or fails with ENOSPC); a
/// `sparse` file is only ftruncated, so nothing is allocated until used.
fn truncated(f: OwnedFd, size: u64, sparse: bool) -> Reply {
    if let Err(e) = rustix::fs::ftruncate(&f, size) {
        return Reply::Errno(e.raw_os_error());
    }
    if size > 0 && !sparse {
        if let Err(e) = rustix::fs::fallocate(&f, rustix::fs::FallocateFlags::empty(), 0, size) {
            return Reply::Errno(e.raw_os_error());
        }
    }
    Reply::Ok(Ret::Fd(f.into_raw_fd()))
}

fn done_or_errno(r: i32) -> Reply {
    if r == 0 {
        Reply::Ok(Ret::Done)
    } else {
        Reply::Errno(errno())
    }
}

fn count_or_errno(r: i64) -> Reply {
    if r < 0 {
        Reply::Errno(errno())
    } else {
        Reply::Ok(Ret::Count(r as u64))
    }
}

/// A read(2) loop that never blocks: an empty pipe is EAGAIN, as in the
/// model (a real program would hang; a scenario step must not).
fn read_fd_nonblocking(fd: i32, len: u64) -> Reply {
    // SAFETY: fcntl on a descriptor number; errors are reported.
    let fl = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if fl < 0 {
        return Reply::Errno(errno());
    }
    // SAFETY: as above. Steps are sequential, so no other task is using
    // the shared file description while the flag is set.
    unsafe { libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK) };
    let mut out = Vec::new();
    let mut buf = vec![0u8; PAGE as usize];
    let mut got = 0u64;
    let mut err = None;
    while got < len {
        let n = buf.len().min((len - got) as usize);
        // SAFETY: a valid buffer of at least n bytes.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), n) };
        if r < 0 {
            if got == 0 {
                err = Some(errno());
            }
            break;
        }
        if r == 0 {
            break;
        }
        push(&mut out, &buf[..r as usize]);
        got += r as u64;
    }
    // SAFETY: restores the flags read above.
    unsafe { libc::fcntl(fd, libc::F_SETFL, fl) };
    match err {
        Some(e) => Reply::Errno(e),
        None => Reply::Ok(Ret::Data(Contents::concat(&out))),
    }
}

/// One piece of a read: whole pages become fills in `Contents`'s
/// canonical form, so a 1 GiB read of one byte value stays small; the
/// pieces are joined once at the end.
fn push(out: &mut Vec<Contents>, piece: &[u8]) {
    out.push(Contents::from_bytes(piece));
}

/// The MADV_* number of an advice.
fn madv(a: Advice) -> i32 {
    match a {
        Advice::Dontneed => libc::MADV_DONTNEED,
        Advice::Free => libc::MADV_FREE,
        Advice::Remove => libc::MADV_REMOVE,
        Advice::Dontfork => libc::MADV_DONTFORK,
        Advice::Dofork => libc::MADV_DOFORK,
        Advice::Wipeonfork => libc::MADV_WIPEONFORK,
        Advice::Keeponfork => libc::MADV_KEEPONFORK,
        Advice::Hugepage => libc::MADV_HUGEPAGE,
        Advice::Nohugepage => libc::MADV_NOHUGEPAGE,
        Advice::Collapse => 25,
        Advice::Pageout => libc::MADV_PAGEOUT,
        Advice::Cold => libc::MADV_COLD,
        Advice::PopulateRead => 22,
        Advice::PopulateWrite => 23,
    }
}

fn pread_u64(path: &str, index: u64) -> Option<u64> {
    let f = std::fs::File::open(path).ok()?;
    let mut b = [0u8; 8];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, index * 8).ok()?;
    Some(u64::from_le_bytes(b))
}

/// /proc/self/pagemap of the page at `addr`, kpageflags/kpagecount of
/// its frame, whether a VMA covers it and its PAGEMAP_SCAN categories.
/// Never faults the page in.
fn page_info(addr: u64) -> Option<PageInfo> {
    let pm = pread_u64("/proc/self/pagemap", addr / PAGE)?;
    let mut info = PageInfo { pagemap: pm, ..PageInfo::default() };
    let present = pm >> 63 & 1 == 1;
    if present {
        let pfn = pm & ((1 << 55) - 1);
        if pfn != 0 {
            info.kflags = pread_u64("/proc/kpageflags", pfn).unwrap_or(0);
            info.kcount = pread_u64("/proc/kpagecount", pfn).unwrap_or(0);
        }
    }
    info.vma = present || pm >> 62 & 1 == 1 || vma_covers(addr);
    info.scan = pagemap_scan(addr & !(PAGE - 1));
    Some(info)
}

/// Whether a VMA of this process covers `addr` (/proc/self/maps).
fn vma_covers(addr: u64) -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return false;
    };
    maps.lines()
        .filter_map(|l| l.split_once(' ')?.0.split_once('-'))
        .any(|(a, b)| matches!((u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)), (Ok(a), Ok(b)) if a <= addr && addr < b))
}

/// include/uapi/linux/fs.h: `struct pm_scan_arg` and `struct page_region`.
#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

#[repr(C)]
#[derive(Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// PAGEMAP_SCAN = _IOWR('f', 16, struct pm_scan_arg).
const PAGEMAP_SCAN: u64 = (3 << 30) | ((std::mem::size_of::<PmScanArg>() as u64) << 16) | ((b'f' as u64) << 8) | 16;
/// Every PAGE_IS_* category 6.18 knows (bits 0-8).
const PAGE_IS_ALL: u64 = (1 << 9) - 1;

/// The PAGE_IS_* categories of the page at `addr` (fs/proc/task_mmu.c,
/// `do_pagemap_scan()`): PAGE_IS_HUGE is how user space tells a PMD (or
/// hugetlb) mapping from PTEs. `None` when the ioctl fails (a kernel before
/// 6.7) or reports nothing (no VMA).
fn pagemap_scan(addr: u64) -> Option<u64> {
    let f = std::fs::File::open("/proc/self/pagemap").ok()?;
    let mut region = PageRegion::default();
    let mut arg = PmScanArg {
        size: std::mem::size_of::<PmScanArg>() as u64,
        start: addr,
        end: addr + PAGE,
        vec: &mut region as *mut PageRegion as u64,
        vec_len: 1,
        return_mask: PAGE_IS_ALL,
        ..PmScanArg::default()
    };
    // SAFETY: the argument and the one-entry output vector are valid for
    // the duration of the call; the kernel writes only `region` and the
    // argument's walk_end.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&f), PAGEMAP_SCAN as _, &mut arg as *mut PmScanArg) };
    (r == 1 && region.start <= addr && addr < region.end).then_some(region.categories)
}

/// Takes the zygote's socket from fd 0 (where the controller put it) and
/// puts /dev/null there instead.
pub fn take_stdin_socket() -> Option<OwnedFd> {
    // SAFETY: duplicating fd 0, which the controller made our socket.
    let fd = unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 10) };
    if fd < 0 {
        return None;
    }
    if let Ok(null) = std::fs::File::open("/dev/null") {
        // SAFETY: dup2 onto fd 0, which we no longer need.
        unsafe { libc::dup2(null.as_raw_fd(), 0) };
    }
    // SAFETY: fd is a fresh descriptor we own.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_track_partial_unmaps() {
        let mut r = Regions::default();
        r.add(0x1000, 0x5000);
        r.remove(0x2000, 0x3000);
        assert_eq!(r.0, vec![(0x1000, 0x2000), (0x3000, 0x5000)]);
        assert_eq!(r.uncovered(0x1000, 0x5000), vec![(0x2000, 0x3000)]);
        r.add(0x1800, 0x3800);
        assert_eq!(r.0, vec![(0x1000, 0x1800), (0x1800, 0x3800), (0x3800, 0x5000)]);
        assert!(r.uncovered(0x1000, 0x5000).is_empty());
    }

    #[test]
    fn the_test_process_own_stack_is_foreign() {
        let x = 5u64;
        let a = &x as *const u64 as u64;
        assert!(touches_foreign(&Regions::default(), a, 8));
    }

    #[test]
    fn session_of_self_is_known() {
        assert!(session_of(std::process::id() as i32).is_some());
    }
}
