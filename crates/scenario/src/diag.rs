//! Source positions and error rendering.
//!
//! Every error a user can cause (bad syntax, unknown names, a task used after
//! it exited, a misaligned offset, a profile the backend does not know) is a
//! [`Diagnostic`]: a byte span into the scenario file plus a message and, where
//! a parser choice failed, the list of things that would have been accepted.
//! Rendering turns the span into `file:line:column`, prints the source line and
//! puts a caret under the offending token, the way compilers do, so the reader
//! never has to count columns.

use serde::Serialize;
use std::fmt;

/// A byte range `start..end` in one scenario file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end: end.max(start) }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A scenario file's name and text, kept together so positions can be
/// rendered, with the byte offset of every line start so that a position
/// costs a binary search, not a scan of the file.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        let text = text.into();
        // Counted first, so the index is sized once.
        let mut line_starts = Vec::with_capacity(count_newlines(&text) + 1);
        line_starts.push(0);
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source { name: name.into(), text, line_starts }
    }

    /// 1-based line and column (in characters) of a byte offset. Offsets past
    /// the end or inside a UTF-8 sequence are clamped, never a panic.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = clamp_to_boundary(&self.text, offset);
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let col = self.text[self.line_starts[line - 1]..offset].chars().count() + 1;
        (line, col)
    }

    /// The text of a 1-based line, without its newline.
    pub fn line_text(&self, line: usize) -> &str {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else { return "" };
        let end = self.line_starts.get(line).map_or(self.text.len(), |&next| next - 1);
        self.text[start..end].trim_end_matches('\r')
    }

    /// `file:line:col` of a span's start.
    pub fn position(&self, span: Span) -> String {
        let (l, c) = self.line_col(span.start);
        format!("{}:{}:{}", self.name, l, c)
    }

    /// The source text a span covers (empty if the span is out of range).
    pub fn snippet(&self, span: Span) -> &str {
        let s = clamp_to_boundary(&self.text, span.start);
        let e = clamp_to_boundary(&self.text, span.end.max(s));
        &self.text[s..e]
    }
}

/// How many `\n` bytes `text` holds. Summed in byte-wide counters over
/// 64-byte chunks (at most 64 per chunk, so a `u8` holds it), which the
/// compiler turns into wide compares: a fifth of the instructions of a
/// filtered count, which goes byte by byte.
pub(crate) fn count_newlines(text: &str) -> usize {
    text.as_bytes().chunks(64).map(|c| usize::from(c.iter().map(|&b| u8::from(b == b'\n')).sum::<u8>())).sum()
}

fn clamp_to_boundary(text: &str, offset: usize) -> usize {
    let mut o = offset.min(text.len());
    while o > 0 && !text.is_char_boundary(o) {
        o -= 1;
    }
    o
}

/// One user-facing error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub span: Span,
    pub message: String,
    /// What would have been accepted at `span` (parser errors), best first.
    pub expected: Vec<String>,
    /// Extra lines: where a name was defined, where a task exited, a hint.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Diagnostic {
        Diagnostic { span, message: message.into(), expected: Vec::new(), notes: Vec::new() }
    }

    pub fn note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    pub fn expected(mut self, what: impl IntoIterator<Item = String>) -> Diagnostic {
        self.expected.extend(what);
        self
    }

    /// Renders the diagnostic against its source:
    ///
    /// ```text
    /// bad.cow:3:4: error: unknown statement `mmapp`
    ///   |
    /// 3 | P: mmapp 4K
    ///   |    ^^^^^ expected one of: mmap, munmap, …
    /// ```
    pub fn render(&self, src: &Source) -> String {
        let (line, col) = src.line_col(self.span.start);
        let full = src.line_text(line);
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        // A long line is shown as a window around the column.
        let first = (col - 1).saturating_sub(WINDOW / 2);
        let shown: String = full.chars().skip(first).take(WINDOW).collect();
        let (lead, tail) = (if first > 0 { "…" } else { "" }, if full.chars().nth(first + WINDOW).is_some() { "…" } else { "" });
        let col_in = col - 1 - first;
        // Caret width: the span's characters on this line, at least one.
        let width = {
            let total = shown.chars().count();
            let span_chars = src.snippet(self.span).split('\n').next().unwrap_or("").chars().take(WINDOW).count();
            span_chars.clamp(1, total.saturating_sub(col_in).max(1))
        };
        let mut out = format!(
            "{}:{}:{}: error: {}\n{pad} |\n{line} | {lead}{shown}{tail}\n{pad} | {}{}",
            src.name,
            line,
            col,
            cut(&self.message),
            // Keep tabs so the caret lines up under tab-indented text.
            lead.chars().chain(shown.chars().take(col_in)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect::<String>(),
            "^".repeat(width),
        );
        if !self.expected.is_empty() {
            out.push(' ');
            out.push_str(&cut(&expected_phrase(&self.expected)));
        }
        out.push('\n');
        for n in &self.notes {
            out.push_str(&format!("{pad} = note: {}\n", cut(n)));
        }
        out
    }
}

/// Characters of a source line shown around an error's column.
const WINDOW: usize = 120;

/// Messages and notes quote the user's text (names, tokens); a quote of a
/// huge token is cut, so that an error is never bigger than a screen.
fn cut(s: &str) -> String {
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}… ({} more characters)", &s[..i], s[i..].chars().count()),
        None => s.to_string(),
    }
}

/// "expected X", "expected X or Y", "expected one of: X, Y, Z".
pub fn expected_phrase(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => format!("expected {one}"),
        [a, b] => format!("expected {a} or {b}"),
        many => format!("expected one of: {}", many.join(", ")),
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.expected.is_empty() {
            write!(f, " ({})", expected_phrase(&self.expected))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_and_caret() {
        let src = Source::new("t.cow", "task P\nP: mmapp 4K\n");
        let d = Diagnostic::new(Span::new(10, 15), "unknown operation `mmapp`").expected(vec!["mmap".to_string(), "munmap".to_string()]);
        let r = d.render(&src);
        assert!(r.starts_with("t.cow:2:4: error: unknown operation `mmapp`\n"), "{r}");
        assert!(r.contains("2 | P: mmapp 4K\n"), "{r}");
        assert!(r.contains("  |    ^^^^^ expected mmap or munmap"), "{r}");
    }

    #[test]
    fn long_lines_and_messages_are_cut() {
        let line = format!("P: munmap {}", "x".repeat(100_000));
        let src = Source::new("t.cow", format!("task P\n{line}\n"));
        let d = Diagnostic::new(Span::new(17, 17 + 100_000), format!("unknown name `{}`", "x".repeat(100_000)));
        let r = d.render(&src);
        assert!(r.len() < 1200, "{} bytes", r.len());
        assert!(r.contains("2 | P: munmap xxx"), "{r}");
        assert!(r.contains("more characters)"), "{r}");
        // Far into a long line: a window around the column, caret in it.
        let src = Source::new("t.cow", format!("{}BAD", " ".repeat(5000)));
        let r = Diagnostic::new(Span::new(5000, 5003), "x").render(&src);
        let lines: Vec<&str> = r.lines().collect();
        let caret = lines[3].chars().position(|c| c == '^').unwrap();
        assert_eq!(lines[2].chars().skip(caret).take(3).collect::<String>(), "BAD", "{r}");
    }

    #[test]
    fn newlines_are_counted_across_chunks() {
        for text in ["", "x", "\n", "a\nb\n\n", &"\n".repeat(64), &"\n".repeat(200), &"ab\n".repeat(100)] {
            assert_eq!(count_newlines(text), text.matches('\n').count(), "{text:?}");
        }
    }

    #[test]
    fn offsets_out_of_range_do_not_panic() {
        let src = Source::new("t.cow", "é");
        assert_eq!(src.line_col(1), (1, 1));
        assert_eq!(src.line_col(99), (1, 2));
        let d = Diagnostic::new(Span::new(50, 60), "x");
        let _ = d.render(&src);
    }
}
