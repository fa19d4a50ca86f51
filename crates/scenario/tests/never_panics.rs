//! Property tests: whatever the input, parsing and checking return a value
//! (a scenario or positioned errors) and never panic; error positions lie in
//! the file. Bounded (a few hundred cases each) so it runs in CI.
//!
//! Inputs are random token soups built from the language's own vocabulary
//! (so they get deep into the grammar) and random edits of the examples.

use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Cases per property: CI's default, or `COWLAB_FUZZ_CASES` for a campaign
/// (`COWLAB_FUZZ_CASES=1000000 cargo test --release -p scenario --test never_panics`).
fn cases(default: u32) -> u32 {
    std::env::var("COWLAB_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const VOCAB: &[&str] = &[
    "profile",
    "linux-6.18",
    "set",
    "ram=64M",
    "overcommit_memory=2",
    "max_map_count=3",
    "rlimit_memlock=4K",
    "anon_reuse",
    "=",
    "mapcount",
    "thp",
    "all",
    "2M",
    "always",
    "use_zero_page",
    "on",
    "hugetlb",
    "pages=1",
    "task",
    "P",
    "C",
    "P:",
    "C:",
    "A",
    "B",
    "p",
    "h",
    "r",
    "F",
    "mmap",
    "4K",
    "8K",
    "0x1000",
    "private",
    "shared",
    "anon",
    "file",
    "rw",
    "none",
    "fixed=0x7f0000000000",
    "noreserve",
    "hugetlb=2M",
    "populate",
    "munmap",
    "mprotect",
    "madvise",
    "dontneed",
    "dontfork",
    "wipeonfork",
    "mremap",
    "to",
    "from",
    "fork",
    "exit",
    "write",
    "read",
    "fill",
    "0x00",
    "0xff",
    "bytes",
    "\"ab\\x00\"",
    "01",
    "ff",
    "pipe",
    "vmsplice",
    "memfd",
    "io_uring",
    "register",
    "write_fixed",
    "read_fixed",
    "unregister",
    "clear_soft_dirty",
    "fallocate",
    "punch_hole",
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "rmid",
    "remove",
    "pin_user_pages",
    "pin_user_pages_fast",
    "get_user_pages",
    "FOLL_WRITE|FOLL_LONGTERM",
    "FOLL_WRITE",
    "|",
    "unpin",
    "expect",
    "ok",
    "any",
    "SIGBUS",
    "SIGSEGV",
    "EINVAL",
    "in",
    "same",
    "page",
    "as",
    "different",
    "not",
    "changed",
    "unchanged",
    "since",
    "step",
    "1",
    "3",
    "refcount",
    "mapcount",
    "pincount",
    "==",
    ">=",
    "present",
    "zero_page",
    "anon_exclusive",
    "writable",
    "killed",
    "exited",
    "running",
    "+",
    "A+4K",
    "A+0x100",
    "#",
    "\"",
    "\\",
    ",",
    ":",
    "4KB",
    "99999999999999999999G",
    "é",
    "\t",
];

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::collection::vec(prop::sample::select(VOCAB), 0..10).prop_map(|t| t.join(" ")), 0..12)
        .prop_map(|lines| lines.join("\n"))
}

fn examples() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok()).filter_map(|e| std::fs::read_to_string(e.path()).ok()).collect())
        .unwrap_or_default();
    v.sort();
    if v.is_empty() {
        v.push("task P\nP: A = mmap 4K\nP: write A fill 0\n".into());
    }
    v
}

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    ReplaceByte(usize, u8),
    SwapLines(usize, usize),
    DropLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0usize..8).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), prop::sample::select(VOCAB)).prop_map(|(a, t)| Edit::Insert(a, format!(" {t}"))),
        (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Edit::ReplaceByte(a, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        any::<usize>().prop_map(Edit::DropLine),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> Vec<u8> {
    let mut b = text.as_bytes().to_vec();
    for e in edits {
        let n = b.len().max(1);
        match e {
            Edit::Delete(a, k) => {
                let s = a % n;
                let end = (s + k).min(b.len());
                if s < end {
                    b.drain(s..end);
                }
            }
            Edit::Insert(a, t) => {
                let s = (a % n).min(b.len());
                b.splice(s..s, t.bytes());
            }
            Edit::ReplaceByte(a, v) => {
                if !b.is_empty() {
                    let s = a % b.len();
                    b[s] = *v;
                }
            }
            Edit::SwapLines(x, y) => {
                let mut lines: Vec<Vec<u8>> = b.split(|c| *c == b'\n').map(|l| l.to_vec()).collect();
                let k = lines.len();
                lines.swap(x % k, y % k);
                b = lines.join(&b'\n');
            }
            Edit::DropLine(x) => {
                let mut lines: Vec<Vec<u8>> = b.split(|c| *c == b'\n').map(|l| l.to_vec()).collect();
                let k = lines.len();
                lines.remove(x % k);
                b = lines.join(&b'\n');
            }
        }
    }
    b
}

/// The slowest load so far, in nanoseconds. A campaign (`COWLAB_FUZZ_CASES`
/// set, `--nocapture`) prints it each time it grows, so the worst case is
/// read off the output; speed is measured here, never asserted.
static SLOWEST_NS: AtomicU64 = AtomicU64::new(0);

/// Load must not panic; errors must point inside the file and render.
fn load_is_total(bytes: &[u8]) {
    let started = Instant::now();
    load_renders_its_errors(bytes);
    let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    if ns > SLOWEST_NS.fetch_max(ns, Ordering::Relaxed) && std::env::var_os("COWLAB_FUZZ_CASES").is_some() {
        eprintln!("slowest parse+check so far: {} µs ({} bytes)", ns / 1000, bytes.len());
    }
}

fn load_renders_its_errors(bytes: &[u8]) {
    match scenario::load_bytes("fuzz.cow", bytes) {
        Ok(_) => {}
        Err((src, diags)) => {
            assert!(!diags.is_empty(), "an error without diagnostics");
            for d in &diags {
                assert!(d.span.start <= src.text.len(), "span past the end: {d:?}");
                let r = d.render(&src);
                assert!(r.starts_with("fuzz.cow:"), "{r}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(text in token_soup()) {
        load_is_total(text.as_bytes());
    }

    #[test]
    fn raw_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        load_is_total(&bytes);
    }

    #[test]
    fn mutated_examples_never_panic(which in any::<usize>(), edits in prop::collection::vec(edit(), 1..6)) {
        let ex = examples();
        let text = &ex[which % ex.len()];
        load_is_total(&apply(text, &edits));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    /// Edited examples that still check are run on the model: the whole
    /// pipeline (runner, model backend, reports) returns a value.
    #[test]
    fn mutated_examples_run_without_panic(which in any::<usize>(), edits in prop::collection::vec(edit(), 1..4)) {
        let ex = examples();
        let text = &ex[which % ex.len()];
        if let Ok(l) = scenario::load_bytes("fuzz.cow", &apply(text, &edits)) {
            let mut be = scenario::model::ModelBackend::new();
            if let Ok(r) = scenario::run_loaded(&l, &mut be, &scenario::RunOptions::default()) {
                let _ = r.render(false);
                let _ = r.to_json();
            }
        }
    }
}
