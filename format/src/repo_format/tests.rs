//! Known-answer tests of TEST-VECTORS.md §V-PBKDF, §V-FMT and §V-MAINT (cache key).
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::config::EncryptedRepositoryConfig;
use super::format_key::format_aead_keys;
use super::*;
use crate::Error;
use crate::encryption::EncryptionAlgorithm;
use crate::gojson;
use crate::hashing::HashAlgorithm;

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s).unwrap()
}

fn secret() -> Vec<u8> {
    (0u8..32).collect()
}

fn master() -> Vec<u8> {
    (0x20u8..0x40).collect()
}

fn unique_id() -> Vec<u8> {
    (0x40u8..0x60).collect()
}

const PASSWORD: &str = "my-test-password";
const SCRYPT_KEY: &str = "68fd73242f7929b51bd5180181600f079af1cb11baebbfadb8063a4a635d9da3";

fn format_key() -> [u8; 32] {
    unhex(SCRYPT_KEY).try_into().unwrap()
}

const V_FMT_INNER: &str = r#"{"format":{"hash":"BLAKE2B-256-128","encryption":"AES256-GCM-HMAC-SHA256","secret":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","masterKey":"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=","version":3,"maxPackSize":20971520,"indexVersion":2,"epochParameters":{"Enabled":true,"EpochRefreshFrequency":1200000000000,"FullCheckpointFrequency":7,"CleanupSafetyMargin":14400000000000,"MinEpochDuration":86400000000000,"EpochAdvanceOnCountThreshold":20,"EpochAdvanceOnTotalSizeBytesThreshold":10485760,"DeleteParallelism":4},"enablePasswordChange":true,"splitter":"DYNAMIC-4M-BUZHASH"}}"#;

const V_FMT_EBF: &str = "707172737475767778797a7b1c4951496fbcb6fab71320c9ef35c3fcefc1a99254b1bbe10f9f5e8a7cb26a5cad0eb88da4c98cbce94c2c4b1b066f8ed678b37aa1f138982f5790a56d0f72884ba5acfd9de8b85bdef7a42cbfa7132473458ee463858b8c8096efea5f81a714892d74ef99e044395c33edc9835a43504a88b8ff5f4bc9ee9e70bd384a2a8d89ee59728e4c8ef7ff661f081c60039af7eea3fd63c392a850745b8c502a4f0e7cee67fc175102df4d2142fa7e1abb932ed57322eea365fc6b9668c57ebb0b9d0da943b5ba2a5fb93c9ab8d8da3ef8c1f7f9f61b121000c9b6f57e96258d5da2b17a4592153144120f2694f40d649dc976c4e0fd22ba1bc2f7dcb50a21b0d2fd038d3c65126b38ec2a07294b7eea3f414e5aeccf6882753170f83e6570b91e35b2b33bea18ea7dfa418f5a55ea7ee6866bc31437972cbcd11051ae8e3081b7bb8f2dd1731b909c00a13f761d782991e404cff6854c207e6408738e68c3053d87c797118b30cecb86f7c41871ebcaf2e310097216357bba310d1795bcbf28651c1557438ebf948c9ec2416c4bf888c1702bb6b91569f12ecf4279d7bb3d1ce6ab13d844bbccbfad97c1dc65d7df5f60df02c4ee8097abd5cb6060819bb068e49d3509f4bfaf165d4a5618c6d5f2ca3398340da368d29f799a2609f25276dbabb638a95b909178054e3aa9de1b33931545cd4bbab03e693ac97b8a7588d77c9bfee87de88ece9f2bf956f1bee2fd3f5bca376395ea063873ed7a8bec241456fd2525aba4e3f1a3b5c00c7ee5fb4520fd1f5161ae58193595f453f81021bf80a23f6ceeed8e55ec8216904d2731671c79e650e3a934";

const V_FMT_BLOB: &str = r#"{
  "tool": "https://github.com/kopia/kopia",
  "buildVersion": "0.23.1",
  "buildInfo": "72ec08fd8edb86c67ed27099bf1b955e1f308ffa",
  "uniqueID": "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=",
  "keyAlgo": "scrypt-65536-8-1",
  "encryption": "AES256_GCM",
  "encryptedBlockFormat": "cHFyc3R1dnd4eXp7HElRSW+8tvq3EyDJ7zXD/O/BqZJUsbvhD59einyyalytDriNpMmMvOlMLEsbBm+O1nizeqHxOJgvV5ClbQ9yiEulrP2d6Lhb3vekLL+nEyRzRY7kY4WLjICW7+pfgacUiS1075ngRDlcM+3Jg1pDUEqIuP9fS8nunnC9OEoqjYnuWXKOTI73/2YfCBxgA5r37qP9Y8OSqFB0W4xQKk8OfO5n/BdRAt9NIUL6fhq7ky7VcyLuo2X8a5ZoxX67C50NqUO1uipfuTyauNjaPvjB9/n2GxIQAMm29X6WJY1dorF6RZIVMUQSDyaU9A1kncl2xOD9IrobwvfctQohsNL9A408ZRJrOOwqBylLfuo/QU5a7M9ognUxcPg+ZXC5HjWyszvqGOp9+kGPWlXqfuaGa8MUN5csvNEQUa6OMIG3u48t0XMbkJwAoT92HXgpkeQEz/aFTCB+ZAhzjmjDBT2Hx5cRizDOy4b3xBhx68ry4xAJchY1e7oxDReVvL8oZRwVV0OOv5SMnsJBbEv4iMFwK7a5FWnxLs9Cede7PRzmqxPYRLvMv62Xwdxl199fYN8CxO6Al6vVy2BggZuwaOSdNQn0v68WXUpWGMbV8sozmDQNo2jSn3maJgnyUnbbq7Y4qVuQkXgFTjqp3hszkxVFzUu6sD5pOsl7inWI13yb/uh96I7Onyv5VvG+4v0/W8o3Y5XqBjhz7XqL7CQUVv0lJauk4/GjtcAMfuX7RSD9H1FhrlgZNZX0U/gQIb+Aoj9s7u2OVeyCFpBNJzFnHHnmUOOpNA=="
}
"#;

fn v_fmt_config() -> RepositoryConfig {
    RepositoryConfig::new_default(secret(), master())
}

// §V-PBKDF, scrypt row and the format AES/AAD keys.
#[test]
fn v_pbkdf_scrypt() {
    let k = derive_format_key(KeyDerivation::Scrypt65536_8_1, PASSWORD, &unique_id()).unwrap();
    assert_eq!(hex::encode(k), SCRYPT_KEY);
    let (aes, aad) = format_aead_keys(&k, &unique_id()).unwrap();
    assert_eq!(
        hex::encode(aes),
        "898c69e9ae650bb919dbdec7a00dc7affd0ec789209501bc930897ab6a2834e1"
    );
    assert_eq!(
        hex::encode(aad),
        "39a3dfc7d034cfc7ce414d01c5f7928157ae9e6c3b8f34ed6e103bbf6d27bfbc"
    );
}

// §V-PBKDF, PBKDF2 row.
#[test]
fn v_pbkdf_pbkdf2() {
    let k = derive_format_key(KeyDerivation::Pbkdf2Sha256_600000, PASSWORD, &unique_id()).unwrap();
    assert_eq!(
        hex::encode(k),
        "dd6e5d26b541b4db7235a30aab4b07206e8b9143b9fcef4b61cfeb3a0ff4e2b2"
    );
}

#[test]
fn kdf_names_and_salt() {
    for k in [
        KeyDerivation::Scrypt65536_8_1,
        KeyDerivation::Pbkdf2Sha256_600000,
    ] {
        assert_eq!(k.to_string().parse::<KeyDerivation>().unwrap(), k);
        assert!(matches!(
            derive_format_key(k, PASSWORD, &[0; 15]),
            Err(Error::Invalid { .. })
        ));
    }
    for bad in ["", "testing-only-insecure", "scrypt"] {
        assert!(matches!(
            bad.parse::<KeyDerivation>(),
            Err(Error::Unsupported { .. })
        ));
    }
}

// §V-FMT: inner JSON bytes, encryptedBlockFormat bytes, outer blob bytes — both directions.
#[test]
fn v_fmt_encode() {
    let cfg = v_fmt_config();
    assert_eq!(
        String::from_utf8(config_json(&cfg).unwrap()).unwrap(),
        V_FMT_INNER
    );
    let nonce: [u8; 12] = unhex("707172737475767778797a7b").try_into().unwrap();
    let ebf = encrypt_config(&cfg, &format_key(), &unique_id(), nonce).unwrap();
    assert_eq!(ebf.len(), 607);
    assert_eq!(hex::encode(&ebf), V_FMT_EBF);

    let mut blob = FormatBlob::new(
        "0.23.1",
        "72ec08fd8edb86c67ed27099bf1b955e1f308ffa",
        unique_id(),
        KeyDerivation::Scrypt65536_8_1,
    );
    blob.encrypted_block_format = ebf;
    assert_eq!(String::from_utf8(blob.to_bytes()).unwrap(), V_FMT_BLOB);
}

#[test]
fn v_fmt_decode() {
    let blob = FormatBlob::parse(V_FMT_BLOB.as_bytes()).unwrap();
    assert_eq!(blob.tool, KOPIA_TOOL);
    assert_eq!(blob.unique_id, unique_id());
    assert_eq!(
        blob.key_derivation().unwrap(),
        KeyDerivation::Scrypt65536_8_1
    );
    assert_eq!(blob.encrypted_block_format, unhex(V_FMT_EBF));
    assert_eq!(blob.to_bytes(), V_FMT_BLOB.as_bytes());

    let cfg = decrypt_config(&blob, &format_key()).unwrap();
    assert_eq!(cfg, v_fmt_config());
    assert_eq!(config_json(&cfg).unwrap(), V_FMT_INNER.as_bytes());
    cfg.validate().unwrap();
    assert_eq!(cfg.hash_algorithm().unwrap(), HashAlgorithm::Blake2b256_128);
    assert_eq!(
        cfg.encryption_algorithm().unwrap(),
        EncryptionAlgorithm::Aes256GcmHmacSha256
    );
    assert_eq!(cfg.effective_max_pack_size(), 20971520);
    assert_eq!(cfg.effective_index_version(), 2);
    assert_eq!(cfg.splitter_name(), "DYNAMIC-4M-BUZHASH");
    assert!(cfg.epoch_enabled());

    // A wrong key is a wrong password.
    let mut wrong = format_key();
    wrong[0] ^= 1;
    assert!(matches!(
        decrypt_config(&blob, &wrong),
        Err(Error::WrongPassword)
    ));
}

#[test]
fn v_fmt_open_with_password() {
    let opened = open_format(V_FMT_BLOB.as_bytes(), PASSWORD).unwrap();
    assert_eq!(opened.format_key, format_key());
    assert_eq!(opened.config, v_fmt_config());
    assert!(matches!(
        open_format(V_FMT_BLOB.as_bytes(), "not-the-password"),
        Err(Error::WrongPassword)
    ));
}

// §V-FMT kopia.blobcfg.
#[test]
fn v_fmt_blobcfg() {
    let blob = FormatBlob::parse(V_FMT_BLOB.as_bytes()).unwrap();
    let nonce: [u8; 12] = unhex("808182838485868788898a8b").try_into().unwrap();
    let enc = encrypt_blobcfg(&blob, &format_key(), &BlobCfg::default(), nonce).unwrap();
    assert_eq!(
        hex::encode(&enc),
        "808182838485868788898a8b1fedfd76a5def031cf663fa441e90d93c1f5"
    );
    let dec = decrypt_blobcfg(&blob, &format_key(), &enc).unwrap();
    assert_eq!(dec, BlobCfg::default());
    assert!(!dec.is_retention_enabled());
    dec.validate().unwrap();

    let ret = BlobCfg {
        retention_mode: "COMPLIANCE".into(),
        retention_period: 2592000000000000,
    };
    assert_eq!(
        gojson::to_go_json_text(&ret, "test").unwrap(),
        br#"{"retentionMode":"COMPLIANCE","retentionPeriod":2592000000000000}"#
    );
    let enc = encrypt_blobcfg(&blob, &format_key(), &ret, nonce).unwrap();
    assert_eq!(decrypt_blobcfg(&blob, &format_key(), &enc).unwrap(), ret);
    ret.validate().unwrap();
    assert!(ret.is_retention_enabled());
    assert!(
        BlobCfg {
            retention_mode: "COMPLIANCE".into(),
            retention_period: 0
        }
        .validate()
        .is_err()
    );
    assert!(
        BlobCfg {
            retention_mode: "GOVERNANCE".into(),
            retention_period: 3_600_000_000_000
        }
        .validate()
        .is_err()
    );
    let mut bad = enc.clone();
    bad[20] ^= 1;
    assert!(matches!(
        decrypt_blobcfg(&blob, &format_key(), &bad),
        Err(Error::Decrypt { .. })
    ));
}

// §V-FMT format-blob replica, and kopia's repo/format/format_blob_test.go properties.
#[test]
fn v_fmt_replica() {
    let blob = V_FMT_BLOB.as_bytes();
    assert_eq!(blob.len(), 1101);
    let r = format_blob_replica(blob).unwrap();
    assert_eq!(r.len(), 2 + 1101 + 32 + 2);
    assert_eq!(&r[..2], &unhex("6d04")[..]);
    assert_eq!(&r[r.len() - 2..], &unhex("6d04")[..]);
    assert_eq!(
        hex::encode(&r[2 + 1101..2 + 1101 + 32]),
        "4764efa732e5a2d8f3f63a00cc6c90af6da960c9968d86e6795ec90bd492514f"
    );
    assert_eq!(find_format_blob_replica(&r).unwrap(), blob);

    let small = b"0123456789";
    let r = format_blob_replica(small).unwrap();
    assert_eq!(r.len(), 2 + 2 + 32 + 10);
    // whole blob, prefix, suffix
    assert_eq!(find_format_blob_replica(&r).unwrap(), small);
    let mut as_prefix = r.clone();
    as_prefix.extend_from_slice(&[0xaa; 5000]);
    assert_eq!(find_format_blob_replica(&as_prefix).unwrap(), small);
    let mut as_suffix = vec![0xbb; 5000];
    as_suffix.extend_from_slice(&r);
    assert_eq!(find_format_blob_replica(&as_suffix).unwrap(), small);
    // a flipped checksum byte
    for i in [2 + 10, r.len() - 3] {
        let mut bad = r.clone();
        bad[i] ^= 1;
        assert!(find_format_blob_replica(&bad).is_none());
    }
    // too short
    for n in 0..=5 {
        assert!(find_format_blob_replica(&r[..n]).is_none());
    }
    assert!(format_blob_replica(&[0; 65000 - 31]).is_err());
    assert!(format_blob_replica(&[0; 65000 - 32]).is_ok());
}

#[test]
fn replica_search_never_panics() {
    // Length fields pointing anywhere.
    for len in [0u16, 1, 2, 3, 31, 32, 33, 100, 65000, 65535] {
        for total in [5usize, 6, 40, 100, 70000] {
            let mut v = vec![0u8; total];
            v[..2].copy_from_slice(&len.to_le_bytes());
            let n = v.len();
            v[n - 2..].copy_from_slice(&len.to_le_bytes());
            assert!(find_format_blob_replica(&v).is_none());
        }
    }
}

// §V-MAINT: derived keys, including the enablePasswordChange quirk.
#[test]
fn v_maint_derived_keys() {
    let cfg = v_fmt_config();
    let fk = format_key();
    assert_eq!(
        hex::encode(maintenance_schedule_key(&cfg, &fk, &unique_id()).unwrap()),
        "790dae050a242c02dcde30cf1f6656366615cddbe518cb2235767b81816a9b34"
    );
    assert_eq!(
        hex::encode(cache_integrity_key(&cfg, &fk, &unique_id()).unwrap()),
        "386217908e32f31c2f91cca064a57487"
    );
    assert_eq!(
        derive_repository_key(&cfg, &fk, &unique_id(), b"maintenance schedule", 32).unwrap(),
        maintenance_schedule_key(&cfg, &fk, &unique_id()).unwrap()
    );
    // Format v1: keys come from the format key instead.
    let mut v1 = cfg.clone();
    v1.enable_password_change = false;
    assert_eq!(
        maintenance_schedule_key(&v1, &fk, &unique_id()).unwrap(),
        crate::encryption::derive_key32(&fk, &unique_id(), b"maintenance schedule").unwrap()
    );
    assert_eq!(
        cache_integrity_key(&v1, &fk, &unique_id()).unwrap()[..],
        crate::encryption::derive_key(&fk, &unique_id(), b"local-cache-integrity", 16).unwrap()[..]
    );
}

fn with<F: FnOnce(&mut RepositoryConfig)>(f: F) -> RepositoryConfig {
    let mut c = v_fmt_config();
    f(&mut c);
    c
}

#[test]
fn validate_refusals() {
    let ecc = with(|c| {
        c.ecc = "REED-SOLOMON-CRC32".into();
        c.ecc_overhead_percent = 2;
    });
    let err = ecc.validate().unwrap_err();
    assert!(matches!(err, Error::Unsupported { what: "ECC", .. }));
    assert!(err.to_string().contains("ECC (REED-SOLOMON-CRC32"), "{err}");
    // ECC named but 0 % overhead is not active (kopia only wraps when overhead > 0).
    with(|c| c.ecc = "REED-SOLOMON-CRC32".into())
        .validate()
        .unwrap();

    for v in [0, 4, -1] {
        assert!(matches!(
            with(|c| c.version = v).validate(),
            Err(Error::Unsupported {
                what: "format version",
                ..
            })
        ));
    }
    for v in [1, 2] {
        with(|c| c.version = v).validate().unwrap();
    }
    assert!(matches!(
        with(|c| c.index_version = 3).validate(),
        Err(Error::Unsupported {
            what: "index version",
            ..
        })
    ));
    assert_eq!(with(|c| c.index_version = 0).effective_index_version(), 1);
    assert!(matches!(
        with(|c| c.hash = "MD5".into()).validate(),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        with(|c| c.encryption = "AES256-CTR".into()).validate(),
        Err(Error::Unsupported { .. })
    ));

    let feat = |name: &str, warn: bool| RequiredFeature {
        feature: name.into(),
        if_not_understood: IfNotUnderstood {
            warn,
            message: "needs new client".into(),
            ..Default::default()
        },
    };
    with(|c| c.required_features = vec![feat("index-v1", false), feat("index-v2", false)])
        .validate()
        .unwrap();
    let err = with(|c| c.required_features = vec![feat("fancy", false)])
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("'fancy'"), "{err}");
    let warned = with(|c| c.required_features = vec![feat("fancy", true)]);
    warned.validate().unwrap();
    assert_eq!(warned.feature_warnings().len(), 1);

    let locked = with(|c| {
        c.upgrade_lock = Some(UpgradeLock {
            owner_id: "alice@host".into(),
            creation_time: gojson::time::zero(),
            advance_notice_duration: 0,
            io_drain_timeout: 0,
            status_poll_interval: 0,
            message: String::new(),
            max_permitted_clock_drift: 0,
        })
    });
    assert!(matches!(
        locked.validate(),
        Err(Error::Unsupported {
            what: "repository state",
            ..
        })
    ));
}

#[test]
fn config_json_field_rules() {
    // Format v1 style: zero epoch params written, enablePasswordChange false written,
    // omitempty fields gone; splitter falls back to FIXED.
    let cfg = RepositoryConfig {
        hash: "HMAC-SHA256".into(),
        encryption: "AES256-GCM-HMAC-SHA256".into(),
        ecc: String::new(),
        ecc_overhead_percent: 0,
        hmac_secret: vec![1, 2, 3],
        master_key: vec![],
        version: 1,
        max_pack_size: 0,
        index_version: 0,
        epoch_parameters: EpochParameters::zero(),
        enable_password_change: false,
        splitter: String::new(),
        upgrade_lock: None,
        required_features: vec![],
    };
    let json = String::from_utf8(config_json(&cfg).unwrap()).unwrap();
    assert_eq!(
        json,
        r#"{"format":{"hash":"HMAC-SHA256","encryption":"AES256-GCM-HMAC-SHA256","secret":"AQID","version":1,"epochParameters":{"Enabled":false,"EpochRefreshFrequency":0,"FullCheckpointFrequency":0,"CleanupSafetyMargin":0,"MinEpochDuration":0,"EpochAdvanceOnCountThreshold":0,"EpochAdvanceOnTotalSizeBytesThreshold":0,"DeleteParallelism":0},"enablePasswordChange":false}}"#
    );
    assert_eq!(cfg.splitter_name(), "FIXED");
    assert_eq!(cfg.effective_max_pack_size(), 20 << 20);

    // Missing epochParameters decode as zero (not kopia's defaults); unknown fields ignored;
    // upgradeLock and requiredFeatures keep Go's field order.
    let parsed: EncryptedRepositoryConfig = serde_json::from_str(
        r#"{"format":{"hash":"HMAC-SHA256","future":1,"upgradeLock":{"ownerID":"o","creationTime":"2024-01-02T03:04:05.5+01:00","ioDrainTimeout":5},"requiredFeatures":[{"feature":"x","ifNotUnderstood":{"warn":true,"url":"u"}}]}}"#,
    )
    .unwrap();
    assert_eq!(parsed.format.epoch_parameters, EpochParameters::zero());
    assert_eq!(
        String::from_utf8(config_json(&parsed.format).unwrap()).unwrap(),
        r#"{"format":{"hash":"HMAC-SHA256","epochParameters":{"Enabled":false,"EpochRefreshFrequency":0,"FullCheckpointFrequency":0,"CleanupSafetyMargin":0,"MinEpochDuration":0,"EpochAdvanceOnCountThreshold":0,"EpochAdvanceOnTotalSizeBytesThreshold":0,"DeleteParallelism":0},"enablePasswordChange":false,"upgradeLock":{"ownerID":"o","creationTime":"2024-01-02T02:04:05.5Z","ioDrainTimeout":5},"requiredFeatures":[{"feature":"x","ifNotUnderstood":{"warn":true,"url":"u"}}]}}"#
    );
}

#[test]
fn format_blob_parse_errors_and_leniency() {
    for bad in [&b""[..], b"not json", b"[1,2]", b"{\"uniqueID\":\"!!\"}"] {
        assert!(matches!(FormatBlob::parse(bad), Err(Error::Corrupt { .. })));
    }
    let b = FormatBlob::parse(br#"{"tool":"t","uniqueID":null,"extra":{"a":1}}"#).unwrap();
    assert_eq!(b.tool, "t");
    assert!(b.unique_id.is_empty());
    assert_eq!(
        String::from_utf8(b.to_bytes()).unwrap(),
        "{\n  \"tool\": \"t\",\n  \"buildVersion\": \"\",\n  \"buildInfo\": \"\",\n  \"uniqueID\": null,\n  \"keyAlgo\": \"\",\n  \"encryption\": \"\"\n}\n"
    );
    // Short or missing encrypted config is corrupt, not a wrong password.
    assert!(matches!(
        decrypt_config(&b, &format_key()),
        Err(Error::Unsupported { .. })
    ));
    let mut b2 = FormatBlob::parse(V_FMT_BLOB.as_bytes()).unwrap();
    b2.encrypted_block_format.truncate(20);
    assert!(matches!(
        decrypt_config(&b2, &format_key()),
        Err(Error::Corrupt { .. })
    ));
    // Go escapes in the outer blob.
    let mut b3 = b2.clone();
    b3.build_info = "<&>".into();
    assert!(
        String::from_utf8(b3.to_bytes())
            .unwrap()
            .contains(r#""buildInfo": "\u003c\u0026\u003e""#)
    );
}
