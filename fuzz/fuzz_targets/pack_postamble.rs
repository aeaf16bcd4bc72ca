//! Pack postamble (FORMAT.md §7.3): `Postamble::parse_from_tail`, plus the format-blob replica
//! scan of format-v1 packs.
//!
//! Properties: a parsed postamble re-encodes, and the encoding parses back equal (also when
//! appended to arbitrary pack bytes); the input is also parsed with a valid CRC and length
//! byte appended, so the payload decoder is reached without the fuzzer having to solve CRC-32;
//! a replica found in a pack is well-formed (re-wrapping it is accepted).
#![no_main]

use arkiv_format::pack::Postamble;
use arkiv_format::repo_format;
use libfuzzer_sys::fuzz_target;

fn check(tail: &[u8]) -> Option<Postamble> {
    let p = Postamble::parse_from_tail(tail).ok()?;
    let _ = p.local_index_range();
    let enc = p.encode().expect("a parsed postamble fits in 255 bytes");
    assert_eq!(Postamble::parse_from_tail(&enc).ok().as_ref(), Some(&p));
    let mut packed = tail.to_vec();
    packed.extend_from_slice(&enc);
    assert_eq!(Postamble::parse_from_tail(&packed).ok().as_ref(), Some(&p));
    Some(p)
}

fuzz_target!(|data: &[u8]| {
    check(data);

    // The input as a postamble payload: append the CRC and the length byte.
    if data.len() <= 251 {
        let mut framed = data.to_vec();
        framed.extend_from_slice(&crc32(data).to_be_bytes());
        framed.push(framed.len() as u8);
        let _ = check(&framed);
    }

    if let Some(found) = repo_format::find_format_blob_replica(data) {
        let wrapped = repo_format::format_blob_replica(&found).expect("a found replica fits");
        assert_eq!(
            repo_format::find_format_blob_replica(&wrapped).as_deref(),
            Some(found.as_slice())
        );
    }
});

/// CRC-32 (IEEE), as `crc32fast::hash`; kept local so the target has no extra dependency.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}
