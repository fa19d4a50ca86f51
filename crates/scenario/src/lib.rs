//! The cowlab scenario language.
//!
//! Data flows one way: scenario text → [`parse`] → [`check`] → a
//! [`Backend`] runs the steps → observations → [`report`].
//! Nothing flows back into the backend except program operations, so the same
//! scenario runs on the model kernel (`model`) and on the live one (the `live`
//! crate); the `differential` crate compares the two.
#![forbid(unsafe_code)]

pub mod ast;
pub mod backend;
pub mod check;
pub mod diag;
mod lineage;
pub mod model;
pub mod parse;
pub mod report;
pub mod run;

pub use backend::Backend;
pub use diag::{Diagnostic, Source, Span};
pub use report::{Report, Status};
pub use run::{Bindings, RunOptions, DEFAULT_PROFILE};

/// A scenario file that parsed and checked.
pub struct Loaded {
    pub source: Source,
    pub scenario: ast::Scenario,
    pub checked: check::Checked,
}

impl Loaded {
    /// No operation and no expectation: running it proves nothing (an
    /// empty file, or one whose lines are all comments).
    pub fn checks_nothing(&self) -> bool {
        !self.scenario.items.iter().any(|i| matches!(i.kind, ast::ItemKind::Step(_) | ast::ItemKind::Expect(_)))
    }
}

/// The text as the parser reads it: a UTF-8 byte-order mark at the start is
/// dropped (positions are then counted as an editor shows them, without
/// it), and a carriage return not followed by a line feed (old Mac line
/// ends) ends a line like a line feed. CRLF needs nothing: the `\r` is
/// white space before the line end.
fn normalize(text: &str) -> std::borrow::Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let b = text.as_bytes();
    // Most text has no `\r` at all, which one memchr-fast search tells.
    if !b.contains(&b'\r') || !b.iter().enumerate().any(|(i, &c)| c == b'\r' && b.get(i + 1) != Some(&b'\n')) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(if c == '\r' && chars.peek() != Some(&'\n') { '\n' } else { c });
    }
    std::borrow::Cow::Owned(out)
}

/// Parse and check a file's text. Errors are rendered-ready diagnostics.
pub fn load(name: &str, text: &str) -> Result<Loaded, (Source, Vec<Diagnostic>)> {
    let text = &*normalize(text);
    let source = Source::new(name, text);
    let scenario = match parse::parse(text) {
        Ok(s) => s,
        Err(d) => return Err((source, vec![d])),
    };
    match check::check(&scenario) {
        Ok(checked) => Ok(Loaded { source, scenario, checked }),
        Err(ds) => Err((source, ds)),
    }
}

/// Like [`load`], for raw file bytes: text that is not UTF-8 is an error at
/// the first bad byte, like any other.
pub fn load_bytes(name: &str, bytes: &[u8]) -> Result<Loaded, (Source, Vec<Diagnostic>)> {
    match std::str::from_utf8(bytes) {
        Ok(text) => load(name, text),
        Err(e) => {
            let good = e.valid_up_to();
            let text = String::from_utf8_lossy(bytes).into_owned();
            // The lossy text has the same bytes up to `good`.
            let d = Diagnostic::new(Span::new(good, good + 1), "this file is not UTF-8 text").expected(vec!["UTF-8 text".to_string()]);
            Err((Source::new(name, text), vec![d]))
        }
    }
}

/// Runs a loaded scenario on a backend.
pub fn run_loaded(l: &Loaded, backend: &mut dyn Backend, opts: &RunOptions) -> Result<Report, Vec<Diagnostic>> {
    run::run(&l.source, &l.scenario, &l.checked, backend, opts)
}

/// [`run_loaded`], telling `observer` of each step and report entry as
/// the run goes (see [`run::run_observed`]).
pub fn run_loaded_observed(
    l: &Loaded,
    backend: &mut dyn Backend,
    opts: &RunOptions,
    observer: &mut dyn run::Observer,
) -> Result<Report, Vec<Diagnostic>> {
    run::run_observed(&l.source, &l.scenario, &l.checked, backend, opts, observer).map(|(r, _)| r)
}
