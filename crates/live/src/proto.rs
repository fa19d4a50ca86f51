//! What cowlab and a task agent say to each other: commands (a scenario
//! [`Call`] as it is, fork, a page query) and replies.
//!
//! One stream socket per agent. Every message is a frame: a little-endian
//! `u32` length, then that many bytes of JSON. `Fork` is followed by one
//! byte carrying the new agent's socket as SCM_RIGHTS. The agent answers
//! every command with exactly one [`Reply`], except when a fatal signal ends
//! it mid-command: then its signal handler writes the canned
//! [`Reply::Killed`] frame ([`killed_frame`]) and the socket reaches EOF.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use scenario::backend::{Call, Contents};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Cmd {
    /// Perform one operation: the scenario's own call, every name
    /// resolved to a number (never `Fork`, which is the command below,
    /// nor the model-only GUP calls).
    Op(Call),
    /// fork(2); the child serves the socket that follows as SCM_RIGHTS.
    Fork,
    /// What pagemap and kpageflags say about the page at `addr`.
    Page { addr: u64 },
    /// `pwrite()` of `data` (or, without data, `pread()` of `len` bytes) at
    /// offset `addr` of `/proc/PID/mem`: a scenario's `proc_mem_write` /
    /// `proc_mem_read`, its target task resolved to its pid by the
    /// controller (an agent knows no other task).
    ProcMem { pid: i32, addr: u64, data: Option<Contents>, len: u64 },
    /// process_vm_readv (`write` false) or process_vm_writev of one range
    /// each side with the process `pid` (the scenario's target task,
    /// resolved to its pid by the controller).
    ProcessVm { pid: i32, write: bool, remote: u64, local: u64, len: u64 },
    /// Start a process that shares this task's address space (CLONE_VM,
    /// not CLONE_THREAD) and does nothing until killed: it holds the mm's
    /// `mm_users`, so this task's exit leaves its mappings in place.
    /// Answered with the holder's pid.
    HoldMm,
    /// (zygote only) kill every process of the session and exit.
    Shutdown,
}

/// What the kernel says about one virtual page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageInfo {
    /// The raw /proc/self/pagemap entry.
    pub pagemap: u64,
    /// /proc/kpageflags of the PFN (0 if not present).
    pub kflags: u64,
    /// /proc/kpagecount of the PFN (0 if not present): on this 6.18
    /// kernel (CONFIG_PAGE_MAPCOUNT=y) `folio_precise_page_mapcount()`,
    /// the mappings of this very page — its PTEs plus the folio's entire
    /// (PMD/PUD) mappings — not the folio's total; 0 for the zero pages.
    pub kcount: u64,
    /// A VMA covers the address (/proc/self/maps).
    #[serde(default)]
    pub vma: bool,
    /// PAGEMAP_SCAN's PAGE_IS_* categories of the page (`None`: the ioctl
    /// failed or found nothing).
    #[serde(default)]
    pub scan: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Ret {
    Done,
    Addr(u64),
    Pid(i32),
    Pipe(i32, i32),
    Fd(i32),
    Count(u64),
    Data(Contents),
    Page(Option<PageInfo>),
    /// A SysV shm segment id.
    Shm(i32),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Reply {
    Ok(Ret),
    /// The call failed with this errno number.
    Errno(i32),
    /// The agent could not carry the command out (not a kernel outcome).
    Error(String),
    /// Written by the agent's signal handler: the task takes this signal.
    Killed(String),
    /// First message of the zygote.
    Hello(i32),
}

/// The frame the signal handler writes; JSON by hand because a handler
/// cannot allocate. A test checks it equals what serde would write.
pub fn killed_frame(sig: i32) -> &'static [u8] {
    match sig {
        libc::SIGBUS => b"\x13\x00\x00\x00{\"Killed\":\"SIGBUS\"}",
        libc::SIGPIPE => b"\x14\x00\x00\x00{\"Killed\":\"SIGPIPE\"}",
        _ => b"\x14\x00\x00\x00{\"Killed\":\"SIGSEGV\"}",
    }
}

/// Writes all of `buf`, retrying on EINTR.
pub fn write_all(fd: BorrowedFd<'_>, mut buf: &[u8]) -> std::io::Result<()> {
    while !buf.is_empty() {
        match rustix::io::write(fd, buf) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on EOF before the first.
pub fn read_exact(fd: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

pub fn send<T: Serialize>(fd: BorrowedFd<'_>, msg: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(msg).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(body.len() + 4);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&body);
    write_all(fd, &frame)
}

/// Reads one frame; `Ok(None)` at EOF.
pub fn recv<T: for<'de> Deserialize<'de>>(fd: BorrowedFd<'_>) -> std::io::Result<Option<T>> {
    let mut len = [0u8; 4];
    if !read_exact(fd, &mut len)? {
        return Ok(None);
    }
    let n = u32::from_le_bytes(len) as usize;
    let mut body = vec![0u8; n];
    if n > 0 && !read_exact(fd, &mut body)? {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    serde_json::from_slice(&body).map(Some).map_err(std::io::Error::other)
}

/// Passes a descriptor over a unix socket (one byte carries it).
pub fn send_fd(sock: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> std::io::Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    if !cmsg.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(std::io::Error::other("SCM_RIGHTS does not fit"));
    }
    sendmsg(sock, &[IoSlice::new(b"F")], &mut cmsg, SendFlags::empty())?;
    Ok(())
}

/// Receives a descriptor sent with [`send_fd`].
pub fn recv_fd(sock: BorrowedFd<'_>) -> std::io::Result<OwnedFd> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut b = [0u8; 1];
    let r = recvmsg(sock, &mut [IoSliceMut::new(&mut b)], &mut cmsg, RecvFlags::CMSG_CLOEXEC)?;
    if r.bytes == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            if let Some(fd) = fds.next() {
                return Ok(fd);
            }
        }
    }
    Err(std::io::Error::other("no descriptor arrived"))
}

/// Borrow helper.
pub fn b(fd: &OwnedFd) -> BorrowedFd<'_> {
    fd.as_fd()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canned_killed_frames_are_what_serde_writes() {
        for (sig, name) in [(libc::SIGBUS, "SIGBUS"), (libc::SIGSEGV, "SIGSEGV"), (libc::SIGPIPE, "SIGPIPE")] {
            let body = serde_json::to_vec(&Reply::Killed(name.into())).unwrap();
            let mut frame = (body.len() as u32).to_le_bytes().to_vec();
            frame.extend_from_slice(&body);
            assert_eq!(killed_frame(sig), &frame[..], "{name}");
        }
    }

    #[test]
    fn frames_round_trip_over_a_socketpair() {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        let (a, bb) = socketpair(AddressFamily::UNIX, SocketType::STREAM, SocketFlags::CLOEXEC, None).unwrap();
        let d = Contents::concat([&Contents::filled(1 << 30, 0xff), &Contents::from_bytes(&[1, 2, 3])]);
        send(b(&a), &Ret::Data(d.clone())).unwrap();
        match recv::<Ret>(b(&bb)).unwrap() {
            Some(Ret::Data(got)) => assert_eq!(got, d),
            other => panic!("{other:?}"),
        }
        let (x, _y) = rustix::pipe::pipe().unwrap();
        send_fd(b(&a), x.as_fd()).unwrap();
        let got = recv_fd(b(&bb)).unwrap();
        assert!(rustix::fs::fstat(&got).is_ok());
        drop(a);
        assert!(recv::<Ret>(b(&bb)).unwrap().is_none());
    }
}
