//! LZ4 frames (kopia 0.20–0.22's `lz4`, read only): the raw input is the stream after the
//! 4-byte compression header, decoded through `decompress`.
//!
//! Properties: output never exceeds the limit; decoding is deterministic; a limit one byte
//! short of the output is refused; writing lz4 is refused (kopia 0.23 removed it).
#![no_main]

use arkiv_format::compression::{self, CompressionAlgorithm};
use libfuzzer_sys::fuzz_target;

const MAX_OUTPUT: usize = 1 << 20;
const LZ4: u32 = 0x1400;

fuzz_target!(|data: &[u8]| {
    let mut input = LZ4.to_be_bytes().to_vec();
    input.extend_from_slice(data);
    let out = compression::decompress(&input, Some(LZ4), MAX_OUTPUT);
    if let Ok(out) = &out {
        assert!(out.len() <= MAX_OUTPUT);
        let again = compression::decompress(&input, None, MAX_OUTPUT).expect("same input");
        assert_eq!(&again, out);
        if !out.is_empty() {
            assert!(compression::decompress(&input, Some(LZ4), out.len() - 1).is_err());
        }
    }
    assert!(compression::compress(CompressionAlgorithm::Lz4, data).is_err());
});
