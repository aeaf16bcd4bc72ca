//! Compression (FORMAT.md §6): `uint32 BE header ID || compressed stream`.
//!
//! Kopia's compressors are identified by a name (in policies) and a 4-byte header ID (in
//! compressed payloads and index entries). Hashes are of uncompressed data, so any conforming
//! encoder may be used for writing; only the stream formats matter:
//!
//! * gzip / pgzip: RFC 1952 gzip. pgzip writes several members, so readers must accept
//!   multi-member streams.
//! * zstd: zstd frames. Kopia uses klauspost presets; we map fastest→1, default→3,
//!   better→7, best→11 (FORMAT.md §20: the mapping is approximate and irrelevant to readers).
//! * deflate: raw RFC 1951.
//! * s2 (all four names): klauspost's S2 stream, read and written by `compression/s2.rs`
//!   (its docs describe the format and why it is hand-written).
//! * lz4: the LZ4 frame format (kopia 0.20–0.22 wrote it with `pierrec/lz4`'s frame writer),
//!   read with `lz4_flex`. Kopia 0.23 removed it; we read it and never write it
//!   ([`CompressionAlgorithm::is_supported`] is false, so callers pick another compressor).
//!
//! Decompression is bounded by a caller-provided maximum output size so that hostile
//! payloads ("zip bombs") cannot exhaust memory. A header ID that is no kopia compressor is
//! [`Error::Unsupported`] ("unsupported compression: header …"), never corrupt data.

mod s2;

use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;

use crate::{Error, Result};

/// Length of the compression header.
pub const HEADER_LEN: usize = 4;

/// A kopia compressor (FORMAT.md §6.1, TEST-VECTORS.md §V-COMP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompressionAlgorithm {
    /// `gzip`, header `0x1000`.
    Gzip,
    /// `gzip-best-speed`, header `0x1001`.
    GzipBestSpeed,
    /// `gzip-best-compression`, header `0x1002`.
    GzipBestCompression,
    /// `zstd`, header `0x1100`.
    Zstd,
    /// `zstd-fastest`, header `0x1101` (kopia's default metadata compressor).
    ZstdFastest,
    /// `zstd-better-compression`, header `0x1102`.
    ZstdBetterCompression,
    /// `zstd-best-compression`, header `0x1103` (deprecated for new writes, still readable).
    ZstdBestCompression,
    /// `s2-default`, header `0x1200`.
    S2Default,
    /// `s2-better`, header `0x1201`.
    S2Better,
    /// `s2-parallel-4`, header `0x1202`.
    S2Parallel4,
    /// `s2-parallel-8`, header `0x1203`.
    S2Parallel8,
    /// `pgzip`, header `0x1300`.
    Pgzip,
    /// `pgzip-best-speed`, header `0x1301`.
    PgzipBestSpeed,
    /// `pgzip-best-compression`, header `0x1302`.
    PgzipBestCompression,
    /// `lz4`, header `0x1400`: removed in kopia v0.23.0; read here, never written.
    Lz4,
    /// `deflate-default`, header `0x1500`.
    DeflateDefault,
    /// `deflate-best-speed`, header `0x1501`.
    DeflateBestSpeed,
    /// `deflate-best-compression`, header `0x1502`.
    DeflateBestCompression,
}

use CompressionAlgorithm as A;

const ALL: [(CompressionAlgorithm, &str, u32); 18] = [
    (A::Gzip, "gzip", 0x1000),
    (A::GzipBestSpeed, "gzip-best-speed", 0x1001),
    (A::GzipBestCompression, "gzip-best-compression", 0x1002),
    (A::Zstd, "zstd", 0x1100),
    (A::ZstdFastest, "zstd-fastest", 0x1101),
    (A::ZstdBetterCompression, "zstd-better-compression", 0x1102),
    (A::ZstdBestCompression, "zstd-best-compression", 0x1103),
    (A::S2Default, "s2-default", 0x1200),
    (A::S2Better, "s2-better", 0x1201),
    (A::S2Parallel4, "s2-parallel-4", 0x1202),
    (A::S2Parallel8, "s2-parallel-8", 0x1203),
    (A::Pgzip, "pgzip", 0x1300),
    (A::PgzipBestSpeed, "pgzip-best-speed", 0x1301),
    (A::PgzipBestCompression, "pgzip-best-compression", 0x1302),
    (A::Lz4, "lz4", 0x1400),
    (A::DeflateDefault, "deflate-default", 0x1500),
    (A::DeflateBestSpeed, "deflate-best-speed", 0x1501),
    (
        A::DeflateBestCompression,
        "deflate-best-compression",
        0x1502,
    ),
];

/// The policy compressor name meaning "no compression".
pub const NONE_NAME: &str = "none";

enum Family {
    Gzip(u32),
    Zstd(i32),
    Deflate(u32),
    S2,
    /// Read only.
    Lz4,
}

impl CompressionAlgorithm {
    /// Every algorithm kopia has a header ID for, in header-ID order.
    pub fn all() -> impl Iterator<Item = CompressionAlgorithm> {
        ALL.iter().map(|(a, _, _)| *a)
    }

    /// Looks up kopia's compressor name (e.g. `zstd-fastest`). `none` is not an algorithm;
    /// see [`parse_policy_name`].
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.iter().find(|(_, n, _)| *n == name).map(|(a, _, _)| *a)
    }

    /// Looks up a header ID.
    pub fn from_header_id(id: u32) -> Option<Self> {
        ALL.iter().find(|(_, _, h)| *h == id).map(|(a, _, _)| *a)
    }

    /// Kopia's name.
    pub fn name(self) -> &'static str {
        ALL.iter()
            .find(|(a, _, _)| *a == self)
            .map(|(_, n, _)| *n)
            .unwrap_or("")
    }

    /// The 4-byte header ID.
    pub fn header_id(self) -> u32 {
        ALL.iter()
            .find(|(a, _, _)| *a == self)
            .map(|(_, _, h)| *h)
            .unwrap_or(0)
    }

    /// True when this crate can write it (compress; every kopia compressor but `lz4`, which
    /// kopia 0.23 no longer writes either). Every algorithm can be read ([`decompress`]).
    pub fn is_supported(self) -> bool {
        !matches!(self.family(), Family::Lz4)
    }

    /// True for the algorithms kopia marks deprecated (`zstd-best-compression`, `lz4`).
    pub fn is_deprecated(self) -> bool {
        matches!(self, A::ZstdBestCompression | A::Lz4)
    }

    fn family(self) -> Family {
        match self {
            A::Gzip | A::Pgzip => Family::Gzip(6),
            A::GzipBestSpeed | A::PgzipBestSpeed => Family::Gzip(1),
            A::GzipBestCompression | A::PgzipBestCompression => Family::Gzip(9),
            A::Zstd => Family::Zstd(3),
            A::ZstdFastest => Family::Zstd(1),
            A::ZstdBetterCompression => Family::Zstd(7),
            A::ZstdBestCompression => Family::Zstd(11),
            A::DeflateDefault => Family::Deflate(6),
            A::DeflateBestSpeed => Family::Deflate(1),
            A::DeflateBestCompression => Family::Deflate(9),
            A::S2Default | A::S2Better | A::S2Parallel4 | A::S2Parallel8 => Family::S2,
            A::Lz4 => Family::Lz4,
        }
    }
}

impl fmt::Display for CompressionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CompressionAlgorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s).ok_or_else(|| Error::unsupported("compression", s))
    }
}

/// Parses a policy compressor name: `""` (inherit/unset) and `none` mean no compression.
pub fn parse_policy_name(name: &str) -> Result<Option<CompressionAlgorithm>> {
    match name {
        "" | NONE_NAME => Ok(None),
        n => n.parse().map(Some),
    }
}

/// Compresses `data` to `header(4, BE) || stream`.
pub fn compress(alg: CompressionAlgorithm, data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    compress_into(alg, data, &mut out)?;
    Ok(out)
}

/// Like [`compress`], into `out` (cleared first), so callers can reuse one buffer.
///
/// zstd runs one-shot on a per-thread context that is reused across calls: creating and
/// initialising a context per content cost more than compressing a small file. The frames
/// carry their content size (any zstd reader, kopia's included, accepts either form).
pub fn compress_into(alg: CompressionAlgorithm, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.clear();
    compress_append(alg, data, out)
}

/// Like [`compress_into`], appending the header and compressed bytes to `out` (so callers
/// can leave room in front, e.g. for a nonce).
pub fn compress_append(alg: CompressionAlgorithm, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    if !alg.is_supported() {
        return Err(Error::unsupported(
            "compression",
            format!("{alg} (read only: kopia 0.23 removed it)"),
        ));
    }
    out.extend_from_slice(&alg.header_id().to_be_bytes());
    let io_err = |e: std::io::Error| Error::invalid("compression", e.to_string());
    match alg.family() {
        Family::Gzip(level) => {
            let mut enc = flate2::write::GzEncoder::new(out, flate2::Compression::new(level));
            enc.write_all(data).map_err(io_err)?;
            enc.finish().map_err(io_err)?;
            Ok(())
        }
        Family::Deflate(level) => {
            let mut enc = flate2::write::DeflateEncoder::new(out, flate2::Compression::new(level));
            enc.write_all(data).map_err(io_err)?;
            enc.finish().map_err(io_err)?;
            Ok(())
        }
        Family::Zstd(level) => zstd_compress(level, data, out).map_err(io_err),
        Family::S2 => s2::encode_stream(data, out),
        // Refused before the header was written (above).
        Family::Lz4 => Err(Error::unsupported("compression", alg.name())),
    }
}

thread_local! {
    /// This thread's zstd contexts, one per level used.
    static ZSTD_CONTEXTS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn new_zstd_compressor(level: i32) -> std::io::Result<zstd::bulk::Compressor<'static>> {
    let mut c = zstd::bulk::Compressor::new(level)?;
    // klauspost's encoder writes the frame checksum by default; so do we.
    c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
    Ok(c)
}

/// Appends one zstd frame of `data` to `out`.
fn zstd_compress(level: i32, data: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    let start = out.len();
    out.reserve(zstd::zstd_safe::compress_bound(data.len()));
    let mut cursor = std::io::Cursor::new(out);
    cursor.set_position(start as u64);
    ZSTD_CONTEXTS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut contexts) => {
            let i = match contexts.iter().position(|(l, _)| *l == level) {
                Some(i) => i,
                None => {
                    contexts.push((level, new_zstd_compressor(level)?));
                    contexts.len() - 1
                }
            };
            let (_, c) = contexts
                .get_mut(i)
                .ok_or_else(|| std::io::Error::other("zstd context"))?;
            c.compress_to_buffer(data, &mut cursor).map(drop)
        }
        // Not reentrant in practice; a fresh context keeps it correct if it ever is.
        Err(_) => new_zstd_compressor(level)?
            .compress_to_buffer(data, &mut cursor)
            .map(drop),
    })
}

/// Reads the header of a compressed payload.
pub fn header_of(data: &[u8]) -> Result<u32> {
    let h: [u8; HEADER_LEN] = data
        .get(..HEADER_LEN)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::corrupt("compressed data", "shorter than the 4-byte header"))?;
    Ok(u32::from_be_bytes(h))
}

/// Decompresses `header || stream`.
///
/// * `expected_header`: the header ID the index recorded; a different header is `Corrupt`
///   (kopia: "invalid compression header").
/// * `max_output`: more decompressed bytes than this is an error (bounded memory).
///
/// Gzip accepts multi-member streams (pgzip output); zstd accepts concatenated frames.
pub fn decompress(data: &[u8], expected_header: Option<u32>, max_output: usize) -> Result<Vec<u8>> {
    let id = header_of(data)?;
    if let Some(want) = expected_header
        && want != id
    {
        return Err(Error::corrupt(
            "compressed data",
            format!("invalid compression header, expected {want:08x} but got {id:08x}"),
        ));
    }
    let alg = CompressionAlgorithm::from_header_id(id)
        .ok_or_else(|| Error::unsupported("compression", format!("header {id:08x}")))?;
    let stream = data.get(HEADER_LEN..).unwrap_or_default();
    if matches!(alg.family(), Family::Zstd(_)) && max_output <= MAX_ONE_SHOT_OUTPUT {
        return zstd_decompress(stream, max_output);
    }
    let reader: Box<dyn Read + '_> = match alg.family() {
        Family::S2 => return s2::decode_stream(stream, max_output),
        // Frames of any block size (up to 4 MiB buffers), block and content checksums
        // verified when the frame carries them (pierrec/lz4 v2 writes the content checksum).
        Family::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(stream)),
        Family::Gzip(_) => Box::new(flate2::read::MultiGzDecoder::new(stream)),
        Family::Deflate(_) => Box::new(flate2::read::DeflateDecoder::new(stream)),
        Family::Zstd(_) => {
            let mut d = zstd::stream::read::Decoder::with_buffer(stream)
                .map_err(|e| Error::corrupt("zstd stream", e.to_string()))?;
            // Refuse frames whose window exceeds 128 MiB (zstd's own default ceiling),
            // whatever they declare.
            d.window_log_max(27)
                .map_err(|e| Error::corrupt("zstd stream", e.to_string()))?;
            Box::new(d)
        }
    };
    read_bounded(reader, alg, max_output)
}

/// Outputs up to this size are zstd-decompressed in one shot into a buffer of the limit's
/// size (contents are below 2^28 bytes and callers pass their exact length).
const MAX_ONE_SHOT_OUTPUT: usize = 64 << 20;

thread_local! {
    /// This thread's zstd decompression context, reused across calls.
    static ZSTD_DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn new_zstd_decompressor() -> std::io::Result<zstd::bulk::Decompressor<'static>> {
    let mut d = zstd::bulk::Decompressor::new()?;
    // Refuse frames whose window exceeds 128 MiB (zstd's own default ceiling), whatever
    // they declare.
    d.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(27))?;
    Ok(d)
}

/// One-shot decompression of zstd frames (concatenated frames too) straight into the output:
/// no per-call context and no window buffer, unlike the streaming decoder.
fn zstd_decompress(stream: &[u8], max_output: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(max_output);
    let run = |d: &mut zstd::bulk::Decompressor<'static>, out: &mut Vec<u8>| {
        d.decompress_to_buffer(stream, out).map(drop)
    };
    let r = ZSTD_DCTX.with(|cell| match cell.try_borrow_mut() {
        Ok(mut slot) => {
            let d = match &mut *slot {
                Some(d) => d,
                d => d.insert(new_zstd_decompressor()?),
            };
            run(d, &mut out)
        }
        Err(_) => run(&mut new_zstd_decompressor()?, &mut out),
    });
    match r {
        Ok(()) => Ok(out),
        Err(e) if zstd_output_too_small(stream, max_output) => Err(Error::corrupt(
            "compressed data",
            format!("zstd stream decompresses to more than the limit of {max_output} bytes: {e}"),
        )),
        Err(e) => Err(Error::corrupt("compressed data", format!("zstd: {e}"))),
    }
}

/// Whether a failed one-shot decompression failed for lack of room (the stream is valid
/// but longer than the limit): re-checked with the streaming decoder, bounded.
fn zstd_output_too_small(stream: &[u8], max_output: usize) -> bool {
    let Ok(mut d) = zstd::stream::read::Decoder::with_buffer(stream) else {
        return false;
    };
    if d.window_log_max(27).is_err() {
        return false;
    }
    let limit = u64::try_from(max_output)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    std::io::copy(&mut d.take(limit), &mut std::io::sink()).is_ok_and(|n| n > max_output as u64)
}

fn read_bounded(
    reader: Box<dyn Read + '_>,
    alg: CompressionAlgorithm,
    max_output: usize,
) -> Result<Vec<u8>> {
    let limit = u64::try_from(max_output)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut out = Vec::new();
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| Error::corrupt("compressed data", format!("{}: {e}", alg.name())))?;
    if out.len() > max_output {
        return Err(Error::corrupt(
            "compressed data",
            format!(
                "{} stream decompresses to more than the limit of {max_output} bytes",
                alg.name()
            ),
        ));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // TEST-VECTORS.md §V-COMP (repo/compression/compression_ids.go).
    #[test]
    fn v_comp_header_ids() {
        let table = [
            ("gzip", 0x0000_1000),
            ("gzip-best-speed", 0x0000_1001),
            ("gzip-best-compression", 0x0000_1002),
            ("zstd", 0x0000_1100),
            ("zstd-fastest", 0x0000_1101),
            ("zstd-better-compression", 0x0000_1102),
            ("zstd-best-compression", 0x0000_1103),
            ("s2-default", 0x0000_1200),
            ("s2-better", 0x0000_1201),
            ("s2-parallel-4", 0x0000_1202),
            ("s2-parallel-8", 0x0000_1203),
            ("pgzip", 0x0000_1300),
            ("pgzip-best-speed", 0x0000_1301),
            ("pgzip-best-compression", 0x0000_1302),
            ("lz4", 0x0000_1400),
            ("deflate-default", 0x0000_1500),
            ("deflate-best-speed", 0x0000_1501),
            ("deflate-best-compression", 0x0000_1502),
        ];
        assert_eq!(CompressionAlgorithm::all().count(), table.len());
        for (name, id) in table {
            let a = CompressionAlgorithm::from_name(name).unwrap();
            assert_eq!(a.header_id(), id, "{name}");
            assert_eq!(a.name(), name);
            assert_eq!(a.to_string(), name);
            assert_eq!(CompressionAlgorithm::from_header_id(id), Some(a));
            assert_eq!(name.parse::<CompressionAlgorithm>().unwrap(), a);
        }
        assert_eq!(parse_policy_name("none").unwrap(), None);
        assert_eq!(parse_policy_name("").unwrap(), None);
        assert_eq!(
            parse_policy_name("zstd-fastest").unwrap(),
            Some(CompressionAlgorithm::ZstdFastest)
        );
        assert!(parse_policy_name("brotli").is_err());
        assert_eq!(CompressionAlgorithm::from_header_id(0x1104), None);
    }

    #[test]
    fn unsupported_messages() {
        let mut out = vec![9];
        let e = compress_append(CompressionAlgorithm::Lz4, b"x", &mut out).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unsupported compression: lz4 (read only: kopia 0.23 removed it)"
        );
        assert_eq!(out, [9], "nothing appended");
        // lz4 is read: a bad frame is corrupt data, not unsupported.
        let e = decompress(&[0, 0, 0x14, 0, 1, 2], None, 100).unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        let e = decompress(&[0, 0, 0x77, 0, 1, 2], None, 100).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }));
        assert_eq!(e.to_string(), "unsupported compression: header 00007700");
        assert!(matches!(
            decompress(&[0, 0], None, 100),
            Err(Error::Corrupt { .. })
        ));
    }

    // TEST-VECTORS.md §V-CONTENT: stored plaintexts (header || stream) decode to the exact JSON.
    #[test]
    fn v_content_gzip_plaintext() {
        let stored = hex::decode("000010001f8b0800000000000203254d4b0ac23010dd7b8cb74e651afcce013c41578a8b60230cedb492a4602dbdbb23eedeff2dc825c5a06074e34b02b792e2a38c6986431c4a9298c1b7bb439e5483c9bc20cb2782c9e129fdcf369467ed65e8fec4360cd40e1ade8da865e1c9ef2ada577468e8c874623a6f6b7fb59361d24bb09dd6aaebbaf9025061918991000000").unwrap();
        let json = b"{\"stream\":\"kopia:directory\",\"entries\":[],\"summary\":{\"size\":0,\"files\":0,\"symlinks\":0,\"dirs\":1,\"maxTime\":\"2024-05-06T07:08:09.12Z\",\"numFailed\":0}}\n";
        assert_eq!(decompress(&stored, Some(0x1000), 1 << 20).unwrap(), json);
        // wrong expected header
        assert!(decompress(&stored, Some(0x1101), 1 << 20).is_err());
        // output bound
        assert!(decompress(&stored, Some(0x1000), json.len() - 1).is_err());
        assert_eq!(decompress(&stored, Some(0x1000), json.len()).unwrap(), json);
    }

    #[test]
    fn v_content_zstd_plaintext() {
        let stored = hex::decode("0000110128b52ffd60b300150800d69239215067ac0310236cfd54605f99362a0bdf689aa473b545492bdf4aaac14755a5c31a2f002f0031006fe8cca7c7f35b11d5a7d7452d380cd305e7f77ccd19027cdaf2a94d3f3d7a9cbaf423213fa97012e7cfd74fa56704085be71b280ec1d3ee2a3e94d0d31106d712b69043150ccb6eb9ed2159025bc23af690753e29c5ef03499fbe56b2e7719d3bd8830d51eb968828c36bad581f71c6daeeee621ca712a084686a9c256ab9a7b888b8079972244b8b5025ad9525b2008dc6f26133f2054ca8392cde7c527cfa48f8b47c9a68243323fa74f069333232f8d1f3e684e8d340e3aca9b72c1d0800f4b1e5b96fb1f8a1358fb92528999129ba2eab45ddaa28").unwrap();
        let json = "{\"stream\":\"kopia:directory\",\"entries\":[{\"name\":\"hello.txt\",\"type\":\"f\",\"mode\":\"0644\",\"size\":11,\"mtime\":\"2024-05-06T07:08:09.123456789Z\",\"uid\":1000,\"gid\":1000,\"obj\":\"4535fcbe761df7c62b5da83f8ba84165\"},{\"name\":\"suid-tool\",\"type\":\"f\",\"mode\":\"040000755\",\"mtime\":\"2024-05-06T07:08:09Z\",\"obj\":\"4e51e7a913fc80137da52880fecca175\"}],\"summary\":{\"size\":11,\"files\":2,\"symlinks\":0,\"dirs\":1,\"maxTime\":\"2024-05-06T07:08:09.123456789Z\",\"numFailed\":0}}\n";
        assert_eq!(
            decompress(&stored, Some(0x1101), 1 << 20).unwrap(),
            json.as_bytes()
        );
    }

    #[test]
    fn gzip_multi_member() {
        let a = compress(CompressionAlgorithm::Pgzip, b"hello ").unwrap();
        let b = compress(CompressionAlgorithm::Pgzip, b"world").unwrap();
        let mut joined = a.clone();
        joined.extend_from_slice(&b[HEADER_LEN..]);
        assert_eq!(
            decompress(&joined, Some(0x1300), 100).unwrap(),
            b"hello world"
        );
    }

    #[test]
    fn bomb_is_bounded() {
        let zeros = vec![0u8; 10 << 20];
        for alg in [A::Gzip, A::ZstdFastest, A::DeflateDefault, A::S2Default] {
            let c = compress(alg, &zeros).unwrap();
            assert!(c.len() < 1 << 20, "{alg}: {}", c.len());
            assert!(matches!(
                decompress(&c, None, 1 << 20),
                Err(Error::Corrupt { .. })
            ));
        }
        // lz4 (read only here): a frame made by lz4_flex's encoder.
        let c = lz4_frame(&zeros);
        assert!(c.len() < 100_000);
        assert!(matches!(
            decompress(&c, None, 1 << 20),
            Err(Error::Corrupt { .. })
        ));
        assert_eq!(decompress(&c, Some(0x1400), zeros.len()).unwrap(), zeros);
    }

    /// `header(lz4) || LZ4 frame of data`, as kopia 0.20–0.22 stored it.
    fn lz4_frame(data: &[u8]) -> Vec<u8> {
        let mut enc = lz4_flex::frame::FrameEncoder::new(A::Lz4.header_id().to_be_bytes().to_vec());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn supported() -> Vec<CompressionAlgorithm> {
        CompressionAlgorithm::all()
            .filter(|a| a.is_supported())
            .collect()
    }

    // kopia repo/compression/compressor_test.go properties.
    #[test]
    fn kopia_properties() {
        let zeros = vec![0u8; 10_000];
        let mut random = vec![0u8; 10_000];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for b in &mut random {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for alg in supported() {
            let cz = compress(alg, &zeros).unwrap();
            assert!(cz.len() < zeros.len(), "{alg} must shrink zeros");
            let cr = compress(alg, &random).unwrap();
            assert!(
                cr.len() >= random.len(),
                "{alg} must not shrink random data"
            );
            assert_eq!(
                decompress(&cr, Some(alg.header_id()), 20_000).unwrap(),
                random
            );
            for other in supported() {
                if other != alg {
                    assert!(
                        decompress(&cz, Some(other.header_id()), 20_000).is_err(),
                        "{other} accepted {alg} output"
                    );
                }
            }
        }
    }

    proptest! {
        #[test]
        fn roundtrip(data in proptest::collection::vec(any::<u8>(), 0..4096), idx in 0usize..18) {
            let algs = supported();
            let alg = algs[idx % algs.len()];
            let c = compress(alg, &data).unwrap();
            prop_assert_eq!(header_of(&c).unwrap(), alg.header_id());
            prop_assert_eq!(decompress(&c, Some(alg.header_id()), data.len()).unwrap(), data);
        }

        #[test]
        fn hostile_input_never_panics(data in proptest::collection::vec(any::<u8>(), 0..256), idx in 0usize..18) {
            let alg = CompressionAlgorithm::all().nth(idx).unwrap();
            let mut input = alg.header_id().to_be_bytes().to_vec();
            input.extend_from_slice(&data);
            let _ = decompress(&input, None, 1 << 16);
        }
    }
}
