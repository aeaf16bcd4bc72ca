//! S2 streams (kopia's `s2-*` compressors): the raw input is the stream after the 4-byte
//! compression header, decoded through `decompress` with each of the four S2 header IDs.
//!
//! Properties: output never exceeds the limit; the four IDs decode identically; a smaller
//! limit is refused or gives the same bytes; whatever decodes re-encodes (our writer) and
//! decodes back to the same bytes; the input as plaintext round-trips through our writer.
#![no_main]

use arkiv_format::compression::{self, CompressionAlgorithm};
use libfuzzer_sys::fuzz_target;

const MAX_OUTPUT: usize = 1 << 20;
const S2: [u32; 4] = [0x1200, 0x1201, 0x1202, 0x1203];

fn framed(header: u32, stream: &[u8]) -> Vec<u8> {
    let mut v = header.to_be_bytes().to_vec();
    v.extend_from_slice(stream);
    v
}

fuzz_target!(|data: &[u8]| {
    let first = compression::decompress(&framed(S2[0], data), Some(S2[0]), MAX_OUTPUT);
    if let Ok(out) = &first {
        assert!(out.len() <= MAX_OUTPUT);
    }
    for h in &S2[1..] {
        let other = compression::decompress(&framed(*h, data), Some(*h), MAX_OUTPUT);
        assert_eq!(other.as_ref().ok(), first.as_ref().ok(), "header {h:x}");
    }
    if let Ok(out) = &first {
        if !out.is_empty() {
            if let Ok(small) =
                compression::decompress(&framed(S2[0], data), Some(S2[0]), out.len() - 1)
            {
                panic!("{} bytes within a limit of {}", small.len(), out.len() - 1);
            }
        }
        let re = compression::compress(CompressionAlgorithm::S2Better, out).expect("encode");
        let back = compression::decompress(&re, Some(0x1201), out.len()).expect("own output");
        assert_eq!(&back, out);
    }
    let c = compression::compress(CompressionAlgorithm::S2Default, data).expect("encode");
    let back = compression::decompress(&c, Some(0x1200), data.len()).expect("own output");
    assert_eq!(back, data);
});
