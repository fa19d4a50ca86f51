//! `cowlab`: the command line of the cowlab mm model.
//!
//! One module per subcommand under `cmd/`, so subcommands can be added
//! without touching each other.
#![forbid(unsafe_code)]

/// `print!` through [`output::write_out`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!($($arg)*)) };
}

/// `println!` through [`output::write_out`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}

mod cmd;
mod lab;
mod output;
mod progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The model's runs allocate and free millions of small objects (folios'
/// page tables, scenario ASTs, reports); mimalloc serves them from
/// per-size free lists in a few instructions where glibc's malloc sorts
/// and consolidates its bins. Nothing observable depends on the allocator.
/// The live backend's processes are this binary too: with its default
/// options mimalloc does not disable THP for the process
/// (`MIMALLOC_ALLOW_THP=0` would, and the live backend then refuses to
/// start), and the only madvise it makes is MADV_DONTNEED on its own
/// arenas, a second after memory is freed (`purge_delay`), never on the
/// mappings a scenario makes. Keeping freed memory that second is why
/// `selftest` peaks near 27 MiB resident where glibc peaks near 9.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "cowlab", version, about = "An executable model of Linux mm: COW, GUP, hugetlb")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Run(cmd::run::Args),
    Check(cmd::check::Args),
    Selftest(cmd::selftest::Args),
    Diff(cmd::diff::Args),
    Fuzz(cmd::fuzz::Args),
    Explore(cmd::explore::Args),
    Policy(cmd::policy::Args),
    Knobs(cmd::profiles::KnobsArgs),
    Profiles(cmd::profiles::ProfilesArgs),
    History(cmd::history::Args),
}

fn main() -> ExitCode {
    // The live backend's zygote is this binary re-executed.
    live::enter_if_zygote();
    // clap exits with 2 on usage errors, 0 for --help/--version.
    let cli = Cli::parse();
    let code = match cli.cmd {
        Cmd::Run(a) => cmd::run::main(a),
        Cmd::Check(a) => cmd::check::main(a),
        Cmd::Selftest(a) => cmd::selftest::main(a),
        Cmd::Diff(a) => cmd::diff::main(a),
        Cmd::Fuzz(a) => cmd::fuzz::main(a),
        Cmd::Explore(a) => cmd::explore::main(a),
        Cmd::Policy(a) => cmd::policy::main(a),
        Cmd::Knobs(a) => cmd::profiles::knobs(a),
        Cmd::Profiles(a) => cmd::profiles::profiles(a),
        Cmd::History(a) => cmd::history::main(a),
    };
    ExitCode::from(output::exit_code(code))
}
