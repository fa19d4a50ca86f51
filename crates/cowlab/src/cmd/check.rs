//! `cowlab check FILE…`: parse and validate scenarios without running them.
use super::{load, EXIT_OK, EXIT_USAGE};

/// Parse and check scenario files (names, tasks, alignment); run nothing.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario files (.cow), or directories: every .cow file in them.
    #[arg(required = true)]
    files: Vec<String>,
}

pub fn main(a: Args) -> u8 {
    let mut code = EXIT_OK;
    let files = match super::run::expand(&a.files) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_USAGE;
        }
    };
    for f in &files {
        match load(f) {
            Some(l) if l.checks_nothing() => outln!("{f}: ok, but it checks nothing (no operation and no expectation)"),
            Some(l) => {
                let steps = l.checked.step_of_item.iter().flatten().count();
                outln!("{f}: ok ({steps} steps)");
            }
            None => code = EXIT_USAGE,
        }
    }
    code
}
