//! Subcommands. Exit codes are shared: 0 all good, 1 an expectation
//! failed, 2 a usage, parse or check error.
pub mod check;
pub mod compare;
pub mod diff;
pub mod explore;
pub mod fuzz;
pub mod history;
pub mod policy;
pub mod profiles;
pub mod run;
pub mod selftest;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAIL: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// The exit status of a command over many files: 2 if any could not be
/// read or run, else 1 if any expectation failed, else 0.
pub fn exit_code(usage: bool, failed: bool) -> u8 {
    if usage {
        EXIT_USAGE
    } else if failed {
        EXIT_FAIL
    } else {
        EXIT_OK
    }
}

/// The largest scenario file cowlab reads: far above any real scenario (a
/// 100,000-step file is 2 MiB), and small enough that checking it stays
/// within bounded memory. Also what stops a read of `/dev/zero`.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a scenario file; a read error or a file over [`MAX_FILE_BYTES`] is
/// a usage error.
pub fn read_file(path: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cowlab: cannot read {path}: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("cowlab: {path} is larger than {} MiB; a scenario file is far smaller", MAX_FILE_BYTES >> 20));
    }
    Ok(bytes)
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

/// Runs one loaded scenario on the model once per choice (a title and its
/// options), printing each run's errors as `cowlab: FILE: TITLE: error: …`.
/// None when some choice could not run: the caller reports the file as a
/// usage error and goes on with the next.
pub fn run_each_choice<'a>(
    file: &str,
    l: &scenario::Loaded,
    choices: impl IntoIterator<Item = (&'a str, scenario::RunOptions)>,
    views: bool,
) -> Option<Vec<scenario::Report>> {
    let mut reports = Vec::new();
    let mut ok = true;
    for (title, opts) in choices {
        let mut be = scenario::model::ModelBackend::new().with_state_views(views);
        match scenario::run_loaded(l, &mut be, &opts) {
            Ok(r) => reports.push(r),
            Err(diags) => {
                for d in diags {
                    eprintln!("cowlab: {file}: {title}: error: {}", d.message);
                }
                ok = false;
            }
        }
    }
    ok.then_some(reports)
}
