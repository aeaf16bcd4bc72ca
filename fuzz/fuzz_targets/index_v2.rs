//! Index v2 (FORMAT.md §8): `IndexReader::parse`, then every accessor. See index_common.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("index_common.rs");

fuzz_target!(|data: &[u8]| {
    // Only version-2 inputs: the version byte is the first one.
    if data.first() == Some(&2) {
        check_index(data, 2);
    }
});
