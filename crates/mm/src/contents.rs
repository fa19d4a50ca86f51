//! Byte-accurate page contents in compact form.
//!
//! A folio's bytes are a sequence of runs: long stretches of one byte value
//! are stored as `(length, byte)`, everything else literally. The form is
//! canonical (a maximal stretch of at least [`MIN_FILL`] equal bytes is always
//! a fill run, nothing else is), so derived `Eq`/`Hash` compare contents, and a
//! 1 GiB `memset` costs one run.

use std::fmt;

/// Shortest stretch of equal bytes stored as a fill run.
const MIN_FILL: u64 = 32;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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

/// A byte string of any length, stored as canonical runs.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Contents {
    runs: Vec<Run>,
    len: u64,
}

impl fmt::Debug for Contents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Contents {
    /// Short human form: `fill 0x00 ×4096` or a run list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return f.write_str("(empty)");
        }
        for (i, r) in self.runs.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            match r {
                Run::Fill { len, byte } => write!(f, "fill 0x{byte:02x} ×{len}")?,
                Run::Lit(v) => {
                    f.write_str("bytes")?;
                    for b in v.iter().take(16) {
                        write!(f, " {b:02x}")?;
                    }
                    if v.len() > 16 {
                        write!(f, " … ({} bytes)", v.len())?;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Contents {
    pub fn filled(len: u64, byte: u8) -> Self {
        Self::from_runs(vec![Run::Fill { len, byte }])
    }

    pub fn zeroed(len: u64) -> Self {
        Self::filled(len, 0)
    }

    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self::from_runs(vec![Run::Lit(bytes.to_vec())])
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

    /// Offset of the first byte where `self` and `other` differ, if any.
    pub fn first_difference(&self, other: &Contents) -> Option<u64> {
        if self == other {
            return None;
        }
        let a = self.to_vec();
        let b = other.to_vec();
        let n = a.len().min(b.len());
        (0..n).find(|&i| a[i] != b[i]).map(|i| i as u64).or(Some(n as u64))
    }

    /// The bytes `[off, off + len)`; the caller keeps within bounds.
    pub fn slice(&self, off: u64, len: u64) -> Contents {
        let mut out = Vec::new();
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
            out.push(match r {
                Run::Fill { byte, .. } => Run::Fill { len: b - a, byte: *byte },
                Run::Lit(v) => Run::Lit(v[a as usize..b as usize].to_vec()),
            });
        }
        Self::from_runs(out)
    }

    /// Overwrites `[off, off + src.len())` with `src`; the caller keeps within bounds.
    pub fn overwrite(&mut self, off: u64, src: &Contents) {
        if src.len == 0 {
            return;
        }
        if off == 0 && src.len == self.len {
            *self = src.clone();
            return;
        }
        let head = self.slice(0, off);
        let tail_start = off + src.len;
        let tail = self.slice(tail_start, self.len - tail_start);
        let mut runs = head.runs;
        runs.extend(src.runs.iter().cloned());
        runs.extend(tail.runs);
        *self = Self::from_runs(runs);
    }

    /// Appends `other` at the end.
    pub fn append(&mut self, other: &Contents) {
        let mut runs = std::mem::take(&mut self.runs);
        runs.extend(other.runs.iter().cloned());
        *self = Self::from_runs(runs);
    }

    /// Brings any run list into canonical form: run-length encode everything,
    /// merge equal neighbours, then keep stretches of at least [`MIN_FILL`]
    /// as fills and gather the rest into literals.
    fn from_runs(runs: Vec<Run>) -> Self {
        let mut segs: Vec<(u8, u64)> = Vec::with_capacity(runs.len());
        let mut push = |b: u8, n: u64| match segs.last_mut() {
            Some((pb, pn)) if *pb == b => *pn += n,
            _ if n == 0 => {}
            _ => segs.push((b, n)),
        };
        for r in &runs {
            match r {
                Run::Fill { len, byte } => push(*byte, *len),
                Run::Lit(v) => v.iter().for_each(|b| push(*b, 1)),
            }
        }
        let mut out = Vec::new();
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
        for _ in 0..200 {
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
        }
    }
}
