//! The live backend: scenarios on the kernel this machine boots.
//!
//! Every scenario task is a real process (a *task agent*) that cowlab
//! drives one command at a time over a socket, so steps run in exactly the
//! scenario's order; see [`agent`] for the process tree, signals and the
//! crate's `unsafe`. Observations come from what user space can see:
//! memory contents, pipes, files, `/proc/self/pagemap`, `/proc/kpageflags`,
//! `/proc/kpagecount` (mapcounts), PAGEMAP_SCAN (PMD- or PTE-mapped),
//! `/dev/kmsg` (the kernel log lines a step produced), the hugetlb sysfs
//! counters and the signal that ended a task. Folio refcounts, pincounts
//! and PTE write bits are invisible to user space, so [`LiveBackend`] says
//! it lacks them and the runner skips those expectations; see
//! [`backend::page_obs`] for what kpageflags and kpagecount do and do not
//! show of large folios.
//!
//! System settings (hugetlb pools, THP sizes, the huge zero page) and the
//! swap space a run creates (see [`swap`]) are journaled and restored; see
//! [`settings`].
//!
//! A binary that uses [`LiveBackend`] must call [`enter_if_zygote`] first
//! thing in `main`: the zygote is that binary re-executed.
//!
//! This crate only runs scenarios; comparing its runs with the model's is
//! the `differential` crate's job.

pub mod agent;
pub mod backend;
pub mod proto;
pub mod settings;
mod signals;
pub mod swap;

pub use backend::{LiveBackend, LiveOptions};

/// The environment variable that turns a re-executed binary into the
/// zygote.
pub const ZYGOTE_ENV: &str = "COWLAB_LIVE_ZYGOTE";
const JOURNAL_ENV: &str = "COWLAB_LIVE_JOURNAL";

/// The environment variable that lets tests use the host kernel:
/// `cargo test` starts a live backend (which changes hugetlb/THP settings,
/// if only for a while) only when it is `1`. `.ci/run` sets it.
pub const LIVE_TESTS_ENV: &str = "COWLAB_LIVE_TESTS";

/// For tests that start the live backend: `None` when asked to
/// (`COWLAB_LIVE_TESTS=1`), otherwise the one line to print before
/// passing without touching the kernel.
pub fn live_tests_skip() -> Option<String> {
    match std::env::var(LIVE_TESTS_ENV) {
        Ok(v) if v == "1" => None,
        _ => Some(format!("skip: live-kernel test (set {LIVE_TESTS_ENV}=1 to run it on this machine's kernel)")),
    }
}

/// If this process was started as a live-backend zygote, become it (never
/// returns); otherwise return at once.
pub fn enter_if_zygote() {
    let Ok(v) = std::env::var(ZYGOTE_ENV) else {
        return;
    };
    let controller: i32 = v.parse().unwrap_or(0);
    let journal = std::env::var_os(JOURNAL_ENV).map(std::path::PathBuf::from);
    match agent::take_stdin_socket() {
        Some(sock) => agent::zygote_main(sock, journal, controller),
        None => std::process::exit(111),
    }
}
