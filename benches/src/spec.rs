//! What a generated tree contains: a list of apps, each shaped like a
//! Kubernetes application's persistent volume.

const MIB: u64 = 1 << 20;

/// The whole tree: one top-level directory per app.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeSpec {
    /// Seed for every random choice; the same spec always gives the same tree.
    pub seed: u64,
    /// The apps, each written under `<root>/<name>/`.
    pub apps: Vec<AppSpec>,
    /// A vendored library bundle copied verbatim into every app with
    /// `shared_bundle` (identical paths and bytes): cross-app duplicates.
    pub bundle_files: u64,
    /// Size of a shared executable (think `ffmpeg`) copied into every app
    /// with `shared_binary`; 0 for none.
    pub shared_binary_size: u64,
}

/// One app's volume.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSpec {
    /// Directory name.
    pub name: String,
    /// Small YAML/JSON/INI/text/XML files in nested `config/` directories.
    pub config_files: u64,
    /// Small incompressible thumbnails/previews under `cache/`.
    pub cache_files: u64,
    /// SQLite-like databases: `(path under the app, size in bytes)`.
    pub databases: Vec<(String, u64)>,
    /// Append-style logs: `(path, size)`.
    pub logs: Vec<(String, u64)>,
    /// Large incompressible files: `(path, size)`.
    pub binaries: Vec<(String, u64)>,
    /// Includes the shared vendored bundle under `lib/vendor/`.
    pub shared_bundle: bool,
    /// Includes the shared executable as `bin/ffmpeg`.
    pub shared_binary: bool,
    /// Empty marker files (`.keep`, `.lock`, …).
    pub empty_files: u64,
    /// Adds relative symlinks (`logs/current.log`, `data/current.db`, `config/latest`).
    pub symlinks: bool,
}

impl TreeSpec {
    /// Several self-hosted apps' PVCs. `scale = 1.0` gives ≈ 1.03 GB in
    /// ≈ 30,556 files (the tree the targets were measured on);
    /// file counts and large-file sizes scale linearly.
    pub fn pvc_like(scale: f64) -> Self {
        let count =
            |n: u64| ((n as f64 * scale).round() as u64).max(u64::from(scale > 0.0 && n > 0));
        // Large files keep their number and shrink in size, rounded to
        // whole 4 KiB pages (at least two).
        let size = |mib: f64| (((mib * MIB as f64 * scale) / 4096.0).round() as u64).max(2) * 4096;
        let files = |list: &[(&str, f64)]| {
            list.iter()
                .map(|&(p, mib)| (p.to_string(), size(mib)))
                .collect::<Vec<_>>()
        };
        let app = |name: &str,
                   config: u64,
                   cache: u64,
                   dbs: &[(&str, f64)],
                   logs: &[(&str, f64)],
                   bins: &[(&str, f64)],
                   bundle: bool,
                   binary: bool,
                   empty: u64| AppSpec {
            name: name.to_string(),
            config_files: count(config),
            cache_files: count(cache),
            databases: files(dbs),
            logs: files(logs),
            binaries: files(bins),
            shared_bundle: bundle,
            shared_binary: binary,
            empty_files: count(empty),
            symlinks: true,
        };
        Self {
            seed: 0x00A2_C1F0,
            apps: vec![
                app(
                    "nextcloud",
                    5_195,
                    500,
                    &[("data/nextcloud.db", 128.0)],
                    &[("logs/nextcloud.log", 16.0), ("logs/audit.log", 6.0)],
                    &[("data/admin/files/Videos/intro.mp4", 32.0)],
                    true,
                    false,
                    8,
                ),
                app(
                    "gitea",
                    3_800,
                    100,
                    &[("data/gitea.db", 32.0)],
                    &[("logs/gitea.log", 8.0)],
                    &[("data/attachments/release-v1.4.0.tar.zst", 16.0)],
                    false,
                    false,
                    6,
                ),
                app(
                    "homeassistant",
                    4_400,
                    80,
                    &[("config-db/home-assistant_v2.db", 96.0)],
                    &[
                        ("logs/home-assistant.log", 12.0),
                        ("logs/home-assistant.log.1", 12.0),
                    ],
                    &[],
                    true,
                    false,
                    5,
                ),
                app(
                    "grafana",
                    2_750,
                    40,
                    &[("data/grafana.db", 24.0)],
                    &[("logs/grafana.log", 6.0)],
                    &[],
                    false,
                    false,
                    4,
                ),
                app(
                    "paperless",
                    2_550,
                    350,
                    &[("data/db.sqlite3", 40.0)],
                    &[("logs/paperless.log", 8.0), ("logs/celery.log", 4.0)],
                    &[("media/documents/originals/scan-0001.pdf", 20.0)],
                    true,
                    true,
                    5,
                ),
                app(
                    "jellyfin",
                    3_150,
                    400,
                    &[("data/library.db", 64.0), ("data/jellyfin.db", 12.0)],
                    &[
                        ("logs/log_20240501.log", 6.0),
                        ("logs/log_20240502.log", 6.0),
                    ],
                    &[
                        ("media/trailers/trailer.mkv", 64.0),
                        ("media/shows/episode-01.mkv", 32.0),
                    ],
                    false,
                    true,
                    5,
                ),
                app(
                    "vaultwarden",
                    850,
                    20,
                    &[("data/db.sqlite3", 8.0)],
                    &[("logs/vaultwarden.log", 4.0)],
                    &[],
                    false,
                    false,
                    3,
                ),
                app(
                    "immich",
                    2_000,
                    300,
                    &[("data/immich.db", 16.0)],
                    &[("logs/server.log", 5.0)],
                    &[("upload/library/admin/2024/IMG_0001.mov", 24.0)],
                    true,
                    true,
                    5,
                ),
            ],
            bundle_files: count(1_000),
            shared_binary_size: size(24.0),
        }
    }
}
