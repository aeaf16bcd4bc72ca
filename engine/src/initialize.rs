//! Creating a repository the way `kopia repository create` does (FORMAT.md §12.1):
//! `kopia.blobcfg`, then `kopia.repository`, then — in one write session — the global policy
//! manifest and the maintenance parameters manifest owned by the creating identity.

use std::collections::BTreeMap;
use std::sync::Arc;

use arkiv_format::encryption::EncryptionAlgorithm;
use arkiv_format::hashing::HashAlgorithm;
use arkiv_format::ids::BlobId;
use arkiv_format::maintenance::MaintenanceParams;
use arkiv_format::policy::{self, Policy};
use arkiv_format::repo_format::{self, BlobCfg, FormatBlob, KeyDerivation, RepositoryConfig};
use arkiv_format::splitter::SplitterKind;
use bytes::Bytes;

use crate::blob::BlobStorage;
use crate::content::writer::ContentWriter;
use crate::manifest::ManifestBatch;
use crate::repo::{BLOBCFG_BLOB_ID, FORMAT_BLOB_ID, OpenOptions, Repository};
use crate::{Error, Result, cpu};

/// Parameters of a new repository; `Default` gives kopia's current defaults.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CreateOptions {
    /// Content hash.
    pub hash: HashAlgorithm,
    /// Content encryption.
    pub encryption: EncryptionAlgorithm,
    /// Default splitter.
    pub splitter: SplitterKind,
    /// Password key derivation.
    pub key_derivation: KeyDerivation,
    /// Maximum pack size in bytes.
    pub max_pack_size: u32,
    /// Owner of the maintenance parameters (`user@host`).
    pub maintenance_owner: String,
    /// Username of the creating client (session marker).
    pub username: String,
    /// Hostname of the creating client (session marker).
    pub hostname: String,
}

impl CreateOptions {
    /// Kopia's defaults, with the acting identity as maintenance owner.
    pub fn new(username: &str, hostname: &str) -> Self {
        CreateOptions {
            hash: HashAlgorithm::Blake2b256_128,
            encryption: EncryptionAlgorithm::Aes256GcmHmacSha256,
            splitter: SplitterKind::default(),
            key_derivation: KeyDerivation::Scrypt65536_8_1,
            max_pack_size: 20 << 20,
            maintenance_owner: format!("{username}@{hostname}"),
            username: username.to_owned(),
            hostname: hostname.to_owned(),
        }
    }
}

/// Creates a repository in empty `storage` and opens it.
///
/// Refuses storage that already holds any blob ([`Error::AlreadyExists`]).
pub async fn create_repository(
    storage: Arc<dyn BlobStorage>,
    password: &str,
    opts: &CreateOptions,
    open: OpenOptions,
) -> Result<Repository> {
    let existing = storage.list("").await?;
    if let Some(first) = existing.first() {
        return Err(Error::AlreadyExists(format!(
            "{} already holds data ({} blobs, e.g. {}): refusing to create a repository there",
            storage.describe(),
            existing.len(),
            first.id
        )));
    }
    let unique_id: [u8; 32] = rand::random();
    let secret: [u8; 32] = rand::random();
    let master_key: [u8; 32] = rand::random();
    let mut config = RepositoryConfig::new_default(secret.to_vec(), master_key.to_vec());
    config.hash = opts.hash.to_string();
    config.encryption = opts.encryption.to_string();
    config.max_pack_size = i64::from(opts.max_pack_size);
    config.splitter = opts.splitter.to_string();
    config
        .validate()
        .map_err(|e| Error::format("new repository parameters", e))?;
    let pw = password.to_owned();
    let kdf = opts.key_derivation;
    let (format_bytes, blobcfg_bytes) = cpu::run(move || {
        let format_key = repo_format::derive_format_key(kdf, &pw, &unique_id)
            .map_err(|e| Error::format("key derivation", e))?;
        let mut blob = FormatBlob::new(
            format!("arkiv-{}", env!("CARGO_PKG_VERSION")),
            "arkiv",
            unique_id.to_vec(),
            kdf,
        );
        blob.encrypted_block_format =
            repo_format::encrypt_config(&config, &format_key, &unique_id, rand::random())
                .map_err(|e| Error::format("repository config", e))?;
        let blobcfg =
            repo_format::encrypt_blobcfg(&blob, &format_key, &BlobCfg::default(), rand::random())
                .map_err(|e| Error::format("blob config", e))?;
        let bytes = blob.to_bytes();
        Ok((bytes, blobcfg))
    })
    .await?;
    storage
        .put(&BlobId::from(BLOBCFG_BLOB_ID), Bytes::from(blobcfg_bytes))
        .await?;
    storage
        .put(&BlobId::from(FORMAT_BLOB_ID), Bytes::from(format_bytes))
        .await?;

    let repo = Repository::open(storage, password, open).await?;
    write_initial_manifests(&repo, opts).await?;
    // re-open so the index set includes the manifests just written
    let mut repo = repo;
    repo.refresh().await?;
    Ok(repo)
}

/// Writes the global policy and maintenance parameters manifests in one session.
pub async fn write_initial_manifests(repo: &Repository, opts: &CreateOptions) -> Result<()> {
    let rt = tokio::runtime::Handle::current();
    let cw = ContentWriter::new(repo.clone(), rt, &opts.username, &opts.hostname)?;
    let now = repo.clock().now();
    let policy_json = Policy::kopia_default_global()
        .encode()
        .map_err(|e| Error::format("global policy", e))?;
    let params_json = MaintenanceParams::default_for_owner(&opts.maintenance_owner)
        .to_json()
        .map_err(|e| Error::format("maintenance parameters", e))?;
    let mut batch = ManifestBatch::default();
    batch.put(policy::policy_labels_global(), &policy_json, now)?;
    let mut labels = BTreeMap::new();
    labels.insert("type".to_owned(), "maintenance".to_owned());
    batch.put(labels, &params_json, now)?;
    batch.commit_async(&cw).await?;
    cw.flush_async().await?;
    Ok(())
}
