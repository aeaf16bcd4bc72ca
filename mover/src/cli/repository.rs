//! `arkiv repository create|status`.

use std::io::Write;

use anyhow::Result;
use arkiv_engine::initialize::CreateOptions;
use clap::{Args, Subcommand};

use super::GlobalArgs;
use crate::Env;
use crate::exit::{self, CliError};
use crate::render::text::{self, bytes_base10};

/// `arkiv repository …`
#[derive(Debug, Subcommand)]
pub enum RepositoryCommand {
    /// Create a new repository at the location.
    Create(RepositoryCreateArgs),
    /// Print the repository's parameters.
    Status,
}

/// `arkiv repository create`
#[derive(Debug, Args)]
pub struct RepositoryCreateArgs {
    /// Content encryption: AES256-GCM-HMAC-SHA256 or CHACHA20-POLY1305-HMAC-SHA256
    #[arg(long, default_value = "AES256-GCM-HMAC-SHA256")]
    pub encryption: String,
    /// Content hash
    #[arg(long, default_value = "BLAKE2B-256-128")]
    pub block_hash: String,
    /// Splitter: DYNAMIC-{128K..8M}-BUZHASH or FIXED-{128K..8M}
    #[arg(long, default_value = "DYNAMIC-4M-BUZHASH")]
    pub object_splitter: String,
    /// Error correction (only `none` is supported)
    #[arg(long, default_value = "none")]
    pub ecc: String,
}

/// Dispatches a repository subcommand.
pub async fn run(g: &GlobalArgs, env: Env<'_>, cmd: RepositoryCommand) -> Result<i32> {
    match cmd {
        RepositoryCommand::Create(a) => create(g, env, a).await,
        RepositoryCommand::Status => status(g, env).await,
    }
}

/// `arkiv repository create`
async fn create(g: &GlobalArgs, env: Env<'_>, a: RepositoryCreateArgs) -> Result<i32> {
    if !a.ecc.eq_ignore_ascii_case("none") && !a.ecc.is_empty() {
        return Err(CliError::new(
            exit::UNSUPPORTED,
            format!(
                "unsupported ECC {:?}: arkiv creates repositories without error correction",
                a.ecc
            ),
        ));
    }
    let (user, host) = g.identity();
    let mut opts = CreateOptions::new(&user, &host);
    opts.encryption = a
        .encryption
        .parse()
        .map_err(|e| CliError::new(exit::UNSUPPORTED, format!("--encryption: {e}")))?;
    opts.hash = a
        .block_hash
        .parse()
        .map_err(|e| CliError::new(exit::UNSUPPORTED, format!("--block-hash: {e}")))?;
    opts.splitter = a
        .object_splitter
        .parse()
        .map_err(|e| CliError::new(exit::UNSUPPORTED, format!("--object-splitter: {e}")))?;
    let conn = g.connection(env)?;
    let password = g.password(env)?;
    let storage = conn.storage_for_create().await?;
    let repo = conn.create(storage, &password, &opts).await?;
    eprintln!(
        "Created repository at {}",
        text::new_repository(&conn.describe(), &repo, &opts.maintenance_owner)
    );
    Ok(exit::OK)
}

/// `arkiv repository status`
async fn status(g: &GlobalArgs, env: Env<'_>) -> Result<i32> {
    let conn = g.connection(env)?;
    let repo = conn.open(&g.password(env)?).await?;
    let (user, host) = g.identity();
    let cfg = repo.config();
    let ep = &cfg.epoch_parameters;
    let write_epoch = {
        let markers = repo.storage().list("xe").await?;
        markers
            .iter()
            .filter_map(|m| {
                arkiv_format::indexblob::epoch::epoch_number_from_blob_id(m.id.as_str())
            })
            .max()
            .unwrap_or(0)
    };
    let dur = arkiv_format::gojson::duration::format;
    let mut out = String::new();
    out += &format!("Description:         Repository at {}\n", conn.describe());
    out += &format!("Hostname:            {host}\nUsername:            {user}\n\n");
    out += &format!("Storage:             {}\n\n", repo.storage().describe());
    out += &format!(
        "Unique ID:           {}\n",
        hex::encode(&repo.format().blob.unique_id)
    );
    out += &format!("Hash:                {}\n", cfg.hash);
    out += &format!("Encryption:          {}\n", cfg.encryption);
    out += &format!("Splitter:            {}\n", cfg.splitter_name());
    out += &format!("Format version:      {}\n", cfg.version);
    out += &format!(
        "Content compression: {}\n",
        cfg.effective_index_version() >= 2
    );
    out += &format!("Password changes:    {}\n", cfg.enable_password_change);
    out += &format!(
        "Max pack length:     {}\n",
        bytes_base10(cfg.effective_max_pack_size())
    );
    out += &format!(
        "Index Format:        v{}\n\n",
        cfg.effective_index_version()
    );
    if ep.enabled {
        out += "Epoch Manager:       enabled\n";
        out += &format!("Current Epoch: {write_epoch}\n\n");
        out += &format!(
            "Epoch refresh frequency: {}\n",
            dur(ep.epoch_refresh_frequency)
        );
        out += &format!(
            "Epoch advance on:        {} blobs or {}, minimum {}\n",
            ep.epoch_advance_on_count_threshold,
            bytes_base10(
                u64::try_from(ep.epoch_advance_on_total_size_bytes_threshold).unwrap_or(0)
            ),
            dur(ep.min_epoch_duration)
        );
        out += &format!(
            "Epoch cleanup margin:    {}\n",
            dur(ep.cleanup_safety_margin)
        );
        out += &format!(
            "Epoch checkpoint every:  {} epochs\n",
            ep.full_checkpoint_frequency
        );
    } else {
        out += "Epoch Manager:       disabled\n";
    }
    std::io::stdout().lock().write_all(out.as_bytes())?;
    Ok(exit::OK)
}
