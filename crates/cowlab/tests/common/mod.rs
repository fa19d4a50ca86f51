//! What the command-line tests share: running the built `cowlab` from the
//! repository root, so the examples and docs resolve as a user's clone would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn cowlab(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cowlab")).args(args).current_dir(root()).output().expect("cowlab runs")
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
