//! Subcommands. Exit codes are shared: 0 all good, 1 an expectation
//! failed, 2 a usage, parse or check error.
pub mod check;
pub mod compare;
pub mod diff;
pub mod fuzz;
pub mod history;
pub mod policy;
pub mod profiles;
pub mod run;
pub mod selftest;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAIL: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// Reads a scenario file; a read error is a usage error.
pub fn read_file(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cowlab: cannot read {path}: {e}"))
}

/// Parses and checks one file, printing its errors to stderr.
pub fn load(path: &str) -> Option<scenario::Loaded> {
    let text = match read_file(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return None;
        }
    };
    match scenario::load_bytes(path, &text) {
        Ok(l) => Some(l),
        Err((src, diags)) => {
            for d in diags {
                eprint!("{}", d.render(&src));
            }
            None
        }
    }
}
