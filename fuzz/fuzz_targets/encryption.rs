//! Content and blob decryption (FORMAT.md §5): `decrypt_blob` and `ContentCipher::decrypt`
//! under the fixture repositories' keys (so real index blobs and payloads decrypt).
//!
//! Input: `<blob or content ID>\n<ciphertext>`. Properties: decryption fails cleanly or
//! yields `len - overhead` bytes; whatever decrypts re-encrypts (same IV) and decrypts back; a
//! blob ID that yields an IV round-trips `encrypt_blob` → `decrypt_blob` under its own name.
#![no_main]

use arkiv_format::encryption;
use arkiv_format::hashing::{HashAlgorithm, Hasher};
use arkiv_format::ids::ContentId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (id, payload) = arkiv_fuzz::split_line(data);
    let Ok(id) = std::str::from_utf8(id) else {
        return;
    };
    for cipher in arkiv_fuzz::ciphers() {
        if let Ok(plain) = encryption::decrypt_blob(cipher, id, payload) {
            assert_eq!(plain.len() + cipher.overhead(), payload.len());
        }
        if let Ok(cid) = id.parse::<ContentId>() {
            if let Ok(plain) = cipher.decrypt(cid.iv(), payload) {
                assert_eq!(plain.len() + cipher.overhead(), payload.len());
                let re = cipher.encrypt(cid.iv(), &plain, [9; 12]).expect("encrypt");
                assert_eq!(cipher.decrypt(cid.iv(), &re).expect("own output"), plain);
            }
        }
    }

    // Blob crypto round trip: the payload as plaintext, named by its hash.
    if let Ok(iv) = encryption::blob_iv_from_id(id) {
        assert_eq!(iv.len(), 16);
    }
    let cipher = &arkiv_fuzz::ciphers()[0];
    let hasher = Hasher::new(HashAlgorithm::Blake2b256_128, b"fuzz").expect("hasher");
    let prefix = if id.len() <= 8 { id } else { "xn0_" };
    if let Ok((blob_id, sealed)) =
        encryption::encrypt_blob(&hasher, cipher, prefix, Some("s0-c1"), payload, [5; 12])
    {
        let back = encryption::decrypt_blob(cipher, blob_id.as_str(), &sealed)
            .expect("a blob decrypts under its own name");
        assert_eq!(back, payload);
    }
});
