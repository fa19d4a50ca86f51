//! SIGINT/SIGTERM in the controller: end the run's processes and restore
//! the settings before exiting.
//!
//! The handler only writes the signal number to a pipe (async-signal-safe);
//! a watcher thread does the work: it shuts the zygote's socket down, which
//! makes the zygote kill the run's processes and restore the journal (its
//! watchdog path), waits for the journal to disappear, restores it itself
//! if the zygote did not, and exits with 128 + the signal number.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once};

static WAKE: AtomicI32 = AtomicI32::new(-1);
static ZSOCK: AtomicI32 = AtomicI32::new(-1);
static JOURNAL: Mutex<Option<PathBuf>> = Mutex::new(None);
static INSTALL: Once = Once::new();

extern "C" fn on_signal(sig: libc::c_int) {
    let fd = WAKE.load(Ordering::Relaxed);
    let b = sig as u8;
    // SAFETY: write(2) is async-signal-safe.
    unsafe { libc::write(fd, (&b as *const u8).cast(), 1) };
}

/// Registers the running backend's zygote socket and journal.
pub fn arm(zsock: i32, journal: PathBuf) {
    INSTALL.call_once(install);
    if let Ok(mut j) = JOURNAL.lock() {
        *j = Some(journal);
    }
    ZSOCK.store(zsock, Ordering::SeqCst);
}

/// The backend is gone: nothing to clean up on a signal.
pub fn disarm() {
    ZSOCK.store(-1, Ordering::SeqCst);
    if let Ok(mut j) = JOURNAL.lock() {
        *j = None;
    }
}

fn install() {
    let Ok((r, w)) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) else {
        return;
    };
    use rustix::fd::IntoRawFd;
    WAKE.store(w.into_raw_fd(), Ordering::SeqCst);
    let spawned = std::thread::Builder::new().name("cowlab-live-signals".into()).spawn(move || {
        let mut b = [0u8; 1];
        loop {
            match rustix::io::read(&r, &mut b) {
                Ok(1) => break,
                Err(rustix::io::Errno::INTR) => continue,
                _ => return,
            }
        }
        let sig = b[0] as i32;
        let z = ZSOCK.load(Ordering::SeqCst);
        let journal = JOURNAL.lock().ok().and_then(|j| j.clone());
        if z >= 0 {
            // SAFETY: shutdown on a descriptor number we own.
            unsafe { libc::shutdown(z, libc::SHUT_RDWR) };
            if let Some(j) = &journal {
                for _ in 0..300 {
                    if !j.exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                crate::settings::restore_journal_of(j, std::process::id() as i32);
            }
        }
        eprintln!("cowlab: interrupted; the run's processes are gone and settings restored");
        // SAFETY: ends the process without unwinding other threads.
        unsafe { libc::_exit(128 + sig) };
    });
    if spawned.is_err() {
        return;
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a handler that only writes to a pipe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}
