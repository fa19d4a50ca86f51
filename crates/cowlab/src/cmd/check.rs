//! `cowlab check FILE…`: parse and validate scenarios without running them.
use super::{load, EXIT_OK, EXIT_USAGE};

/// Parse and check scenario files (names, tasks, alignment); run nothing.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario files (.cow).
    #[arg(required = true)]
    files: Vec<String>,
}

pub fn main(a: Args) -> u8 {
    let mut code = EXIT_OK;
    for f in &a.files {
        match load(f) {
            Some(l) => {
                let steps = l.checked.step_of_item.iter().flatten().count();
                outln!("{f}: ok ({steps} steps)");
            }
            None => code = EXIT_USAGE,
        }
    }
    code
}
