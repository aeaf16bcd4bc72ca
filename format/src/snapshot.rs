//! Snapshot manifests and directory listings (FORMAT.md §11.3, §11.4).
//!
//! Sources: kopia `snapshot/manifest.go`, `snapshot/source.go`, `snapshot/stats.go`,
//! `snapshot/manager.go`, `fs/entry.go`, `fs/utc_timestamp.go`,
//! `snapshot/snapshotfs/dir_manifest_builder.go`, `snapshot/snapshotfs/dir_writer.go`.
//!
//! Field order and `omitempty` follow kopia's Go structs, so [`DirManifest::encode`] and
//! [`SnapshotManifest::encode`] reproduce kopia's bytes. Readers tolerate unknown fields.
//!
//! Facts established from kopia's source and the golden fixtures:
//! * An empty directory is written with `"entries":null` (kopia's builder keeps a nil slice);
//!   the fixture `nested/empty-dir` object of repo-b has exactly the 144-byte length of that
//!   form. [`DirManifest::encode`] writes `null` for an empty entry list, and parsing accepts
//!   both `null` and `[]`.
//! * kopia v0.23.1 always writes `obj` (v0.20.1 omitted it when empty); readers accept both.
//! * Timestamps are kopia `fs.UTCTimestamp` (int64 nanoseconds): `mtime` is omitted when it is
//!   the Unix epoch; `maxTime`, `startTime` and `endTime` are always written.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::gojson;
use crate::ids::{ManifestId, ObjectId};
use crate::{Error, Result};

/// The `stream` value of a directory listing.
pub const DIRECTORY_STREAM: &str = "kopia:directory";

/// The `type` label value of snapshot manifests.
pub const SNAPSHOT_MANIFEST_TYPE: &str = "snapshot";

/// Go `os.ModeSetuid` (bit 23), as stored in `mode`.
pub const GO_MODE_SETUID: u32 = 1 << 23;
/// Go `os.ModeSetgid` (bit 22), as stored in `mode`.
pub const GO_MODE_SETGID: u32 = 1 << 22;
/// Go `os.ModeSticky` (bit 20), as stored in `mode`.
pub const GO_MODE_STICKY: u32 = 1 << 20;

/// Maximum number of failed entries kopia intends to keep in a directory summary.
pub const MAX_FAILED_ENTRIES_PER_DIRECTORY_SUMMARY: usize = 10;

/// Converts POSIX permission bits (`st_mode & 0o7777`) to kopia's stored Go `FileMode` bits.
pub fn go_mode_from_posix(st_mode_perm_bits: u32) -> u32 {
    let mut m = st_mode_perm_bits & 0o777;
    if st_mode_perm_bits & 0o4000 != 0 {
        m |= GO_MODE_SETUID;
    }
    if st_mode_perm_bits & 0o2000 != 0 {
        m |= GO_MODE_SETGID;
    }
    if st_mode_perm_bits & 0o1000 != 0 {
        m |= GO_MODE_STICKY;
    }
    m
}

/// Converts kopia's stored Go `FileMode` bits back to POSIX permission bits (`0o7777` range).
pub fn posix_mode_from_go(go_mode: u32) -> u32 {
    let mut m = go_mode & 0o777;
    if go_mode & GO_MODE_SETUID != 0 {
        m |= 0o4000;
    }
    if go_mode & GO_MODE_SETGID != 0 {
        m |= 0o2000;
    }
    if go_mode & GO_MODE_STICKY != 0 {
        m |= 0o1000;
    }
    m
}

// ---------------------------------------------------------------------------------------------
// SourceInfo

/// The source of a snapshot: `user@host:/path` (`snapshot.SourceInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceInfo {
    /// Host name.
    pub host: String,
    /// User name.
    #[serde(rename = "userName")]
    pub user_name: String,
    /// Path (empty for user- or host-level policy targets).
    pub path: String,
}

impl SourceInfo {
    /// True for the global policy target (all fields empty).
    pub fn is_global(&self) -> bool {
        self.host.is_empty() && self.user_name.is_empty() && self.path.is_empty()
    }
}

impl fmt::Display for SourceInfo {
    /// Like kopia: `(global)`, `user@host`, or `user@host:path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_global() {
            f.write_str("(global)")
        } else if self.path.is_empty() {
            write!(f, "{}@{}", self.user_name, self.host)
        } else {
            write!(f, "{}@{}:{}", self.user_name, self.host, self.path)
        }
    }
}

impl FromStr for SourceInfo {
    type Err = Error;

    /// Parses `(global)`, `USER@HOST:PATH`, `USER@HOST` or `@HOST` like kopia's
    /// `ParseSourceInfo`. Bare local paths (which kopia resolves against the current
    /// directory, host and user) are refused: that needs I/O and context.
    fn from_str(s: &str) -> Result<Self> {
        if s == "(global)" {
            return Ok(SourceInfo::default());
        }
        let at = s.find('@');
        let colon = s.find(':');
        match (at, colon) {
            (Some(p1), Some(p2)) if p1 > 0 && p1 < p2 => Ok(SourceInfo {
                user_name: s.get(..p1).unwrap_or_default().to_owned(),
                host: s.get(p1 + 1..p2).unwrap_or_default().to_owned(),
                path: s.get(p2 + 1..).unwrap_or_default().to_owned(),
            }),
            (Some(p1), None) if p1 + 1 < s.len() => Ok(SourceInfo {
                user_name: s.get(..p1).unwrap_or_default().to_owned(),
                host: s.get(p1 + 1..).unwrap_or_default().to_owned(),
                path: String::new(),
            }),
            (Some(_), None) => Err(Error::invalid(
                "source",
                format!("invalid hostname in {s:?}"),
            )),
            _ => Err(Error::invalid(
                "source",
                format!("{s:?} is not of the form USER@HOST:PATH or USER@HOST"),
            )),
        }
    }
}

/// Labels kopia puts on a snapshot manifest (`sourceInfoToLabels` + tags): `type=snapshot`,
/// `hostname`, `username` and `path` when non-empty, then the user tags (`tag:…`).
pub fn snapshot_labels(
    source: &SourceInfo,
    tags: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(
        crate::manifest::TYPE_LABEL.to_owned(),
        SNAPSHOT_MANIFEST_TYPE.to_owned(),
    );
    m.insert(
        crate::manifest::HOSTNAME_LABEL.to_owned(),
        source.host.clone(),
    );
    if !source.user_name.is_empty() {
        m.insert(
            crate::manifest::USERNAME_LABEL.to_owned(),
            source.user_name.clone(),
        );
    }
    if !source.path.is_empty() {
        m.insert(crate::manifest::PATH_LABEL.to_owned(), source.path.clone());
    }
    for (k, v) in tags {
        m.insert(k.clone(), v.clone());
    }
    m
}

// ---------------------------------------------------------------------------------------------
// DirEntry

/// Type of a directory entry (`"f"`, `"d"`, `"s"`; anything else is kept verbatim).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum EntryType {
    /// `"f"`.
    File,
    /// `"d"`.
    Directory,
    /// `"s"`.
    Symlink,
    /// `""` (kopia's unknown type) or an unrecognised value.
    Unknown(String),
}

impl Default for EntryType {
    fn default() -> Self {
        EntryType::Unknown(String::new())
    }
}

impl EntryType {
    /// The stored string.
    pub fn as_str(&self) -> &str {
        match self {
            EntryType::File => "f",
            EntryType::Directory => "d",
            EntryType::Symlink => "s",
            EntryType::Unknown(s) => s,
        }
    }

    fn is_empty(&self) -> bool {
        self.as_str().is_empty()
    }
}

impl From<&str> for EntryType {
    fn from(s: &str) -> Self {
        match s {
            "f" => EntryType::File,
            "d" => EntryType::Directory,
            "s" => EntryType::Symlink,
            other => EntryType::Unknown(other.to_owned()),
        }
    }
}

impl Serialize for EntryType {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EntryType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Ok(EntryType::from(s.as_ref()))
    }
}

/// One entry of a directory listing (`snapshot.DirEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DirEntry {
    /// Entry name (no path).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `f`, `d`, `s`.
    #[serde(rename = "type", skip_serializing_if = "EntryType::is_empty")]
    pub entry_type: EntryType,
    /// Go `FileMode` permission bits as stored (see [`go_mode_from_posix`]); JSON `"0"+octal`.
    #[serde(with = "mode_octal", skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    /// File size (symlinks: target length).
    #[serde(skip_serializing_if = "is_zero_i64")]
    pub size: i64,
    /// Modification time; omitted when it is the Unix epoch.
    #[serde(
        with = "gojson::time",
        default = "gojson::time::unix_epoch",
        skip_serializing_if = "gojson::time::is_unix_epoch"
    )]
    pub mtime: DateTime<Utc>,
    /// Owner user ID.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub uid: u32,
    /// Owner group ID.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub gid: u32,
    /// File data / symlink target / child listing.
    #[serde(rename = "obj")]
    pub object: ObjectId,
    /// Summary of a directory entry's subtree.
    #[serde(rename = "summ", skip_serializing_if = "Option::is_none")]
    pub summary: Option<DirectorySummary>,
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

/// Parses an integer like Go's `strconv.ParseInt(s, 0, bits)` (base from prefix).
fn parse_go_int_base0(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower.get(1..)?)
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let v = i64::from_str_radix(digits, radix).ok()?;
    Some(if neg { -v } else { v })
}

mod mode_octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(m: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("0{m:o}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        // kopia: strconv.ParseInt(s, 0, 32)
        super::parse_go_int_base0(&s)
            .filter(|v| i32::try_from(*v).is_ok())
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| serde::de::Error::custom(format!("invalid permission string {s:?}")))
    }
}

/// A failed entry recorded in a directory summary (`fs.EntryWithError`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EntryWithError {
    /// Relative path of the entry.
    pub path: String,
    /// Error message.
    pub error: String,
}

/// Summary of a directory subtree (`fs.DirectorySummary`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct DirectorySummary {
    /// Total bytes of files.
    pub size: i64,
    /// Number of files.
    pub files: i64,
    /// Number of symlinks.
    pub symlinks: i64,
    /// Number of directories, including this one.
    pub dirs: i64,
    /// Newest mtime in the subtree (the directory's own mtime when it is empty).
    #[serde(rename = "maxTime", with = "gojson::time")]
    pub max_time: DateTime<Utc>,
    /// Incomplete reason, empty when complete.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub incomplete: String,
    /// Number of fatal errors.
    #[serde(rename = "numFailed")]
    pub num_failed: i64,
    /// Number of ignored errors.
    #[serde(rename = "numIgnoredErrors", skip_serializing_if = "is_zero_i64")]
    pub num_ignored_errors: i64,
    /// Failed entries, sorted by path.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub errors: Vec<EntryWithError>,
}

fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Sorts entries like kopia's directory builder: directories first, then by name bytes.
pub fn sort_entries_like_kopia(entries: &mut [DirEntry]) {
    entries.sort_by(|a, b| {
        let ad = a.entry_type == EntryType::Directory;
        let bd = b.entry_type == EntryType::Directory;
        bd.cmp(&ad)
            .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
    });
}

// ---------------------------------------------------------------------------------------------
// DirManifest

/// A directory listing object (`snapshot.DirManifest`, stream `kopia:directory`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DirManifest {
    /// Entries in kopia order (see [`sort_entries_like_kopia`]).
    pub entries: Vec<DirEntry>,
    /// Subtree summary; kopia always writes one (older listings may lack it).
    pub summary: Option<DirectorySummary>,
}

#[derive(Serialize)]
struct DirManifestOut<'a> {
    stream: &'a str,
    entries: Option<&'a [DirEntry]>,
    summary: &'a Option<DirectorySummary>,
}

#[derive(Deserialize)]
struct DirManifestIn {
    #[serde(default)]
    stream: String,
    #[serde(default)]
    entries: Option<Vec<DirEntry>>,
    #[serde(default)]
    summary: Option<DirectorySummary>,
}

impl DirManifest {
    /// Parses a listing, checking `stream == "kopia:directory"`; unknown fields are ignored.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let wire: DirManifestIn =
            serde_json::from_slice(bytes).map_err(|e| Error::json("directory listing", e))?;
        if wire.stream != DIRECTORY_STREAM {
            return Err(Error::corrupt(
                "directory listing",
                format!("stream is {:?}, expected {DIRECTORY_STREAM:?}", wire.stream),
            ));
        }
        Ok(DirManifest {
            entries: wire.entries.unwrap_or_default(),
            summary: wire.summary,
        })
    }

    /// Exact kopia bytes (`json.Encoder`: compact plus `\n`); an empty entry list is `null`.
    pub fn encode(&self) -> Result<Vec<u8>> {
        gojson::to_go_json_line(&DirManifestOut {
            stream: DIRECTORY_STREAM,
            entries: (!self.entries.is_empty()).then_some(self.entries.as_slice()),
            summary: &self.summary,
        })
    }
}

/// Builds a directory listing and its summary the way kopia's `DirManifestBuilder` does.
///
/// Kopia quirk kept for byte compatibility: the failed-entry list is sorted by path but not
/// truncated to [`MAX_FAILED_ENTRIES_PER_DIRECTORY_SUMMARY`] (v0.23.1 copies the summary
/// before truncating; FORMAT.md §11.4).
#[derive(Debug, Clone, Default)]
pub struct DirManifestBuilder {
    summary: DirectorySummary,
    entries: Vec<DirEntry>,
}

impl DirManifestBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        DirManifestBuilder {
            summary: DirectorySummary {
                max_time: gojson::time::unix_epoch(),
                ..Default::default()
            },
            entries: Vec::new(),
        }
    }

    /// Adds an entry and folds it into the summary.
    pub fn add_entry(&mut self, e: DirEntry) {
        let s = &mut self.summary;
        if e.mtime > s.max_time {
            s.max_time = e.mtime;
        }
        match e.entry_type {
            EntryType::Symlink => s.symlinks += 1,
            EntryType::File => {
                s.files += 1;
                s.size += e.size;
            }
            EntryType::Directory => {
                if let Some(c) = &e.summary {
                    s.files += c.files;
                    s.size += c.size;
                    s.dirs += c.dirs;
                    s.symlinks += c.symlinks;
                    s.num_failed += c.num_failed;
                    s.num_ignored_errors += c.num_ignored_errors;
                    s.errors.extend(c.errors.iter().cloned());
                    if c.max_time > s.max_time {
                        s.max_time = c.max_time;
                    }
                }
            }
            EntryType::Unknown(_) => {}
        }
        self.entries.push(e);
    }

    /// Records a failed entry (ignored or fatal).
    pub fn add_failed_entry(&mut self, rel_path: &str, ignored: bool, error: &str) {
        if ignored {
            self.summary.num_ignored_errors += 1;
        } else {
            self.summary.num_failed += 1;
        }
        self.summary.errors.push(EntryWithError {
            path: rel_path.to_owned(),
            error: error.to_owned(),
        });
    }

    /// Finishes the listing: counts the directory itself, sorts entries and errors.
    pub fn build(mut self, dir_mtime: DateTime<Utc>, incomplete_reason: &str) -> DirManifest {
        let mut s = self.summary;
        s.dirs += 1;
        if self.entries.is_empty() {
            s.max_time = dir_mtime;
        }
        s.incomplete = incomplete_reason.to_owned();
        s.errors
            .sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        sort_entries_like_kopia(&mut self.entries);
        DirManifest {
            entries: self.entries,
            summary: Some(s),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SnapshotManifest

/// Snapshot statistics (`snapshot.Stats`); all fields always written.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotStats {
    /// `totalSize`.
    #[serde(rename = "totalSize")]
    pub total_size: i64,
    /// `excludedTotalSize`.
    #[serde(rename = "excludedTotalSize")]
    pub excluded_total_size: i64,
    /// `fileCount`.
    #[serde(rename = "fileCount")]
    pub file_count: i32,
    /// `cachedFiles`.
    #[serde(rename = "cachedFiles")]
    pub cached_files: i32,
    /// `nonCachedFiles`.
    #[serde(rename = "nonCachedFiles")]
    pub non_cached_files: i32,
    /// `dirCount`.
    #[serde(rename = "dirCount")]
    pub dir_count: i32,
    /// `excludedFileCount`.
    #[serde(rename = "excludedFileCount")]
    pub excluded_file_count: i32,
    /// `excludedDirCount`.
    #[serde(rename = "excludedDirCount")]
    pub excluded_dir_count: i32,
    /// `ignoredErrorCount`.
    #[serde(rename = "ignoredErrorCount")]
    pub ignored_error_count: i32,
    /// `errorCount`.
    #[serde(rename = "errorCount")]
    pub error_count: i32,
}

/// Storage usage numbers (`snapshot.StorageUsageDetails`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageUsageDetails {
    /// `objectBytes`.
    #[serde(rename = "objectBytes")]
    pub object_bytes: i64,
    /// `originalContentBytes`.
    #[serde(rename = "originalContentBytes")]
    pub original_content_bytes: i64,
    /// `packedContentBytes`.
    #[serde(rename = "packedContentBytes")]
    pub packed_content_bytes: i64,
    /// `fileObjects`.
    #[serde(rename = "fileObjects")]
    pub file_objects: i32,
    /// `dirObjects`.
    #[serde(rename = "dirObjects")]
    pub dir_objects: i32,
    /// `contents`.
    pub contents: i32,
}

/// Storage statistics of a snapshot (`snapshot.StorageStats`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageStats {
    /// `newData`.
    #[serde(rename = "newData")]
    pub new_data: StorageUsageDetails,
    /// `runningTotal`.
    #[serde(rename = "runningTotal")]
    pub running_total: StorageUsageDetails,
}

/// A snapshot manifest payload (`snapshot.Manifest`), stored with `json.Marshal`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotManifest {
    /// Always `""` in stored payloads; kopia fills it from the manifest ID after loading.
    pub id: ManifestId,
    /// What was snapshotted.
    pub source: SourceInfo,
    /// Free text.
    pub description: String,
    /// Start time.
    #[serde(rename = "startTime", with = "gojson::time")]
    pub start_time: DateTime<Utc>,
    /// End time.
    #[serde(rename = "endTime", with = "gojson::time")]
    pub end_time: DateTime<Utc>,
    /// Statistics.
    pub stats: SnapshotStats,
    /// `checkpoint`, `canceled`, `limit reached`; empty when complete.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub incomplete: String,
    /// Root entry (`null` when absent).
    #[serde(rename = "rootEntry")]
    pub root_entry: Option<DirEntry>,
    /// User tags (`tag:…` keys).
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub tags: BTreeMap<String, String>,
    /// Storage statistics.
    #[serde(rename = "storageStats", skip_serializing_if = "Option::is_none")]
    pub storage_stats: Option<StorageStats>,
    /// Pins (sorted); pinned snapshots are never expired.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_as_default"
    )]
    pub pins: Vec<String>,
}

impl SnapshotManifest {
    /// Parses a stored payload (unknown fields such as `retentionReason` are ignored).
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::json("snapshot manifest", e))
    }

    /// Exact kopia payload bytes (`json.Marshal`, no trailing newline).
    pub fn encode(&self) -> Result<Vec<u8>> {
        gojson::to_go_json(self)
    }

    /// True when the snapshot is complete.
    pub fn is_complete(&self) -> bool {
        self.incomplete.is_empty()
    }

    /// The root object ID, or the empty ID without a root entry.
    pub fn root_object_id(&self) -> ObjectId {
        self.root_entry
            .as_ref()
            .map(|e| e.object)
            .unwrap_or_default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const V_DIR_JSON: &str = "{\"stream\":\"kopia:directory\",\"entries\":[{\"name\":\"hello.txt\",\"type\":\"f\",\"mode\":\"0644\",\"size\":11,\"mtime\":\"2024-05-06T07:08:09.123456789Z\",\"uid\":1000,\"gid\":1000,\"obj\":\"4535fcbe761df7c62b5da83f8ba84165\"},{\"name\":\"suid-tool\",\"type\":\"f\",\"mode\":\"040000755\",\"mtime\":\"2024-05-06T07:08:09Z\",\"obj\":\"4e51e7a913fc80137da52880fecca175\"}],\"summary\":{\"size\":11,\"files\":2,\"symlinks\":0,\"dirs\":1,\"maxTime\":\"2024-05-06T07:08:09.123456789Z\",\"numFailed\":0}}\n";

    const V_MANIFEST_DATA: &str = r#"{"id":"","source":{"host":"myhost","userName":"alice","path":"/home/alice/data"},"description":"","startTime":"2024-05-06T08:00:00.5Z","endTime":"2024-05-06T08:00:01.25Z","stats":{"totalSize":11,"excludedTotalSize":0,"fileCount":2,"cachedFiles":0,"nonCachedFiles":2,"dirCount":1,"excludedFileCount":0,"excludedDirCount":0,"ignoredErrorCount":0,"errorCount":0},"rootEntry":{"name":"data","type":"d","mode":"0755","mtime":"2024-05-06T07:00:00Z","uid":1000,"gid":1000,"obj":"k32dfecc64e9c4d951dac1feb8be75376","summ":{"size":11,"files":2,"symlinks":0,"dirs":1,"maxTime":"2024-05-06T07:08:09.123456789Z","numFailed":0}}}"#;

    /// A kopia-written expected answer; a missing fixture fails the test (never a skip).
    fn fixture(name: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/kopia/fixtures/expected")
            .join(name);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("fixture {} is missing: {e}", path.display()))
    }

    // TEST-VECTORS.md §V-CONTENT: directory listing JSON, built from typed values.
    #[test]
    fn v_content_dir_listing_exact() {
        let t = |s: &str| gojson::time::parse(s).unwrap();
        let mut b = DirManifestBuilder::new();
        b.add_entry(DirEntry {
            name: "suid-tool".into(),
            entry_type: EntryType::File,
            mode: go_mode_from_posix(0o4755),
            size: 0,
            mtime: t("2024-05-06T07:08:09Z"),
            object: "4e51e7a913fc80137da52880fecca175".parse().unwrap(),
            ..Default::default()
        });
        b.add_entry(DirEntry {
            name: "hello.txt".into(),
            entry_type: EntryType::File,
            mode: 0o644,
            size: 11,
            mtime: t("2024-05-06T07:08:09.123456789Z"),
            uid: 1000,
            gid: 1000,
            object: "4535fcbe761df7c62b5da83f8ba84165".parse().unwrap(),
            summary: None,
        });
        let dm = b.build(t("2024-05-06T07:00:00Z"), "");
        assert_eq!(String::from_utf8(dm.encode().unwrap()).unwrap(), V_DIR_JSON);
        let parsed = DirManifest::parse(V_DIR_JSON.as_bytes()).unwrap();
        assert_eq!(parsed, dm);
        assert_eq!(parsed.entries[1].mode, 0o40000755);
        assert_eq!(posix_mode_from_go(parsed.entries[1].mode), 0o4755);
    }

    // The gzip V-CONTENT listing uses "entries":[]; kopia itself writes null for an empty
    // directory (see module docs). Both parse; encode gives kopia's form.
    #[test]
    fn empty_directory_is_null_entries() {
        let v = "{\"stream\":\"kopia:directory\",\"entries\":[],\"summary\":{\"size\":0,\"files\":0,\"symlinks\":0,\"dirs\":1,\"maxTime\":\"2024-05-06T07:08:09.12Z\",\"numFailed\":0}}\n";
        let dm = DirManifest::parse(v.as_bytes()).unwrap();
        assert!(dm.entries.is_empty());
        let built = DirManifestBuilder::new()
            .build(gojson::time::parse("2024-05-06T07:08:09.12Z").unwrap(), "");
        assert_eq!(built, dm);
        let enc = String::from_utf8(built.encode().unwrap()).unwrap();
        assert_eq!(enc, v.replace("\"entries\":[]", "\"entries\":null"));
        // repo-b nested/empty-dir: content k06042ad… is 144 bytes long.
        let kopia = DirManifestBuilder::new()
            .build(gojson::time::parse("2023-11-19T08:13:20Z").unwrap(), "");
        assert_eq!(kopia.encode().unwrap().len(), 144);
    }

    #[test]
    fn dir_listing_rejects_wrong_stream() {
        assert!(DirManifest::parse(br#"{"stream":"kopia:indirect","entries":[]}"#).is_err());
        assert!(DirManifest::parse(br#"{"entries":[]}"#).is_err());
        assert!(DirManifest::parse(b"\xff").is_err());
        assert!(
            DirManifest::parse(br#"{"stream":"kopia:directory","entries":[{"mode":"zz"}]}"#)
                .is_err()
        );
        assert!(
            DirManifest::parse(br#"{"stream":"kopia:directory","entries":[{"mode":"-1"}]}"#)
                .is_err()
        );
        // unknown fields and missing obj tolerated (v0.20.1 omitted empty obj)
        let dm = DirManifest::parse(
            br#"{"stream":"kopia:directory","x":[1],"entries":[{"name":"a","type":"q","mode":"0x1ff","future":true}],"summary":null}"#,
        )
        .unwrap();
        assert_eq!(dm.entries[0].mode, 0o777);
        assert_eq!(dm.entries[0].entry_type, EntryType::Unknown("q".into()));
        assert!(dm.entries[0].object.is_empty());
    }

    // kopia show of a root directory object prints the stored JSON; it must re-encode exactly.
    #[test]
    fn fixture_root_dirs_roundtrip() {
        for name in [
            "repo-a.snap1.root-dir.json",
            "repo-a.snap2.root-dir.json",
            "repo-b.snap1.root-dir.json",
        ] {
            let text = fixture(name);
            let dm = DirManifest::parse(text.as_bytes()).unwrap();
            let enc = String::from_utf8(dm.encode().unwrap()).unwrap();
            assert_eq!(enc.trim_end(), text.trim_end(), "{name}");
            let mut sorted = dm.entries.clone();
            sort_entries_like_kopia(&mut sorted);
            assert_eq!(sorted, dm.entries, "{name} is in kopia order");
        }
    }

    // TEST-VECTORS.md §V-MANIFEST: the `data` payload round-trips byte-exact.
    #[test]
    fn v_manifest_payload_roundtrip() {
        let m = SnapshotManifest::parse(V_MANIFEST_DATA.as_bytes()).unwrap();
        assert_eq!(m.source.to_string(), "alice@myhost:/home/alice/data");
        assert_eq!(
            m.root_object_id().to_string(),
            "k32dfecc64e9c4d951dac1feb8be75376"
        );
        assert_eq!(
            String::from_utf8(m.encode().unwrap()).unwrap(),
            V_MANIFEST_DATA
        );
    }

    #[test]
    fn fixture_snapshot_lists_parse() {
        for name in ["repo-a.snapshot-list.json", "repo-b.snapshot-list.json"] {
            let text = fixture(name);
            let list: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
            assert!(!list.is_empty());
            for v in list {
                let raw = serde_json::to_vec(&v).unwrap();
                let m = SnapshotManifest::parse(&raw).unwrap();
                assert_eq!(m.source.to_string(), "fixture@fixture-host:/data");
                assert!(m.is_complete());
                assert!(m.stats.dir_count == 8);
                let root = m.root_entry.as_ref().unwrap();
                assert_eq!(root.entry_type, EntryType::Directory);
                assert_eq!(root.summary.as_ref().unwrap().dirs, 8);
                assert!(m.end_time > m.start_time);
                // re-encoding gives kopia's key order, minus the listing-only retentionReason
                let enc = String::from_utf8(m.encode().unwrap()).unwrap();
                let line = text
                    .lines()
                    .find(|l| l.contains(m.id.as_str()))
                    .unwrap()
                    .trim()
                    .trim_end_matches(',');
                let without_reason = line
                    .split_once(",\"retentionReason\"")
                    .map(|(a, _)| format!("{a}}}"))
                    .unwrap();
                assert_eq!(enc, without_reason);
            }
        }
    }

    #[test]
    fn source_info_display_parse() {
        let s: SourceInfo = "fixture@fixture-host:/data".parse().unwrap();
        assert_eq!(s.user_name, "fixture");
        assert_eq!(s.host, "fixture-host");
        assert_eq!(s.path, "/data");
        assert_eq!(s.to_string(), "fixture@fixture-host:/data");
        let s: SourceInfo = "u@h:C:\\x".parse().unwrap();
        assert_eq!(s.path, "C:\\x");
        let s: SourceInfo = "u@h".parse().unwrap();
        assert_eq!(s.to_string(), "u@h");
        let s: SourceInfo = "@h".parse().unwrap();
        assert_eq!((s.user_name.as_str(), s.host.as_str()), ("", "h"));
        let g: SourceInfo = "(global)".parse().unwrap();
        assert!(g.is_global());
        assert_eq!(g.to_string(), "(global)");
        for bad in ["u@", "/just/a/path", "@h:/p", "u:x@h"] {
            assert!(bad.parse::<SourceInfo>().is_err(), "{bad}");
        }
        assert_eq!(
            gojson::to_go_json(&s).unwrap(),
            br#"{"host":"h","userName":"","path":""}"#
        );
        let labels = snapshot_labels(
            &"fixture@fixture-host:/data".parse().unwrap(),
            &BTreeMap::from([("tag:fixture".to_string(), "golden".to_string())]),
        );
        assert_eq!(
            labels
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(" "),
            "hostname:fixture-host path:/data tag:fixture:golden type:snapshot username:fixture"
        );
    }

    #[test]
    fn modes() {
        assert_eq!(go_mode_from_posix(0o4755), 0o40000755);
        assert_eq!(go_mode_from_posix(0o2755), 0o20000755);
        assert_eq!(go_mode_from_posix(0o1777), 0o4000777);
        for m in 0..0o10000u32 {
            assert_eq!(posix_mode_from_go(go_mode_from_posix(m)), m);
        }
        assert_eq!(parse_go_int_base0("0644"), Some(0o644));
        assert_eq!(parse_go_int_base0("420"), Some(420));
        assert_eq!(parse_go_int_base0("0"), Some(0));
        assert_eq!(parse_go_int_base0("0b11"), Some(3));
        assert_eq!(parse_go_int_base0("09"), None);
        assert_eq!(parse_go_int_base0(""), None);
    }

    #[test]
    fn builder_aggregates_like_kopia() {
        let t = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        let mut child = DirManifestBuilder::new();
        child.add_failed_entry("sub/b", false, "boom");
        child.add_failed_entry("sub/a", true, "ignored");
        let child = child.build(t(50), "");
        let cs = child.summary.clone().unwrap();
        assert_eq!((cs.dirs, cs.num_failed, cs.num_ignored_errors), (1, 1, 1));
        assert_eq!(cs.max_time, t(50));
        let mut b = DirManifestBuilder::new();
        b.add_entry(DirEntry {
            name: "z".into(),
            entry_type: EntryType::Symlink,
            mtime: t(10),
            ..Default::default()
        });
        b.add_entry(DirEntry {
            name: "sub".into(),
            entry_type: EntryType::Directory,
            mtime: t(5),
            summary: Some(cs),
            ..Default::default()
        });
        b.add_entry(DirEntry {
            name: "a".into(),
            entry_type: EntryType::File,
            size: 7,
            mtime: t(20),
            ..Default::default()
        });
        let dm = b.build(t(1), "checkpoint");
        let s = dm.summary.as_ref().unwrap();
        assert_eq!((s.size, s.files, s.symlinks, s.dirs), (7, 1, 1, 2));
        assert_eq!(s.max_time, t(50));
        assert_eq!(s.errors[0].path, "sub/a");
        assert_eq!(
            dm.entries
                .iter()
                .map(|e| e.name.as_str())
                .collect::<Vec<_>>(),
            ["sub", "a", "z"]
        );
        let enc = String::from_utf8(dm.encode().unwrap()).unwrap();
        assert!(enc.contains(r#""incomplete":"checkpoint","numFailed":1,"numIgnoredErrors":1,"errors":[{"path":"sub/a","error":"ignored"},{"path":"sub/b","error":"boom"}]"#), "{enc}");
    }

    fn arb_entry() -> impl Strategy<Value = DirEntry> {
        (
            ".*",
            prop_oneof![Just("f"), Just("d"), Just("s"), Just(""), Just("x")],
            0u32..0o100000000,
            any::<i64>(),
            -62_135_596_800i64..253_402_300_799,
            0u32..1_000_000_000,
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(name, ty, mode, size, secs, ns, uid, gid)| DirEntry {
                name,
                entry_type: EntryType::from(ty),
                mode,
                size,
                mtime: DateTime::from_timestamp(secs, ns).unwrap(),
                uid,
                gid,
                object: "k0123456789abcdef0123456789abcdef".parse().unwrap(),
                summary: None,
            })
    }

    proptest! {
        #[test]
        fn dir_manifest_roundtrip(entries in proptest::collection::vec(arb_entry(), 0..8)) {
            let dm = DirManifest { entries, summary: Some(DirectorySummary::default()) };
            let enc = dm.encode().unwrap();
            let back = DirManifest::parse(&enc).unwrap();
            prop_assert_eq!(&back, &dm);
            prop_assert_eq!(back.encode().unwrap(), enc);
        }
    }
}
