//! Azure Blob and Google Cloud Storage options from a repository URL and environment variables.
//!
//! | setting | sources, highest first | default |
//! |---|---|---|
//! | Azure container | `KOPIA_AZURE_CONTAINER`, host of `azure://CONTAINER[/PREFIX]` | required |
//! | Azure prefix | `ARKIV_AZURE_PREFIX`, URL path | `""` |
//! | storage account | `KOPIA_AZURE_STORAGE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT`, `AZURE_ACCOUNT_NAME` | required |
//! | account key | `KOPIA_AZURE_STORAGE_KEY`, `AZURE_STORAGE_KEY`, `AZURE_ACCOUNT_KEY` | — |
//! | SAS token | `AZURE_STORAGE_SAS_TOKEN`, `AZURE_ACCOUNT_SAS` | — (a key or a SAS is required) |
//! | storage domain | `AZURE_STORAGE_DOMAIN`, `AZURE_ENDPOINT_SUFFIX` (`core.windows.net` form: `blob.` is prepended) | `blob.core.windows.net` |
//! | endpoint URL (Azurite, private endpoints) | `ARKIV_AZURE_ENDPOINT` (`http://127.0.0.1:10000/devstoreaccount1`) | `https://ACCOUNT.DOMAIN` |
//! | GCS bucket | `KOPIA_GCS_BUCKET`, host of `gcs://BUCKET[/PREFIX]` | required |
//! | GCS prefix | `ARKIV_GCS_PREFIX`, URL path | `""` |
//! | service-account JSON file | `GOOGLE_APPLICATION_CREDENTIALS` | required unless the endpoint is an emulator |
//! | endpoint URL (emulators) | `ARKIV_GCS_ENDPOINT`; with no credentials file, requests are unauthenticated | Google |
//!
//! Kopia's names are `AZURE_STORAGE_ACCOUNT`/`AZURE_STORAGE_KEY`/`AZURE_STORAGE_SAS_TOKEN`/
//! `AZURE_STORAGE_DOMAIN` (its `--storage-*` flags); VolSync's script passes
//! `KOPIA_AZURE_STORAGE_ACCOUNT`/`KOPIA_AZURE_STORAGE_KEY` explicitly, so those win.
//! Prefixes are normalised like S3's (trailing `/`). Proxies: [`super::proxy_env`].

use std::path::PathBuf;

use arkiv_engine::blob::cloud::{AzureOptions, GcsOptions};
use arkiv_engine::{Error, Result};

use super::proxy_env::{first, proxy_from_env};
use super::s3_env::normalize_prefix;

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Splits `SCHEME://HOST[/PATH]` (scheme checked case-insensitively); `""` yields neither.
pub(crate) fn split_url(
    url: &str,
    scheme: &str,
    form: &str,
) -> Result<(Option<String>, Option<String>)> {
    let url = url.trim();
    if url.is_empty() {
        return Ok((None, None));
    }
    let head = format!("{scheme}://");
    let rest = url
        .get(..head.len())
        .filter(|s| s.eq_ignore_ascii_case(&head))
        .and_then(|_| url.get(head.len()..))
        .ok_or_else(|| Error::Config(format!("invalid repository URL {url:?}: expected {form}")))?;
    let (host, path) = match rest.split_once('/') {
        Some((h, p)) => (h, Some(p.to_owned())),
        None => (rest, None),
    };
    Ok(((!host.is_empty()).then(|| host.to_owned()), path))
}

/// Azure options from `azure://CONTAINER[/PREFIX]` (or `""`) and the environment.
pub fn azure_options_from_env(url: &str, env: Env<'_>) -> Result<AzureOptions> {
    let form = "azure://CONTAINER[/PREFIX]";
    let (url_container, url_prefix) = split_url(url, "azure", form)?;
    let container = first(env, &["KOPIA_AZURE_CONTAINER"])
        .or(url_container)
        .ok_or_else(|| {
            Error::Config(format!(
                "Azure container not set: give {form} or set KOPIA_AZURE_CONTAINER"
            ))
        })?;
    let account = first(
        env,
        &[
            "KOPIA_AZURE_STORAGE_ACCOUNT",
            "AZURE_STORAGE_ACCOUNT",
            "AZURE_ACCOUNT_NAME",
        ],
    )
    .ok_or_else(|| {
        Error::Config(
            "Azure storage account not set: set AZURE_STORAGE_ACCOUNT (or KOPIA_AZURE_STORAGE_ACCOUNT)"
                .into(),
        )
    })?;
    let mut o = AzureOptions::new(account, container);
    o.prefix = normalize_prefix(
        &first(env, &["ARKIV_AZURE_PREFIX"])
            .or(url_prefix)
            .unwrap_or_default(),
    )?;
    o.account_key = first(
        env,
        &[
            "KOPIA_AZURE_STORAGE_KEY",
            "AZURE_STORAGE_KEY",
            "AZURE_ACCOUNT_KEY",
        ],
    );
    o.sas_token = first(env, &["AZURE_STORAGE_SAS_TOKEN", "AZURE_ACCOUNT_SAS"]);
    o.storage_domain = first(env, &["AZURE_STORAGE_DOMAIN"]).or_else(|| {
        first(env, &["AZURE_ENDPOINT_SUFFIX"]).map(|s| {
            if s.starts_with("blob.") {
                s
            } else {
                format!("blob.{s}")
            }
        })
    });
    o.endpoint = first(env, &["ARKIV_AZURE_ENDPOINT"]);
    o.proxy = proxy_from_env(env);
    Ok(o)
}

/// GCS options from `gcs://BUCKET[/PREFIX]` (or `""`) and the environment.
pub fn gcs_options_from_env(url: &str, env: Env<'_>) -> Result<GcsOptions> {
    let form = "gcs://BUCKET[/PREFIX]";
    let (url_bucket, url_prefix) = split_url(url, "gcs", form)?;
    let bucket = first(env, &["KOPIA_GCS_BUCKET"])
        .or(url_bucket)
        .ok_or_else(|| {
            Error::Config(format!(
                "GCS bucket not set: give {form} or set KOPIA_GCS_BUCKET"
            ))
        })?;
    let mut o = GcsOptions::new(bucket);
    o.prefix = normalize_prefix(
        &first(env, &["ARKIV_GCS_PREFIX"])
            .or(url_prefix)
            .unwrap_or_default(),
    )?;
    o.credentials_file = first(env, &["GOOGLE_APPLICATION_CREDENTIALS"]).map(PathBuf::from);
    o.endpoint = first(env, &["ARKIV_GCS_ENDPOINT"]);
    o.anonymous = o.endpoint.is_some() && o.credentials_file.is_none();
    o.proxy = proxy_from_env(env);
    Ok(o)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use crate::connect::test_env as env;

    #[test]
    fn azure_url_and_variables() {
        let vars = [
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_KEY", "a2V5"),
            ("AZURE_ENDPOINT_SUFFIX", "core.chinacloudapi.cn"),
        ];
        let o = azure_options_from_env("azure://backups/team//app1", &env(&vars)).unwrap();
        assert_eq!(o.container, "backups");
        assert_eq!(o.prefix, "team/app1/");
        assert_eq!(o.account, "acct");
        assert_eq!(o.account_key.as_deref(), Some("a2V5"));
        assert_eq!(
            o.storage_domain.as_deref(),
            Some("blob.core.chinacloudapi.cn")
        );
        // VolSync's variables win over the URL and Kopia's names.
        let vars = [
            ("KOPIA_AZURE_CONTAINER", "c2"),
            ("KOPIA_AZURE_STORAGE_ACCOUNT", "a2"),
            ("AZURE_STORAGE_ACCOUNT", "acct"),
            ("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=x"),
        ];
        let o = azure_options_from_env("azure://backups", &env(&vars)).unwrap();
        assert_eq!((o.container.as_str(), o.account.as_str()), ("c2", "a2"));
        assert_eq!(o.prefix, "");
        assert!(o.account_key.is_none() && o.sas_token.is_some());
        let e = azure_options_from_env("azure://c", &env(&[])).unwrap_err();
        assert!(e.to_string().contains("AZURE_STORAGE_ACCOUNT"), "{e}");
        let e = azure_options_from_env("gcs://c", &env(&vars)).unwrap_err();
        assert!(e.to_string().contains("azure://CONTAINER"), "{e}");
    }

    #[test]
    fn gcs_url_and_variables() {
        let vars = [("GOOGLE_APPLICATION_CREDENTIALS", "/credentials/gcs.json")];
        let o = gcs_options_from_env("gcs://bkt/p", &env(&vars)).unwrap();
        assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("bkt", "p/"));
        assert_eq!(
            o.credentials_file,
            Some(PathBuf::from("/credentials/gcs.json"))
        );
        assert!(!o.anonymous);
        let vars = [
            ("KOPIA_GCS_BUCKET", "b2"),
            ("ARKIV_GCS_ENDPOINT", "http://127.0.0.1:4443"),
        ];
        let o = gcs_options_from_env("", &env(&vars)).unwrap();
        assert_eq!(o.bucket, "b2");
        assert!(o.anonymous);
        assert!(gcs_options_from_env("", &env(&[])).is_err());
    }
}
