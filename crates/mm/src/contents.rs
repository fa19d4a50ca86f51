//! Byte-accurate page contents in compact form.
//!
//! A folio's bytes are a sequence of runs: long stretches of one byte value
//! are stored as `(length, byte)`, everything else literally. The form is
//! canonical (a maximal stretch of at least [`MIN_FILL`] equal bytes is always
//! a fill run, nothing else is), so derived `Eq`/`Hash` compare contents, and a
//! 1 GiB `memset` costs one run.

use smallvec::{smallvec, SmallVec};
use std::fmt;

/// Shortest stretch of equal bytes stored as a fill run.
const MIN_FILL: u64 = 32;

#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
enum Run {
    Fill { len: u64, byte: u8 },
    Lit(Vec<u8>),
}

impl Run {
    fn len(&self) -> u64 {
        match self {
            Run::Fill { len, .. } => *len,
            Run::Lit(v) => v.len() as u64,
        }
    }
}

/// The run list: one run (the common case: a page or folio of one byte
/// value) needs no allocation. Only one is kept inline so that a folio
/// stays small: pin and fork stream through the folio arena, and its size
/// is their cost.
type Runs = SmallVec<[Run; 1]>;

/// A byte string of any length, stored as canonical runs.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Contents {
    runs: Runs,
    len: u64,
}

impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Contents {
    /// Short human form: `fill 0x00 ×4096`, `bytes 61 62 …`; the first
    /// four runs, the first eight bytes of each.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return f.write_str("(empty)");
        }
        for (i, r) in self.runs.iter().take(4).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match r {
                Run::Fill { len, byte } => write!(f, "fill 0x{byte:02x} ×{len}")?,
                Run::Lit(v) => {
                    f.write_str("bytes")?;
                    for b in v.iter().take(8) {
                        write!(f, " {b:02x}")?;
                    }
                    if v.len() > 8 {
                        write!(f, " … ({} bytes)", v.len())?;
                    }
                }
            }
        }
        if self.runs.len() > 4 {
            write!(f, ", … ({} runs)", self.runs.len())?;
        }
        Ok(())
    }
}

impl Contents {
    /// `len` bytes of `byte`, built in canonical form directly (every new
    /// folio starts as one of these).
    pub fn filled(len: u64, byte: u8) -> Self {
        let runs = match len {
            0 => Runs::new(),
            l if l >= MIN_FILL => smallvec![Run::Fill { len, byte }],
            _ => smallvec![Run::Lit(vec![byte; len as usize])],
        };
        Contents { runs, len }
    }

    pub fn zeroed(len: u64) -> Self {
        Self::filled(len, 0)
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::from_runs(&[Run::Lit(bytes.to_vec())])
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// The runs, in order: `Ok((byte, len))` for a fill, `Err(bytes)` for
    /// literal bytes. Adjacent runs never hold one same-byte stretch.
    pub fn runs(&self) -> impl Iterator<Item = Result<(u8, u64), &[u8]>> + '_ {
        self.runs.iter().map(|r| match r {
            Run::Fill { len, byte } => Ok((*byte, *len)),
            Run::Lit(v) => Err(v.as_slice()),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when every byte equals `byte` (an empty string is not a fill).
    pub fn is_fill(&self, byte: u8) -> bool {
        match self.runs.as_slice() {
            [Run::Fill { byte: b, .. }] => *b == byte,
            [Run::Lit(v)] => v.iter().all(|x| *x == byte),
            _ => false,
        }
    }

    /// The byte value if the whole string is one value.
    pub fn single_byte(&self) -> Option<u8> {
        match self.runs.as_slice() {
            [Run::Fill { byte, .. }] => Some(*byte),
            [Run::Lit(v)] if v.iter().all(|x| *x == v[0]) => Some(v[0]),
            _ => None,
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        for r in &self.runs {
            match r {
                Run::Fill { len, byte } => out.extend(std::iter::repeat_n(*byte, *len as usize)),
                Run::Lit(v) => out.extend_from_slice(v),
            }
        }
        out
    }

    /// The byte at `off`, if in range.
    pub fn byte_at(&self, mut off: u64) -> Option<u8> {
        for r in &self.runs {
            if off < r.len() {
                return Some(match r {
                    Run::Fill { byte, .. } => *byte,
                    Run::Lit(v) => v[off as usize],
                });
            }
            off -= r.len();
        }
        None
    }

    /// Offset of the first byte that is not `byte`.
    pub fn first_not(&self, byte: u8) -> Option<u64> {
        let mut off = 0;
        for r in &self.runs {
            match r {
                Run::Fill { byte: b, len } => {
                    if *b != byte {
                        return Some(off);
                    }
                    off += len;
                }
                Run::Lit(v) => {
                    if let Some(k) = v.iter().position(|x| *x != byte) {
                        return Some(off + k as u64);
                    }
                    off += v.len() as u64;
                }
            }
        }
        None
    }

    /// The contents as maximal (byte, length) runs: literal bytes too are
    /// counted run by run.
    pub fn byte_runs(&self) -> Vec<(u8, u64)> {
        let mut out: Vec<(u8, u64)> = Vec::new();
        let mut push = |b: u8, l: u64| match out.last_mut() {
            Some((x, n)) if *x == b => *n += l,
            _ => out.push((b, l)),
        };
        for r in &self.runs {
            match r {
                Run::Fill { byte, len } => push(*byte, *len),
                Run::Lit(v) => v.iter().for_each(|b| push(*b, 1)),
            }
        }
        out
    }

    /// Offset of the first byte where `prefix` differs from the start of
    /// `self` (`memcmp(self, prefix, prefix.len())`); a `prefix` longer than
    /// `self` differs where `self` ends. `None` when `prefix` is a prefix.
    pub fn first_difference_from(&self, prefix: &Contents) -> Option<u64> {
        let (a, b) = (self.byte_runs(), prefix.byte_runs());
        let mut off = 0;
        let mut ai = a.iter().copied();
        let mut cur = ai.next();
        for (byte, mut len) in b {
            while len > 0 {
                let Some((x, n)) = cur.filter(|(_, n)| *n > 0) else {
                    return Some(off);
                };
                if x != byte {
                    return Some(off);
                }
                let k = n.min(len);
                off += k;
                len -= k;
                cur = if n > k { Some((x, n - k)) } else { ai.next() };
            }
        }
        None
    }

    /// The bytes `[off, off + len)`; the caller keeps within bounds. Runs
    /// inside the range are copied as they are; only a fill cut shorter
    /// than [`MIN_FILL`] at either end needs canonicalising.
    pub fn slice(&self, off: u64, len: u64) -> Contents {
        if len == 0 {
            return Contents::default();
        }
        if let Some(byte) = self.fill_over(off, len) {
            return Self::filled(len, byte);
        }
        let mut out = Runs::new();
        let mut pos = 0u64;
        let end = off + len;
        for r in &self.runs {
            let rl = r.len();
            let (rs, re) = (pos, pos + rl);
            pos = re;
            if re <= off {
                continue;
            }
            if rs >= end {
                break;
            }
            let a = off.max(rs) - rs;
            let b = end.min(re) - rs;
            out.push(cut(r, a, b));
        }
        // A short fill turned literal at an end may now touch a literal.
        mend(&mut out, 1);
        let last = out.len() - 1;
        mend(&mut out, last);
        Contents { runs: out, len }
    }

    /// The byte of the one fill run that covers all of `[off, off + len)`,
    /// if one does: the common case of a page cut out of a filled folio.
    fn fill_over(&self, off: u64, len: u64) -> Option<u8> {
        let mut pos = 0u64;
        for r in &self.runs {
            let end = pos + r.len();
            if off < end {
                return match r {
                    Run::Fill { byte, .. } if off + len <= end => Some(*byte),
                    _ => None,
                };
            }
            pos = end;
        }
        None
    }

    /// Overwrites `[off, off + src.len())` with `src`; the caller keeps
    /// within bounds. In place: the runs the range touches are replaced by
    /// what is left of the first and last of them around `src`, and only
    /// the seams are canonicalised again.
    pub fn overwrite(&mut self, off: u64, src: &Contents) {
        if src.len == 0 {
            return;
        }
        if let (Some(b), Some(over)) = (src.single_byte(), self.fill_over(off, src.len)) {
            if b == over {
                return;
            }
        }
        if off == 0 && src.len == self.len {
            *self = src.clone();
            return;
        }
        let end = off + src.len;
        // The runs [first, last] that the range touches, and where the
        // first starts and the last ends.
        let (mut first, mut last) = (0, 0);
        let (mut first_start, mut last_end) = (0, 0);
        let mut pos = 0u64;
        for (i, r) in self.runs.iter().enumerate() {
            let re = pos + r.len();
            if pos <= off && off < re {
                (first, first_start) = (i, pos);
            }
            if pos < end && end <= re {
                (last, last_end) = (i, re);
                break;
            }
            pos = re;
        }
        let mut new: Runs = Runs::new();
        if first_start < off {
            new.push(cut(&self.runs[first], 0, off - first_start));
        }
        new.extend(src.runs.iter().cloned());
        if end < last_end {
            let last_start = last_end - self.runs[last].len();
            new.push(cut(&self.runs[last], end - last_start, last_end - last_start));
        }
        let added = new.len();
        self.runs.drain(first..=last);
        self.runs.insert_many(first, new);
        // Every seam from the run before `first` to the run after the new
        // ones, right to left so that indices to the left stay put.
        for at in (first..=first + added).rev() {
            mend(&mut self.runs, at);
        }
    }

    /// The byte of a string that is one fill run (at least [`MIN_FILL`]
    /// bytes of one value), found without looking at any byte.
    pub fn fill_byte(&self) -> Option<u8> {
        match self.runs.as_slice() {
            [Run::Fill { byte, .. }] => Some(*byte),
            _ => None,
        }
    }

    /// [`Contents::overwrite`] of `[off, off + len)` with `len` bytes of
    /// `byte`. A fill of the whole string changes the byte of its fill run
    /// in place (a store of a fill over a whole page or folio), so no
    /// string is made for `src` and none is dropped.
    pub fn overwrite_fill(&mut self, off: u64, len: u64, byte: u8) {
        if off == 0 && len == self.len {
            match self.runs.as_mut_slice() {
                [Run::Fill { byte: b, .. }] => *b = byte,
                _ => *self = Self::filled(len, byte),
            }
        } else {
            self.overwrite(off, &Self::filled(len, byte));
        }
    }

    /// [`Contents::overwrite`] with a string the caller is done with: one
    /// that covers all of `self` (a page copied or stored into a small
    /// folio whole) is moved in rather than copied run by run.
    pub fn overwrite_owned(&mut self, off: u64, src: Contents) {
        if off == 0 && src.len == self.len {
            *self = src;
        } else {
            self.overwrite(off, &src);
        }
    }

    /// Appends `other` at the end. Both are canonical, so only the last run
    /// of `self` and the first of `other` can need joining.
    pub fn append(&mut self, other: &Contents) {
        if other.len == 0 {
            return;
        }
        let join = self.runs.len();
        self.runs.extend(other.runs.iter().cloned());
        self.len += other.len;
        mend(&mut self.runs, join);
    }

    /// `parts` one after another, canonicalised once (appending them one
    /// by one would redo the whole string each time).
    pub fn concat<'a>(parts: impl IntoIterator<Item = &'a Contents>) -> Contents {
        let runs: Vec<Run> = parts.into_iter().flat_map(|c| c.runs.iter().cloned()).collect();
        Self::from_runs(&runs)
    }

    /// Brings any run list into canonical form: run-length encode everything,
    /// merge equal neighbours, then keep stretches of at least [`MIN_FILL`]
    /// as fills and gather the rest into literals.
    fn from_runs(runs: &[Run]) -> Self {
        if let [Run::Fill { len, byte }] = runs {
            return Self::filled(*len, *byte);
        }
        let mut segs: SmallVec<[(u8, u64); 8]> = SmallVec::new();
        let mut push = |b: u8, n: u64| match segs.last_mut() {
            Some((pb, pn)) if *pb == b => *pn += n,
            _ if n == 0 => {}
            _ => segs.push((b, n)),
        };
        for r in runs {
            match r {
                Run::Fill { len, byte } => push(*byte, *len),
                Run::Lit(v) => v.iter().for_each(|b| push(*b, 1)),
            }
        }
        let mut out = Runs::new();
        let mut lit: Vec<u8> = Vec::new();
        let mut len = 0u64;
        for (byte, n) in segs {
            len += n;
            if n >= MIN_FILL {
                if !lit.is_empty() {
                    out.push(Run::Lit(std::mem::take(&mut lit)));
                }
                out.push(Run::Fill { len: n, byte });
            } else {
                lit.extend(std::iter::repeat_n(byte, n as usize));
            }
        }
        if !lit.is_empty() {
            out.push(Run::Lit(lit));
        }
        Contents { runs: out, len }
    }
}

/// Bytes `[a, b)` of one run, as a run list of its own in canonical form
/// (a fill cut shorter than [`MIN_FILL`] becomes a literal).
fn cut(r: &Run, a: u64, b: u64) -> Run {
    match r {
        Run::Fill { byte, .. } if b - a < MIN_FILL => Run::Lit(vec![*byte; (b - a) as usize]),
        Run::Fill { byte, .. } => Run::Fill { len: b - a, byte: *byte },
        Run::Lit(v) if a == 0 && b == v.len() as u64 => Run::Lit(v.clone()),
        Run::Lit(v) => Run::Lit(v[a as usize..b as usize].to_vec()),
    }
}

/// Restores canonical form where two canonical run lists meet, between
/// `runs[at - 1]` and `runs[at]`. A stretch of equal bytes never spans more
/// than one run of a canonical list (a fill is maximal, a literal holds only
/// short stretches and never borders another literal), so the stretch that
/// crosses the seam lies in those two runs, and re-encoding them is enough.
fn mend(runs: &mut Runs, at: usize) {
    if at == 0 || at >= runs.len() {
        return;
    }
    let clean = match (&runs[at - 1], &runs[at]) {
        (Run::Fill { byte: a, .. }, Run::Fill { byte: b, .. }) => a != b,
        (Run::Fill { byte, .. }, Run::Lit(v)) => v.first() != Some(byte),
        (Run::Lit(v), Run::Fill { byte, .. }) => v.last() != Some(byte),
        (Run::Lit(_), Run::Lit(_)) => false,
    };
    if clean {
        return;
    }
    if let (Run::Fill { len: a, byte }, Run::Fill { len: b, .. }) = (&runs[at - 1], &runs[at]) {
        runs[at - 1] = Run::Fill { len: a + b, byte: *byte };
        runs.remove(at);
        return;
    }
    let joined = Contents::from_runs(&runs[at - 1..=at]).runs;
    runs.drain(at - 1..=at);
    runs.insert_many(at - 1, joined);
}

/// On the wire (the live backend's protocol) a string is its run list;
/// whatever runs arrive, the value read back is canonical.
impl serde::Serialize for Contents {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.runs.as_slice().serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Contents {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<Run>::deserialize(d).map(|runs| Self::from_runs(&runs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(c: &Contents) -> Vec<u8> {
        c.to_vec()
    }

    #[test]
    fn canonical_form_makes_equal_bytes_equal() {
        let a = Contents::from_bytes(&[7u8; 100]);
        let b = Contents::filled(100, 7);
        assert_eq!(a, b);
        let mut c = Contents::zeroed(4096);
        c.overwrite(10, &Contents::from_bytes(b"hello"));
        let mut d = Contents::zeroed(4096);
        d.overwrite(10, &Contents::from_bytes(b"he"));
        d.overwrite(12, &Contents::from_bytes(b"llo"));
        assert_eq!(c, d);
        assert_eq!(&naive(&c)[10..15], b"hello");
        c.overwrite(10, &Contents::zeroed(5));
        assert_eq!(c, Contents::zeroed(4096));
        assert!(c.is_fill(0));
    }

    /// A fill stored over all or part of a string leaves what the same
    /// fill as a string of its own would.
    #[test]
    fn overwriting_with_a_fill_is_overwriting_with_its_string() {
        let starts = [
            Contents::zeroed(4096),
            Contents::filled(4096, 3),
            Contents::concat([&Contents::zeroed(100), &Contents::from_bytes(b"xyz"), &Contents::filled(3993, 1)]),
        ];
        for start in starts {
            for (off, len, byte) in [(0, 4096, 7), (0, 4096, 0), (0, 4096, 1), (0, 10, 7), (50, 100, 1), (4000, 96, 0), (99, 5, 1)] {
                let (mut a, mut b) = (start.clone(), start.clone());
                a.overwrite_fill(off, len, byte);
                b.overwrite(off, &Contents::filled(len, byte));
                assert_eq!(a, b, "{start} at {off}+{len} with {byte}");
                assert_eq!(Contents::filled(len, byte).fill_byte(), (len >= MIN_FILL).then_some(byte));
            }
        }
        let mut short = Contents::from_bytes(b"ab");
        short.overwrite_fill(0, 2, 9);
        assert_eq!(short, Contents::from_bytes(&[9, 9]));
    }

    #[test]
    fn a_gibibyte_fill_is_one_run() {
        let mut c = Contents::zeroed(1 << 30);
        c.overwrite(0, &Contents::filled(1 << 30, 0xff));
        assert_eq!(c.runs.len(), 1);
        assert!(c.slice(12345, 4096).is_fill(0xff));
    }

    #[test]
    fn slices_and_overwrites_agree_with_a_plain_vector() {
        let mut c = Contents::zeroed(300);
        let mut v = vec![0u8; 300];
        let mut seed = 12345u64;
        for _ in 0..2000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let off = (seed >> 33) % 300;
            let len = ((seed >> 17) % 80).min(300 - off);
            let byte = (seed >> 9) as u8 % 3;
            if seed & 1 == 0 {
                c.overwrite(off, &Contents::filled(len, byte));
                v[off as usize..(off + len) as usize].fill(byte);
            } else {
                let lit: Vec<u8> = (0..len).map(|i| ((i * 7 + off) % 3) as u8).collect();
                c.overwrite(off, &Contents::from_bytes(&lit));
                v[off as usize..(off + len) as usize].copy_from_slice(&lit);
            }
            assert_eq!(c.to_vec(), v);
            assert_eq!(c, Contents::from_bytes(&v));
            assert_eq!(c.slice(off, len).to_vec(), v[off as usize..(off + len) as usize].to_vec());
            // Any cut is canonical: equal to the same bytes built afresh.
            let (a, b) = ((seed >> 40) % 300, (seed >> 50) % 300);
            let (a, b) = (a.min(b), a.max(b));
            let cut = c.slice(a, b - a);
            assert_eq!(cut, Contents::from_bytes(&v[a as usize..b as usize]));
            let mut joined = c.slice(0, a);
            joined.append(&cut);
            joined.append(&c.slice(b, 300 - b));
            assert_eq!(joined, c);
        }
    }
    #[test]
    fn byte_runs_merge_fills_and_bytes() {
        let mut a = Contents::filled(3, 0);
        a.append(&Contents::from_bytes(&[0, 0, 1]));
        assert_eq!(a.byte_runs(), vec![(0, 5), (1, 1)]);
    }

    #[test]
    fn a_prefix_compares_byte_by_byte_whatever_the_runs() {
        let whole = Contents::concat([&Contents::filled(4, 1), &Contents::from_bytes(&[2, 2, 3])]);
        assert_eq!(whole.first_difference_from(&Contents::from_bytes(&[1, 1, 1, 1, 2])), None);
        assert_eq!(whole.first_difference_from(&whole), None);
        assert_eq!(whole.first_difference_from(&Contents::filled(5, 1)), Some(4));
        assert_eq!(whole.first_difference_from(&Contents::from_bytes(&[1, 9])), Some(1));
        assert_eq!(whole.first_difference_from(&Contents::filled(4, 1)), None);
        let longer = Contents::concat([&whole, &Contents::filled(1, 3)]);
        assert_eq!(whole.first_difference_from(&longer), Some(7), "a longer read differs where the snapshot ends");
        assert_eq!(Contents::default().first_difference_from(&Contents::default()), None);
    }

    #[test]
    fn bytes_are_found_by_offset() {
        let c = Contents::concat([&Contents::filled(40, 7), &Contents::from_bytes(&[7, 8, 9])]);
        assert_eq!((c.byte_at(0), c.byte_at(40), c.byte_at(41), c.byte_at(42), c.byte_at(43)), (Some(7), Some(7), Some(8), Some(9), None));
        assert_eq!(c.first_not(7), Some(41));
        assert_eq!(Contents::filled(64, 7).first_not(7), None);
    }

    #[test]
    fn concatenation_is_appending_in_turn() {
        let parts = [Contents::from_bytes(&[5; 20]), Contents::from_bytes(&[5; 20]), Contents::from_bytes(b"xy"), Contents::zeroed(100)];
        let mut one_by_one = Contents::default();
        parts.iter().for_each(|p| one_by_one.append(p));
        assert_eq!(Contents::concat(&parts), one_by_one);
        assert_eq!(Contents::concat(&parts).runs().next(), Some(Ok((5, 40))), "two short literals join into one fill");
    }

    #[test]
    fn the_short_form_shows_four_runs_and_eight_bytes() {
        let c = Contents::concat([
            &Contents::zeroed(64),
            &Contents::from_bytes(b"0123456789"),
            &Contents::filled(64, 1),
            &Contents::from_bytes(b"ab"),
            &Contents::filled(64, 2),
        ]);
        assert_eq!(c.to_string(), "fill 0x00 ×64, bytes 30 31 32 33 34 35 36 37 … (10 bytes), fill 0x01 ×64, bytes 61 62, … (5 runs)");
        assert_eq!(Contents::default().to_string(), "(empty)");
    }
}
