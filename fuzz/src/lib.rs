//! Helpers shared by the fuzz targets: the golden fixtures' keys, so targets can decrypt the
//! seeds (real index blobs, payloads, configs), and small input splitters.
//!
//! The keys are derived once per process from the fixtures' `kopia.repository` blobs (compiled
//! in from `../shared/kopia/fixtures`) and the fixture password: one scrypt run at start-up
//! instead of one per input.

use std::sync::OnceLock;

use arkiv_format::encryption::{ContentCipher, EncryptionAlgorithm};
use arkiv_format::repo_format::{self, OpenedFormat};

/// Password of the golden fixtures (test data, see the fixtures README).
pub const FIXTURE_PASSWORD: &str = "fixture-password";

/// `kopia.repository` of the fixture repositories `repo-a` and `repo-b`.
pub const FIXTURE_FORMAT_BLOBS: [&[u8]; 2] = [
    include_bytes!("../../../shared/kopia/fixtures/repo-a/kopia.repository.f"),
    include_bytes!("../../../shared/kopia/fixtures/repo-b/kopia.repository.f"),
];

/// Both fixture repositories, opened (format key and decrypted config).
pub fn fixtures() -> &'static [OpenedFormat] {
    static OPENED: OnceLock<Vec<OpenedFormat>> = OnceLock::new();
    OPENED.get_or_init(|| {
        FIXTURE_FORMAT_BLOBS
            .iter()
            .map(|b| repo_format::open_format(b, FIXTURE_PASSWORD).expect("fixture opens"))
            .collect()
    })
}

/// The format keys (`decrypt_config` / `decrypt_blobcfg`) of both fixture repositories.
pub fn format_keys() -> impl Iterator<Item = &'static [u8]> {
    fixtures().iter().map(|f| f.format_key.as_slice())
}

/// Content ciphers of both fixture repositories, followed by a ChaCha20-Poly1305 cipher under
/// repo-a's master key so the second algorithm's decrypt path runs too.
pub fn ciphers() -> &'static [ContentCipher] {
    static CIPHERS: OnceLock<Vec<ContentCipher>> = OnceLock::new();
    CIPHERS.get_or_init(|| {
        let mut out: Vec<ContentCipher> = fixtures()
            .iter()
            .map(|f| {
                let alg = f.config.encryption_algorithm().expect("fixture algorithm");
                ContentCipher::new(alg, &f.config.master_key).expect("fixture master key")
            })
            .collect();
        let chacha = ContentCipher::new(
            EncryptionAlgorithm::ChaCha20Poly1305HmacSha256,
            &fixtures()[0].config.master_key,
        )
        .expect("fixture master key");
        out.push(chacha);
        out
    })
}

/// Splits `data` at the first `\n`: `(first line, rest)`. Without a newline the whole input is
/// the first line. Used by targets whose input is "a name, then bytes".
pub fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
