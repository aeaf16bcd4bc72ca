//! `kopia.repository`: the outer JSON, the AES-GCM-sealed inner config, and the config itself.
//!
//! Properties: a parsed blob re-encodes (Go `json.Encoder` layout) to bytes that parse back to
//! the same blob; decryption with the fixture format keys (no scrypt per input) either fails
//! cleanly or yields a config that validates without panicking and whose kopia JSON parses back
//! equal. The input is also tried as a plaintext inner config, sealed with a fixed key and
//! opened again, so the config decoder is reached without forging an AES-GCM tag.
#![no_main]

use arkiv_format::repo_format::{self, FormatBlob, RepositoryConfig};
use libfuzzer_sys::fuzz_target;

fn check_config(cfg: &RepositoryConfig) {
    let _ = cfg.validate();
    let _ = cfg.feature_warnings();
    let _ = cfg.hash_algorithm();
    let _ = cfg.encryption_algorithm();
    let _ = (cfg.effective_max_pack_size(), cfg.effective_index_version());
    let _ = (cfg.splitter_name(), cfg.epoch_enabled());
    let json = repo_format::config_json(cfg).expect("a decoded config encodes");
    let outer: serde_json::Value = serde_json::from_slice(&json).expect("config_json is JSON");
    let again: RepositoryConfig =
        serde_json::from_value(outer["format"].clone()).expect("config_json parses back");
    assert_eq!(&again, cfg, "config changed in a JSON round trip");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(blob) = FormatBlob::parse(data) {
        let _ = blob.key_derivation();
        let bytes = blob.to_bytes();
        let again = FormatBlob::parse(&bytes).expect("to_bytes output parses");
        assert_eq!(again, blob, "format blob changed in a round trip");
        for key in arkiv_fuzz::format_keys() {
            if let Ok(cfg) = repo_format::decrypt_config(&blob, key) {
                check_config(&cfg);
            }
            let _ = repo_format::decrypt_blobcfg(&blob, key, &blob.encrypted_block_format);
        }
    }

    // The input as the inner config plaintext.
    if let Ok(cfg) = serde_json::from_slice::<RepositoryConfig>(data) {
        check_config(&cfg);
        let key = arkiv_fuzz::fixtures()[0].format_key.as_slice();
        let unique_id = [7u8; 32];
        let mut blob = FormatBlob::new(
            "v0.20.1",
            "fuzz",
            unique_id.to_vec(),
            repo_format::KeyDerivation::Scrypt65536_8_1,
        );
        blob.encrypted_block_format = repo_format::encrypt_config(&cfg, key, &unique_id, [3; 12])
            .expect("a decoded config encrypts");
        let reopened = FormatBlob::parse(&blob.to_bytes()).expect("to_bytes output parses");
        let opened = repo_format::decrypt_config(&reopened, key).expect("sealed config opens");
        assert_eq!(opened, cfg, "config changed through encrypt/decrypt");
    }
});
