//! Object splitters (FORMAT.md §10.3; kopia `repo/splitter`, rollinghash `buzhash32` v4.0.0).
//!
//! A splitter cuts a byte stream into chunks (contents). Fixed splitters cut every `size`
//! bytes. Dynamic splitters use a 32-bit buzhash over a 64-byte sliding window:
//!
//! ```text
//! roll(c): o = byte leaving the window; sum = rotl32(sum, 1) ^ T[o] ^ T[c]
//! after each byte: n += 1; if n >= min && (sum & (avg - 1) == 0 || n >= max) → chunk ends here
//! ```
//!
//! The window starts as 64 zero bytes (sum 0) and is reset only by [`Splitter::reset`] (at the
//! start of each object), **not** at chunk boundaries. Because the hash depends only on the last
//! 64 bytes, bytes of a chunk before `min − 64` need not be hashed; like kopia, we only roll the
//! last 64 bytes of that region.
//!
//! Boundaries never depend on how the input is sliced into [`Splitter::find_boundary`] calls.
//! Rabin-Karp splitters (`DYNAMIC-*-RABINKARP`) are recognised but unsupported: their
//! polynomial is library-defined and not reproduced here.

use std::fmt;
use std::str::FromStr;

use crate::{Error, Result};

/// Length of the buzhash sliding window.
pub const WINDOW: usize = 64;

/// The default splitter of new repositories.
pub const DEFAULT_SPLITTER: SplitterKind = SplitterKind::Buzhash(SizeClass::M4);

/// Buzhash32 table: rollinghash v4.0.0 `GenerateHashes(1)` (TEST-VECTORS.md §V-BUZ).
const BUZHASH_TABLE: [u32; 256] = [
    0x07fcfd52, 0x5f3f164f, 0x6695721d, 0x7b4d7c03, 0x49c6e2d1, 0x0d1d68d8, 0x7916001e, 0x22c4d294,
    0x392907a0, 0x189deb99, 0xf3875d04, 0x95e94627, 0xba517936, 0x83c471d4, 0x7cb3ad0b, 0xa42655d9,
    0x7c4e0b68, 0xd4491d1b, 0x25632186, 0xa9d78d73, 0x169c1121, 0xbb158644, 0xb68e6a3f, 0x759805f5,
    0x2cdf5b8a, 0x57d29245, 0xc5d6d268, 0x6b83d0e2, 0x7674cb74, 0xb068d9db, 0xbb9457d8, 0xa15d523b,
    0x794209ff, 0x9da1d7eb, 0x5a25e0cb, 0xf840ec4b, 0x36d4ff9b, 0xf4a5ee3b, 0x5ad145f4, 0xf6740304,
    0x3f71f8cb, 0x91018d7c, 0xfccae224, 0xb186b51f, 0x7d9e8fbc, 0x93f93f33, 0xf63a5b6f, 0x19476c36,
    0xbc897d06, 0x169873f5, 0x724c7af1, 0x581eeb39, 0x2257bb7d, 0x6f269a28, 0xbe8e9981, 0x7039374b,
    0x25416fed, 0xded7e411, 0x6678e7aa, 0x244fcd36, 0x56aa6b86, 0xde4561ad, 0x3e99b0a8, 0xbed80a3a,
    0xe58348b0, 0xaf63e58d, 0x406aec9d, 0xc233f007, 0xa5ead0bd, 0x050143a6, 0x738b6829, 0x3699caf3,
    0x967cd710, 0x06f665a6, 0x25fd3d7f, 0x0fd6e479, 0x26fbf29b, 0x16de4c35, 0x2bf3394b, 0x4af864ba,
    0x1cb9e6c6, 0x41439089, 0x69a39144, 0xc34f182d, 0x421657ff, 0xf9fc6568, 0x8b02c917, 0x6c9c64b7,
    0x83d17909, 0xea3d4ca5, 0xaf635d47, 0x7fc78769, 0xbe14186f, 0x3539b1ea, 0xe9174548, 0xc051e18a,
    0x07b73658, 0x29ec300c, 0xa250bf34, 0xa7ed5d97, 0xfe3dea79, 0xb8b352f7, 0xc9b344e9, 0x8e5f0475,
    0x1941e52a, 0x2694763d, 0x6b40eabc, 0x8485d68b, 0x336eacca, 0x4399a363, 0x67149b9c, 0xae10a901,
    0x5a5ffefb, 0x563b26de, 0x6f00f02b, 0x9f06397d, 0x545836c4, 0x31d6416b, 0x12f4128d, 0x752f33ff,
    0x4a305605, 0x0c8dc214, 0x72521a90, 0x8eb3e4a1, 0x83efc6c6, 0x090ec04f, 0xc1540864, 0xec2c8aaa,
    0x70ab53ba, 0x38d3b494, 0x878d4063, 0xa317ae3f, 0x3cb62f07, 0xf360412c, 0x4ffbf3a9, 0x22d554b4,
    0x3f190476, 0x0796a710, 0xf5c353cf, 0x04f59bb7, 0x2d230176, 0xe2d6a9ce, 0x3f1d7427, 0xafd915bb,
    0xb01aa47d, 0xcde2c269, 0x7417bf38, 0x1e094f9a, 0x55ece0ea, 0xcb94539b, 0x13d346b5, 0x54e0c0c1,
    0x6db30e37, 0xdc02b390, 0xa6e222f5, 0xe2f8c1fe, 0x2e166bdf, 0x67588a74, 0x21898f34, 0x4c330f1d,
    0x19af53ba, 0x70658b94, 0x133c9673, 0x4efeeadd, 0x0f212551, 0x070f0914, 0x6f241c57, 0xf13e41b7,
    0x3be70cb0, 0xf4b6f47f, 0x20f31127, 0x6551cb89, 0x289cbd2c, 0x8946f23d, 0x40a79c3b, 0x03c6d982,
    0x0365790c, 0x0cf52517, 0x0bb131e8, 0x3da5475c, 0x139efcca, 0xbcd44eb4, 0xa54af747, 0xb73c32ed,
    0x9f6c47ac, 0xe8ba8f22, 0x54043a66, 0x3b0a7f20, 0xb4926431, 0xe17c02d5, 0x8f0d2558, 0x014fbff2,
    0x7f803594, 0x79b76fbe, 0x33fe2656, 0x792c8ee8, 0x6b41292d, 0xfdff9c32, 0x82093298, 0x59483870,
    0xb2d5a113, 0x2dd96e5a, 0x5b8e56a9, 0xebd9dda9, 0x04f9ce92, 0xcb440950, 0xa67e52b1, 0x49f6d261,
    0x92417fc3, 0x1c3b6bd9, 0xb027b7e0, 0x1f765a41, 0x44c9ab40, 0x45d99121, 0xfd7a84af, 0x99b75788,
    0xe3abff4a, 0xa88aa67f, 0x736e41cc, 0x9cbcbe5e, 0x7b3ccebc, 0xe1b7fa93, 0x315ae6af, 0x9cced2e2,
    0x19ea0f2f, 0xa9770722, 0x84a6bfdc, 0x88f03f07, 0xa44a03a4, 0x27a6b885, 0xb580c8ba, 0x018153da,
    0xb648e604, 0x51180278, 0x893a310f, 0x728f5f4c, 0x37f5198b, 0x3cc0ea9b, 0xe39d02db, 0x13883142,
    0xca599392, 0xc12d154e, 0xc176163d, 0x5c92e2b8, 0xf9f95ede, 0xb802bdfc, 0x8a928585, 0xdca6e10b,
    0x887953e8, 0x48b9e962, 0xe533e9a3, 0x5e0ce6e5, 0x1dba77ae, 0xc8214b8a, 0x53b428d7, 0x4cf20a65,
];

/// The size classes of kopia's named splitters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SizeClass {
    /// 128 KiB.
    K128,
    /// 256 KiB.
    K256,
    /// 512 KiB.
    K512,
    /// 1 MiB.
    M1,
    /// 2 MiB.
    M2,
    /// 4 MiB.
    M4,
    /// 8 MiB.
    M8,
}

impl SizeClass {
    /// All classes, smallest first.
    pub const ALL: [SizeClass; 7] = [
        SizeClass::K128,
        SizeClass::K256,
        SizeClass::K512,
        SizeClass::M1,
        SizeClass::M2,
        SizeClass::M4,
        SizeClass::M8,
    ];

    /// The size in bytes.
    pub fn bytes(self) -> usize {
        match self {
            SizeClass::K128 => 128 << 10,
            SizeClass::K256 => 256 << 10,
            SizeClass::K512 => 512 << 10,
            SizeClass::M1 => 1 << 20,
            SizeClass::M2 => 2 << 20,
            SizeClass::M4 => 4 << 20,
            SizeClass::M8 => 8 << 20,
        }
    }

    /// The size as it appears in splitter names (`128K`, `4M`, ...).
    pub fn label(self) -> &'static str {
        match self {
            SizeClass::K128 => "128K",
            SizeClass::K256 => "256K",
            SizeClass::K512 => "512K",
            SizeClass::M1 => "1M",
            SizeClass::M2 => "2M",
            SizeClass::M4 => "4M",
            SizeClass::M8 => "8M",
        }
    }

    fn from_label(s: &str) -> Option<SizeClass> {
        SizeClass::ALL.into_iter().find(|c| c.label() == s)
    }
}

/// A splitter named in the repository config or a policy, with kopia's exact names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SplitterKind {
    /// `FIXED`: legacy name of 4 MiB fixed chunks (the default when the config has none).
    Fixed,
    /// `FIXED-<size>`.
    FixedSize(SizeClass),
    /// `DYNAMIC`: legacy name of `DYNAMIC-4M-BUZHASH`.
    Dynamic,
    /// `DYNAMIC-<size>-BUZHASH`.
    Buzhash(SizeClass),
}

impl Default for SplitterKind {
    fn default() -> Self {
        DEFAULT_SPLITTER
    }
}

impl SplitterKind {
    /// Every supported name, in kopia's sorted order.
    pub fn all() -> Vec<SplitterKind> {
        let mut v: Vec<SplitterKind> = SizeClass::ALL
            .into_iter()
            .map(SplitterKind::Buzhash)
            .chain(SizeClass::ALL.into_iter().map(SplitterKind::FixedSize))
            .chain([SplitterKind::Dynamic, SplitterKind::Fixed])
            .collect();
        v.sort_by_key(|k| k.to_string());
        v
    }

    /// True for content-defined (buzhash) splitters.
    pub fn is_dynamic(self) -> bool {
        matches!(self, SplitterKind::Dynamic | SplitterKind::Buzhash(_))
    }

    /// Fixed chunk size, or the average of a dynamic splitter.
    pub fn avg(self) -> usize {
        match self {
            SplitterKind::Fixed | SplitterKind::Dynamic => SizeClass::M4.bytes(),
            SplitterKind::FixedSize(c) | SplitterKind::Buzhash(c) => c.bytes(),
        }
    }

    /// Smallest chunk (except the last of an object): `avg / 2` for dynamic, `size` for fixed.
    pub fn min(self) -> usize {
        if self.is_dynamic() {
            self.avg() / 2
        } else {
            self.avg()
        }
    }

    /// Largest chunk: `2 × avg` for dynamic, `size` for fixed.
    pub fn max(self) -> usize {
        if self.is_dynamic() {
            self.avg() * 2
        } else {
            self.avg()
        }
    }
}

impl fmt::Display for SplitterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SplitterKind::Fixed => f.write_str("FIXED"),
            SplitterKind::FixedSize(c) => write!(f, "FIXED-{}", c.label()),
            SplitterKind::Dynamic => f.write_str("DYNAMIC"),
            SplitterKind::Buzhash(c) => write!(f, "DYNAMIC-{}-BUZHASH", c.label()),
        }
    }
}

impl FromStr for SplitterKind {
    type Err = Error;

    /// Parses kopia's names; `DYNAMIC-<size>-RABINKARP` and unknown names are
    /// [`Error::Unsupported`].
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "FIXED" => return Ok(SplitterKind::Fixed),
            "DYNAMIC" => return Ok(SplitterKind::Dynamic),
            _ => {}
        }
        if let Some(c) = s.strip_prefix("FIXED-").and_then(SizeClass::from_label) {
            return Ok(SplitterKind::FixedSize(c));
        }
        if let Some(rest) = s.strip_prefix("DYNAMIC-") {
            if let Some(c) = rest
                .strip_suffix("-BUZHASH")
                .and_then(SizeClass::from_label)
            {
                return Ok(SplitterKind::Buzhash(c));
            }
            if rest
                .strip_suffix("-RABINKARP")
                .and_then(SizeClass::from_label)
                .is_some()
            {
                return Err(Error::unsupported(
                    "splitter",
                    format!("{s} (Rabin-Karp splitters are not implemented)"),
                ));
            }
        }
        Err(Error::unsupported("splitter", s))
    }
}

#[inline(always)]
fn table(b: u8) -> u32 {
    #[expect(clippy::indexing_slicing, reason = "u8 index into a 256-entry table")]
    BUZHASH_TABLE[b as usize]
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    Fixed { size: usize },
    Buzhash { min: usize, mask: u32, max: usize },
}

/// A stateful chunker for one object at a time. Feed it the object's bytes in any slicing.
#[derive(Clone)]
pub struct Splitter {
    mode: Mode,
    /// Bytes of the current chunk consumed so far.
    count: usize,
    window: [u8; WINDOW],
    /// Index in `window` of the oldest byte (the next to leave).
    pos: usize,
    sum: u32,
}

impl fmt::Debug for Splitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Splitter")
            .field("mode", &self.mode)
            .field("count", &self.count)
            .finish()
    }
}

impl Splitter {
    /// A fresh splitter of the given kind.
    pub fn new(kind: SplitterKind) -> Splitter {
        if kind.is_dynamic() {
            Self::with_mode(Mode::Buzhash {
                min: kind.min(),
                mask: (kind.avg() - 1) as u32,
                max: kind.max(),
            })
        } else {
            Self::with_mode(Mode::Fixed { size: kind.avg() })
        }
    }

    /// A fixed splitter with an arbitrary chunk size (at least 1).
    pub fn fixed(size: usize) -> Result<Splitter> {
        if size == 0 {
            return Err(Error::invalid("splitter", "fixed size must be positive"));
        }
        Ok(Self::with_mode(Mode::Fixed { size }))
    }

    /// A buzhash splitter with an arbitrary power-of-two average (kopia's test splitters):
    /// min = avg/2, max = 2·avg.
    pub fn buzhash(avg: usize) -> Result<Splitter> {
        if !avg.is_power_of_two() || !(2..=(1 << 31)).contains(&avg) {
            return Err(Error::invalid(
                "splitter",
                format!("buzhash average {avg} is not a power of two in 2..=2^31"),
            ));
        }
        Ok(Self::with_mode(Mode::Buzhash {
            min: avg / 2,
            mask: (avg - 1) as u32,
            max: avg * 2,
        }))
    }

    fn with_mode(mode: Mode) -> Splitter {
        Splitter {
            mode,
            count: 0,
            window: [0; WINDOW],
            pos: 0,
            sum: 0,
        }
    }

    /// Forgets all state; call at the start of every object.
    pub fn reset(&mut self) {
        self.count = 0;
        self.window = [0; WINDOW];
        self.pos = 0;
        self.sum = 0;
    }

    /// Largest possible chunk (buffer sizing).
    pub fn max_chunk(&self) -> usize {
        match self.mode {
            Mode::Fixed { size } => size,
            Mode::Buzhash { max, .. } => max,
        }
    }

    /// Smallest chunk other than an object's last.
    pub fn min_chunk(&self) -> usize {
        match self.mode {
            Mode::Fixed { size } => size,
            Mode::Buzhash { min, .. } => min,
        }
    }

    /// Consumes bytes of `data`. Returns `Some(n)` if the current chunk ends after the first
    /// `n` bytes (`1 ≤ n ≤ data.len()`; the state continues with the next chunk, so call again
    /// with `&data[n..]`), or `None` if all of `data` was consumed without a boundary.
    pub fn find_boundary(&mut self, data: &[u8]) -> Option<usize> {
        match self.mode {
            Mode::Fixed { size } => {
                let need = size - self.count;
                if data.len() < need {
                    self.count += data.len();
                    None
                } else {
                    self.count = 0;
                    Some(need)
                }
            }
            Mode::Buzhash { min, mask, max } => self.find_buzhash(data, min, mask, max),
        }
    }

    /// Splits a whole object (from a fresh state) into chunk lengths; the last element is the
    /// final partial chunk if the object does not end exactly on a boundary. Resets first.
    pub fn chunk_lengths(&mut self, data: &[u8]) -> Vec<usize> {
        self.reset();
        let mut out = Vec::new();
        let mut rest = data;
        while let Some(n) = self.find_boundary(rest) {
            out.push(n);
            rest = rest.get(n..).unwrap_or(&[]);
        }
        if !rest.is_empty() {
            out.push(rest.len());
        }
        self.reset();
        out
    }

    /// Rolls one byte in without checking for a boundary.
    fn roll(&mut self, c: u8) {
        let o = self.window_byte(0);
        if let Some(slot) = self.window.get_mut(self.pos) {
            *slot = c;
        }
        self.pos = (self.pos + 1) & (WINDOW - 1);
        self.sum = self.sum.rotate_left(1) ^ table(o) ^ table(c);
    }

    /// Rolls `data` in, checking after each byte; returns the number of bytes up to and
    /// including the first byte after which `sum & mask == 0` (bytes after it are not consumed).
    ///
    /// Hot loop: the first WINDOW bytes take their outgoing byte from the ring, later ones
    /// straight from `data` (64 bytes back); the ring is refreshed once at the end.
    fn scan(&mut self, data: &[u8], mask: u32) -> Option<usize> {
        let mut sum = self.sum;
        let head_len = data.len().min(WINDOW);
        let (head, _) = data.split_at(head_len);
        let mut hit = None;
        for (i, &c) in head.iter().enumerate() {
            let o = self.window_byte(i);
            sum = sum.rotate_left(1) ^ table(o) ^ table(c);
            if sum & mask == 0 {
                hit = Some(i + 1);
                break;
            }
        }
        if hit.is_none() {
            let later = data.get(WINDOW..).unwrap_or(&[]);
            for (i, (&o, &c)) in data.iter().zip(later).enumerate() {
                sum = sum.rotate_left(1) ^ table(o) ^ table(c);
                if sum & mask == 0 {
                    hit = Some(WINDOW + i + 1);
                    break;
                }
            }
        }
        let used = hit.unwrap_or(data.len());
        self.push_window(data.get(..used).unwrap_or(&[]));
        self.sum = sum;
        hit
    }

    /// The byte `i` positions after the oldest byte of the window (`i < WINDOW`).
    #[inline]
    fn window_byte(&self, i: usize) -> u8 {
        self.window
            .get((self.pos + i) & (WINDOW - 1))
            .copied()
            .unwrap_or(0)
    }

    /// Makes `bytes` (already hashed) the newest bytes of the window.
    fn push_window(&mut self, bytes: &[u8]) {
        if bytes.len() >= WINDOW {
            let start = bytes.len() - WINDOW;
            if let Some(last) = bytes.get(start..) {
                self.window.copy_from_slice(last);
            }
            self.pos = 0;
        } else {
            for &c in bytes {
                if let Some(slot) = self.window.get_mut(self.pos) {
                    *slot = c;
                }
                self.pos = (self.pos + 1) & (WINDOW - 1);
            }
        }
    }

    fn find_buzhash(&mut self, data: &[u8], min: usize, mask: u32, max: usize) -> Option<usize> {
        let mut consumed = 0;
        // Fast path: bytes that cannot end a chunk (count + 1 < min). The hash depends only on
        // the last WINDOW bytes, so only the tail of this region is rolled.
        let unchecked = min.saturating_sub(self.count + 1).min(data.len());
        if unchecked > 0 {
            let head = data.get(..unchecked).unwrap_or(&[]);
            for &c in head.get(unchecked.saturating_sub(WINDOW)..).unwrap_or(&[]) {
                self.roll(c);
            }
            self.count += unchecked;
            consumed = unchecked;
        }
        // Checked region, up to the maximum chunk size.
        let budget = max.saturating_sub(self.count);
        let tail = data.get(consumed..).unwrap_or(&[]);
        let checked = tail.get(..budget.min(tail.len())).unwrap_or(&[]);
        if let Some(i) = self.scan(checked, mask) {
            self.count = 0;
            return Some(consumed + i);
        }
        self.count += checked.len();
        consumed += checked.len();
        if self.count >= max {
            self.count = 0;
            return Some(consumed);
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    /// TEST-VECTORS.md §V-SPLIT-2 input: SHA-256(u64_le(i)) for i = 0, 1, ... truncated.
    fn portable_input(len: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(len + 32);
        let mut i = 0u64;
        while v.len() < len {
            v.extend_from_slice(&Sha256::digest(i.to_le_bytes()));
            i += 1;
        }
        v.truncate(len);
        v
    }

    /// Straightforward definition of FORMAT.md §10.3: hash every byte.
    fn reference_lengths(data: &[u8], min: usize, avg: usize, max: usize) -> Vec<usize> {
        let mut window = [0u8; WINDOW];
        let mut sum = 0u32;
        let mut n = 0;
        let mut out = vec![];
        for (i, &c) in data.iter().enumerate() {
            let o = window[i % WINDOW];
            window[i % WINDOW] = c;
            sum = sum.rotate_left(1) ^ BUZHASH_TABLE[o as usize] ^ BUZHASH_TABLE[c as usize];
            n += 1;
            if n >= min && (sum & (avg as u32 - 1) == 0 || n >= max) {
                out.push(n);
                n = 0;
            }
        }
        if n > 0 {
            out.push(n);
        }
        out
    }

    fn lengths_sliced(s: &mut Splitter, data: &[u8], slices: &[usize]) -> Vec<usize> {
        s.reset();
        let mut out = vec![];
        let mut cur = 0;
        let mut pos = 0;
        let mut k = 0;
        while pos < data.len() {
            let step = slices[k % slices.len()].max(1).min(data.len() - pos);
            k += 1;
            let mut piece = &data[pos..pos + step];
            pos += step;
            while let Some(n) = s.find_boundary(piece) {
                assert!(n >= 1 && n <= piece.len());
                out.push(cur + n);
                cur = 0;
                piece = &piece[n..];
            }
            cur += piece.len();
        }
        if cur > 0 {
            out.push(cur);
        }
        out
    }

    #[test]
    fn v_buz_table_sanity() {
        // First and last entries of §V-BUZ; all distinct; hash of 64 zero bytes is 0.
        assert_eq!(BUZHASH_TABLE[0], 0x07fcfd52);
        assert_eq!(BUZHASH_TABLE[255], 0x4cf20a65);
        let mut t = BUZHASH_TABLE.to_vec();
        t.sort_unstable();
        t.dedup();
        assert_eq!(t.len(), 256);
        let mut s = Splitter::buzhash(1 << 20).unwrap();
        s.find_boundary(&[0u8; 64]);
        assert_eq!(s.sum, 0);
    }

    #[test]
    fn v_split_2_input() {
        let data = portable_input(40 << 20);
        assert_eq!(
            hex::encode(&data[..32]),
            "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc"
        );
        assert_eq!(
            hex::encode(Sha256::digest(&data)),
            "cc171d8256ecce211b103c7978e989462bfe0b9daaf4505ee91c4941301154b2"
        );
    }

    // TEST-VECTORS.md §V-SPLIT-2, DYNAMIC-4M-BUZHASH and DYNAMIC-1M-BUZHASH over 40 MiB.
    #[test]
    fn v_split_2_named_splitters() {
        let data = portable_input(40 << 20);
        let mut s4: Splitter = Splitter::new("DYNAMIC-4M-BUZHASH".parse().unwrap());
        assert_eq!(
            s4.chunk_lengths(&data),
            [
                7561258, 3145347, 8388608, 3458236, 6313606, 2315522, 4897986, 5862477
            ]
        );
        // The legacy name is the same splitter.
        let mut legacy = Splitter::new(SplitterKind::Dynamic);
        assert_eq!(legacy.chunk_lengths(&data), s4.chunk_lengths(&data));

        let mut s1 = Splitter::new("DYNAMIC-1M-BUZHASH".parse().unwrap());
        assert_eq!(
            s1.chunk_lengths(&data),
            [
                1009336, 1959403, 1823944, 1010086, 1121637, 636852, 2097152, 939926, 1714382,
                2097152, 2097152, 1554354, 588479, 1163714, 1096995, 749142, 893743, 1406980,
                2097152, 2097152, 656111, 1416153, 774235, 1199918, 947530, 1545835, 1386048,
                531596, 1252016, 2097152, 1804728, 176985
            ]
        );
        // Odd slicing gives the same result.
        let sliced = lengths_sliced(&mut s1, &data, &[1, 63, 64, 65, 100_000, 3, 1 << 20]);
        assert_eq!(sliced, s1.chunk_lengths(&data));
    }

    // TEST-VECTORS.md §V-SPLIT-2, small buzhash rows over the first 1 MiB.
    #[test]
    fn v_split_2_small_buzhash() {
        let data = portable_input(1 << 20);
        let rows: [(usize, usize, [usize; 10]); 2] = [
            (
                1024,
                799,
                [2048, 826, 588, 2048, 1333, 1126, 1194, 1936, 665, 1248],
            ),
            (
                4096,
                198,
                [5827, 5272, 2614, 8192, 8192, 2542, 8115, 4932, 2332, 4461],
            ),
        ];
        for (avg, complete, first) in rows {
            let mut s = Splitter::buzhash(avg).unwrap();
            let lens = s.chunk_lengths(&data);
            let total: usize = lens.iter().sum();
            assert_eq!(total, data.len());
            // The final chunk is partial unless the data ends exactly on a boundary.
            assert_eq!(lens.len() - 1, complete, "avg {avg}");
            assert_eq!(lens[..10], first, "avg {avg}");
            assert_eq!(lens, reference_lengths(&data, avg / 2, avg, avg * 2));
        }
    }

    #[test]
    fn fixed_splitters() {
        let data = portable_input(300 << 10);
        let mut s = Splitter::new("FIXED-128K".parse().unwrap());
        assert_eq!(s.chunk_lengths(&data), [131072, 131072, 45056]);
        let mut f = Splitter::fixed(1000).unwrap();
        let lens = f.chunk_lengths(&data[..5000]);
        assert_eq!(lens, [1000; 5]);
        assert_eq!(
            lengths_sliced(&mut f, &data, &[7, 999, 1000, 1001]),
            f.chunk_lengths(&data)
        );
        assert_eq!(Splitter::new(SplitterKind::Fixed).max_chunk(), 4 << 20);
        assert!(Splitter::fixed(0).is_err());
        // Empty input never yields a boundary.
        assert_eq!(f.find_boundary(&[]), None);
        // V-HASH-KOPIA: 100 bytes in two 50-byte writes is one FIXED-1M chunk.
        let mut m = Splitter::new("FIXED-1M".parse().unwrap());
        assert_eq!(m.find_boundary(&[0; 50]), None);
        assert_eq!(m.find_boundary(&[0; 50]), None);
    }

    #[test]
    fn names() {
        let all = SplitterKind::all();
        assert_eq!(all.len(), 16);
        for k in &all {
            assert_eq!(k.to_string().parse::<SplitterKind>().unwrap(), *k);
        }
        assert_eq!(all[0].to_string(), "DYNAMIC");
        assert_eq!(SplitterKind::default().to_string(), "DYNAMIC-4M-BUZHASH");
        let k: SplitterKind = "DYNAMIC-128K-BUZHASH".parse().unwrap();
        assert_eq!((k.min(), k.avg(), k.max()), (65536, 131072, 262144));
        let f: SplitterKind = "FIXED-8M".parse().unwrap();
        assert_eq!((f.min(), f.avg(), f.max()), (8 << 20, 8 << 20, 8 << 20));
        let legacy: SplitterKind = "FIXED".parse().unwrap();
        assert_eq!(legacy.max(), 4 << 20);
        assert_eq!(Splitter::new(SplitterKind::Dynamic).max_chunk(), 8 << 20);
        for bad in [
            "DYNAMIC-4M-RABINKARP",
            "DYNAMIC-128K-RABINKARP",
            "FIXED-3M",
            "dynamic",
            "",
            "DYNAMIC-4M",
        ] {
            assert!(
                matches!(bad.parse::<SplitterKind>(), Err(Error::Unsupported { .. })),
                "{bad}"
            );
        }
        assert!(Splitter::buzhash(1000).is_err());
    }

    #[test]
    fn window_is_not_reset_at_boundaries() {
        // avg 32: min 16 < window 64, so the window spans chunk boundaries (V-SPLIT-1 note).
        let data = portable_input(100_000);
        let mut s = Splitter::buzhash(32).unwrap();
        let lens = s.chunk_lengths(&data);
        assert_eq!(lens, reference_lengths(&data, 16, 32, 64));
        let byte_by_byte = lengths_sliced(&mut s, &data, &[1]);
        assert_eq!(byte_by_byte, lens);
    }

    proptest! {
        #[test]
        fn boundaries_do_not_depend_on_slicing(
            seed in any::<u64>(),
            len in 0usize..60_000,
            avg_log in 1u32..12,
            slices in proptest::collection::vec(1usize..3000, 1..20),
        ) {
            let mut data = portable_input(len + 32);
            // vary data by seed
            for (i, b) in data.iter_mut().enumerate() {
                *b ^= (seed >> (i % 57)) as u8;
            }
            data.truncate(len);
            let avg = 1usize << avg_log;
            let mut s = Splitter::buzhash(avg).unwrap();
            let whole = s.chunk_lengths(&data);
            prop_assert_eq!(&whole, &reference_lengths(&data, avg / 2, avg, avg * 2));
            prop_assert_eq!(lengths_sliced(&mut s, &data, &slices), whole.clone());
            prop_assert_eq!(whole.iter().sum::<usize>(), data.len());
            if let Some((_last, complete)) = whole.split_last() {
                for &n in complete {
                    prop_assert!(n >= avg / 2 && n <= avg * 2);
                }
            }
        }
    }
}
