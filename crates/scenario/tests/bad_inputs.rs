//! The malformed-input corpus: every file in tests/bad/ must fail to load
//! with the error its first line announces:
//!
//! `# expect-error: LINE:COL substring of the message`
//!
//! and the rendering must show `file:LINE:COL`, the source line and a caret.

use scenario::diag::Source;
use std::path::Path;

fn expectation(text: &str) -> (usize, usize, String) {
    let first = text.lines().next().unwrap_or("");
    let rest =
        first.strip_prefix("# expect-error: ").unwrap_or_else(|| panic!("first line must be `# expect-error: L:C message`: {first}"));
    let (pos, msg) = rest.split_once(' ').expect("position then message");
    let (l, c) = pos.split_once(':').expect("LINE:COL");
    (l.parse().unwrap(), c.parse().unwrap(), msg.to_string())
}

#[test]
fn every_bad_input_fails_at_the_announced_position() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad");
    let mut files: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "cow")).collect();
    files.sort();
    assert!(files.len() >= 30, "the corpus shrank: {}", files.len());
    let mut problems = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let name = format!("bad/{}", f.file_name().unwrap().to_string_lossy());
        let (line, col, msg) = expectation(&text);
        let diags = match scenario::load_bytes(&name, &bytes) {
            Ok(_) => {
                problems.push(format!("{name}: loaded without error"));
                continue;
            }
            Err((_, d)) => d,
        };
        let src = Source::new(&name, text.as_str());
        let d = &diags[0];
        let got = src.line_col(d.span.start);
        let rendered = d.render(&src);
        if got != (line, col) {
            problems.push(format!("{name}: error at {got:?}, expected ({line}, {col}):\n{rendered}"));
            continue;
        }
        if !rendered.contains(&msg) {
            problems.push(format!("{name}: message lacks `{msg}`:\n{rendered}"));
        }
        let head = format!("{name}:{line}:{col}: error: ");
        if !rendered.starts_with(&head) {
            problems.push(format!("{name}: rendering does not start with `{head}`:\n{rendered}"));
        }
        let caret_line = rendered.lines().nth(3).unwrap_or("");
        if !caret_line.contains('^') {
            problems.push(format!("{name}: no caret:\n{rendered}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}
