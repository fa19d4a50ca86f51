//! Standard output that a closed pipe or a full disk cannot crash.
//!
//! `println!` panics when stdout is gone (`cowlab selftest | head -1`).
//! Every subcommand writes through [`write_out`] instead. After the first
//! failed write nothing more is written, the work goes on to its normal end
//! (a live run still restores the machine's settings), and [`exit_code`]
//! replaces the subcommand's status: for a closed pipe the one a shell shows
//! for a death by SIGPIPE (128 + 13), quietly; for any other write error
//! (a full disk) the usage-error status, after one line on stderr.
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};

/// 0 while output works, else the exit status to end with.
static FAILED: AtomicU8 = AtomicU8::new(0);

const EXIT_BROKEN_PIPE: u8 = 128 + 13;

pub fn write_out(args: std::fmt::Arguments) {
    if FAILED.load(Ordering::Relaxed) != 0 {
        return;
    }
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_fmt(args).and_then(|()| o.flush()) {
        let code = if e.kind() == std::io::ErrorKind::BrokenPipe {
            EXIT_BROKEN_PIPE
        } else {
            eprintln!("cowlab: cannot write the output: {e}");
            crate::cmd::EXIT_USAGE
        };
        FAILED.store(code, Ordering::Relaxed);
    }
}

/// The subcommand's status, or the output failure's if writing failed.
pub fn exit_code(code: u8) -> u8 {
    match FAILED.load(Ordering::Relaxed) {
        0 => code,
        failed => failed,
    }
}
