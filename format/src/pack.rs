//! Pack blobs: concatenated encrypted contents plus an encrypted local index
//! (FORMAT.md §7; kopia `repo/content/content_manager*.go`,
//! `repo/content/content_index_recovery.go`).
//!
//! ```text
//! offset 0  [format-blob replica]        format v1 repositories only, see format_blob_replica
//!           preamble                     32 random bytes
//!           payload #1, payload #2, ...  encrypted contents, no per-content header
//!           padding                      N random bytes, N = 4096 − (len mod 4096), 1..=4096
//! L         encrypted local index        L is a multiple of 4096
//!           postamble                    uvarint(1) || uvarint(len(iv)) || iv
//!                                        || uvarint(L) || uvarint(len(encrypted local index))
//!                                        || u32 BE CRC-32/IEEE of the preceding postamble bytes
//!           1 byte                       length of the postamble (5..=255)
//! ```
//!
//! The index entry of a content records its payload offset (from the pack start, preamble
//! included) and its encrypted length. The local index (a complete index body with a random
//! suffix, encrypted with IV = hash of its plaintext) is only needed to recover lost index
//! blobs.
//!
//! [`PackBuilder`] assembles a pack from caller-supplied random bytes and already-encrypted
//! pieces; [`Postamble`] finds and checks the local-index pointer at the end of a pack.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{Error, Result};

/// Pack sizes before the local index are rounded up to a multiple of this.
pub const PADDING_UNIT: usize = 4096;
/// Length of the random preamble (kopia's minimum and maximum are both 32).
pub const PREAMBLE_LEN: usize = 32;
/// How many bytes at the end of a pack a reader fetches to find the postamble.
pub const POSTAMBLE_SEARCH_LEN: usize = 8192;
/// Smallest valid postamble length byte.
pub const MIN_POSTAMBLE_LEN: usize = 5;
/// Version/flags value of the postamble.
pub const POSTAMBLE_VERSION: u64 = 1;
/// Secret of the HMAC-SHA256 that checksums the format-blob replica.
pub const FORMAT_BLOB_CHECKSUM_SECRET: &[u8] = b"kopia-repository";
/// Largest checksummed format blob (bytes + 32-byte HMAC) a replica can hold.
pub const MAX_CHECKSUMMED_FORMAT_BYTES: usize = 65000;

const WHAT: &str = "pack postamble";

/// Where the encrypted local index of a pack lives, and its IV.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Postamble {
    /// IV of the local index: the full hash of its plaintext.
    pub local_index_iv: Vec<u8>,
    /// Offset of the encrypted local index from the pack start.
    pub local_index_offset: u64,
    /// Length of the encrypted local index.
    pub local_index_length: u64,
}

/// Appends Go's `binary.PutUvarint` encoding (LEB128) of `v`.
fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Go's `binary.Uvarint`: value and bytes consumed, `None` if truncated or overflowing
/// 64 bits.
fn get_uvarint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut x: u64 = 0;
    let mut shift = 0u32;
    for (i, &b) in buf.iter().enumerate().take(10) {
        if b < 0x80 {
            if i == 9 && b > 1 {
                return None;
            }
            return Some((x | (u64::from(b) << shift), i + 1));
        }
        x |= u64::from(b & 0x7f) << shift;
        shift += 7;
    }
    None
}

impl Postamble {
    /// Finds the postamble at the end of `tail` (the last [`POSTAMBLE_SEARCH_LEN`] bytes of a
    /// pack, or the whole pack) and checks its CRC, version and structure.
    ///
    /// Fields after the local index length are ignored, as kopia does. Every failure is
    /// [`Error::Corrupt`].
    pub fn parse_from_tail(tail: &[u8]) -> Result<Postamble> {
        let (&n, rest) = tail
            .split_last()
            .ok_or_else(|| Error::corrupt(WHAT, "empty pack"))?;
        let n = usize::from(n);
        if n < MIN_POSTAMBLE_LEN {
            return Err(Error::corrupt(WHAT, format!("length byte {n} below 5")));
        }
        let body = rest
            .len()
            .checked_sub(n)
            .and_then(|start| rest.get(start..))
            .ok_or_else(|| {
                Error::corrupt(WHAT, format!("length {n} exceeds the {} bytes", rest.len()))
            })?;
        let (payload, crc) = body
            .split_at_checked(n - 4)
            .ok_or_else(|| Error::corrupt(WHAT, "truncated"))?;
        let stored = u32::from_be_bytes(
            crc.try_into()
                .map_err(|_| Error::corrupt(WHAT, "truncated checksum"))?,
        );
        let actual = crc32fast::hash(payload);
        if stored != actual {
            return Err(Error::corrupt(
                WHAT,
                format!("CRC-32 mismatch (stored {stored:08x}, computed {actual:08x})"),
            ));
        }
        Self::decode_payload(payload)
    }

    fn decode_payload(mut p: &[u8]) -> Result<Postamble> {
        let next = |name: &str, p: &mut &[u8]| -> Result<u64> {
            let (v, used) = get_uvarint(p)
                .ok_or_else(|| Error::corrupt(WHAT, format!("bad varint for {name}")))?;
            *p = p.get(used..).unwrap_or_default();
            Ok(v)
        };
        let flags = next("flags", &mut p)?;
        if flags != POSTAMBLE_VERSION {
            return Err(Error::corrupt(WHAT, format!("unsupported flags {flags}")));
        }
        let iv_len = next("IV length", &mut p)?;
        let iv_len = usize::try_from(iv_len)
            .ok()
            .filter(|&l| l <= p.len())
            .ok_or_else(|| Error::corrupt(WHAT, format!("IV length {iv_len} too long")))?;
        let (iv, mut rest) = p.split_at(iv_len);
        let local_index_offset = next("local index offset", &mut rest)?;
        let local_index_length = next("local index length", &mut rest)?;
        Ok(Postamble {
            local_index_iv: iv.to_vec(),
            local_index_offset,
            local_index_length,
        })
    }

    /// The postamble bytes followed by the length byte.
    ///
    /// Errors ([`Error::Invalid`]) if the postamble would exceed 255 bytes (an IV of more
    /// than about 200 bytes).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(32 + self.local_index_iv.len());
        put_uvarint(&mut out, POSTAMBLE_VERSION);
        put_uvarint(&mut out, self.local_index_iv.len() as u64);
        out.extend_from_slice(&self.local_index_iv);
        put_uvarint(&mut out, self.local_index_offset);
        put_uvarint(&mut out, self.local_index_length);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        let n = u8::try_from(out.len()).map_err(|_| {
            Error::invalid("pack postamble", format!("too long: {} bytes", out.len()))
        })?;
        out.push(n);
        Ok(out)
    }

    /// The byte range of the encrypted local index within the pack.
    pub fn local_index_range(&self) -> std::ops::Range<u64> {
        self.local_index_offset
            ..self
                .local_index_offset
                .saturating_add(self.local_index_length)
    }
}

/// Number of padding bytes kopia adds after `len` bytes of pack data: `4096 − (len mod 4096)`,
/// always 1..=4096.
pub fn padding_len(len: usize) -> usize {
    PADDING_UNIT - len % PADDING_UNIT
}

/// The max-pack-size rule: a pending pack is written as soon as its length (preamble and
/// payloads) reaches `max_pack_size` after an append, so packs may exceed it by one content.
pub fn should_flush(len: usize, max_pack_size: usize) -> bool {
    len >= max_pack_size
}

/// The format-blob replica that format-v1 repositories (`enablePasswordChange = false`) put at
/// the start of every pack: `len16LE || bytes || HMAC-SHA256("kopia-repository", bytes) ||
/// len16LE` with `len = bytes + 32`.
///
/// Errors ([`Error::Invalid`]) if `len` exceeds [`MAX_CHECKSUMMED_FORMAT_BYTES`].
pub fn format_blob_replica(format_blob: &[u8]) -> Result<Vec<u8>> {
    let l = format_blob.len() + 32;
    if l > MAX_CHECKSUMMED_FORMAT_BYTES {
        return Err(Error::invalid(
            "format blob replica",
            format!("format blob too big: {l}"),
        ));
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(FORMAT_BLOB_CHECKSUM_SECRET)
        .map_err(|e| Error::invalid("format blob replica", e.to_string()))?;
    mac.update(format_blob);
    let len16 = (l as u16).to_le_bytes();
    let mut out = Vec::with_capacity(l + 4);
    out.extend_from_slice(&len16);
    out.extend_from_slice(format_blob);
    out.extend_from_slice(&mac.finalize().into_bytes());
    out.extend_from_slice(&len16);
    Ok(out)
}

/// Accumulates one pack in memory (sans I/O; callers supply every random byte).
///
/// The pack is `data[lead..]`: an [`PackBuilder::aligned`] builder skips `lead` bytes so
/// the pack starts on an aligned address (for `O_DIRECT` writes, which need one).
#[derive(Clone, Debug)]
pub struct PackBuilder {
    data: Vec<u8>,
    lead: usize,
    payloads: usize,
}

impl PackBuilder {
    /// Starts a pack with its 32-byte random preamble.
    pub fn new(preamble: [u8; PREAMBLE_LEN]) -> Self {
        Self::with_prefix(&[], &preamble)
    }

    /// Starts a pack with a prefix (the [`format_blob_replica`] of format-v1 repositories,
    /// or nothing) followed by the random preamble.
    pub fn with_prefix(prefix: &[u8], preamble: &[u8]) -> Self {
        let mut data = Vec::with_capacity(prefix.len() + preamble.len());
        data.extend_from_slice(prefix);
        data.extend_from_slice(preamble);
        PackBuilder {
            data,
            lead: 0,
            payloads: 0,
        }
    }

    /// Like [`PackBuilder::new`], with room for `capacity` pack bytes allocated up front
    /// and the pack starting on an address that is a multiple of `align` (a power of two).
    /// [`PackBuilder::finish_aligned`] hands the buffer out without moving it, so a pack
    /// that stays within `capacity` can be written with direct I/O.
    pub fn aligned(preamble: [u8; PREAMBLE_LEN], capacity: usize, align: usize) -> Self {
        let align = align.max(1);
        let mut data: Vec<u8> = Vec::with_capacity(capacity.max(PREAMBLE_LEN) + align);
        // Pointer arithmetic only (`align_offset` is safe); usize::MAX means "cannot".
        let lead = match data.as_ptr().align_offset(align) {
            n if n < align => n,
            _ => 0,
        };
        data.resize(lead, 0);
        data.extend_from_slice(&preamble);
        PackBuilder {
            data,
            lead,
            payloads: 0,
        }
    }

    /// Appends an encrypted content payload and returns its pack offset (saturating at
    /// `u32::MAX`; index builders reject offsets of 2^30 and more, far above any pack size).
    pub fn append(&mut self, payload: &[u8]) -> u32 {
        let offset = u32::try_from(self.len()).unwrap_or(u32::MAX);
        self.data.extend_from_slice(payload);
        self.payloads += 1;
        offset
    }

    /// Reserves room for `additional` more bytes (e.g. a whole pack, to avoid regrowth).
    pub fn reserve(&mut self, additional: usize) {
        self.data.reserve(additional);
    }

    /// Bytes so far (prefix, preamble and payloads); compare with [`should_flush`].
    pub fn len(&self) -> usize {
        self.data.len() - self.lead
    }

    /// True while no payload has been appended (the length is then prefix + preamble).
    pub fn is_empty(&self) -> bool {
        self.payloads == 0
    }

    /// The bytes so far, e.g. to serve reads of contents still waiting in this pack.
    pub fn bytes(&self) -> &[u8] {
        self.data.get(self.lead..).unwrap_or_default()
    }

    /// Like [`PackBuilder::finish`] but reports an IV too long for a postamble as an error.
    pub fn try_finish(
        self,
        padding: &[u8],
        encrypted_local_index: &[u8],
        local_index_iv: &[u8],
    ) -> Result<Vec<u8>> {
        let (mut data, lead, post) = self.assemble(padding, encrypted_local_index, local_index_iv);
        data.extend_from_slice(&post?);
        data.drain(..lead);
        Ok(data)
    }

    /// Completes the pack: padding to a multiple of 4096 (taking the first
    /// [`padding_len`] bytes of `padding`, which should hold 4096 random bytes; shorter input
    /// is repeated, empty input gives zeros), the encrypted local index, the postamble and
    /// its length byte.
    ///
    /// The IV is a hash (16 or 32 bytes). An IV longer than ~200 bytes cannot be described
    /// by a postamble; the pack then ends after the local index, which only disables
    /// recovery of its index (use [`PackBuilder::try_finish`] to get an error instead).
    pub fn finish(
        self,
        padding: &[u8],
        encrypted_local_index: &[u8],
        local_index_iv: &[u8],
    ) -> Vec<u8> {
        let (mut data, lead) = self.finish_aligned(padding, encrypted_local_index, local_index_iv);
        data.drain(..lead);
        data
    }

    /// Like [`PackBuilder::finish`], without moving the bytes: the pack is `buf[lead..]`
    /// of the returned `(buf, lead)`.
    pub fn finish_aligned(
        self,
        padding: &[u8],
        encrypted_local_index: &[u8],
        local_index_iv: &[u8],
    ) -> (Vec<u8>, usize) {
        let (mut data, lead, post) = self.assemble(padding, encrypted_local_index, local_index_iv);
        if let Ok(post) = post {
            data.extend_from_slice(&post);
        }
        (data, lead)
    }

    /// Buffer with the pack bytes up to the end of the local index from `lead` on, `lead`,
    /// and the encoded postamble.
    fn assemble(
        self,
        padding: &[u8],
        encrypted_local_index: &[u8],
        local_index_iv: &[u8],
    ) -> (Vec<u8>, usize, Result<Vec<u8>>) {
        let lead = self.lead;
        let mut data = self.data;
        let n = padding_len(data.len() - lead);
        data.reserve(n + encrypted_local_index.len() + local_index_iv.len() + 32);
        if padding.is_empty() {
            data.resize(data.len() + n, 0);
        } else {
            data.extend(padding.iter().cycle().take(n));
        }
        let post = Postamble {
            local_index_iv: local_index_iv.to_vec(),
            local_index_offset: (data.len() - lead) as u64,
            local_index_length: encrypted_local_index.len() as u64,
        }
        .encode();
        data.extend_from_slice(encrypted_local_index);
        (data, lead, post)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::Digest;

    // TEST-VECTORS.md §V-PACK.
    const PREAMBLE: &str = "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef";
    const PAYLOAD: &str =
        "909192939495969798999a9b6d785a36e4a9ce5d82d2e3f5cb9c5a447e3c4d2dcc9faaa63104ab";
    const ENC_INDEX: &str = "e0e1e2e3e4e5e6e7e8e9eaeb5d993af6bab2a65c23653a327400ae54a0f82039d5b91f4691b6c8dd2db2dc558b68b5457ae58472b71089c5745f18ff01dd46032afee32eaedb7d25fc915595742a5974a9f0ce1d8a78b734b70c5680a20e4afecd7ac73d6c851db5471ef0e5119bf38459559fe5127324528a3431c874636787e40d872b26fbef9b0e4e95d84abbd8196fbbe3c0ec8a0ab8608d66b75d8d7c2c2e6c61b971b9340e8a361e04a17aff";
    const POSTAMBLE: &str = "01109c71aea3bc4de3a812e72f3a885562c68020af019a2508b71a";
    const IV: &str = "9c71aea3bc4de3a812e72f3a885562c6";
    const SHA: &str = "c61c1c29aa52749eb4aaad12c6a5ef0053c037f8d5de7b36f6ffefb2742e310e";

    fn v_pack() -> Vec<u8> {
        let mut b = PackBuilder::new(hex::decode(PREAMBLE).unwrap().try_into().unwrap());
        assert!(b.is_empty());
        assert_eq!(b.append(&hex::decode(PAYLOAD).unwrap()), 32);
        assert_eq!(b.len(), 71);
        assert!(!b.is_empty());
        b.finish(
            &[0xee; 4096],
            &hex::decode(ENC_INDEX).unwrap(),
            &hex::decode(IV).unwrap(),
        )
    }

    #[test]
    fn v_pack_layout() {
        let pack = v_pack();
        assert_eq!(pack.len(), 4298);
        assert_eq!(hex::encode(sha2::Sha256::digest(&pack)), SHA);
        assert_eq!(&pack[71..4096], &[0xee; 4025][..]);
        assert_eq!(hex::encode(&pack[4096..4271]), ENC_INDEX);
        assert_eq!(hex::encode(&pack[4271..]), POSTAMBLE);

        let p = Postamble::parse_from_tail(&pack).unwrap();
        assert_eq!(hex::encode(&p.local_index_iv), IV);
        assert_eq!((p.local_index_offset, p.local_index_length), (4096, 175));
        assert_eq!(p.local_index_range(), 4096..4271);
        assert_eq!(hex::encode(p.encode().unwrap()), POSTAMBLE);
        // From the last bytes only.
        assert_eq!(
            Postamble::parse_from_tail(&pack[pack.len() - 30..]).unwrap(),
            p
        );
        // try_finish gives the same bytes.
        let mut b = PackBuilder::new(hex::decode(PREAMBLE).unwrap().try_into().unwrap());
        b.append(&hex::decode(PAYLOAD).unwrap());
        let again = b
            .try_finish(
                &[0xee; 4096],
                &hex::decode(ENC_INDEX).unwrap(),
                &hex::decode(IV).unwrap(),
            )
            .unwrap();
        assert_eq!(again, pack);
    }

    #[test]
    fn aligned_builder_gives_the_v_pack_bytes_in_place() {
        for align in [1, 512, 4096] {
            let mut b = PackBuilder::aligned(
                hex::decode(PREAMBLE).unwrap().try_into().unwrap(),
                8192,
                align,
            );
            let start = b.bytes().as_ptr();
            assert_eq!(start as usize % align, 0);
            assert!(b.is_empty());
            assert_eq!(b.append(&hex::decode(PAYLOAD).unwrap()), 32);
            assert_eq!(b.len(), 71);
            assert_eq!(b.bytes().len(), 71);
            // finish and try_finish drop the lead.
            let finished = b.clone().finish(
                &[0xee; 4096],
                &hex::decode(ENC_INDEX).unwrap(),
                &hex::decode(IV).unwrap(),
            );
            assert_eq!(finished, v_pack());
            let tried = b
                .clone()
                .try_finish(
                    &[0xee; 4096],
                    &hex::decode(ENC_INDEX).unwrap(),
                    &hex::decode(IV).unwrap(),
                )
                .unwrap();
            assert_eq!(tried, v_pack());
            let (buf, lead) = b.finish_aligned(
                &[0xee; 4096],
                &hex::decode(ENC_INDEX).unwrap(),
                &hex::decode(IV).unwrap(),
            );
            // Within capacity: the pack did not move.
            assert_eq!(buf[lead..].as_ptr(), start);
            assert_eq!(&buf[lead..], &v_pack()[..]);
        }
    }

    #[test]
    fn bad_postambles() {
        let pack = v_pack();
        let corrupt = |t: &[u8]| {
            let r = Postamble::parse_from_tail(t);
            assert!(matches!(r, Err(Error::Corrupt { .. })), "{r:?}");
        };
        corrupt(&[]);
        corrupt(&[4]);
        corrupt(&pack[pack.len() - 10..]); // length byte beyond the tail
        let mut flipped = pack.clone();
        let n = flipped.len();
        flipped[n - 20] ^= 1; // CRC mismatch
        corrupt(&flipped);
        // Flags other than 1, with a valid CRC.
        let mut p = Postamble::parse_from_tail(&pack).unwrap().encode().unwrap();
        p[0] = 2;
        let crc = crc32fast::hash(&p[..p.len() - 5]);
        let at = p.len() - 5;
        p[at..at + 4].copy_from_slice(&crc.to_be_bytes());
        corrupt(&p);
        // IV length beyond the payload.
        let mut p = vec![1u8, 100, 0, 0];
        let crc = crc32fast::hash(&p);
        p.extend_from_slice(&crc.to_be_bytes());
        p.push(8);
        corrupt(&p);
    }

    #[test]
    fn padding_rule() {
        assert_eq!(padding_len(0), 4096);
        assert_eq!(padding_len(71), 4025);
        assert_eq!(padding_len(4095), 1);
        assert_eq!(padding_len(4096), 4096);
        assert!(!should_flush(99, 100));
        assert!(should_flush(100, 100));
        assert!(should_flush(150, 100));
        // Short padding input is repeated; the local index stays 4096-aligned.
        let mut b = PackBuilder::new([7; 32]);
        b.append(&[1; 5000]);
        let pack = b.finish(&[9, 8], b"index", b"iv");
        let p = Postamble::parse_from_tail(&pack).unwrap();
        assert_eq!(p.local_index_offset, 8192);
        assert_eq!(&pack[5032..5036], &[9, 8, 9, 8]);
        assert_eq!(&pack[8192..8197], b"index");
    }

    #[test]
    fn replica() {
        let r = format_blob_replica(b"{}").unwrap();
        assert_eq!(r.len(), 2 + 2 + 32 + 2);
        assert_eq!(&r[..2], &34u16.to_le_bytes());
        assert_eq!(&r[r.len() - 2..], &34u16.to_le_bytes());
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"kopia-repository").unwrap();
        mac.update(b"{}");
        assert_eq!(&r[4..36], mac.finalize().into_bytes().as_slice());
        assert!(format_blob_replica(&[0; 65000]).is_err());
        let mut b = PackBuilder::with_prefix(&r, &[0; 32]);
        assert_eq!(b.append(b"x"), (r.len() + 32) as u32);
    }

    #[test]
    fn uvarint_matches_go() {
        let mut v = Vec::new();
        put_uvarint(&mut v, 4096);
        assert_eq!(v, [0x80, 0x20]);
        assert_eq!(get_uvarint(&[0xaf, 0x01]), Some((175, 2)));
        assert_eq!(get_uvarint(&[0x80]), None);
        let mut max = Vec::new();
        put_uvarint(&mut max, u64::MAX);
        assert_eq!(get_uvarint(&max), Some((u64::MAX, 10)));
        let mut over = max.clone();
        over[9] = 2;
        assert_eq!(get_uvarint(&over), None);
    }

    proptest! {
        #[test]
        fn postamble_roundtrip(iv in prop::collection::vec(any::<u8>(), 0..64), off: u64, len: u64) {
            let p = Postamble { local_index_iv: iv, local_index_offset: off, local_index_length: len };
            let mut bytes = vec![0xaa; 17];
            bytes.extend(p.encode().unwrap());
            prop_assert_eq!(Postamble::parse_from_tail(&bytes).unwrap(), p);
        }

        #[test]
        fn tails_never_panic(tail in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Postamble::parse_from_tail(&tail);
        }
    }
}
