//! The scenario parser.
//!
//! The language is line oriented, so the file is cut into lines first and
//! each line is parsed on its own with winnow (a `#` outside a string starts
//! a comment). Inside a line the grammar is a handful of keyword-led
//! statements; a failed choice reports every alternative that would have been
//! accepted at the furthest position reached ("furthest failure"), which is
//! what makes messages like `expected one of: mmap, munmap, …` exact.
//!
//! Tokens are lexed greedily and then validated (`4KB` is one token, reported
//! as a bad size with the caret under all of it), so a caret always covers the
//! whole offending word.

use crate::ast::*;
use crate::diag::{Diagnostic, Span};
use winnow::error::{ErrMode, ParserError};
use winnow::stream::{LocatingSlice, Location, Stream};
use winnow::token::take_while;
use winnow::Parser;

type In<'a> = LocatingSlice<&'a str>;
type PResult<T> = Result<T, ErrMode<PErr>>;

/// A parse failure: the furthest position reached and what would have been
/// accepted there.
#[derive(Debug, Clone)]
pub struct PErr {
    pos: usize,
    end: usize,
    expected: Vec<String>,
    message: Option<String>,
}

impl PErr {
    fn at(pos: usize, end: usize) -> PErr {
        PErr { pos, end, expected: Vec::new(), message: None }
    }
}

impl<'a> ParserError<In<'a>> for PErr {
    type Inner = PErr;

    fn from_input(input: &In<'a>) -> Self {
        let p = input.current_token_start();
        PErr::at(p, p)
    }

    /// winnow's default panics in debug builds; a scenario parser must never
    /// panic, whatever the input.
    fn assert(input: &In<'a>, _message: &'static str) -> Self {
        Self::from_input(input)
    }

    /// Keep the error that got furthest; merge what was expected when two
    /// alternatives failed at the same place.
    fn or(self, other: Self) -> Self {
        use std::cmp::Ordering::*;
        match self.pos.cmp(&other.pos) {
            Greater => self,
            Less => other,
            Equal => {
                if self.message.is_some() && other.message.is_none() {
                    return self;
                }
                let mut merged = other;
                for e in self.expected {
                    if !merged.expected.contains(&e) {
                        merged.expected.push(e);
                    }
                }
                merged
            }
        }
    }

    fn into_inner(self) -> Result<Self::Inner, Self> {
        Ok(self)
    }
}

fn pos(i: &In<'_>) -> usize {
    i.current_token_start()
}

/// A backtracking error "expected <what>" at the current position.
fn expected<T>(i: &In<'_>, what: &[&str]) -> PResult<T> {
    // Point at the next token, not at the blank before it.
    let s: &str = i;
    let blank = ascii_run(s, is_blank);
    let p = pos(i) + blank;
    let mut e = PErr::at(p, p + peek_token_len(i).max(1));
    e.expected = what.iter().map(|s| s.to_string()).collect();
    Err(ErrMode::Backtrack(e))
}

/// A committed error with a message about the token at `span`.
fn fail_at<T>(span: Span, message: impl Into<String>, what: &[&str]) -> PResult<T> {
    let mut e = PErr::at(span.start, span.end);
    e.message = Some(message.into());
    e.expected = what.iter().map(|s| s.to_string()).collect();
    Err(ErrMode::Cut(e))
}

/// Turn a backtracking failure into a committed one: once a statement's
/// keyword is recognised, its other errors are the user's.
fn cut<T>(r: PResult<T>) -> PResult<T> {
    r.map_err(|e| match e {
        ErrMode::Backtrack(e) => ErrMode::Cut(e),
        other => other,
    })
}

/// Length of the whitespace-delimited token at the cursor (for carets).
fn peek_token_len(i: &In<'_>) -> usize {
    let s: &str = i;
    let s = &s[ascii_run(s, is_blank)..];
    if s.starts_with('"') {
        return s.len().max(1);
    }
    s.find(char::is_whitespace).unwrap_or(s.len())
}

/// How many leading bytes of `s` satisfy `f`. The token classes below are
/// all ASCII, and no byte of a multi-byte UTF-8 character is ASCII, so
/// scanning bytes finds the same boundary as scanning characters, without
/// decoding them (the parser runs for every line of every generated test).
fn ascii_run(s: &str, f: impl Fn(u8) -> bool) -> usize {
    s.bytes().position(|b| !f(b)).unwrap_or(s.len())
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r')
}

fn ws(i: &mut In<'_>) -> PResult<()> {
    let n = ascii_run(i, is_blank);
    let _ = i.next_slice(n);
    Ok(())
}

fn at_end(i: &mut In<'_>) -> bool {
    let _ = ws(i);
    i.is_empty()
}

/// Which bytes are word bytes (letters, digits, `_`), by value: a word is
/// the token lexed most, and one load per byte tells it.
const WORD_BYTES: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'_';
        b += 1;
    }
    t
};

fn is_word_byte(b: u8) -> bool {
    WORD_BYTES[usize::from(b)]
}

/// A bare word (letters, digits, `_`), with its span.
fn word<'a>(i: &mut In<'a>) -> PResult<(&'a str, Span)> {
    ws(i)?;
    let n = ascii_run(i, is_word_byte);
    if n == 0 {
        return Err(ErrMode::Backtrack(PErr::from_input(i)));
    }
    let start = pos(i);
    let w = i.next_slice(n);
    Ok((w, Span::new(start, start + n)))
}

/// A word from a closed set; backtracks (without consuming) otherwise.
fn one_of_words<'a>(i: &mut In<'a>, set: &[&str]) -> PResult<(&'a str, Span)> {
    let cp = i.checkpoint();
    let _ = ws(i);
    match word(i) {
        Ok((w, s)) if set.contains(&w) => Ok((w, s)),
        _ => {
            i.reset(&cp);
            let _ = ws(i);
            let r = expected(i, set);
            i.reset(&cp);
            r
        }
    }
}

fn keyword(i: &mut In<'_>, kw: &'static str) -> PResult<Span> {
    one_of_words(i, &[kw]).map(|(_, s)| s)
}

/// Try a keyword without committing (and without building the error a
/// caller would throw away).
fn opt_keyword(i: &mut In<'_>, kw: &'static str) -> Option<Span> {
    let cp = i.checkpoint();
    match word(i) {
        Ok((w, s)) if w == kw => Some(s),
        _ => {
            i.reset(&cp);
            None
        }
    }
}

/// A punctuation literal such as `:`, `=`, `+`.
fn punct(i: &mut In<'_>, p: &'static str) -> PResult<Span> {
    ws(i)?;
    let s: &str = i;
    if s.starts_with(p) {
        let start = pos(i);
        let _ = i.next_slice(p.len());
        Ok(Span::new(start, start + p.len()))
    } else {
        expected(i, &[&format!("`{p}`")])
    }
}

fn peek_punct(i: &mut In<'_>, p: &str) -> bool {
    let _ = ws(i);
    let s: &str = i;
    s.starts_with(p)
}

/// A task or object name: a letter or `_`, then letters, digits, `_`.
fn ident(i: &mut In<'_>, what: &'static str) -> PResult<Ident> {
    match ident_word(i) {
        Some((w, span)) => Ok(Spanned::new(w.to_string(), span)),
        None => {
            let cp = i.checkpoint();
            let _ = ws(i);
            let r = expected(i, &[what]);
            i.reset(&cp);
            r
        }
    }
}

/// The name [`ident`] would read, borrowed from the text (nothing is
/// consumed when there is none): where a name is only a guess, such as
/// the `NAME` of a possible `NAME = op`, no `String` is made for it.
fn ident_word<'a>(i: &mut In<'a>) -> Option<(&'a str, Span)> {
    let cp = i.checkpoint();
    let _ = ws(i);
    let s: &str = i;
    if s.as_bytes().first().is_some_and(|&b| b.is_ascii_alphabetic() || b == b'_') {
        if let Ok(w) = word(i) {
            return Some(w);
        }
    }
    i.reset(&cp);
    None
}

/// A number token: decimal or `0x` hex, optionally with a binary unit
/// (`K`, `M`, `G`, `KiB`, `MiB`, `GiB`). Lexed as one word, then validated.
fn number_token(i: &mut In<'_>, noun: &'static str, what: &'static str, units: bool) -> PResult<Spanned<u64>> {
    let cp = i.checkpoint();
    let _ = ws(i);
    let s: &str = i;
    if !s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        let r = expected(i, &[what]);
        i.reset(&cp);
        return r;
    }
    let (w, span) = word(i)?;
    match parse_number(w, units) {
        Ok(v) => Ok(Spanned::new(v, span)),
        Err(why) => fail_at(span, format!("bad {noun} `{w}`: {why}"), &[what]),
    }
}

/// Parses `4096`, `0x1000`, `4K`, `2M`, `1G`, `4KiB`.
pub fn parse_number(w: &str, units: bool) -> Result<u64, String> {
    let (digits, radix) = match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (w, 10),
    };
    // Digits are ASCII and no byte of a multi-byte character is, so the
    // first byte that is not a digit is where the unit starts.
    let split = digits.bytes().position(|b| !char::from(b).is_digit(radix)).unwrap_or(digits.len());
    let (num, unit) = digits.split_at(split);
    if num.is_empty() {
        return Err("no digits".into());
    }
    let n = u64::from_str_radix(num, radix).map_err(|_| "number too large".to_string())?;
    let mult: u64 = match unit {
        "" => 1,
        "K" | "KiB" if units => 1 << 10,
        "M" | "MiB" if units => 1 << 20,
        "G" | "GiB" if units => 1 << 30,
        _ if units => return Err(format!("unknown unit `{unit}` (expected K, M or G — binary: 4K = 4096 — or plain bytes)")),
        _ => return Err(format!("unexpected `{unit}` after the number")),
    };
    n.checked_mul(mult).ok_or_else(|| "number too large".to_string())
}

fn size(i: &mut In<'_>) -> PResult<Spanned<u64>> {
    number_token(i, "size", "a size (like 4K, 2M, 4096)", true)
}

fn count(i: &mut In<'_>) -> PResult<Spanned<u64>> {
    number_token(i, "number", "a number", false)
}

fn byte_value(i: &mut In<'_>) -> PResult<u8> {
    let n = number_token(i, "byte value", "a byte value (like 0xff)", false)?;
    u8::try_from(n.value).or_else(|_| fail_at(n.span, format!("byte value {} does not fit in a byte", n.value), &["0x00..0xff"]))
}

/// `fill 0xff` or `bytes "abc"` / `bytes 01 02 ff`.
fn data_spec(i: &mut In<'_>) -> PResult<DataSpec> {
    let (w, _) = one_of_words(i, &["fill", "bytes"])?;
    if w == "fill" {
        return cut(byte_value(i)).map(DataSpec::Fill);
    }
    let mut out = Vec::new();
    let start = pos(i);
    loop {
        let _ = ws(i);
        let s: &str = i;
        if s.starts_with('"') {
            out.extend(cut(string_lit(i))?);
        } else if s.len() >= 2
            && s.as_bytes()[0].is_ascii_hexdigit()
            && s.as_bytes()[1].is_ascii_hexdigit()
            && s[2..].starts_with(|c: char| c.is_whitespace() || c == '#')
            || (s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            let p = pos(i);
            let t = i.next_slice(2);
            let b = u8::from_str_radix(t, 16).or_else(|_| fail_at(Span::new(p, p + 2), "bad hex byte", &[]))?;
            out.push(b);
        } else {
            break;
        }
    }
    if out.is_empty() && pos(i) == start {
        return cut(expected(i, &["a string like \"abc\"", "hex bytes like 01 02 ff"]));
    }
    Ok(DataSpec::Bytes(out))
}

/// A double-quoted string with `\n \t \\ \" \xNN` escapes.
fn string_lit(i: &mut In<'_>) -> PResult<Vec<u8>> {
    let start = pos(i);
    let _ = i.next_slice(1); // the opening quote
    let mut out = Vec::new();
    loop {
        let p = pos(i);
        let Some(c) = i.next_token() else {
            return fail_at(Span::new(start, p), "unterminated string", &["`\"`"]);
        };
        match c {
            '"' => return Ok(out),
            '\\' => {
                let Some(e) = i.next_token() else {
                    return fail_at(Span::new(p, p + 1), "unterminated string", &["`\"`"]);
                };
                match e {
                    'n' => out.push(b'\n'),
                    't' => out.push(b'\t'),
                    '0' => out.push(0),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    'x' => {
                        let s: &str = i;
                        let h = s.get(..2).unwrap_or("");
                        match u8::from_str_radix(h, 16) {
                            Ok(b) if h.len() == 2 => {
                                let _ = i.next_slice(2);
                                out.push(b)
                            }
                            _ => return fail_at(Span::new(p, p + 2), "bad \\x escape", &["two hex digits after \\x"]),
                        }
                    }
                    other => {
                        return fail_at(
                            Span::new(p, p + 1 + other.len_utf8()),
                            format!("unknown escape `\\{other}`"),
                            &["\\n", "\\t", "\\0", "\\\\", "\\\"", "\\xNN"],
                        )
                    }
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
}

/// `NAME[+OFFSET]` with the optional offset.
fn name_offset(i: &mut In<'_>, what: &'static str) -> PResult<(Ident, Option<Spanned<u64>>)> {
    let name = ident(i, what)?;
    let s: &str = i;
    let offset = if s.starts_with('+') {
        let _ = i.next_slice(1);
        Some(cut(size(i))?)
    } else {
        None
    };
    Ok((name, offset))
}

/// `NAME[+OFFSET] [LEN]`.
fn range(i: &mut In<'_>, what: &'static str) -> PResult<Range> {
    let (name, offset) = name_offset(i, what)?;
    let len = opt_size(i)?;
    let end = len.as_ref().map(|l| l.span.end).or(offset.as_ref().map(|o| o.span.end)).unwrap_or(name.span.end);
    let span = Span::new(name.span.start, end);
    Ok(Range { name, offset, len, span })
}

fn opt_size(i: &mut In<'_>) -> PResult<Option<Spanned<u64>>> {
    let _ = ws(i);
    let s: &str = i;
    if s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        Ok(Some(size(i)?))
    } else {
        Ok(None)
    }
}

/// An address: `0x7f0000000000` or `NAME[+OFF]`.
fn addr(i: &mut In<'_>) -> PResult<Addr> {
    let _ = ws(i);
    let s: &str = i;
    if s.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        Ok(Addr::Literal(number_token(i, "address", "an address", false)?))
    } else {
        let (name, offset) = name_offset(i, "an address (0x… or a region name)")?;
        Ok(Addr::Name { name, offset })
    }
}

const PROTS: &[&str] = &["r", "rw", "w", "none", "rx", "rwx", "x", "wx"];

fn parse_prot(w: &str) -> Option<Prot> {
    if w == "none" {
        return Some(Prot { read: false, write: false, exec: false });
    }
    if !PROTS.contains(&w) {
        return None;
    }
    Some(Prot { read: w.contains('r'), write: w.contains('w'), exec: w.contains('x') })
}

fn prot(i: &mut In<'_>) -> PResult<Prot> {
    let (w, _) = one_of_words(i, PROTS)?;
    Ok(parse_prot(w).unwrap_or(Prot { read: false, write: false, exec: false }))
}

const MMAP_OPTIONS: &[&str] = &[
    "private",
    "shared",
    "anon",
    "file",
    "r",
    "rw",
    "none",
    "fixed=",
    "fixed_noreplace=",
    "offset=",
    "noreserve",
    "hugetlb=",
    "populate",
    "align=",
];

/// `mmap SIZE [private|shared] [anon|file F] [PROT] [fixed=ADDR|fixed_noreplace=ADDR] [offset=N]
/// [noreserve] [hugetlb=SIZE] [populate] [align=SIZE]`, options in any order.
fn mmap_args(i: &mut In<'_>) -> PResult<MmapArgs> {
    let len = size(i)?;
    let mut a = MmapArgs {
        len,
        shared: false,
        backing: Backing::Anon,
        prot: Prot { read: true, write: true, exec: false },
        fixed: None,
        noreplace: false,
        offset: None,
        noreserve: false,
        hugetlb: None,
        populate: false,
        align: None,
    };
    let mut seen: Vec<&'static str> = Vec::new();
    loop {
        if at_end(i) || peek_word_is(i, "expect") {
            return Ok(a);
        }
        let (w, span) = match word(i) {
            Ok(x) => x,
            Err(_) => return expected(i, MMAP_OPTIONS),
        };
        let group: &'static str = match w {
            "private" | "shared" => "sharing",
            "anon" | "file" => "backing",
            "fixed" | "fixed_noreplace" => "fixed",
            "offset" => "offset",
            "noreserve" => "noreserve",
            "hugetlb" => "hugetlb",
            "populate" => "populate",
            "align" => "align",
            w if parse_prot(w).is_some() => "protection",
            other => return fail_at(span, format!("unknown mmap option `{other}`"), MMAP_OPTIONS),
        };
        if seen.contains(&group) {
            return fail_at(span, format!("the {group} of this mapping is already given"), &[]);
        }
        seen.push(group);
        match w {
            "private" => a.shared = false,
            "shared" => a.shared = true,
            "anon" => a.backing = Backing::Anon,
            "file" => a.backing = Backing::File(cut(ident(i, "a file name"))?),
            "noreserve" => a.noreserve = true,
            "populate" => a.populate = true,
            "fixed" | "fixed_noreplace" => {
                cut(punct(i, "="))?;
                a.fixed = Some(cut(addr(i))?);
                a.noreplace = w == "fixed_noreplace";
            }
            "offset" => {
                cut(punct(i, "="))?;
                a.offset = Some(cut(size(i))?);
            }
            "hugetlb" => {
                cut(punct(i, "="))?;
                a.hugetlb = Some(cut(size(i))?);
            }
            "align" => {
                cut(punct(i, "="))?;
                a.align = Some(cut(size(i))?);
            }
            p => {
                if let Some(p) = parse_prot(p) {
                    a.prot = p;
                }
            }
        }
    }
}

fn peek_word_is(i: &mut In<'_>, w: &str) -> bool {
    let cp = i.checkpoint();
    let r = matches!(word(i), Ok((x, _)) if x == w);
    i.reset(&cp);
    r
}

const OPS: &[&str] = &[
    "mmap",
    "munmap",
    "mprotect",
    "madvise",
    "mremap",
    "fork",
    "exit",
    "write",
    "read",
    "pipe",
    "vmsplice",
    "memfd",
    "tmpfile",
    "io_uring",
    "clear_soft_dirty",
    "get_user_pages",
    "get_user_pages_fast",
    "pin_user_pages",
    "pin_user_pages_fast",
    "unpin",
    "close",
    "mmget",
    "mmput",
    "fallocate",
    "shmget",
    "shmat",
    "shmdt",
    "shmctl",
    "proc_mem_write",
    "proc_mem_read",
    "mbind",
    "uffdio_copy",
    "process_vm_readv",
    "process_vm_writev",
    "odirect",
    "expect",
];

/// Operations that produce something to name (`A = mmap …`).
const BINDING_OPS: &[&str] = &[
    "mmap",
    "mremap",
    "pipe",
    "memfd",
    "tmpfile",
    "io_uring",
    "get_user_pages",
    "get_user_pages_fast",
    "pin_user_pages",
    "pin_user_pages_fast",
    "mmget",
    "shmget",
    "shmat",
];

/// One operation after `TASK: [NAME =]`.
fn op(i: &mut In<'_>, bound: bool) -> PResult<(Op, Span)> {
    let cp = i.checkpoint();
    let _ = ws(i);
    let (w, span) = match word(i) {
        Ok(x) => x,
        Err(_) => {
            i.reset(&cp);
            let _ = ws(i);
            return expected(i, if bound { BINDING_OPS } else { OPS });
        }
    };
    let op = match w {
        "mmap" => Op::Mmap(cut(mmap_args(i))?),
        "munmap" => Op::Munmap(cut(range(i, "a region name"))?),
        "mprotect" => {
            let r = cut(range(i, "a region name"))?;
            Op::Mprotect(r, cut(prot(i))?)
        }
        "madvise" => {
            let r = cut(range(i, "a region name"))?;
            let (w, s) = cut(one_of_words(i, &ADVICE_NAMES))?;
            let adv = ADVICES.iter().find(|(n, _)| *n == w).map(|(_, a)| *a).unwrap_or(Advice::Dontneed);
            Op::Madvise(r, Spanned::new(adv, s))
        }
        "mremap" => {
            let (name, offset) = cut(name_offset(i, "a region name"))?;
            let first = cut(size(i))?;
            let second = opt_size(i)?;
            let (old_len, new_len) = match second {
                Some(n) => (Some(first), n),
                None => (None, first),
            };
            let end = new_len.span.end;
            let old = Range { span: Span::new(name.span.start, end), name, offset, len: old_len };
            let to = match opt_keyword(i, "to") {
                Some(_) => Some(cut(addr(i))?),
                None => None,
            };
            let dontunmap = opt_keyword(i, "dontunmap").is_some();
            Op::Mremap { old, new_len, to, dontunmap }
        }
        "fork" => Op::Fork(cut(ident(i, "a name for the child task"))?),
        "exit" => {
            let code = match opt_size_free(i) {
                true => {
                    let n = cut(count(i))?;
                    u8::try_from(n.value)
                        .or_else(|_| fail_at(n.span, format!("exit status {} does not fit in 0..255", n.value), &["0..255"]))?
                }
                false => 0,
            };
            Op::Exit(code)
        }
        "write" => {
            let r = cut(range(i, "a region, file or pipe name"))?;
            Op::Write(r, cut(data_spec(i))?)
        }
        "read" => Op::Read(cut(range(i, "a region, pipe, file or pin handle"))?),
        "pipe" => Op::Pipe,
        "vmsplice" => {
            let pipe = cut(ident(i, "a pipe name"))?;
            Op::Vmsplice { pipe, range: cut(range(i, "a region name"))? }
        }
        "memfd" => {
            let len = cut(size(i))?;
            let (mut huge, mut sparse) = (None, false);
            loop {
                if huge.is_none() && peek_word_is(i, "hugetlb") {
                    let _ = word(i);
                    cut(punct(i, "="))?;
                    huge = Some(cut(size(i))?);
                } else if !sparse && opt_keyword(i, "sparse").is_some() {
                    sparse = true;
                } else {
                    break;
                }
            }
            Op::Memfd(len, huge, sparse)
        }
        "tmpfile" => {
            let len = cut(size(i))?;
            let (mut local, mut sparse) = (false, false);
            loop {
                if !local && opt_keyword(i, "local").is_some() {
                    local = true;
                } else if !sparse && opt_keyword(i, "sparse").is_some() {
                    sparse = true;
                } else {
                    break;
                }
            }
            Op::Tmpfile(len, local, sparse)
        }
        "io_uring" => cut(io_uring(i, bound))?,
        "clear_soft_dirty" => Op::ClearSoftDirty,
        "get_user_pages" | "get_user_pages_fast" | "pin_user_pages" | "pin_user_pages_fast" => {
            let kind = match w {
                "get_user_pages" => GupKind::GetUserPages,
                "get_user_pages_fast" => GupKind::GetUserPagesFast,
                "pin_user_pages" => GupKind::PinUserPages,
                _ => GupKind::PinUserPagesFast,
            };
            let range = cut(range(i, "a region name"))?;
            let flags = cut(foll_flags(i))?;
            Op::Gup { kind, range, flags }
        }
        "unpin" => Op::Unpin(cut(ident(i, "a pin handle"))?),
        "close" => {
            let name = cut(ident(i, "a pipe, file or io_uring name"))?;
            let end = if peek_word_is(i, "read") || peek_word_is(i, "write") {
                let (w, s) = cut(word(i))?;
                Some(Spanned::new(if w == "read" { PipeEnd::Read } else { PipeEnd::Write }, s))
            } else {
                None
            };
            Op::Close { name, end }
        }
        "mmget" => Op::Mmget(cut(ident(i, "a task name"))?),
        "mmput" => Op::Mmput(cut(ident(i, "an mm handle"))?),
        "fallocate" => {
            let file = cut(range(i, "a file name"))?;
            Op::Fallocate { file, punch: opt_keyword(i, "punch_hole").is_some() }
        }
        "shmget" => {
            let len = cut(size(i))?;
            let hugetlb = if peek_word_is(i, "hugetlb") {
                let _ = word(i);
                cut(punct(i, "="))?;
                Some(cut(size(i))?)
            } else {
                None
            };
            Op::Shmget { size: len, hugetlb }
        }
        "shmat" => Op::Shmat(cut(ident(i, "a shm segment name"))?),
        "shmdt" => Op::Shmdt(cut(ident(i, "a region attached with shmat"))?),
        "shmctl" => {
            let seg = cut(ident(i, "a shm segment name"))?;
            cut(keyword(i, "rmid"))?;
            Op::ShmRmid(seg)
        }
        "proc_mem_write" => {
            let target = cut(ident(i, "the task whose /proc/PID/mem is written"))?;
            let range = cut(range(i, "a region name"))?;
            Op::ProcMemWrite { target, range, data: cut(data_spec(i))? }
        }
        "mbind" => {
            let r = cut(range(i, "a region name"))?;
            cut(keyword(i, "local"))?;
            cut(keyword(i, "move"))?;
            Op::MbindLocalMove(r)
        }
        "uffdio_copy" => {
            let r = cut(range(i, "a region name"))?;
            Op::UffdioCopy(r, cut(data_spec(i))?)
        }
        "proc_mem_read" => {
            let target = cut(ident(i, "the task whose /proc/PID/mem is read"))?;
            Op::ProcMemRead { target, range: cut(range(i, "a region name"))? }
        }
        "process_vm_readv" | "process_vm_writev" => {
            let write = w == "process_vm_writev";
            let target = cut(ident(i, "the task whose memory is read or written"))?;
            let remote = cut(range(i, "a region name (in that task)"))?;
            cut(keyword(i, if write { "from" } else { "into" }))?;
            let (local, local_off) = cut(name_offset(i, "a region name (in this task)"))?;
            Op::ProcessVm { write, target, remote, local, local_off }
        }
        "odirect" => {
            let (w, _) = cut(one_of_words(i, &["pread", "pwrite"]))?;
            let write = w == "pwrite";
            let buf = cut(range(i, "a region name"))?;
            cut(keyword(i, if write { "to" } else { "from" }))?;
            let (file, file_off) = cut(name_offset(i, "a file name"))?;
            Op::DirectIo { write, buf, file, file_off }
        }
        other => {
            let list = if bound { BINDING_OPS } else { OPS };
            return fail_at(span, format!("unknown operation `{other}`"), list);
        }
    };
    Ok((op, span))
}

fn io_uring(i: &mut In<'_>, bound: bool) -> PResult<Op> {
    if bound || at_end(i) || peek_word_is(i, "expect") {
        return Ok(Op::IoUring);
    }
    let (w, _) = one_of_words(i, &["register", "unregister", "write_fixed", "read_fixed"])?;
    let ring = cut(ident(i, "an io_uring name"))?;
    Ok(match w {
        "register" => {
            let mut bufs = Vec::new();
            if !(at_end(i) || peek_word_is(i, "expect")) {
                bufs.push(cut(iovec(i))?);
                while peek_punct(i, ",") {
                    let _ = punct(i, ",");
                    bufs.push(cut(iovec(i))?);
                }
            }
            Op::IoUringRegister { ring, bufs }
        }
        "unregister" => Op::IoUringUnregister(ring),
        _ => {
            let write = w == "write_fixed";
            let buf = cut(range(i, "a registered region"))?;
            cut(keyword(i, if write { "to" } else { "from" }))?;
            let (file, file_off) = cut(name_offset(i, "a file name"))?;
            Op::IoUringFixed { ring, write, buf, file, file_off }
        }
    })
}

/// One buffer of `io_uring register`: a region range or `sparse`.
fn iovec(i: &mut In<'_>) -> PResult<IoVec> {
    if peek_word_is(i, "sparse") {
        let (_, s) = word(i)?;
        return Ok(IoVec::Sparse(s));
    }
    Ok(IoVec::Range(range(i, "a region name or `sparse`")?))
}

/// `FOLL_WRITE|FOLL_LONGTERM` (or nothing).
fn foll_flags(i: &mut In<'_>) -> PResult<Vec<Spanned<Foll>>> {
    let mut out = Vec::new();
    if at_end(i) || peek_word_is(i, "expect") {
        return Ok(out);
    }
    loop {
        let (w, s) = one_of_words(i, &FOLL_NAMES)?;
        let f = FOLL_FLAGS.iter().find(|(n, _)| *n == w).map(|(_, f)| *f).unwrap_or(Foll::Write);
        out.push(Spanned::new(f, s));
        if peek_punct(i, "|") {
            let _ = punct(i, "|");
        } else {
            return Ok(out);
        }
    }
}

/// The names of a keyword table, as a constant list (the parser offers
/// them as what it expected, and looks words up in them).
const fn names_of<T: Copy, const N: usize>(table: &[(&'static str, T)]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut k = 0;
    while k < N {
        out[k] = table[k].0;
        k += 1;
    }
    out
}

const ADVICE_NAMES: [&str; ADVICES.len()] = names_of(ADVICES);
const FOLL_NAMES: [&str; FOLL_FLAGS.len()] = names_of(FOLL_FLAGS);
const POOL_FIELD_NAMES: [&str; POOL_FIELDS.len()] = names_of(POOL_FIELDS);

fn outcome_word(w: &str) -> Option<Outcome> {
    if w == "ok" {
        Some(Outcome::Ok)
    } else if w == "livelock" {
        Some(Outcome::Livelock)
    } else if SIGNALS.contains(&w) {
        Some(Outcome::Signal(w.to_string()))
    } else if ERRNOS.contains(&w) {
        Some(Outcome::Errno(w.to_string()))
    } else {
        None
    }
}

/// Whether a number comes next (without consuming anything).
fn opt_size_free(i: &mut In<'_>) -> bool {
    let cp = i.checkpoint();
    let _ = ws(i);
    let s: &str = i;
    let r = s.as_bytes().first().is_some_and(u8::is_ascii_digit);
    i.reset(&cp);
    r
}

/// One alternative of `expect one of …`: an outcome word or `count N`.
fn one_outcome(i: &mut In<'_>) -> PResult<StepExpect> {
    let (w, span) = match word(i) {
        Ok(x) => x,
        Err(_) => return expected(i, &["ok", "livelock", "a signal", "an errno", "count N"]),
    };
    if w == "count" {
        return Ok(StepExpect::Count(cut(size(i))?.value));
    }
    match outcome_word(w) {
        Some(o) => Ok(StepExpect::Outcome(o)),
        None => {
            let mut list = vec!["ok", "livelock", "count N"];
            list.extend_from_slice(SIGNALS);
            list.extend_from_slice(ERRNOS);
            fail_at(span, format!("`{w}` is not an outcome"), &list)
        }
    }
}

/// After an operation: `expect ok|any|livelock|SIGBUS|EINVAL|count N|one of …|fill 0x00|bytes …|same as step N`.
fn step_expect(i: &mut In<'_>) -> PResult<Spanned<StepExpect>> {
    let _ = ws(i);
    let start = pos(i);
    let cp = i.checkpoint();
    let (w, span) = match word(i) {
        Ok(x) => x,
        Err(_) => return expected(i, &["ok", "any", "a signal", "an errno", "fill", "bytes", "same as step N", "count N", "one of …"]),
    };
    let e = if w == "count" {
        StepExpect::Count(cut(size(i))?.value)
    } else if w == "one" {
        cut(keyword(i, "of"))?;
        let mut alts = vec![cut(one_outcome(i))?];
        while peek_punct(i, ",") {
            let _ = punct(i, ",");
            alts.push(cut(one_outcome(i))?);
        }
        StepExpect::OneOf(alts)
    } else if w == "any" {
        StepExpect::Any
    } else if let Some(o) = outcome_word(w) {
        StepExpect::Outcome(o)
    } else if w == "fill" || w == "bytes" {
        i.reset(&cp);
        StepExpect::Data(data_spec(i)?)
    } else if w == "same" {
        cut(keyword(i, "as"))?;
        cut(keyword(i, "step"))?;
        let n = cut(count(i))?;
        StepExpect::SameAs(Spanned::new(usize::try_from(n.value).unwrap_or(usize::MAX), n.span))
    } else {
        let mut list = vec!["ok", "any", "livelock", "fill", "bytes", "same as step N", "count N", "one of"];
        list.extend_from_slice(SIGNALS);
        list.extend_from_slice(ERRNOS);
        return fail_at(span, format!("unknown expectation `{w}`"), &list);
    };
    Ok(Spanned::new(e, Span::new(start, pos(i))))
}

/// `NAME[+OFF][..NAME+END] [in TASK]`; `in TASK` may be left out on a
/// `TASK:` line.
fn loc(i: &mut In<'_>, prefix: Option<&Ident>) -> PResult<Loc> {
    let (name, offset) = name_offset(i, "a region name")?;
    let end = if peek_punct(i, "..") {
        let _ = punct(i, "..");
        let (n2, off2) = cut(name_offset(i, "the same region name"))?;
        if n2.value != name.value {
            return fail_at(n2.span, format!("a range ends in the region it starts in (`{}`)", name.value), &[&name.value]);
        }
        Some(off2.unwrap_or(Spanned::new(0, n2.span)))
    } else {
        None
    };
    let task = match opt_keyword(i, "in") {
        Some(_) => cut(ident(i, "a task name"))?,
        None => match prefix {
            Some(t) => t.clone(),
            None => return cut(expected(i, &["`in TASK`"])),
        },
    };
    let last = if task.span.start > name.span.start {
        task.span.end
    } else {
        end.as_ref().or(offset.as_ref()).map(|o| o.span.end).unwrap_or(name.span.end)
    };
    Ok(Loc { span: Span::new(name.span.start, last), name, offset, end, task })
}

fn cmp(i: &mut In<'_>) -> PResult<Cmp> {
    let _ = ws(i);
    for (s, c) in [("==", Cmp::Eq), ("!=", Cmp::Ne), ("<=", Cmp::Le), (">=", Cmp::Ge), ("<", Cmp::Lt), (">", Cmp::Gt)] {
        if peek_punct(i, s) {
            let _ = punct(i, s);
            return Ok(c);
        }
    }
    expected(i, &["==", "!=", "<", "<=", ">", ">="])
}

/// A count that may be negative: pool counters are unsigned in the kernel
/// but `resv` wraps below zero for a while, and both backends show it signed.
fn signed(i: &mut In<'_>) -> PResult<i64> {
    let _ = ws(i);
    let minus = winnow::token::literal::<_, _, winnow::error::ContextError>("-").parse_next(i).is_ok();
    let n = count(i)?;
    let v = i64::try_from(n.value).or_else(|_| fail_at(n.span, "number too large", &[]))?;
    Ok(if minus { -v } else { v })
}

const LOC_TAILS: &[&str] = &[
    "same page as",
    "different page from",
    "not",
    "changed since step N",
    "unchanged since step N",
    "present",
    "zero_page",
    "refcount",
    "mapcount",
    "pincount",
    "page_mapcount",
    "anon_exclusive",
    "mapped",
    "anon",
    "pagecache",
    "pmd_mapped",
    "pte_mapped",
];

/// A standalone expectation (after `expect`).
fn expectation(i: &mut In<'_>, prefix: Option<&Ident>) -> PResult<Expectation> {
    let _ = ws(i);
    // hugetlb pool counters.
    if let Some(_kw) = opt_keyword(i, "hugetlb") {
        let size = cut(size(i))?;
        let (w, _) = cut(one_of_words(i, &POOL_FIELD_NAMES))?;
        let field = POOL_FIELDS.iter().find(|(n, _)| *n == w).map(|(_, f)| *f).unwrap_or(PoolField::Free);
        let c = cut(cmp(i))?;
        let v = cut(signed(i))?;
        return Ok(Expectation::Pool { size, field, cmp: c, value: v });
    }
    // Kernel log lines of the previous step: `log "TEXT"`, `no log ["TEXT"]`.
    let cp = i.checkpoint();
    let present = match word(i) {
        Ok(("log", _)) => Some(true),
        Ok(("no", _)) if opt_keyword(i, "log").is_some() => Some(false),
        _ => None,
    };
    let ends = {
        let cp2 = i.checkpoint();
        let e = at_end(i);
        i.reset(&cp2);
        e
    };
    match present {
        Some(present) if peek_punct(i, "\"") || (!present && ends) => {
            let text = if peek_punct(i, "\"") {
                let _ = ws(i);
                let start = pos(i);
                let bytes = cut(string_lit(i))?;
                let span = Span::new(start, pos(i));
                match String::from_utf8(bytes) {
                    Ok(t) => Some(Spanned::new(t, span)),
                    Err(_) => return fail_at(span, "log text must be UTF-8", &[]),
                }
            } else {
                None
            };
            return Ok(Expectation::Log { text, present });
        }
        Some(true) if ends => return cut(expected(i, &["a string like \"inadequate hugepage pool\""])),
        _ => i.reset(&cp),
    }
    // Task state: `C exited`, `C killed SIGBUS`, `C running`.
    let cp = i.checkpoint();
    if let Ok(name) = ident(i, "a region or task name") {
        if let Some(state) = opt_task_state(i)? {
            return Ok(Expectation::Task { task: name, state });
        }
    }
    i.reset(&cp);
    let loc = cut(loc(i, prefix))?;
    let _ = ws(i);
    let (w, span) = match word(i) {
        Ok(x) => x,
        Err(_) => return cut(expected(i, LOC_TAILS)),
    };
    match w {
        "same" | "different" => {
            cut(keyword(i, "page"))?;
            cut(keyword(i, if w == "same" { "as" } else { "from" }))?;
            let b = cut(self::loc(i, prefix))?;
            Ok(Expectation::SamePage { a: loc, b, same: w == "same" })
        }
        "changed" | "unchanged" => {
            cut(keyword(i, "since"))?;
            cut(keyword(i, "step"))?;
            let n = cut(count(i))?;
            Ok(Expectation::Since {
                loc,
                step: Spanned::new(usize::try_from(n.value).unwrap_or(usize::MAX), n.span),
                changed: w == "changed",
            })
        }
        "not" => {
            let (w2, s2) = match word(i) {
                Ok(x) => x,
                Err(_) => {
                    let mut l: Vec<&str> = PAGE_PREDS.iter().map(|(n, _)| *n).collect();
                    l.push("same page as");
                    return cut(expected(i, &l));
                }
            };
            if w2 == "same" {
                cut(keyword(i, "page"))?;
                cut(keyword(i, "as"))?;
                let b = cut(self::loc(i, prefix))?;
                return Ok(Expectation::SamePage { a: loc, b, same: false });
            }
            match PAGE_PREDS.iter().find(|(n, _)| *n == w2) {
                Some((_, p)) => Ok(Expectation::Page { loc, pred: Spanned::new(*p, s2), holds: false }),
                None => {
                    let mut l: Vec<&str> = PAGE_PREDS.iter().map(|(n, _)| *n).collect();
                    l.push("same page as");
                    fail_at(s2, format!("unknown page property `{w2}`"), &l)
                }
            }
        }
        w => {
            if let Some((_, p)) = PAGE_PREDS.iter().find(|(n, _)| *n == w) {
                return Ok(Expectation::Page { loc, pred: Spanned::new(*p, span), holds: true });
            }
            if let Some((_, c)) = COUNTERS.iter().find(|(n, _)| *n == w) {
                let op = cut(cmp(i))?;
                let v = cut(signed(i))?;
                return Ok(Expectation::Counter { loc, counter: Spanned::new(*c, span), cmp: op, value: v });
            }
            let mut l = LOC_TAILS.to_vec();
            l.extend(["swapped", "thp", "hugetlb", "exclusive", "writable"]);
            fail_at(span, format!("unknown expectation `{w}`"), &l)
        }
    }
}

fn opt_task_state(i: &mut In<'_>) -> PResult<Option<TaskStateExp>> {
    let cp = i.checkpoint();
    match word(i) {
        Ok(("exited", _)) => {
            if opt_size_free(i) {
                let n = cut(count(i))?;
                let code = u8::try_from(n.value)
                    .or_else(|_| fail_at(n.span, format!("exit status {} does not fit in 0..255", n.value), &["0..255"]))?;
                Ok(Some(TaskStateExp::Exited(Some(code))))
            } else {
                Ok(Some(TaskStateExp::Exited(None)))
            }
        }
        Ok(("running", _)) => Ok(Some(TaskStateExp::Running)),
        Ok(("killed", _)) => {
            let (s, _) = cut(one_of_words(i, SIGNALS))?;
            Ok(Some(TaskStateExp::Killed(s.to_string())))
        }
        _ => {
            i.reset(&cp);
            Ok(None)
        }
    }
}

const STATEMENTS: &[&str] = &["profile", "set", "xfail", "thp", "hugetlb", "task", "expect", "race {", "}", "TASK: operation"];

/// One statement (a line without its comment).
fn statement(i: &mut In<'_>) -> PResult<ItemKind> {
    let _ = ws(i);
    let cp = i.checkpoint();
    let (w, span) = match word(i) {
        Ok(x) => x,
        Err(_) => return cut(expected(i, STATEMENTS)),
    };
    // `TASK: …`
    if peek_punct(i, ":") {
        let _ = punct(i, ":");
        let task = Spanned::new(w.to_string(), span);
        // `expect …`, `NAME = op` or an operation: the next word, read
        // once, tells. (Most steps bind nothing: a name is made only once
        // the `=` says it is one.)
        let cp2 = i.checkpoint();
        let mut bind = None;
        match ident_word(i) {
            Some(("expect", _)) => return Ok(ItemKind::Expect(cut(expectation(i, Some(&task)))?)),
            Some((name, name_span)) if peek_punct(i, "=") && !peek_punct(i, "==") => {
                let _ = punct(i, "=");
                bind = Some(Spanned::new(name.to_string(), name_span));
            }
            _ => i.reset(&cp2),
        }
        let (op, op_span) = cut(op(i, bind.is_some()))?;
        let expect = match opt_keyword(i, "expect") {
            Some(_) => Some(cut(step_expect(i))?),
            None => None,
        };
        return Ok(ItemKind::Step(Step { task, bind, op, op_span, expect }));
    }
    match w {
        "profile" => {
            let _ = ws(i);
            let start = pos(i);
            let name: &str = take_while(1.., |c: char| !c.is_whitespace())
                .parse_next(i)
                .or_else(|_: ErrMode<PErr>| cut(expected(i, &["a profile name like linux-6.18"])))?;
            Ok(ItemKind::Profile(Spanned::new(name.to_string(), Span::new(start, start + name.len()))))
        }
        "set" => {
            let knob = cut(ident(i, "a policy knob name"))?;
            cut(punct(i, "="))?;
            let _ = ws(i);
            let start = pos(i);
            let v: &str =
                take_while(1.., |c: char| !c.is_whitespace()).parse_next(i).or_else(|_: ErrMode<PErr>| cut(expected(i, &["a value"])))?;
            Ok(ItemKind::Set { knob, value: Spanned::new(v.to_string(), Span::new(start, start + v.len())) })
        }
        "xfail" => {
            let _ = ws(i);
            let start = pos(i);
            if !peek_punct(i, "\"") {
                return cut(expected(i, &["the reason as a string, like \"leaks on hugetlb\""]));
            }
            let _ = ws(i);
            let reason = cut(string_lit(i))?;
            Ok(ItemKind::Xfail(Spanned::new(String::from_utf8_lossy(&reason).into_owned(), Span::new(start, pos(i)))))
        }
        "thp" => {
            let _ = ws(i);
            if opt_keyword(i, "use_zero_page").is_some() {
                let (v, _) = cut(one_of_words(i, &["on", "off"]))?;
                return Ok(ItemKind::ThpZeroPage(v == "on"));
            }
            let size = if let Some(s) = opt_keyword(i, "all") {
                Spanned::new(ThpSize::All, s)
            } else {
                let s = cut(size(i).or_else(|_| expected(i, &["a size", "all", "use_zero_page"])))?;
                Spanned::new(ThpSize::Bytes(s.value), s.span)
            };
            let (m, _) = cut(one_of_words(i, &["always", "madvise", "never", "inherit"]))?;
            let mode = match m {
                "always" => ThpMode::Always,
                "madvise" => ThpMode::Madvise,
                "never" => ThpMode::Never,
                _ => ThpMode::Inherit,
            };
            Ok(ItemKind::Thp { size, mode })
        }
        "hugetlb" => {
            let size = cut(size(i))?;
            cut(keyword(i, "pages"))?;
            cut(punct(i, "="))?;
            let pages = cut(count(i))?.value;
            let overcommit = match opt_keyword(i, "overcommit") {
                Some(_) => {
                    cut(punct(i, "="))?;
                    Some(cut(count(i))?.value)
                }
                None => None,
            };
            Ok(ItemKind::Hugetlb { size, pages, overcommit })
        }
        "race" => {
            cut(punct(i, "{"))?;
            Ok(ItemKind::RaceBegin)
        }
        "task" => Ok(ItemKind::Task(cut(ident(i, "a task name"))?)),
        "expect" => Ok(ItemKind::Expect(cut(expectation(i, None))?)),
        other => {
            i.reset(&cp);
            fail_at(
                span,
                format!("unknown statement `{other}`"),
                &["profile", "set", "xfail", "thp", "hugetlb", "task", "expect", "race {", "TASK: …"],
            )
        }
    }
}

/// The suffix that makes an expectation existential over interleavings.
const SOME_INTERLEAVING: &str = "in some interleaving";

/// Byte offset of a `#` comment start outside a string, if any.
/// Scans bytes, not characters: `"`, `\` and `#` are ASCII, and the
/// bytes of a multi-byte character are never ASCII, so an escaped
/// character's trailing bytes cannot end a string or start a comment and
/// the position found is the same.
fn comment_start(line: &str) -> Option<usize> {
    // Most lines have no string: the first `#` is the comment's.
    let b = line.as_bytes();
    if !b.contains(&b'"') {
        return b.iter().position(|&c| c == b'#');
    }
    let mut in_str = false;
    let mut escaped = false;
    for (k, c) in line.bytes().enumerate() {
        if in_str {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_str = false;
            }
        } else if c == b'"' {
            in_str = true;
        } else if c == b'#' {
            return Some(k);
        }
    }
    None
}

/// Parses a whole file. Stops at the first error: later lines would mostly
/// report consequences of it.
pub fn parse(text: &str) -> Result<Scenario, Diagnostic> {
    // At most one item per line: sized once, where growing would copy
    // every item made so far again and again.
    let mut items = Vec::with_capacity(crate::diag::count_newlines(text) + 1);
    let mut line_start = 0usize;
    for (n, raw) in text.split('\n').enumerate() {
        let line_no = n + 1;
        let this_start = line_start;
        line_start += raw.len() + 1;
        let mut body_end = this_start + comment_start(raw).unwrap_or(raw.len());
        let body = &text[this_start..body_end];
        // The statement's text without blanks around it, trimmed once.
        let from_lead = body.trim_start();
        if from_lead.is_empty() {
            continue;
        }
        let lead = body.len() - from_lead.len();
        let stmt = from_lead.trim_end();
        let stmt_end = this_start + lead + stmt.len();
        if stmt == "}" {
            items.push(Item { line: line_no, span: Span::new(this_start + lead, stmt_end), kind: ItemKind::RaceEnd });
            continue;
        }
        // `expect … in some interleaving`: the suffix is cut off and the
        // rest parsed as any expectation.
        let some = stmt.strip_suffix(SOME_INTERLEAVING).filter(|b| b.ends_with(char::is_whitespace) && b.contains("expect"));
        if let Some(b) = some {
            body_end = this_start + lead + b.trim_end().len();
        }
        let mut input = LocatingSlice::new(&text[..body_end]);
        let _ = input.next_slice(this_start);
        // The statement is matched where it lands and moved once, into
        // the item: a step is a few hundred bytes, and every move copies it.
        let kind = match statement(&mut input) {
            Ok(kind) if at_end(&mut input) => kind,
            Ok(_) => {
                let p = pos(&input);
                let mut e = PErr::at(p, p + peek_token_len(&input));
                let s: &str = &input;
                let tok = &s[..peek_token_len(&input).min(s.len())];
                e.message = Some(format!("unexpected `{tok}` at the end of the statement"));
                e.expected = vec!["end of line".to_string()];
                return Err(to_diagnostic(text, e));
            }
            Err(ErrMode::Backtrack(e)) | Err(ErrMode::Cut(e)) => return Err(to_diagnostic(text, e)),
            Err(ErrMode::Incomplete(_)) => {
                return Err(Diagnostic::new(Span::new(body_end, body_end), "incomplete statement"));
            }
        };
        let span = Span::new(this_start + lead, if some.is_some() { body_end } else { stmt_end });
        if some.is_none() {
            items.push(Item { line: line_no, span, kind });
            continue;
        }
        match kind {
            ItemKind::Expect(e) => items.push(Item { line: line_no, span, kind: ItemKind::ExpectSome(e) }),
            _ => {
                let at = this_start + lead;
                return Err(Diagnostic::new(Span::new(at, body_end), "`in some interleaving` only follows an expectation"));
            }
        }
    }
    Ok(Scenario { items })
}

fn to_diagnostic(text: &str, e: PErr) -> Diagnostic {
    let span = Span::new(e.pos, e.end.max(e.pos));
    let message = match e.message {
        Some(m) => m,
        None => {
            let tok: String =
                text.get(e.pos..).unwrap_or("").split(|c: char| c.is_whitespace()).next().unwrap_or("").chars().take(40).collect();
            if tok.is_empty() || tok.starts_with('#') {
                "unexpected end of line".to_string()
            } else {
                format!("unexpected `{tok}`")
            }
        }
    };
    Diagnostic::new(span, message).expected(e.expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(src: &str) -> Scenario {
        match parse(src) {
            Ok(s) => s,
            Err(d) => panic!("{}", d.render(&crate::diag::Source::new("t", src))),
        }
    }

    fn err(src: &str) -> String {
        match parse(src) {
            Ok(_) => panic!("expected an error for {src:?}"),
            Err(d) => d.render(&crate::diag::Source::new("t", src)),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_number("4K", true), Ok(4096));
        assert_eq!(parse_number("2M", true), Ok(2 << 20));
        assert_eq!(parse_number("1GiB", true), Ok(1 << 30));
        assert_eq!(parse_number("0x1000", true), Ok(4096));
        assert!(parse_number("4KB", true).is_err());
        assert!(parse_number("99999999999999999999", true).is_err());
        assert!(parse_number("17179869184G", true).is_err());
    }

    #[test]
    fn the_cve_scenario_parses() {
        let s = ok("profile linux-6.18\n\
            thp 2M never   # comment\n\
            task P\n\
            P: A = mmap 4K private anon\n\
            P: write A fill 0x00\n\
            P: fork C\n\
            C: p = pipe\n\
            C: vmsplice p A 4K\n\
            C: munmap A\n\
            P: write A fill 0xff\n\
            C: read p 4K expect fill 0x00\n\
            expect A in P different page from A in C\n");
        assert_eq!(s.items.len(), 12);
        let ItemKind::Step(st) = &s.items[3].kind else { panic!() };
        assert_eq!(st.bind.as_ref().map(|b| b.value.as_str()), Some("A"));
        assert!(matches!(&st.op, Op::Mmap(m) if m.len.value == 4096 && !m.shared));
        let ItemKind::Step(st) = &s.items[10].kind else { panic!() };
        assert_eq!(st.expect.as_ref().map(|e| e.value.clone()), Some(StepExpect::Data(DataSpec::Fill(0))));
    }

    #[test]
    fn all_statement_forms() {
        let s = ok(r#"
set anon_reuse=mapcount
thp all never
thp use_zero_page off
hugetlb 2M pages=2 overcommit=1
task P
P: A = mmap 2M shared r hugetlb=2M noreserve populate fixed=0x7f0000000000
P: B = mremap A 2M 4M to 0x7f0100000000
P: write A+4K 4K bytes "a\x00b" 01 ff
P: write A bytes 01
P: mprotect A+4K 4K rw
P: madvise A 2M dontfork
P: h = pin_user_pages_fast A 4K FOLL_WRITE|FOLL_LONGTERM
P: read h 4K expect fill 0xff
P: unpin h
P: r = io_uring
P: F = memfd 4K
P: L = tmpfile 4K local
P: io_uring register r A 4K, B
P: io_uring write_fixed r A 4K to F+0
P: io_uring read_fixed r A 4K from F
P: io_uring unregister r
P: clear_soft_dirty
P: write A fill 0 expect SIGBUS
expect A+4K in P refcount >= 2
P: expect A mapcount == 1
expect A in P not present
expect A in P changed since step 3
expect A in P not same page as B in P
expect hugetlb 2M free == 0
expect P killed SIGBUS
"#);
        assert_eq!(s.items.len(), 30);
        assert!(s.items.iter().any(|i| matches!(&i.kind, ItemKind::Step(st) if matches!(st.op, Op::Tmpfile(_, true, false)))));
        let ItemKind::Step(st) = &s.items[7].kind else { panic!() };
        assert!(matches!(&st.op, Op::Write(r, DataSpec::Bytes(b)) if r.off() == 4096 && b == &[b'a', 0, b'b', 1, 0xff]));
    }

    #[test]
    fn pool_counters_may_be_negative() {
        let s = ok("expect hugetlb 2M resv == -1\nexpect hugetlb 2M free >= 0\n");
        let vals: Vec<i64> = s
            .items
            .iter()
            .map(|i| match &i.kind {
                ItemKind::Expect(Expectation::Pool { value, .. }) => *value,
                k => panic!("{k:?}"),
            })
            .collect();
        assert_eq!(vals, [-1, 0]);
        assert!(err("expect hugetlb 2M resv == -\n").contains("expected a number"));
    }

    #[test]
    fn errors_point_at_the_token() {
        let e = err("task P\nP: mmapp 4K\n");
        assert!(e.starts_with("t:2:4: error: unknown operation `mmapp`"), "{e}");
        assert!(e.contains("^^^^^ expected one of: mmap, munmap"), "{e}");
        let e = err("task P\nP: A = mmap 4KB\n");
        assert!(e.starts_with("t:2:13: error: bad size"), "{e}");
        let e = err("tsk P\n");
        assert!(e.starts_with("t:1:1: error: unknown statement `tsk`"), "{e}");
        let e = err("task P\nP: write A fill\n");
        assert!(e.starts_with("t:2:16: error:"), "{e}");
        assert!(e.contains("expected a byte value"), "{e}");
        let e = err("task P extra\n");
        assert!(e.starts_with("t:1:8: error: unexpected `extra`"), "{e}");
        let e = err("task P\nP: A = mmap 4K private bogus\n");
        assert!(e.contains("unknown mmap option `bogus`"), "{e}");
        let e = err("task P\nP: write A bytes \"abc\n");
        assert!(e.contains("unterminated string"), "{e}");
        let e = err("task P\nP: h = pin_user_pages A 4K FOLL_WRITE|FOLL_BOGUS\n");
        assert!(e.starts_with("t:2:39: error:"), "{e}");
        assert!(e.contains("FOLL_LONGTERM"), "{e}");
    }

    #[test]
    fn hash_inside_string_is_not_a_comment() {
        let s = ok("task P\nP: write A bytes \"a#b\" # real comment\n");
        let ItemKind::Step(st) = &s.items[1].kind else { panic!() };
        assert!(matches!(&st.op, Op::Write(_, DataSpec::Bytes(b)) if b == b"a#b"));
    }
}
