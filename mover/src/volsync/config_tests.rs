//! Unit tests of `config`: one rule per test.

use std::collections::HashMap;

use super::*;

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// A minimal valid backup environment plus `extra` (an empty value removes a key).
fn env_with(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = [
        ("DATA_DIR", "/data"),
        ("KOPIA_CACHE_DIR", "/cache"),
        ("KOPIA_PASSWORD", "hunter2"),
        ("KOPIA_REPOSITORY", "filesystem:///mnt/repo"),
        ("KOPIA_OVERRIDE_USERNAME", "app"),
        ("KOPIA_OVERRIDE_HOSTNAME", "media"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in extra {
        if v.is_empty() {
            m.remove(*k);
        } else {
            m.insert((*k).to_owned(), (*v).to_owned());
        }
    }
    m
}

fn load(a: &[&str], extra: &[(&str, &str)]) -> Result<MoverConfig, ConfigError> {
    let m = env_with(extra);
    MoverConfig::from_env(&args(a), &|k| m.get(k).cloned())
}

fn ok(a: &[&str], extra: &[(&str, &str)]) -> MoverConfig {
    match load(a, extra) {
        Ok(c) => c,
        Err(e) => panic!("unexpected error: {e}"),
    }
}

fn err(a: &[&str], extra: &[(&str, &str)]) -> ConfigError {
    match load(a, extra) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

fn backup(c: &MoverConfig) -> &BackupConfig {
    match &c.operation {
        OperationConfig::Backup(b) => b,
        other => panic!("expected a backup, got {other:?}"),
    }
}

fn restore(c: &MoverConfig) -> &RestoreConfig {
    match &c.operation {
        OperationConfig::Restore(r) => r,
        other => panic!("expected a restore, got {other:?}"),
    }
}

/// The variable an [`ConfigError::Invalid`] names (`None` for other errors).
fn invalid_var(e: &ConfigError) -> Option<&'static str> {
    match e {
        ConfigError::Invalid { var, .. } => Some(var),
        _ => None,
    }
}

fn s3(c: &MoverConfig) -> &S3Target {
    match &c.repository {
        RepositoryTarget::S3(s) => s,
        other => panic!("expected S3, got {other:?}"),
    }
}

// ---- operation -------------------------------------------------------------------------

#[test]
fn argv_selects_backup_and_restore() {
    assert_eq!(ok(&["backup"], &[]).operation(), Operation::Backup);
    assert_eq!(ok(&["restore"], &[]).operation(), Operation::Restore);
}

#[test]
fn direction_wins_over_argv() {
    assert_eq!(
        ok(&["backup"], &[("DIRECTION", "destination")]).operation(),
        Operation::Restore
    );
    assert_eq!(
        ok(&[], &[("DIRECTION", "source")]).operation(),
        Operation::Backup
    );
    assert_eq!(
        ok(&[], &[("DIRECTION", "maintenance")]).operation(),
        Operation::Maintenance
    );
}

#[test]
fn unknown_direction_is_ignored_with_a_warning() {
    let c = ok(&["restore"], &[("DIRECTION", "sideways")]);
    assert_eq!(c.operation(), Operation::Restore);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("DIRECTION=\"sideways\""))
    );
}

#[test]
fn unknown_operation_exits_2() {
    let e = err(&["prune"], &[]);
    assert_eq!(e, ConfigError::UnknownOperation("prune".into()));
    assert_eq!(e.exit_code(), 2);
    assert_eq!(
        e.to_string(),
        "unknown operation: prune (expected backup or restore)"
    );
}

#[test]
fn missing_or_extra_operations_exit_2() {
    assert_eq!(err(&[], &[]), ConfigError::NoOperation);
    assert_eq!(err(&[], &[]).exit_code(), 2);
    let e = err(&["backup", "restore"], &[]);
    assert!(matches!(e, ConfigError::TooManyOperations(_)));
    assert_eq!(e.exit_code(), 2);
}

#[test]
fn maintenance_as_argument_exits_1() {
    let e = err(&["maintenance"], &[]);
    assert_eq!(e, ConfigError::MaintenanceArgument);
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn operation_names() {
    assert_eq!(Operation::Backup.as_str(), "backup");
    assert_eq!(Operation::Restore.direction(), "destination");
    assert_eq!(Operation::Maintenance.to_string(), "maintenance");
}

// ---- required variables ----------------------------------------------------------------

#[test]
fn password_is_required_and_empty_counts_as_unset() {
    let e = err(&["backup"], &[("KOPIA_PASSWORD", "")]);
    assert_eq!(e, ConfigError::Missing("KOPIA_PASSWORD"));
    assert_eq!(e.exit_code(), 1);
    assert_eq!(e.to_string(), "KOPIA_PASSWORD is required but not set");
    let m = env_with(&[]);
    let e = MoverConfig::from_env(&args(&["backup"]), &|k| {
        if k == "KOPIA_PASSWORD" {
            Some(String::new())
        } else {
            m.get(k).cloned()
        }
    });
    assert_eq!(e, Err(ConfigError::Missing("KOPIA_PASSWORD")));
}

#[test]
fn data_dir_required_except_for_maintenance() {
    assert_eq!(
        err(&["restore"], &[("DATA_DIR", "")]),
        ConfigError::Missing("DATA_DIR")
    );
    let c = ok(&[], &[("DIRECTION", "maintenance"), ("DATA_DIR", "")]);
    assert_eq!(c.operation, OperationConfig::Maintenance);
}

#[test]
fn identity_required_for_backup_and_restore_only() {
    assert_eq!(
        err(&["backup"], &[("KOPIA_OVERRIDE_USERNAME", "")]),
        ConfigError::Missing("KOPIA_OVERRIDE_USERNAME")
    );
    assert_eq!(
        err(&["restore"], &[("KOPIA_OVERRIDE_HOSTNAME", "")]),
        ConfigError::Missing("KOPIA_OVERRIDE_HOSTNAME")
    );
    let c = ok(
        &[],
        &[
            ("DIRECTION", "maintenance"),
            ("KOPIA_OVERRIDE_USERNAME", ""),
            ("KOPIA_OVERRIDE_HOSTNAME", ""),
        ],
    );
    assert_eq!(c.operation, OperationConfig::Maintenance);
}

// ---- identity --------------------------------------------------------------------------

#[test]
fn identity_defaults_to_data_path_even_when_data_dir_differs() {
    let c = ok(&["restore"], &[("DATA_DIR", "/restore/data")]);
    assert_eq!(restore(&c).identity.to_string(), "app@media:/data");
    assert_eq!(restore(&c).data_dir, PathBuf::from("/restore/data"));
}

#[test]
fn source_path_override_sets_identity_path() {
    let c = ok(&["backup"], &[("KOPIA_SOURCE_PATH_OVERRIDE", "/srv/app")]);
    assert_eq!(backup(&c).identity.to_string(), "app@media:/srv/app");
    assert_eq!(
        backup(&c).identity.source().to_string(),
        "app@media:/srv/app"
    );
    assert_eq!(backup(&c).data_dir, PathBuf::from("/data"));
}

#[test]
fn relative_source_path_override_is_an_error() {
    let e = err(&["backup"], &[("KOPIA_SOURCE_PATH_OVERRIDE", "srv/app")]);
    assert_eq!(invalid_var(&e), Some("KOPIA_SOURCE_PATH_OVERRIDE"));
}

#[test]
fn identity_parts_must_not_contain_separators() {
    assert_eq!(
        invalid_var(&err(&["backup"], &[("KOPIA_OVERRIDE_USERNAME", "a@b")])),
        Some("KOPIA_OVERRIDE_USERNAME")
    );
    assert_eq!(
        invalid_var(&err(&["backup"], &[("KOPIA_OVERRIDE_HOSTNAME", "h:1")])),
        Some("KOPIA_OVERRIDE_HOSTNAME")
    );
}

// ---- maintenance owner -----------------------------------------------------------------

#[test]
fn maintenance_owner_default_and_overrides() {
    let owner = |extra: &[(&str, &str)]| ok(&["backup"], extra).maintenance_owner.to_string();
    assert_eq!(owner(&[]), "maintenance@volsync");
    assert_eq!(
        owner(&[("KOPIA_OVERRIDE_MAINTENANCE_USERNAME", "ops")]),
        "ops@volsync"
    );
    assert_eq!(
        owner(&[("KOPIA_OVERRIDE_MAINTENANCE_USERNAME", "ops@cluster1")]),
        "ops@cluster1"
    );
    assert_eq!(
        owner(&[
            ("KOPIA_OVERRIDE_MAINTENANCE_USERNAME", "ops@cluster1"),
            ("ARKIV_MAINTENANCE_OWNER", "arkiv@nas"),
        ]),
        "arkiv@nas"
    );
    assert_eq!(
        owner(&[("ARKIV_MAINTENANCE_OWNER", "keeper")]),
        "keeper@volsync"
    );
}

#[test]
fn malformed_maintenance_owner_is_an_error() {
    for bad in ["@host", "user@", "a@b@c", "u:x@h"] {
        assert_eq!(
            invalid_var(&err(&["backup"], &[("ARKIV_MAINTENANCE_OWNER", bad)])),
            Some("ARKIV_MAINTENANCE_OWNER"),
            "{bad}"
        );
    }
}

// ---- repository: filesystem ------------------------------------------------------------

#[test]
fn filesystem_url() {
    let c = ok(&["backup"], &[]);
    assert_eq!(
        c.repository,
        RepositoryTarget::Filesystem {
            path: PathBuf::from("/mnt/repo")
        }
    );
    assert_eq!(c.repository.describe(), "filesystem:///mnt/repo");
}

#[test]
fn filesystem_url_must_be_absolute_without_dotdot() {
    for bad in ["filesystem://repo", "filesystem:///mnt/../etc"] {
        assert_eq!(
            invalid_var(&err(&["backup"], &[("KOPIA_REPOSITORY", bad)])),
            Some("KOPIA_REPOSITORY"),
            "{bad}"
        );
    }
}

#[test]
fn legacy_fs_path_alias() {
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", ""),
            ("KOPIA_FS_PATH", "/kopia/repository"),
        ],
    );
    assert_eq!(
        c.repository,
        RepositoryTarget::Filesystem {
            path: PathBuf::from("/kopia/repository")
        }
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn filesystem_url_wins_over_legacy_fs_path_with_warning() {
    let c = ok(&["backup"], &[("KOPIA_FS_PATH", "/old")]);
    assert_eq!(
        c.repository,
        RepositoryTarget::Filesystem {
            path: PathBuf::from("/mnt/repo")
        }
    );
    assert!(c.warnings.iter().any(|w| w.contains("KOPIA_FS_PATH")));
}

#[test]
fn bare_absolute_path_is_a_filesystem_repository() {
    let c = ok(&["backup"], &[("KOPIA_REPOSITORY", "/srv/repo")]);
    assert_eq!(
        c.repository,
        RepositoryTarget::Filesystem {
            path: PathBuf::from("/srv/repo")
        }
    );
}

// ---- repository: S3 --------------------------------------------------------------------

#[test]
fn s3_url_bucket_prefix_and_defaults() {
    let c = ok(
        &["backup"],
        &[("KOPIA_REPOSITORY", "s3://my-bucket/apps//media")],
    );
    let s = s3(&c);
    assert_eq!(s.bucket, "my-bucket");
    assert_eq!(s.prefix, "apps/media/");
    assert_eq!(s.endpoint, "s3.amazonaws.com");
    assert!(!s.disable_tls);
    assert_eq!(s.region, None);
    assert_eq!(s.access_key_id, None);
    assert_eq!(s.ca_bundle, None);
}

#[test]
fn s3_url_without_prefix() {
    for url in ["s3://bucket", "s3://bucket/"] {
        let c = ok(&["backup"], &[("KOPIA_REPOSITORY", url)]);
        assert_eq!(s3(&c).bucket, "bucket");
        assert_eq!(s3(&c).prefix, "", "{url}");
    }
}

#[test]
fn s3_prefix_keeps_trailing_slash_and_leading_slash() {
    let c = ok(&["backup"], &[("KOPIA_REPOSITORY", "s3://bucket/a/b/")]);
    assert_eq!(s3(&c).prefix, "a/b/");
    let c = ok(&["backup"], &[("KOPIA_REPOSITORY", "s3://bucket//x")]);
    assert_eq!(s3(&c).prefix, "/x/");
}

#[test]
fn s3_bad_prefix_or_bucket_is_an_error() {
    for bad in [
        "s3://bucket/a b",
        "s3://bucket/a/../b",
        "s3://Bucket/x",
        "s3://ab",
        "s3://192.168.1.1/x",
        "s3://a..b/x",
    ] {
        assert_eq!(
            invalid_var(&err(&["backup"], &[("KOPIA_REPOSITORY", bad)])),
            Some("KOPIA_REPOSITORY"),
            "{bad}"
        );
    }
}

#[test]
fn s3_bucket_variable_selects_s3_and_wins_over_url_bucket() {
    let c = ok(&["backup"], &[("KOPIA_S3_BUCKET", "explicit")]);
    assert_eq!(s3(&c).bucket, "explicit");
    assert_eq!(s3(&c).prefix, "");

    let c = ok(
        &["backup"],
        &[
            ("KOPIA_S3_BUCKET", "explicit"),
            ("KOPIA_REPOSITORY", "s3://other/pfx"),
        ],
    );
    assert_eq!(s3(&c).bucket, "explicit");
    assert_eq!(s3(&c).prefix, "pfx/");
    assert!(c.warnings.iter().any(|w| w.contains("KOPIA_S3_BUCKET")));
}

#[test]
fn s3_endpoint_precedence_and_scheme_stripping() {
    let base = [("KOPIA_REPOSITORY", "s3://bucket")];
    let ep = |extra: &[(&str, &str)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        let c = ok(&["backup"], &all);
        (s3(&c).endpoint.clone(), s3(&c).disable_tls, c.warnings)
    };
    assert_eq!(ep(&[("AWS_S3_ENDPOINT", "minio:9000")]).0, "minio:9000");
    assert_eq!(
        ep(&[
            ("AWS_S3_ENDPOINT", "minio:9000"),
            ("KOPIA_S3_ENDPOINT", "https://s3.example.com")
        ])
        .0,
        "s3.example.com"
    );
    let (endpoint, tls_off, warnings) = ep(&[("KOPIA_S3_ENDPOINT", "http://minio:9000")]);
    assert_eq!(endpoint, "minio:9000");
    assert!(!tls_off, "http:// must not switch TLS off by itself");
    assert!(warnings.iter().any(|w| w.contains("KOPIA_S3_DISABLE_TLS")));
}

#[test]
fn s3_disable_tls_either_variable() {
    for var in ["KOPIA_S3_DISABLE_TLS", "AWS_S3_DISABLE_TLS"] {
        let c = ok(
            &["backup"],
            &[("KOPIA_REPOSITORY", "s3://bucket"), (var, "true")],
        );
        assert!(s3(&c).disable_tls, "{var}");
    }
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", "s3://bucket"),
            ("KOPIA_S3_DISABLE_TLS", "yes"),
        ],
    );
    assert!(!s3(&c).disable_tls);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("KOPIA_S3_DISABLE_TLS"))
    );
}

#[test]
fn s3_region_and_credentials() {
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", "s3://bucket"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_REGION", "eu-central-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "tok"),
        ],
    );
    let s = s3(&c);
    assert_eq!(s.region.as_deref(), Some("eu-central-1"));
    assert_eq!(
        s.access_key_id.as_ref().map(Secret::expose),
        Some("AKIAEXAMPLE")
    );
    assert_eq!(
        s.secret_access_key.as_ref().map(Secret::expose),
        Some("s3cr3t")
    );
    assert_eq!(s.session_token.as_ref().map(Secret::expose), Some("tok"));

    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", "s3://bucket"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
        ],
    );
    assert_eq!(s3(&c).region.as_deref(), Some("eu-west-1"));
}

#[test]
fn custom_ca_and_its_alias() {
    let ca = |extra: &[(&str, &str)]| {
        let mut all = vec![("KOPIA_REPOSITORY", "s3://bucket")];
        all.extend_from_slice(extra);
        let c = ok(&["backup"], &all);
        (s3(&c).ca_bundle.clone(), c.warnings)
    };
    assert_eq!(
        ca(&[(
            "KOPIA_CUSTOM_CA",
            "/etc/ssl/custom-ca-from-secret/ca-bundle.crt"
        )])
        .0,
        Some(PathBuf::from(
            "/etc/ssl/custom-ca-from-secret/ca-bundle.crt"
        ))
    );
    let (path, warnings) = ca(&[
        ("CUSTOM_CA", "/customCA/ca.crt"),
        ("KOPIA_CUSTOM_CA", "/x.crt"),
    ]);
    assert_eq!(path, Some(PathBuf::from("/customCA/ca.crt")));
    assert!(warnings.iter().any(|w| w.contains("KOPIA_CUSTOM_CA")));
}

// ---- repository: selection order and unsupported backends ------------------------------

#[test]
fn other_backends_are_unsupported_with_one_clear_line() {
    let cases = [("GOOGLE_DRIVE_FOLDER_ID", "f", "gdrive")];
    for (var, value, name) in cases {
        let e = err(&["backup"], &[("KOPIA_REPOSITORY", ""), (var, value)]);
        assert_eq!(e, ConfigError::UnsupportedBackend(name.into()), "{var}");
        assert_eq!(e.exit_code(), 1);
        let line = e.to_string();
        assert!(!line.contains('\n'));
        assert!(
            line.starts_with(&format!("unsupported backend {name}:")),
            "{line}"
        );
    }
}

#[test]
fn unsupported_url_schemes() {
    for (url, name) in [("gdrive://folder", "gdrive"), ("ftp://host/x", "ftp")] {
        assert_eq!(
            err(&["backup"], &[("KOPIA_REPOSITORY", url)]),
            ConfigError::UnsupportedBackend(name.into())
        );
    }
    assert_eq!(
        ConfigError::UnsupportedBackend("gcs".into()).to_string(),
        "unsupported backend gcs: arkiv supports S3, filesystem, Azure, GCS, B2, WebDAV, SFTP and rclone repositories"
    );
}

#[test]
fn azure_gcs_webdav_rclone_from_variables_and_urls() {
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", "azure://ignored/team"),
            ("KOPIA_AZURE_CONTAINER", "c"),
            ("KOPIA_AZURE_STORAGE_ACCOUNT", "acct"),
            ("KOPIA_AZURE_STORAGE_KEY", "a2V5"),
        ],
    );
    assert_eq!(c.repository.describe(), "azure://c/team/");
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", "filesystem:///unused"),
            ("WEBDAV_URL", "https://dav.lan/kopia"),
            ("WEBDAV_USERNAME", "u"),
            ("WEBDAV_PASSWORD", "secret-pw"),
        ],
    );
    // The filesystem URL comes first in the script's order.
    assert!(matches!(c.repository, RepositoryTarget::Filesystem { .. }));
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", ""),
            ("WEBDAV_URL", "https://dav.lan/kopia"),
            ("WEBDAV_PASSWORD", "secret-pw"),
        ],
    );
    assert_eq!(c.repository.describe(), "webdav https://dav.lan/kopia");
    assert!(!format!("{:?}", c.repository).contains("secret-pw"));
    let c = ok(
        &["backup"],
        &[("KOPIA_REPOSITORY", "rclone://remote:bucket/path")],
    );
    assert_eq!(c.repository.describe(), "rclone://remote:bucket/path");
    let c = ok(&["backup"], &[("KOPIA_REPOSITORY", "webdavs://nas/dav")]);
    assert_eq!(c.repository.describe(), "webdav https://nas/dav");
    // Azure without an account: one line naming the variable.
    let e = err(
        &["backup"],
        &[("KOPIA_REPOSITORY", ""), ("KOPIA_AZURE_CONTAINER", "c")],
    );
    assert!(e.to_string().contains("AZURE_STORAGE_ACCOUNT"), "{e}");
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn selection_order_follows_the_script() {
    // S3 first, even when another backend's variable is present.
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", "s3://bucket"),
            ("KOPIA_AZURE_CONTAINER", "c"),
        ],
    );
    assert!(matches!(c.repository, RepositoryTarget::S3(_)));
    // Azure and GCS come before the filesystem URL …
    let c = ok(&["backup"], &[("KOPIA_GCS_BUCKET", "b")]);
    assert!(
        matches!(&c.repository, RepositoryTarget::Remote(s) if s.describe() == "gcs://b/"),
        "{:?}",
        c.repository
    );
    // … B2 and the rest come after it.
    let c = ok(&["backup"], &[("KOPIA_B2_BUCKET", "b")]);
    assert!(matches!(c.repository, RepositoryTarget::Filesystem { .. }));
}

#[test]
fn b2_and_sftp_from_variables_and_urls() {
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", ""),
            ("KOPIA_B2_BUCKET", "bkt"),
            ("B2_ACCOUNT_ID", "0041"),
            ("B2_APPLICATION_KEY", "K004-secret"),
        ],
    );
    assert_eq!(c.repository.describe(), "b2://bkt/");
    assert!(!format!("{:?}", c.repository).contains("K004-secret"));
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", "b2://bkt/team"),
            ("B2_ACCOUNT_ID", "0041"),
            ("B2_APPLICATION_KEY", "k"),
        ],
    );
    assert_eq!(c.repository.describe(), "b2://bkt/team/");
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_REPOSITORY", ""),
            ("SFTP_HOST", "nas"),
            ("SFTP_PORT", "2222"),
            ("SFTP_USERNAME", "kopia"),
            ("SFTP_PATH", "/srv/kopia"),
            ("SFTP_PASSWORD", "sftp-secret"),
            ("SFTP_KNOWN_HOSTS", "/credentials/known_hosts"),
        ],
    );
    assert_eq!(c.repository.describe(), "sftp://kopia@nas:2222/srv/kopia");
    assert!(!format!("{:?}", c.repository).contains("sftp-secret"));
    // A missing variable: one line naming it, exit 1.
    let e = err(
        &["backup"],
        &[("KOPIA_REPOSITORY", ""), ("SFTP_HOST", "nas")],
    );
    assert!(e.to_string().contains("SFTP_USERNAME"), "{e}");
    assert_eq!(e.exit_code(), 1);
}

#[test]
fn no_repository_or_junk_url() {
    assert_eq!(
        err(&["backup"], &[("KOPIA_REPOSITORY", "")]),
        ConfigError::NoRepository
    );
    assert_eq!(
        invalid_var(&err(&["backup"], &[("KOPIA_REPOSITORY", "my-repo")])),
        Some("KOPIA_REPOSITORY")
    );
}

// ---- additional args -------------------------------------------------------------------

#[test]
fn additional_args_split_on_literal_separator() {
    let c = ok(
        &["backup"],
        &[(
            "KOPIA_ADDITIONAL_ARGS",
            "--description=Nightly|VOLSYNC_ARG_SEP|--tags=a:b|VOLSYNC_ARG_SEP||VOLSYNC_ARG_SEP|x|y",
        )],
    );
    assert_eq!(
        backup(&c).additional_args,
        ["--description=Nightly", "--tags=a:b", "x|y"]
    );
    assert_eq!(split_additional_args(""), Vec::<String>::new());
    assert_eq!(
        split_additional_args("|VOLSYNC_ARG_SEP|--a|VOLSYNC_ARG_SEP|"),
        ["--a"]
    );
    assert_eq!(split_additional_args("--one arg"), ["--one arg"]);
}

// ---- cache, tuning and defaults --------------------------------------------------------

#[test]
fn defaults() {
    let c = ok(&["backup"], &[("KOPIA_CACHE_DIR", "")]);
    assert_eq!(c.cache.dir, PathBuf::from("/cache"));
    assert_eq!(c.cache.capacity_bytes, 8_589_934_592);
    assert_eq!(c.cache.metadata_limit_mb, None);
    assert_eq!(c.cache.content_limit_mb, None);
    assert!(!c.cache.skip_reconfigure && !c.cache.force_rebuild);
    assert_eq!(c.cache.config_file(), PathBuf::from("/cache/arkiv.config"));
    assert_eq!(c.cache.log_dir(), PathBuf::from("/cache/logs"));
    let b = backup(&c);
    assert_eq!(b.compression, None);
    assert_eq!(b.parallelism, None);
    assert!(b.retention.is_empty());
    assert!(b.additional_args.is_empty());
    let c = ok(&["restore"], &[]);
    let r = restore(&c);
    assert_eq!(r.selection, RestoreSelection::default());
    assert!(!r.enable_file_deletion && !r.discover_snapshots && !r.fail_if_no_snapshot);
    assert!(r.additional_args.is_empty());
    assert_eq!(c.manual_config, ManualConfig::default());
    assert_eq!(
        c.log,
        LogSettings {
            level: "info".into(),
            file_level: "info".into(),
            max_files: 3,
            max_age: Duration::from_secs(4 * 3600),
            content_max_files: 3,
            content_max_age: Duration::from_secs(4 * 3600),
        }
    );
    assert!(!c.debug_mover && !c.privileged_mover);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn cache_limits() {
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_CACHE_DIR", "/var/cache/arkiv"),
            ("KOPIA_CACHE_CAPACITY_BYTES", "2147483648"),
            ("KOPIA_METADATA_CACHE_SIZE_LIMIT_MB", "1433"),
            ("KOPIA_CONTENT_CACHE_SIZE_LIMIT_MB", " 409 "),
            ("KOPIA_SKIP_CACHE_CONFIG", "true"),
            ("KOPIA_FORCE_CACHE_REBUILD", "TRUE"),
        ],
    );
    assert_eq!(c.cache.dir, PathBuf::from("/var/cache/arkiv"));
    assert_eq!(c.cache.capacity_bytes, 2_147_483_648);
    assert_eq!(c.cache.metadata_limit_mb, Some(1433));
    assert_eq!(c.cache.content_limit_mb, Some(409));
    assert!(c.cache.skip_reconfigure && c.cache.force_rebuild);
    // 60 % of 2 GiB = 1288.8 MiB for both tables: the 1433 MiB metadata bound and the
    // 500 MiB index bound are scaled down together.
    let l = c.cache_limits();
    assert_eq!(l.total(), 2_147_483_648 / 100 * 60);
    assert!(
        l.metadata_bytes < 1433 << 20 && l.index_bytes < 500 << 20,
        "{l:?}"
    );
    assert!(l.metadata_bytes > 2 * l.index_bytes, "{l:?}");
    // The 409 MiB content bound is scaled with them.
    assert!(
        l.content_bytes < 409 << 20 && l.content_bytes > l.index_bytes / 2,
        "{l:?}"
    );
}

#[test]
fn cache_limits_small_capacity_manual_max_and_skip() {
    let dir = tempfile::tempdir().unwrap();
    let cache_dir = dir.path().to_str().unwrap();
    let base = [
        ("KOPIA_CACHE_DIR", cache_dir),
        ("KOPIA_METADATA_CACHE_SIZE_LIMIT_MB", "100"),
    ];
    // a large capacity leaves the explicit bounds alone
    let c = ok(&["backup"], &base);
    assert_eq!(c.cache_limits().metadata_bytes, 100 << 20);
    assert_eq!(c.cache_limits().index_bytes, 500 << 20);
    // no content limit: VolSync's auto value, 20 % of the (default 8 GiB) capacity
    assert_eq!(
        c.cache_limits().content_bytes,
        DEFAULT_CACHE_CAPACITY_BYTES / 100 * 20
    );
    let c = ok(
        &["backup"],
        &[
            base[0],
            base[1],
            ("KOPIA_CONTENT_CACHE_SIZE_LIMIT_MB", "64"),
        ],
    );
    assert_eq!(c.cache_limits().content_bytes, 64 << 20);
    // a tiny volume bounds the whole cache
    let c = ok(
        &["backup"],
        &[base[0], base[1], ("KOPIA_CACHE_CAPACITY_BYTES", "2097152")],
    );
    assert!(c.cache_limits().total() <= 2_097_152 * 60 / 100);
    // caching.maxCacheSize is a bound on the whole cache, in bytes
    let c = ok(
        &["backup"],
        &[
            base[0],
            base[1],
            (
                "KOPIA_MANUAL_CONFIG",
                r#"{"caching":{"maxCacheSize":10485760}}"#,
            ),
        ],
    );
    assert_eq!(c.manual_config.max_cache_size, Some(10 << 20));
    assert_eq!(c.cache_limits().total(), 10 << 20);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // KOPIA_SKIP_CACHE_CONFIG=true keeps the limit the last run recorded
    std::fs::write(
        dir.path().join("arkiv.config"),
        r#"{"metadataCacheSizeLimitMB": 7, "contentCacheSizeLimitMB": 3}"#,
    )
    .unwrap();
    let skip = ok(
        &["backup"],
        &[base[0], base[1], ("KOPIA_SKIP_CACHE_CONFIG", "true")],
    );
    assert_eq!(skip.cache_limits().metadata_bytes, 7 << 20);
    assert_eq!(skip.cache_limits().content_bytes, 3 << 20);
    // without the flag the variable wins over the record
    let fresh = ok(&["backup"], &base);
    assert_eq!(fresh.cache_limits().metadata_bytes, 100 << 20);
}

#[test]
fn bad_cache_numbers_are_warnings() {
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_CACHE_CAPACITY_BYTES", "8Gi"),
            ("KOPIA_METADATA_CACHE_SIZE_LIMIT_MB", "lots"),
        ],
    );
    assert_eq!(c.cache.capacity_bytes, DEFAULT_CACHE_CAPACITY_BYTES);
    assert_eq!(c.cache.metadata_limit_mb, None);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
}

#[test]
fn compression_parallelism_and_retention() {
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_COMPRESSION", "zstd-fastest"),
            ("KOPIA_PARALLELISM", "4"),
            ("KOPIA_RETAIN_LATEST", "5"),
            ("KOPIA_RETAIN_HOURLY", "24"),
            ("KOPIA_RETAIN_DAILY", "7"),
            ("KOPIA_RETAIN_WEEKLY", "4"),
            ("KOPIA_RETAIN_MONTHLY", "12"),
            ("KOPIA_RETAIN_YEARLY", "2"),
        ],
    );
    assert_eq!(backup(&c).compression.as_deref(), Some("zstd-fastest"));
    assert_eq!(backup(&c).parallelism, Some(4));
    assert_eq!(
        backup(&c).retention,
        Retention {
            latest: Some(5),
            hourly: Some(24),
            daily: Some(7),
            weekly: Some(4),
            monthly: Some(12),
            annual: Some(2),
        }
    );
}

#[test]
fn bad_parallelism_is_an_error_bad_retention_a_warning() {
    assert_eq!(
        invalid_var(&err(&["backup"], &[("KOPIA_PARALLELISM", "many")])),
        Some("KOPIA_PARALLELISM")
    );
    let c = ok(&["backup"], &[("KOPIA_RETAIN_DAILY", "-1")]);
    assert_eq!(backup(&c).retention.daily, None);
    assert!(c.warnings.iter().any(|w| w.contains("KOPIA_RETAIN_DAILY")));
}

#[test]
fn actions_policy_files_proxies_and_misc() {
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_BEFORE_SNAPSHOT", "sync"),
            ("KOPIA_AFTER_SNAPSHOT", "echo done"),
            ("KOPIA_CONFIG_PATH", "/kopia-config"),
            (
                "KOPIA_GLOBAL_POLICY_FILE",
                "/kopia-config/global-policy.json",
            ),
            (
                "KOPIA_REPOSITORY_CONFIG_FILE",
                "/kopia-config/repository.config",
            ),
            ("http_proxy", "http://lower:3128"),
            ("HTTPS_PROXY", "http://upper:3128"),
            ("https_proxy", "http://lower:3128"),
            ("no_proxy", "10.0.0.0/8"),
            ("DEBUG_MOVER", "1"),
            ("PRIVILEGED_MOVER", "1"),
            ("version", "0.1.0"),
            ("builddate", "2026-07-01"),
            ("KOPIA_LOG_LEVEL", "debug"),
            ("KOPIA_LOG_DIR_MAX_FILES", "5"),
            ("KOPIA_LOG_DIR_MAX_AGE", "1h30m"),
            ("KOPIA_CONTENT_LOG_DIR_MAX_AGE", "forever"),
        ],
    );
    assert_eq!(backup(&c).before_snapshot.as_deref(), Some("sync"));
    assert_eq!(backup(&c).after_snapshot.as_deref(), Some("echo done"));
    assert_eq!(
        c.policy_files.config_dir,
        Some(PathBuf::from("/kopia-config"))
    );
    assert_eq!(
        c.policy_files.global_policy_file,
        Some(PathBuf::from("/kopia-config/global-policy.json"))
    );
    assert_eq!(
        c.proxy.http.as_ref().map(Secret::expose),
        Some("http://lower:3128")
    );
    assert_eq!(
        c.proxy.https.as_ref().map(Secret::expose),
        Some("http://upper:3128")
    );
    assert_eq!(c.proxy.no_proxy.as_deref(), Some("10.0.0.0/8"));
    // the policy files are read by the backup itself (`policy_config`), not warned about here
    assert!(
        !c.warnings
            .iter()
            .any(|w| w.contains("KOPIA_CONFIG_PATH") || w.contains("KOPIA_GLOBAL_POLICY_FILE")),
        "{:?}",
        c.warnings
    );
    assert!(
        !c.warnings.iter().any(|w| w.contains("proxy")),
        "proxies are honoured: {:?}",
        c.warnings
    );
    assert!(
        c.warnings.iter().any(|w| w.starts_with(
            "KOPIA_LOG_DIR_MAX_FILES, KOPIA_LOG_DIR_MAX_AGE, \
             KOPIA_CONTENT_LOG_DIR_MAX_AGE not applied"
        )),
        "{:?}",
        c.warnings
    );
    assert!(c.debug_mover && c.privileged_mover);
    assert_eq!(c.version.as_deref(), Some("0.1.0"));
    assert_eq!(c.build_date.as_deref(), Some("2026-07-01"));
    assert_eq!(c.log.level, "debug");
    assert_eq!(c.log.max_files, 5);
    assert_eq!(c.log.max_age, Duration::from_secs(5400));
    assert_eq!(c.log.content_max_age, Duration::from_secs(4 * 3600));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("KOPIA_CONTENT_LOG_DIR_MAX_AGE"))
    );
}

#[test]
fn debug_mover_only_for_1() {
    assert!(!ok(&["backup"], &[("DEBUG_MOVER", "true")]).debug_mover);
    assert!(ok(&["backup"], &[("DEBUG_MOVER", "1")]).debug_mover);
}

#[test]
fn structured_repository_config_is_warned_about() {
    let c = ok(
        &["backup"],
        &[("KOPIA_STRUCTURED_REPOSITORY_CONFIG", r#"{"storage":{}}"#)],
    );
    assert!(c.policy_files.structured_repository_config.is_some());
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("KOPIA_STRUCTURED_REPOSITORY_CONFIG"))
    );
}

// ---- restore ---------------------------------------------------------------------------

#[test]
fn restore_flags() {
    let c = ok(
        &["restore"],
        &[
            ("KOPIA_ENABLE_FILE_DELETION", "true"),
            ("KOPIA_DISCOVER_SNAPSHOTS", "true"),
            ("ARKIV_FAIL_IF_NO_SNAPSHOT", "true"),
            ("KOPIA_PREVIOUS", "2"),
            ("KOPIA_SHALLOW", "5"),
        ],
    );
    let r = restore(&c);
    assert!(r.enable_file_deletion && r.discover_snapshots && r.fail_if_no_snapshot);
    assert_eq!(r.selection.previous, 2);
    assert_eq!(r.selection.shallow, Some(5));
}

#[test]
fn previous_must_be_a_number() {
    for bad in ["-1", "one", "1.5"] {
        let e = err(&["restore"], &[("KOPIA_PREVIOUS", bad)]);
        assert_eq!(invalid_var(&e), Some("KOPIA_PREVIOUS"), "{bad}");
        assert_eq!(e.exit_code(), 1);
    }
}

#[test]
fn restore_as_of_accepts_any_rfc3339_offset() {
    for (raw, utc) in [
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01T14:00:00+02:00", "2024-05-01T12:00:00+00:00"),
        ("2024-05-01T06:30:00-05:30", "2024-05-01T12:00:00+00:00"),
        (
            "2024-05-01T12:00:00.123456789Z",
            "2024-05-01T12:00:00.123456789+00:00",
        ),
        (" 2024-05-01t12:00:00z ", "2024-05-01T12:00:00+00:00"),
    ] {
        let c = ok(&["restore"], &[("KOPIA_RESTORE_AS_OF", raw)]);
        let t = restore(&c)
            .selection
            .restore_as_of
            .map(|t| t.with_timezone(&Utc));
        assert_eq!(t.map(|t| t.to_rfc3339()).as_deref(), Some(utc), "{raw}");
    }
}

#[test]
fn restore_as_of_junk_is_a_clear_error() {
    for bad in ["yesterday", "2024-05-01", "2024-05-01 12:00", "1714564800"] {
        let e = err(&["restore"], &[("KOPIA_RESTORE_AS_OF", bad)]);
        assert_eq!(e.exit_code(), 1);
        let msg = e.to_string();
        assert!(msg.starts_with("invalid KOPIA_RESTORE_AS_OF="), "{msg}");
        assert!(msg.contains("RFC 3339"), "{msg}");
    }
}

#[test]
fn selection_becomes_the_engine_query_in_utc() {
    // The as-of bound compares instants, not strings: 02:00+02:00 is midnight UTC. Which
    // snapshot that picks is the engine's selector's to test (`snapshot::select`).
    let c = ok(
        &["restore"],
        &[
            ("KOPIA_PREVIOUS", "1"),
            ("KOPIA_RESTORE_AS_OF", "2024-05-02T02:00:00+02:00"),
        ],
    );
    let source = restore(&c).identity.source();
    let q = restore(&c).selection.query(source.clone());
    assert_eq!(q.source, Some(source));
    assert_eq!(q.previous, 1);
    assert_eq!(
        q.as_of.map(|t| t.to_rfc3339()).as_deref(),
        Some("2024-05-02T00:00:00+00:00")
    );
}

// ---- manual config ---------------------------------------------------------------------

#[test]
fn manual_config_mapped_keys() {
    let c = ok(
        &["backup"],
        &[(
            "KOPIA_MANUAL_CONFIG",
            r#"{"encryption":{"algorithm":"CHACHA20-POLY1305-HMAC-SHA256"},
                "splitter":{"algorithm":"DYNAMIC-8M-BUZHASH"},
                "compression":{"algorithm":"zstd","minSize":1000,"maxSize":9},
                "caching":{"maxCacheSize":100},
                "hashing":{"algorithm":"BLAKE3-256"},
                "hash":{"algorithm":"BLAKE3-256"},
                "arkiv":{"failIfNoSnapshot":true,"bogus":1}}"#,
        )],
    );
    assert_eq!(
        c.manual_config,
        ManualConfig {
            encryption: Some("CHACHA20-POLY1305-HMAC-SHA256".into()),
            splitter: Some("DYNAMIC-8M-BUZHASH".into()),
            compression: Some("zstd".into()),
            max_cache_size: Some(100),
            hash: Some("BLAKE3-256".into()),
            fail_if_no_snapshot: Some(true),
        }
    );
    let mut w = c.warnings.clone();
    w.sort();
    assert_eq!(
        w,
        [
            "KOPIA_MANUAL_CONFIG.arkiv.bogus is not a setting of this build; ignored",
            "KOPIA_MANUAL_CONFIG.compression.maxSize is not supported by arkiv; ignored",
            "KOPIA_MANUAL_CONFIG.compression.minSize is not supported by arkiv; ignored",
            "KOPIA_MANUAL_CONFIG.hashing is not used by arkiv; ignored",
        ]
    );
}

#[test]
fn manual_config_invalid_json_is_ignored_with_warning() {
    for bad in ["{not json", "[1,2]", r#"{"encryption":{"algorithm":5}}"#] {
        let c = ok(&["backup"], &[("KOPIA_MANUAL_CONFIG", bad)]);
        assert_eq!(c.manual_config, ManualConfig::default(), "{bad}");
        assert_eq!(c.warnings.len(), 1, "{bad}: {:?}", c.warnings);
    }
}

// ---- redaction -------------------------------------------------------------------------

#[test]
fn secrets_never_appear_in_debug() {
    let c = ok(
        &["backup"],
        &[
            ("KOPIA_PASSWORD", "pw-SENTINEL-1"),
            ("KOPIA_REPOSITORY", "s3://bucket/p"),
            ("AWS_ACCESS_KEY_ID", "AKIA-SENTINEL-2"),
            ("AWS_SECRET_ACCESS_KEY", "secret-SENTINEL-3"),
            ("AWS_SESSION_TOKEN", "token-SENTINEL-4"),
            ("HTTPS_PROXY", "http://user:proxy-SENTINEL-5@proxy:3128"),
            (
                "KOPIA_STRUCTURED_REPOSITORY_CONFIG",
                "{\"k\":\"cfg-SENTINEL-6\"}",
            ),
        ],
    );
    let dbg = format!("{c:?}");
    let pretty = format!("{c:#?}");
    for out in [&dbg, &pretty] {
        assert!(!out.contains("SENTINEL"), "{out}");
        assert!(out.contains("<redacted>"));
    }
    assert_eq!(c.password.expose(), "pw-SENTINEL-1");
    assert!(!c.repository.describe().contains("SENTINEL"));
}

#[test]
fn secrets_are_not_echoed_in_errors() {
    // The only errors carrying a value are for non-secret variables; a bad password cannot be
    // "invalid", only missing.
    let e = err(
        &["backup"],
        &[("KOPIA_PASSWORD", ""), ("AWS_SECRET_ACCESS_KEY", "x")],
    );
    assert_eq!(e, ConfigError::Missing("KOPIA_PASSWORD"));
}

// ---- every variable of the contract's table (issue 16) ----------------------------------

/// How the mover treats one contract variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Treatment {
    /// It changes the configuration the run uses (the effect is tested end to end where
    /// named in mover/README.md).
    Honoured,
    /// A set value is named in a `WARN:` line.
    Warned,
    /// Owned by another change (issue 11 policy files, 13 cache, 15 backends/proxies): read
    /// here, its treatment is that change's to assert.
    Elsewhere,
}

/// Contract §3.1, §3.3, §3.4 (the variables VolSync sets or the script reads, besides the
/// backend keys of §3.2 and `CUSTOM_CA`, which belong to the backends' change), with a value
/// that differs from the default.
const CONTRACT_VARIABLES: &[(&str, &str, &str, Treatment)] = &[
    ("backup", "DATA_DIR", "/elsewhere", Treatment::Honoured),
    (
        "backup",
        "KOPIA_CACHE_DIR",
        "/other-cache",
        Treatment::Honoured,
    ),
    ("backup", "KOPIA_PASSWORD", "other", Treatment::Honoured),
    (
        "backup",
        "KOPIA_REPOSITORY",
        "filesystem:///mnt/b",
        Treatment::Honoured,
    ),
    (
        "backup",
        "KOPIA_MANUAL_CONFIG",
        r#"{"splitter":{"algorithm":"FIXED-1M"}}"#,
        Treatment::Honoured,
    ),
    (
        "backup",
        "KOPIA_OVERRIDE_USERNAME",
        "u2",
        Treatment::Honoured,
    ),
    (
        "backup",
        "KOPIA_OVERRIDE_HOSTNAME",
        "h2",
        Treatment::Honoured,
    ),
    (
        "backup",
        "KOPIA_CACHE_CAPACITY_BYTES",
        "1000",
        Treatment::Honoured,
    ),
    (
        "backup",
        "KOPIA_METADATA_CACHE_SIZE_LIMIT_MB",
        "10",
        Treatment::Elsewhere,
    ),
    (
        "backup",
        "KOPIA_CONTENT_CACHE_SIZE_LIMIT_MB",
        "10",
        Treatment::Elsewhere,
    ),
    (
        "backup",
        "KOPIA_SKIP_CACHE_CONFIG",
        "true",
        Treatment::Elsewhere,
    ),
    (
        "backup",
        "KOPIA_FORCE_CACHE_REBUILD",
        "true",
        Treatment::Elsewhere,
    ),
    ("backup", "PRIVILEGED_MOVER", "1", Treatment::Honoured),
    (
        "backup",
        "HTTP_PROXY",
        "http://p:3128",
        Treatment::Elsewhere,
    ),
    (
        "backup",
        "HTTPS_PROXY",
        "http://p:3128",
        Treatment::Elsewhere,
    ),
    ("backup", "NO_PROXY", "10.0.0.0/8", Treatment::Elsewhere),
    ("backup", "DEBUG_MOVER", "1", Treatment::Honoured),
    (
        "backup",
        "KOPIA_ADDITIONAL_ARGS",
        "--description=x",
        Treatment::Honoured,
    ),
    (
        "backup",
        "KOPIA_CONFIG_PATH",
        "/kopia-config",
        Treatment::Honoured,
    ),
    (
        "backup",
        "KOPIA_GLOBAL_POLICY_FILE",
        "/kopia-config/g.json",
        Treatment::Honoured,
    ),
    (
        "backup",
        "KOPIA_REPOSITORY_CONFIG_FILE",
        "/kopia-config/r.config",
        Treatment::Honoured,
    ),
    (
        "backup",
        "KOPIA_STRUCTURED_REPOSITORY_CONFIG",
        "{}",
        Treatment::Elsewhere,
    ),
    ("backup", "version", "1.2.3", Treatment::Honoured),
    ("backup", "builddate", "2026-01-01", Treatment::Honoured),
    ("backup", "KOPIA_COMPRESSION", "zstd", Treatment::Honoured),
    ("backup", "KOPIA_PARALLELISM", "3", Treatment::Honoured),
    (
        "backup",
        "KOPIA_SOURCE_PATH_OVERRIDE",
        "/srv",
        Treatment::Honoured,
    ),
    (
        "restore",
        "KOPIA_SOURCE_PATH_OVERRIDE",
        "/srv",
        Treatment::Honoured,
    ),
    ("backup", "KOPIA_RETAIN_HOURLY", "1", Treatment::Honoured),
    ("backup", "KOPIA_RETAIN_DAILY", "1", Treatment::Honoured),
    ("backup", "KOPIA_RETAIN_WEEKLY", "1", Treatment::Honoured),
    ("backup", "KOPIA_RETAIN_MONTHLY", "1", Treatment::Honoured),
    ("backup", "KOPIA_RETAIN_YEARLY", "1", Treatment::Honoured),
    ("backup", "KOPIA_RETAIN_LATEST", "1", Treatment::Honoured),
    (
        "backup",
        "KOPIA_BEFORE_SNAPSHOT",
        "true",
        Treatment::Honoured,
    ),
    (
        "backup",
        "KOPIA_AFTER_SNAPSHOT",
        "true",
        Treatment::Honoured,
    ),
    (
        "restore",
        "KOPIA_RESTORE_AS_OF",
        "2026-01-01T00:00:00Z",
        Treatment::Honoured,
    ),
    ("restore", "KOPIA_PREVIOUS", "2", Treatment::Honoured),
    ("restore", "KOPIA_SHALLOW", "2", Treatment::Honoured),
    (
        "restore",
        "KOPIA_ENABLE_FILE_DELETION",
        "true",
        Treatment::Honoured,
    ),
    (
        "restore",
        "KOPIA_DISCOVER_SNAPSHOTS",
        "true",
        Treatment::Honoured,
    ),
    (
        "restore",
        "KOPIA_ADDITIONAL_ARGS",
        "--skip-owners",
        Treatment::Honoured,
    ),
    ("backup", "KOPIA_LOG_LEVEL", "debug", Treatment::Honoured),
    ("backup", "KOPIA_FILE_LOG_LEVEL", "debug", Treatment::Warned),
    ("backup", "KOPIA_LOG_DIR_MAX_FILES", "9", Treatment::Warned),
    ("backup", "KOPIA_LOG_DIR_MAX_AGE", "1h", Treatment::Warned),
    (
        "backup",
        "KOPIA_CONTENT_LOG_DIR_MAX_FILES",
        "9",
        Treatment::Warned,
    ),
    (
        "backup",
        "KOPIA_CONTENT_LOG_DIR_MAX_AGE",
        "1h",
        Treatment::Warned,
    ),
    (
        "maintenance",
        "KOPIA_OVERRIDE_MAINTENANCE_USERNAME",
        "ops",
        Treatment::Honoured,
    ),
    ("restore", "DIRECTION", "source", Treatment::Honoured),
];

/// Every variable of the contract's table is read: set to a non-default value it either
/// changes the configuration (honoured) or is named in a warning (warned) — never read and
/// dropped.
#[test]
fn every_contract_variable_is_honoured_or_warned() {
    let base = |op: &str| {
        if op == "maintenance" {
            ok(&[], &[("DIRECTION", "maintenance")])
        } else {
            ok(&[op], &[])
        }
    };
    for &(op, var, value, treatment) in CONTRACT_VARIABLES {
        let before = base(op);
        let after = if op == "maintenance" {
            ok(&[], &[("DIRECTION", "maintenance"), (var, value)])
        } else {
            ok(&[op], &[(var, value)])
        };
        let warned = after.warnings.iter().any(|w| w.contains(var));
        let mut unwarned = after.clone();
        unwarned.warnings = before.warnings.clone();
        let changed = unwarned != before;
        match treatment {
            Treatment::Honoured => assert!(
                changed && !warned,
                "{op} {var}={value}: expected an effect and no warning ({:?})",
                after.warnings
            ),
            Treatment::Warned => {
                assert!(warned, "{op} {var}={value}: expected a warning naming it")
            }
            Treatment::Elsewhere => {
                assert!(changed || warned, "{op} {var}={value}: read and dropped")
            }
        }
    }
}

#[test]
fn kopia_log_levels_map_onto_arkiv_levels() {
    assert_eq!(engine_log_level("debug"), Some("debug"));
    assert_eq!(engine_log_level("INFO"), Some("info"));
    assert_eq!(engine_log_level("warning"), Some("warn"));
    assert_eq!(engine_log_level("error"), Some("error"));
    assert_eq!(engine_log_level("loud"), None);
    let c = ok(&["backup"], &[("KOPIA_LOG_LEVEL", "loud")]);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("KOPIA_LOG_LEVEL=\"loud\""))
    );
}
