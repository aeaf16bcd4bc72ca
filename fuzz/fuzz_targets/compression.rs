//! Compressed payloads (FORMAT.md §6): `decompress` with and without an expected header.
//!
//! Properties: output never exceeds the limit; passing the payload's own header as the expected
//! one changes nothing, any other header is refused; whatever decompresses re-compresses with
//! the same algorithm and decompresses back to the same bytes; the input itself round-trips
//! through an algorithm picked by its first byte.
#![no_main]

use arkiv_format::compression::{self, CompressionAlgorithm};
use libfuzzer_sys::fuzz_target;

/// Small enough that bombs stop early, big enough for the seeds (directory listings).
const MAX_OUTPUT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let plain = compression::decompress(data, None, MAX_OUTPUT);
    if let Ok(out) = &plain {
        assert!(out.len() <= MAX_OUTPUT);
    }
    if let Ok(header) = compression::header_of(data) {
        let with = compression::decompress(data, Some(header), MAX_OUTPUT);
        assert_eq!(
            with.as_ref().ok(),
            plain.as_ref().ok(),
            "expected header changed the result"
        );
        assert!(compression::decompress(data, Some(header ^ 1), MAX_OUTPUT).is_err());
        // A smaller limit is either refused or gives the same bytes.
        if let Ok(out) = &plain {
            if let Ok(small) = compression::decompress(data, None, out.len() / 2) {
                assert_eq!(&small, out);
                assert!(out.is_empty());
            }
        }
        // (Bounded: the slowest levels would otherwise dominate the run.)
        // (lz4 is read only: it has no writer to round-trip through.)
        if let (Ok(out), Some(alg)) = (&plain, CompressionAlgorithm::from_header_id(header))
            && out.len() <= 64 << 10
            && alg.is_supported()
        {
            let _ = (alg.name(), alg.is_deprecated());
            let re = compression::compress(alg, out).expect("a writable algorithm compresses");
            let back = compression::decompress(&re, Some(header), MAX_OUTPUT).expect("own output");
            assert_eq!(&back, out, "{} round trip", alg.name());
        }
    }

    // The input as plaintext, through an algorithm picked by its first byte.
    let supported: Vec<CompressionAlgorithm> = CompressionAlgorithm::all()
        .filter(|a| a.is_supported())
        .collect();
    if let Some((&pick, rest)) = data.split_first() {
        let alg = supported[usize::from(pick) % supported.len()];
        if rest.len() <= 16 << 10 {
            let c = compression::compress(alg, rest).expect("compress");
            let back = compression::decompress(&c, Some(alg.header_id()), rest.len())
                .expect("own output decompresses within its length");
            assert_eq!(back, rest, "{} round trip", alg.name());
        }
    }
});
