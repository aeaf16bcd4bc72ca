//! klauspost's S2 stream format (kopia's `s2-default`, `s2-better`, `s2-parallel-4`,
//! `s2-parallel-8`): a superset of Snappy's framing format.
//!
//! Why hand-written: no maintained crate both decodes every S2 extension and stays within
//! this crate's rules. `snap` reads Snappy only (no repeat offsets, no `S2sTwO` streams);
//! `minlz` decodes S2 but through `unsafe` code (uninitialised output buffers, AVX2 pointer
//! copies) on what here is hostile input. The decoder below follows klauspost's reference
//! (pure-Go) decoder, `s2/decode_other.go` and `s2/reader.go`, in safe Rust, and is fuzzed
//! (`fuzz/fuzz_targets/s2.rs`).
//!
//! # Stream (klauspost `s2/reader.go`, Snappy `framing_format.txt`)
//! A sequence of chunks `type(1) || length(3, LE) || body`:
//! * `0xff` stream identifier, body `S2sTwO` (or Snappy's `sNaPpY`); must come first.
//! * `0x00` compressed: `crc(4, LE) || block`; `0x01` uncompressed: `crc(4, LE) || bytes`.
//!   `crc` is the masked CRC-32C of the *uncompressed* bytes:
//!   `((c >> 15) | (c << 17)) + 0xa282ead8`. A chunk decodes to at most 4 MiB (`maxBlockSize`;
//!   64 KiB in a Snappy-identified stream).
//! * `0x02`–`0x7f` reserved, unskippable (an error); `0x80`–`0xfe` skippable (padding,
//!   index, ...). An empty stream is empty data (Go's reader returns EOF at once).
//!
//! # Block (klauspost `s2/s2.go`, S2 `README.md` "Format Extensions")
//! `uvarint(decoded length) || elements`, the tag in the low 2 bits of each element's first
//! byte: literal (`00`), copy with 1-byte offset (`01`), 2-byte (`10`), 4-byte (`11`), as in
//! Snappy. S2's extension is the *repeat*: a `01` copy whose 11-bit offset is 0 reuses the
//! previous offset, and its 3-bit length field 5/6/7 says that 1/2/3 more bytes hold the
//! length (plus 4 / 260 / 65540 in total).
//!
//! # Writing
//! We emit the `S2sTwO` identifier and 1 MiB blocks (klauspost's default block size) that are
//! Snappy blocks made by the `snap` crate: every Snappy block is a valid S2 block (S2 only
//! adds meanings to encodings Snappy never emits), which klauspost's reader, hence kopia,
//! decodes. Blocks that do not shrink are stored as uncompressed chunks, as klauspost's
//! writer does. The four kopia names write the same bytes; the levels only change the ratio,
//! which readers never see.

use crate::{Error, Result};

/// The S2 stream identifier chunk (`s2.go` `magicChunk`).
const MAGIC_S2: &[u8; 6] = b"S2sTwO";
/// Snappy's stream identifier, which klauspost's reader also accepts.
const MAGIC_SNAPPY: &[u8; 6] = b"sNaPpY";
const CHUNK_COMPRESSED: u8 = 0x00;
const CHUNK_UNCOMPRESSED: u8 = 0x01;
const CHUNK_STREAM_ID: u8 = 0xff;
/// Largest decoded chunk of an S2 stream (`s2.go` `maxBlockSize`, 4 MiB).
const MAX_BLOCK: usize = 4 << 20;
/// Largest decoded chunk of a Snappy-identified stream (`maxSnappyBlockSize`).
const MAX_SNAPPY_BLOCK: usize = 64 << 10;
/// Block size we write (klauspost's `defaultBlockSize`, 1 MiB).
const WRITE_BLOCK: usize = 1 << 20;

const WHAT: &str = "s2 stream";

/// The masked CRC-32C of framing format §3 (klauspost `s2.go` `crc`).
pub(crate) fn masked_crc(data: &[u8]) -> u32 {
    let c = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, data) as u32;
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Decodes a whole S2 (or Snappy-framed) stream, refusing more than `max_output` bytes.
pub(crate) fn decode_stream(stream: &[u8], max_output: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = stream;
    let mut seen_id = false;
    let mut snappy = false;
    while !rest.is_empty() {
        let (&[kind, l0, l1, l2], after) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| Error::corrupt(WHAT, "truncated chunk header"))?;
        let len = usize::from(l0) | usize::from(l1) << 8 | usize::from(l2) << 16;
        let (body, next) = after.split_at_checked(len).ok_or_else(|| {
            Error::corrupt(
                WHAT,
                format!("chunk of {len} bytes past the end of the stream"),
            )
        })?;
        rest = next;
        if !seen_id && kind != CHUNK_STREAM_ID {
            return Err(Error::corrupt(
                WHAT,
                "does not start with a stream identifier",
            ));
        }
        match kind {
            CHUNK_STREAM_ID => {
                if body == MAGIC_S2 {
                    snappy = false;
                } else if body == MAGIC_SNAPPY {
                    snappy = true;
                } else {
                    return Err(Error::corrupt(WHAT, "unknown stream identifier"));
                }
                seen_id = true;
            }
            CHUNK_COMPRESSED | CHUNK_UNCOMPRESSED => {
                let (crc, payload) = body
                    .split_first_chunk::<4>()
                    .ok_or_else(|| Error::corrupt(WHAT, "data chunk shorter than its checksum"))?;
                let want_crc = u32::from_le_bytes(*crc);
                let limit = if snappy { MAX_SNAPPY_BLOCK } else { MAX_BLOCK };
                let start = out.len();
                if kind == CHUNK_COMPRESSED {
                    let (n, block) = decoded_len(payload)?;
                    if n > limit {
                        return Err(Error::corrupt(
                            WHAT,
                            format!("block decodes to {n} bytes, more than {limit}"),
                        ));
                    }
                    check_room(start, n, max_output)?;
                    out.reserve(n);
                    decode_block(block, n, &mut out)?;
                } else {
                    if payload.len() > limit {
                        return Err(Error::corrupt(
                            WHAT,
                            format!("uncompressed chunk of {} bytes", payload.len()),
                        ));
                    }
                    check_room(start, payload.len(), max_output)?;
                    out.extend_from_slice(payload);
                }
                let got = out.get(start..).unwrap_or_default();
                if masked_crc(got) != want_crc {
                    return Err(Error::corrupt(WHAT, "chunk checksum (CRC-32C) mismatch"));
                }
            }
            0x02..=0x7f => {
                return Err(Error::corrupt(
                    WHAT,
                    format!("reserved unskippable chunk type {kind:#04x}"),
                ));
            }
            // 0x80..=0xfe: padding, index and other skippable chunks.
            _ => {}
        }
    }
    Ok(out)
}

fn check_room(have: usize, more: usize, max_output: usize) -> Result<()> {
    if more > max_output.saturating_sub(have) {
        return Err(Error::corrupt(
            "compressed data",
            format!("s2 stream decompresses to more than the limit of {max_output} bytes"),
        ));
    }
    Ok(())
}

/// Reads a block's `uvarint` decoded length (klauspost `DecodedLen`: at most 2^32 - 1).
fn decoded_len(block: &[u8]) -> Result<(usize, &[u8])> {
    let mut v: u64 = 0;
    for (i, &b) in block.iter().enumerate().take(5) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            if v > 0xffff_ffff {
                break;
            }
            let n = usize::try_from(v).map_err(|_| Error::corrupt(WHAT, "block too large"))?;
            return Ok((n, block.get(i + 1..).unwrap_or_default()));
        }
    }
    Err(Error::corrupt(WHAT, "bad block length"))
}

/// Decodes one block's elements, appending exactly `n` bytes to `out` (klauspost
/// `decode_other.go` `s2Decode`).
fn decode_block(src: &[u8], n: usize, out: &mut Vec<u8>) -> Result<()> {
    let base = out.len();
    let end = base + n;
    let bad = |why: &str| Error::corrupt(WHAT, format!("bad block: {why}"));
    let mut s = 0usize;
    let mut offset = 0usize;
    // Little-endian integer of `k` bytes at `src[at..]`.
    let le = |at: usize, k: usize| -> Result<usize> {
        let b = src
            .get(at..at + k)
            .ok_or_else(|| bad("element past the end"))?;
        Ok(b.iter()
            .rev()
            .fold(0usize, |acc, &x| (acc << 8) | usize::from(x)))
    };
    while let Some(&tag) = src.get(s) {
        let length;
        match tag & 0x03 {
            0 => {
                let m = usize::from(tag >> 2);
                let lit_len = if m < 60 {
                    s += 1;
                    m + 1
                } else {
                    let k = m - 59;
                    let v = le(s + 1, k)?;
                    s += 1 + k;
                    v + 1
                };
                if lit_len > end - out.len() {
                    return Err(bad("literal past the decoded length"));
                }
                let lit = src
                    .get(s..s.saturating_add(lit_len))
                    .ok_or_else(|| bad("literal past the end"))?;
                out.extend_from_slice(lit);
                s += lit_len;
                continue;
            }
            1 => {
                let b1 = le(s + 1, 1)?;
                s += 2;
                let mut len = usize::from(tag >> 2) & 0x7;
                let toffset = (usize::from(tag) & 0xe0) << 3 | b1;
                if toffset == 0 {
                    // S2 repeat: keep the last offset; 5/6/7 read a longer length.
                    match len {
                        5 => {
                            len = le(s, 1)? + 4;
                            s += 1;
                        }
                        6 => {
                            len = le(s, 2)? + (1 << 8);
                            s += 2;
                        }
                        7 => {
                            len = le(s, 3)? + (1 << 16);
                            s += 3;
                        }
                        _ => {}
                    }
                } else {
                    offset = toffset;
                }
                length = len + 4;
            }
            2 => {
                offset = le(s + 1, 2)?;
                length = 1 + usize::from(tag >> 2);
                s += 3;
            }
            _ => {
                offset = le(s + 1, 4)?;
                length = 1 + usize::from(tag >> 2);
                s += 5;
            }
        }
        let d = out.len() - base;
        if offset == 0 || d < offset || length > end - out.len() {
            return Err(bad("copy outside the decoded bytes"));
        }
        copy_back(out, offset, length);
    }
    if out.len() != end {
        return Err(bad("shorter than its decoded length"));
    }
    Ok(())
}

/// Appends `length` bytes copied from `offset` bytes back (`offset <= out.len()`), where the
/// ranges may overlap: each pass copies a whole number of periods, so the pattern repeats.
fn copy_back(out: &mut Vec<u8>, offset: usize, length: usize) {
    let from = out.len() - offset;
    let mut left = length;
    while left > 0 {
        let k = (out.len() - from).min(left);
        out.extend_from_within(from..from + k);
        left -= k;
    }
}

thread_local! {
    /// This thread's Snappy block encoder (its hash table is reused across calls).
    static SNAPPY: std::cell::RefCell<snap::raw::Encoder> =
        std::cell::RefCell::new(snap::raw::Encoder::new());
}

/// Appends an S2 stream of `data` to `out` (see the module docs, "Writing").
pub(crate) fn encode_stream(data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    out.extend_from_slice(&[CHUNK_STREAM_ID, 6, 0, 0]);
    out.extend_from_slice(MAGIC_S2);
    let mut block = Vec::new();
    for chunk in data.chunks(WRITE_BLOCK) {
        block.resize(snap::raw::max_compress_len(chunk.len()), 0);
        let n = SNAPPY
            .with(|cell| match cell.try_borrow_mut() {
                Ok(mut enc) => enc.compress(chunk, &mut block),
                Err(_) => snap::raw::Encoder::new().compress(chunk, &mut block),
            })
            .map_err(|e| Error::invalid("compression", format!("s2: {e}")))?;
        let compressed = block.get(..n).unwrap_or_default();
        let (kind, body) = if compressed.len() < chunk.len() {
            (CHUNK_COMPRESSED, compressed)
        } else {
            (CHUNK_UNCOMPRESSED, chunk)
        };
        let len = (body.len() + 4).to_le_bytes();
        out.extend_from_slice(&[kind, len[0], len[1], len[2]]);
        out.extend_from_slice(&masked_crc(chunk).to_le_bytes());
        out.extend_from_slice(body);
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_answer() {
        // CRC-32C check value of "123456789" (RFC 3720 / the CRC catalogue): 0xe3069283.
        let c = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, b"123456789") as u32;
        assert_eq!(c, 0xe306_9283);
        assert_eq!(
            masked_crc(b"123456789"),
            0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    fn stream_of(kind: u8, crc_of: &[u8], body: &[u8]) -> Vec<u8> {
        let mut s = vec![0xff, 6, 0, 0];
        s.extend_from_slice(MAGIC_S2);
        let len = (body.len() + 4).to_le_bytes();
        s.extend_from_slice(&[kind, len[0], len[1], len[2]]);
        s.extend_from_slice(&masked_crc(crc_of).to_le_bytes());
        s.extend_from_slice(body);
        s
    }

    #[test]
    fn repeat_offsets() {
        // "abcd" literal, copy1 offset 4 len 4, then repeats of lengths 4+0, 4+(5: byte+4),
        // 4+(6: 2 bytes + 256) and 4+(7: 3 bytes + 65536).
        let want_len = 4 + 4 + 4 + (10 + 8) + (3 + 256 + 4) + (2 + 65536 + 4);
        let mut block = Vec::new();
        let mut v = want_len;
        while v >= 0x80 {
            block.push((v as u8) | 0x80);
            v >>= 7;
        }
        block.push(v as u8);
        block.extend_from_slice(&[3 << 2, b'a', b'b', b'c', b'd']);
        block.extend_from_slice(&[0x01, 4]); // copy1 len 4 offset 4
        block.extend_from_slice(&[0x01, 0]); // repeat len 4
        block.extend_from_slice(&[(5 << 2) | 1, 0, 10]); // repeat len 10+4+4
        block.extend_from_slice(&[(6 << 2) | 1, 0, 3, 0]); // repeat len 3+256+4
        block.extend_from_slice(&[(7 << 2) | 1, 0, 2, 0, 0]); // repeat len 2+65536+4
        let want: Vec<u8> = b"abcd".iter().copied().cycle().take(want_len).collect();
        let s = stream_of(CHUNK_COMPRESSED, &want, &block);
        assert_eq!(decode_stream(&s, want_len).unwrap(), want);
        assert!(decode_stream(&s, want_len - 1).is_err());
        // A repeat before any offset is corrupt.
        let bad = [4, 0x01, 0];
        assert!(decode_stream(&stream_of(CHUNK_COMPRESSED, b"xxxx", &bad), 100).is_err());
    }

    #[test]
    fn framing_errors() {
        let data = b"hello hello hello hello";
        let mut s = Vec::new();
        encode_stream(data, &mut s).unwrap();
        assert_eq!(decode_stream(&s, 100).unwrap(), data);
        assert_eq!(decode_stream(&[], 100).unwrap(), b"");
        // A flipped byte of the payload fails the CRC (or the block), never passes.
        for i in 10..s.len() {
            let mut t = s.clone();
            t[i] ^= 0x20;
            assert!(
                decode_stream(&t, 100).map(|o| o != data).unwrap_or(true),
                "byte {i}"
            );
        }
        // Truncation anywhere inside a chunk is an error.
        for cut in 1..s.len() {
            if cut == 10 {
                continue; // right after the identifier: an empty stream
            }
            assert!(decode_stream(&s[..cut], 100).is_err(), "cut {cut}");
        }
        // Must start with the identifier; reserved chunks are refused; skippable ones skipped.
        assert!(decode_stream(&s[10..], 100).is_err());
        let mut t = s.clone();
        t.extend_from_slice(&[0x02, 0, 0, 0]);
        assert!(decode_stream(&t, 100).is_err());
        let mut t = s.clone();
        t.extend_from_slice(&[0xfe, 2, 0, 0, 0, 0]);
        assert_eq!(decode_stream(&t, 100).unwrap(), data);
        // Uncompressed chunks, and a Snappy identifier.
        let u = stream_of(CHUNK_UNCOMPRESSED, b"raw", b"raw");
        assert_eq!(decode_stream(&u, 3).unwrap(), b"raw");
        assert!(decode_stream(&u, 2).is_err());
        let mut snappy = u.clone();
        snappy[4..10].copy_from_slice(MAGIC_SNAPPY);
        assert_eq!(decode_stream(&snappy, 3).unwrap(), b"raw");
    }

    #[test]
    fn large_and_incompressible() {
        let mut x: u32 = 1;
        let noise: Vec<u8> = (0..(3 << 20) + 5)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let mut s = Vec::new();
        encode_stream(&noise, &mut s).unwrap();
        assert_eq!(decode_stream(&s, noise.len()).unwrap(), noise);
        let zeros = vec![0u8; 5 << 20];
        let mut s = Vec::new();
        encode_stream(&zeros, &mut s).unwrap();
        assert!(s.len() < 1 << 20);
        assert_eq!(decode_stream(&s, zeros.len()).unwrap(), zeros);
        assert!(decode_stream(&s, 1 << 20).is_err());
    }
}
