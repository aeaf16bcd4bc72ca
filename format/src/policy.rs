//! Policy manifests (FORMAT.md §11.5).
//!
//! Sources: kopia `snapshot/policy/policy.go` (top-level keys), `retention_policy.go`,
//! `compression_policy.go`, `splitter_policy.go`, `policy_tree.go` (`DefaultPolicy`),
//! `policy_merge.go` (`MergePolicies`), `policy_manager.go` (`LabelsForSource`, `SetPolicy`).
//!
//! [`Policy`] round-trips kopia's policy JSON without losing anything: the sections arkiv
//! interprets (`retention`, `compression`, `metadataCompression`, `splitter`) are typed and
//! keep unknown keys of their own in `extra`; every other section is kept as raw JSON; unknown
//! top-level keys are kept in the `extra` field of [`Policy`]. Output key order is kopia's declaration order
//! (`retention, files, errorHandling, scheduling, compression, metadataCompression, splitter,
//! actions, osSnapshots, logging, upload, noParent`), followed by unknown keys. Key matching
//! is exact (Go's decoder would also accept other letter cases).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::gojson;
use crate::manifest::{
    HOSTNAME_LABEL, PATH_LABEL, POLICY_TYPE_LABEL, TYPE_LABEL, TYPE_POLICY, USERNAME_LABEL,
};
use crate::snapshot::SourceInfo;
use crate::{Error, Result};

/// A raw JSON value kept verbatim.
pub type RawJson = Box<RawValue>;

/// `policyType` of the global policy.
pub const POLICY_TYPE_GLOBAL: &str = "global";
/// `policyType` of a host policy.
pub const POLICY_TYPE_HOST: &str = "host";
/// `policyType` of a user@host policy.
pub const POLICY_TYPE_USER: &str = "user";
/// `policyType` of a path policy.
pub const POLICY_TYPE_PATH: &str = "path";

/// kopia's built-in retention defaults (`snapshot/policy/retention_policy.go`).
pub const DEFAULT_KEEP_LATEST: i64 = 10;
/// Default `keepHourly`.
pub const DEFAULT_KEEP_HOURLY: i64 = 48;
/// Default `keepDaily`.
pub const DEFAULT_KEEP_DAILY: i64 = 7;
/// Default `keepWeekly`.
pub const DEFAULT_KEEP_WEEKLY: i64 = 4;
/// Default `keepMonthly`.
pub const DEFAULT_KEEP_MONTHLY: i64 = 24;
/// Default `keepAnnual`.
pub const DEFAULT_KEEP_ANNUAL: i64 = 3;
/// Default file-data compressor (`policy_tree.go`: `defaultCompressionPolicy`).
pub const DEFAULT_COMPRESSOR: &str = "none";
/// Default metadata compressor (`policy_tree.go`: `defaultMetadataCompressionPolicy`).
pub const DEFAULT_METADATA_COMPRESSOR: &str = "zstd-fastest";

fn raw(s: &str) -> RawJson {
    RawValue::from_string(s.to_owned()).unwrap_or_else(|_| empty_object())
}

fn empty_object() -> RawJson {
    // "{}" is valid JSON; the fallback is never taken.
    RawValue::from_string("{}".to_owned()).unwrap_or_else(|_| Box::<RawValue>::default())
}

fn to_raw<T: Serialize + ?Sized>(v: &T) -> Result<RawJson> {
    let bytes = gojson::to_go_json(v)?;
    let s = String::from_utf8(bytes).map_err(|e| Error::invalid("policy", e.to_string()))?;
    RawValue::from_string(s).map_err(|e| Error::json("policy", e))
}

fn from_raw<T: for<'de> Deserialize<'de> + Default>(key: &str, v: &RawValue) -> Result<T> {
    if v.get() == "null" {
        return Ok(T::default());
    }
    serde_json::from_str(v.get()).map_err(|e| Error::invalid("policy", format!("{key}: {e}")))
}

/// A JSON object as an ordered list of raw members.
struct RawObject(Vec<(String, RawJson)>);

impl<'de> Deserialize<'de> for RawObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_unit<E>(self) -> std::result::Result<RawObject, E> {
                Ok(RawObject(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<RawObject, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v: RawJson = map.next_value()?;
                    out.push((k, v));
                }
                Ok(RawObject(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn serialize_members<S: Serializer>(
    s: S,
    members: &[(String, RawJson)],
) -> std::result::Result<S::Ok, S::Error> {
    let mut m = s.serialize_map(Some(members.len()))?;
    for (k, v) in members {
        m.serialize_entry(k, v)?;
    }
    m.end()
}

/// Typed policy sections: known fields plus unknown members kept verbatim.
trait Section: Sized + Default {
    fn known_members(&self) -> Result<Vec<(String, RawJson)>>;
    fn set_member(&mut self, key: &str, v: &RawValue) -> Result<bool>;
    fn extra(&self) -> &[(String, RawJson)];
    fn extra_mut(&mut self) -> &mut Vec<(String, RawJson)>;

    fn members(&self) -> Result<Vec<(String, RawJson)>> {
        let mut m = self.known_members()?;
        m.extend(self.extra().iter().cloned());
        Ok(m)
    }

    fn from_members(members: Vec<(String, RawJson)>) -> Result<Self> {
        let mut s = Self::default();
        for (k, v) in members {
            if !s.set_member(&k, &v)? {
                s.extra_mut().push((k, v));
            }
        }
        Ok(s)
    }
}

macro_rules! section_serde {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                let members = self.members().map_err(serde::ser::Error::custom)?;
                serialize_members(s, &members)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let obj = RawObject::deserialize(d)?;
                <$t>::from_members(obj.0).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn push_opt<T: Serialize>(
    out: &mut Vec<(String, RawJson)>,
    key: &str,
    v: &Option<T>,
) -> Result<()> {
    if let Some(v) = v {
        out.push((key.to_owned(), to_raw(v)?));
    }
    Ok(())
}

fn push_if<T: Serialize>(
    out: &mut Vec<(String, RawJson)>,
    key: &str,
    v: &T,
    present: bool,
) -> Result<()> {
    if present {
        out.push((key.to_owned(), to_raw(v)?));
    }
    Ok(())
}

/// Retention settings (`policy.RetentionPolicy`); `None` = inherit.
#[derive(Debug, Clone, Default)]
pub struct RetentionPolicy {
    /// `keepLatest`.
    pub keep_latest: Option<i64>,
    /// `keepHourly`.
    pub keep_hourly: Option<i64>,
    /// `keepDaily`.
    pub keep_daily: Option<i64>,
    /// `keepWeekly`.
    pub keep_weekly: Option<i64>,
    /// `keepMonthly`.
    pub keep_monthly: Option<i64>,
    /// `keepAnnual`.
    pub keep_annual: Option<i64>,
    /// `ignoreIdenticalSnapshots`.
    pub ignore_identical_snapshots: Option<bool>,
    /// Unknown members, kept verbatim.
    pub extra: Vec<(String, RawJson)>,
}

impl PartialEq for RetentionPolicy {
    fn eq(&self, o: &Self) -> bool {
        self.keep_latest == o.keep_latest
            && self.keep_hourly == o.keep_hourly
            && self.keep_daily == o.keep_daily
            && self.keep_weekly == o.keep_weekly
            && self.keep_monthly == o.keep_monthly
            && self.keep_annual == o.keep_annual
            && self.ignore_identical_snapshots == o.ignore_identical_snapshots
            && raw_eq(&self.extra, &o.extra)
    }
}

fn raw_eq(a: &[(String, RawJson)], b: &[(String, RawJson)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && va.get() == vb.get())
}

impl RetentionPolicy {
    /// kopia's built-in defaults (`defaultRetentionPolicy`), all fields set.
    pub fn kopia_default() -> Self {
        RetentionPolicy {
            keep_latest: Some(DEFAULT_KEEP_LATEST),
            keep_hourly: Some(DEFAULT_KEEP_HOURLY),
            keep_daily: Some(DEFAULT_KEEP_DAILY),
            keep_weekly: Some(DEFAULT_KEEP_WEEKLY),
            keep_monthly: Some(DEFAULT_KEEP_MONTHLY),
            keep_annual: Some(DEFAULT_KEEP_ANNUAL),
            ignore_identical_snapshots: Some(false),
            extra: Vec::new(),
        }
    }

    /// Fills every unset field from `src` (kopia `RetentionPolicy.Merge`).
    pub fn merge_from(&mut self, src: &RetentionPolicy) {
        fn m<T: Copy>(t: &mut Option<T>, s: Option<T>) {
            if t.is_none() {
                *t = s;
            }
        }
        m(&mut self.keep_latest, src.keep_latest);
        m(&mut self.keep_hourly, src.keep_hourly);
        m(&mut self.keep_daily, src.keep_daily);
        m(&mut self.keep_weekly, src.keep_weekly);
        m(&mut self.keep_monthly, src.keep_monthly);
        m(&mut self.keep_annual, src.keep_annual);
        m(
            &mut self.ignore_identical_snapshots,
            src.ignore_identical_snapshots,
        );
    }
}

impl Section for RetentionPolicy {
    fn known_members(&self) -> Result<Vec<(String, RawJson)>> {
        let mut o = Vec::new();
        push_opt(&mut o, "keepLatest", &self.keep_latest)?;
        push_opt(&mut o, "keepHourly", &self.keep_hourly)?;
        push_opt(&mut o, "keepDaily", &self.keep_daily)?;
        push_opt(&mut o, "keepWeekly", &self.keep_weekly)?;
        push_opt(&mut o, "keepMonthly", &self.keep_monthly)?;
        push_opt(&mut o, "keepAnnual", &self.keep_annual)?;
        push_opt(
            &mut o,
            "ignoreIdenticalSnapshots",
            &self.ignore_identical_snapshots,
        )?;
        Ok(o)
    }

    fn set_member(&mut self, key: &str, v: &RawValue) -> Result<bool> {
        match key {
            "keepLatest" => self.keep_latest = from_raw(key, v)?,
            "keepHourly" => self.keep_hourly = from_raw(key, v)?,
            "keepDaily" => self.keep_daily = from_raw(key, v)?,
            "keepWeekly" => self.keep_weekly = from_raw(key, v)?,
            "keepMonthly" => self.keep_monthly = from_raw(key, v)?,
            "keepAnnual" => self.keep_annual = from_raw(key, v)?,
            "ignoreIdenticalSnapshots" => self.ignore_identical_snapshots = from_raw(key, v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn extra(&self) -> &[(String, RawJson)] {
        &self.extra
    }

    fn extra_mut(&mut self) -> &mut Vec<(String, RawJson)> {
        &mut self.extra
    }
}
section_serde!(RetentionPolicy);

/// File-data compression settings (`policy.CompressionPolicy`).
#[derive(Debug, Clone, Default)]
pub struct CompressionPolicy {
    /// `compressorName` (`""` = inherit, `none` = off).
    pub compressor_name: String,
    /// `onlyCompress` extensions.
    pub only_compress: Vec<String>,
    /// `noParentOnlyCompress`.
    pub no_parent_only_compress: bool,
    /// `neverCompress` extensions.
    pub never_compress: Vec<String>,
    /// `noParentNeverCompress`.
    pub no_parent_never_compress: bool,
    /// `minSize` (0 = inherit).
    pub min_size: i64,
    /// `maxSize` (0 = inherit).
    pub max_size: i64,
    /// Unknown members, kept verbatim.
    pub extra: Vec<(String, RawJson)>,
}

impl Section for CompressionPolicy {
    fn known_members(&self) -> Result<Vec<(String, RawJson)>> {
        let mut o = Vec::new();
        push_if(
            &mut o,
            "compressorName",
            &self.compressor_name,
            !self.compressor_name.is_empty(),
        )?;
        push_if(
            &mut o,
            "onlyCompress",
            &self.only_compress,
            !self.only_compress.is_empty(),
        )?;
        push_if(
            &mut o,
            "noParentOnlyCompress",
            &true,
            self.no_parent_only_compress,
        )?;
        push_if(
            &mut o,
            "neverCompress",
            &self.never_compress,
            !self.never_compress.is_empty(),
        )?;
        push_if(
            &mut o,
            "noParentNeverCompress",
            &true,
            self.no_parent_never_compress,
        )?;
        push_if(&mut o, "minSize", &self.min_size, self.min_size != 0)?;
        push_if(&mut o, "maxSize", &self.max_size, self.max_size != 0)?;
        Ok(o)
    }

    fn set_member(&mut self, key: &str, v: &RawValue) -> Result<bool> {
        match key {
            "compressorName" => self.compressor_name = from_raw(key, v)?,
            "onlyCompress" => self.only_compress = from_raw(key, v)?,
            "noParentOnlyCompress" => self.no_parent_only_compress = from_raw(key, v)?,
            "neverCompress" => self.never_compress = from_raw(key, v)?,
            "noParentNeverCompress" => self.no_parent_never_compress = from_raw(key, v)?,
            "minSize" => self.min_size = from_raw(key, v)?,
            "maxSize" => self.max_size = from_raw(key, v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn extra(&self) -> &[(String, RawJson)] {
        &self.extra
    }

    fn extra_mut(&mut self) -> &mut Vec<(String, RawJson)> {
        &mut self.extra
    }
}
section_serde!(CompressionPolicy);

fn merge_strings(
    target: &mut Vec<String>,
    target_no_parent: &mut bool,
    src: &[String],
    src_no_parent: bool,
) {
    // kopia mergeStrings: union, sorted, unless a more specific policy said noParent.
    if *target_no_parent {
        return;
    }
    let mut set: std::collections::BTreeSet<String> = target.drain(..).collect();
    set.extend(src.iter().cloned());
    *target = set.into_iter().collect();
    if src_no_parent {
        *target_no_parent = true;
    }
}

impl CompressionPolicy {
    /// kopia `CompressionPolicy.Merge`: fill unset fields from a less specific policy.
    pub fn merge_from(&mut self, src: &CompressionPolicy) {
        if self.compressor_name.is_empty() {
            self.compressor_name.clone_from(&src.compressor_name);
        }
        if self.min_size == 0 {
            self.min_size = src.min_size;
        }
        if self.max_size == 0 {
            self.max_size = src.max_size;
        }
        merge_strings(
            &mut self.only_compress,
            &mut self.no_parent_only_compress,
            &src.only_compress,
            src.no_parent_only_compress,
        );
        merge_strings(
            &mut self.never_compress,
            &mut self.no_parent_never_compress,
            &src.never_compress,
            src.no_parent_never_compress,
        );
    }

    /// kopia's `CompressionPolicy.CompressorForFile`: the compressor name for a file of this
    /// name and size (`""`: store uncompressed). Quirks kept: `onlyCompress` does not exclude
    /// other extensions (a name in it only skips the `neverCompress` check), and both lists
    /// are searched as sorted lists (Go `sort.SearchStrings`), as `policy set` stores them.
    pub fn compressor_for_file(&self, name: &str, size: i64) -> &str {
        if self.compressor_name == crate::compression::NONE_NAME {
            return "";
        }
        if self.min_size > 0 && size < self.min_size {
            return "";
        }
        if self.max_size > 0 && size > self.max_size {
            return "";
        }
        let ext = go_ext(name);
        if !self.only_compress.is_empty() && in_sorted(ext, &self.only_compress) {
            return &self.compressor_name;
        }
        if in_sorted(ext, &self.never_compress) {
            return "";
        }
        &self.compressor_name
    }

    /// The compressor to use for file data, `None` for `none`/unset.
    pub fn algorithm(&self) -> Result<Option<crate::compression::CompressionAlgorithm>> {
        crate::compression::parse_policy_name(&self.compressor_name)
    }
}

/// Go's `filepath.Ext`: the suffix from the last `.` of the name, `""` without one.
fn go_ext(name: &str) -> &str {
    name.rfind('.').and_then(|i| name.get(i..)).unwrap_or("")
}

/// Go's `sort.SearchStrings` membership test on a list assumed sorted.
fn in_sorted(x: &str, list: &[String]) -> bool {
    let i = list.partition_point(|v| v.as_str() < x);
    list.get(i).is_some_and(|v| v == x)
}

/// Metadata compression settings (`policy.MetadataCompressionPolicy`).
#[derive(Debug, Clone, Default)]
pub struct MetadataCompressionPolicy {
    /// `compressorName`.
    pub compressor_name: String,
    /// Unknown members, kept verbatim.
    pub extra: Vec<(String, RawJson)>,
}

impl Section for MetadataCompressionPolicy {
    fn known_members(&self) -> Result<Vec<(String, RawJson)>> {
        let mut o = Vec::new();
        push_if(
            &mut o,
            "compressorName",
            &self.compressor_name,
            !self.compressor_name.is_empty(),
        )?;
        Ok(o)
    }

    fn set_member(&mut self, key: &str, v: &RawValue) -> Result<bool> {
        if key == "compressorName" {
            self.compressor_name = from_raw(key, v)?;
            return Ok(true);
        }
        Ok(false)
    }

    fn extra(&self) -> &[(String, RawJson)] {
        &self.extra
    }

    fn extra_mut(&mut self) -> &mut Vec<(String, RawJson)> {
        &mut self.extra
    }
}
section_serde!(MetadataCompressionPolicy);

impl MetadataCompressionPolicy {
    /// The compressor for directory listings and chunk lists, `None` for `none`/unset.
    pub fn algorithm(&self) -> Result<Option<crate::compression::CompressionAlgorithm>> {
        crate::compression::parse_policy_name(&self.compressor_name)
    }
}

/// Splitter override (`policy.SplitterPolicy`).
#[derive(Debug, Clone, Default)]
pub struct SplitterPolicy {
    /// `algorithm` (`""` = repository default).
    pub algorithm: String,
    /// Unknown members, kept verbatim.
    pub extra: Vec<(String, RawJson)>,
}

impl Section for SplitterPolicy {
    fn known_members(&self) -> Result<Vec<(String, RawJson)>> {
        let mut o = Vec::new();
        push_if(
            &mut o,
            "algorithm",
            &self.algorithm,
            !self.algorithm.is_empty(),
        )?;
        Ok(o)
    }

    fn set_member(&mut self, key: &str, v: &RawValue) -> Result<bool> {
        if key == "algorithm" {
            self.algorithm = from_raw(key, v)?;
            return Ok(true);
        }
        Ok(false)
    }

    fn extra(&self) -> &[(String, RawJson)] {
        &self.extra
    }

    fn extra_mut(&mut self) -> &mut Vec<(String, RawJson)> {
        &mut self.extra
    }
}
section_serde!(SplitterPolicy);

/// A policy manifest payload (`policy.Policy`).
#[derive(Debug, Clone)]
pub struct Policy {
    /// `retention`.
    pub retention: RetentionPolicy,
    /// `files` (raw).
    pub files: RawJson,
    /// `errorHandling` (raw).
    pub error_handling: RawJson,
    /// `scheduling` (raw).
    pub scheduling: RawJson,
    /// `compression`.
    pub compression: CompressionPolicy,
    /// `metadataCompression`.
    pub metadata_compression: MetadataCompressionPolicy,
    /// `splitter`.
    pub splitter: SplitterPolicy,
    /// `actions` (raw).
    pub actions: RawJson,
    /// `osSnapshots` (raw).
    pub os_snapshots: RawJson,
    /// `logging` (raw).
    pub logging: RawJson,
    /// `upload` (raw).
    pub upload: RawJson,
    /// `noParent`: stop inheriting from less specific policies.
    pub no_parent: bool,
    /// Unknown top-level members, kept verbatim (written after the known ones).
    pub extra: Vec<(String, RawJson)>,
}

impl Default for Policy {
    /// The empty policy (everything inherited): kopia writes it as eleven `{}` sections.
    fn default() -> Self {
        Policy {
            retention: RetentionPolicy::default(),
            files: empty_object(),
            error_handling: empty_object(),
            scheduling: empty_object(),
            compression: CompressionPolicy::default(),
            metadata_compression: MetadataCompressionPolicy::default(),
            splitter: SplitterPolicy::default(),
            actions: empty_object(),
            os_snapshots: empty_object(),
            logging: empty_object(),
            upload: empty_object(),
            no_parent: false,
            extra: Vec::new(),
        }
    }
}

fn raw_section(key: &str, v: RawJson) -> Result<RawJson> {
    // Go decodes `null` into the zero struct, which it then writes as `{}`.
    match v.get() {
        "null" => Ok(empty_object()),
        s if s.starts_with('{') => Ok(v),
        _ => Err(Error::invalid("policy", format!("{key} is not an object"))),
    }
}

impl Section for Policy {
    fn known_members(&self) -> Result<Vec<(String, RawJson)>> {
        let mut o = vec![
            ("retention".to_owned(), to_raw(&self.retention)?),
            ("files".to_owned(), self.files.clone()),
            ("errorHandling".to_owned(), self.error_handling.clone()),
            ("scheduling".to_owned(), self.scheduling.clone()),
            ("compression".to_owned(), to_raw(&self.compression)?),
            (
                "metadataCompression".to_owned(),
                to_raw(&self.metadata_compression)?,
            ),
            ("splitter".to_owned(), to_raw(&self.splitter)?),
            ("actions".to_owned(), self.actions.clone()),
            ("osSnapshots".to_owned(), self.os_snapshots.clone()),
            ("logging".to_owned(), self.logging.clone()),
            ("upload".to_owned(), self.upload.clone()),
        ];
        push_if(&mut o, "noParent", &true, self.no_parent)?;
        Ok(o)
    }

    fn set_member(&mut self, key: &str, v: &RawValue) -> Result<bool> {
        let owned = || raw_section(key, v.to_owned());
        match key {
            "retention" => self.retention = from_raw(key, v)?,
            "files" => self.files = owned()?,
            "errorHandling" => self.error_handling = owned()?,
            "scheduling" => self.scheduling = owned()?,
            "compression" => self.compression = from_raw(key, v)?,
            "metadataCompression" => self.metadata_compression = from_raw(key, v)?,
            "splitter" => self.splitter = from_raw(key, v)?,
            "actions" => self.actions = owned()?,
            "osSnapshots" => self.os_snapshots = owned()?,
            "logging" => self.logging = owned()?,
            "upload" => self.upload = owned()?,
            "noParent" => self.no_parent = from_raw(key, v)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn extra(&self) -> &[(String, RawJson)] {
        &self.extra
    }

    fn extra_mut(&mut self) -> &mut Vec<(String, RawJson)> {
        &mut self.extra
    }
}
section_serde!(Policy);

impl Policy {
    /// Parses a policy manifest payload.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::json("policy", e))
    }

    /// The payload bytes as kopia stores them (`json.Marshal`).
    pub fn encode(&self) -> Result<Vec<u8>> {
        gojson::to_go_json(self)
    }

    /// kopia's `policy.DefaultPolicy`, which `kopia repository create` stores as the global
    /// policy (`cli/command_repository_create.go` → `policy.SetPolicy(…, DefaultPolicy)`).
    ///
    /// Where each section comes from (kopia v0.23.1 `snapshot/policy/policy_tree.go`, identical
    /// in v0.20.1):
    /// * `retention`: `defaultRetentionPolicy` (10/48/7/4/24/3, ignoreIdenticalSnapshots false).
    /// * `files`: `defaultFilesPolicy` = `DotIgnoreFiles: [".kopiaignore"]`.
    /// * `errorHandling`: `defaultErrorHandlingPolicy` (file false, directory false,
    ///   unknown types true).
    /// * `scheduling`: `defaultSchedulingPolicy` = `RunMissed: true`.
    /// * `compression`: `compressorName: "none"`; `metadataCompression`: `"zstd-fastest"`.
    /// * `splitter`, `actions`: zero structs → `{}`.
    /// * `osSnapshots`: `volumeShadowCopy.enable = OSSnapshotNever` (byte 0, no custom
    ///   marshaller → `0`).
    /// * `logging`: directories snapshotted/ignored = `LogDetailNormal` (5); entries
    ///   snapshotted 0, ignored 5, cacheHit 0, cacheMiss 0.
    /// * `upload`: `maxParallelSnapshots` 1, `maxParallelFileReads` nil (omitted),
    ///   `parallelUploadAboveSize` 2 GiB.
    /// * `noParent` false → omitted.
    ///
    /// The result is 683 bytes, exactly the manifest length `kopia manifest list` reports for
    /// the global policy of the fixture repository repo-b (created by kopia 0.20.1 and never
    /// modified); the bytes themselves were not decrypted from the fixture.
    pub fn kopia_default_global() -> Self {
        Policy {
            retention: RetentionPolicy::kopia_default(),
            files: raw(r#"{"ignoreDotFiles":[".kopiaignore"]}"#),
            error_handling: raw(
                r#"{"ignoreFileErrors":false,"ignoreDirectoryErrors":false,"ignoreUnknownTypes":true}"#,
            ),
            scheduling: raw(r#"{"runMissed":true}"#),
            compression: CompressionPolicy {
                compressor_name: DEFAULT_COMPRESSOR.to_owned(),
                ..Default::default()
            },
            metadata_compression: MetadataCompressionPolicy {
                compressor_name: DEFAULT_METADATA_COMPRESSOR.to_owned(),
                extra: Vec::new(),
            },
            splitter: SplitterPolicy::default(),
            actions: empty_object(),
            os_snapshots: raw(r#"{"volumeShadowCopy":{"enable":0}}"#),
            logging: raw(
                r#"{"directories":{"snapshotted":5,"ignored":5},"entries":{"snapshotted":0,"ignored":5,"cacheHit":0,"cacheMiss":0}}"#,
            ),
            upload: raw(r#"{"maxParallelSnapshots":1,"parallelUploadAboveSize":2147483648}"#),
            no_parent: false,
            extra: Vec::new(),
        }
    }
}

/// The `files` section (`policy.FilesPolicy`), typed. [`Policy`] keeps the section as raw
/// JSON; [`Policy::files_policy`] reads it and [`Policy::set_files_policy`] writes it back in
/// kopia's key order (`ignore, noParentIgnore, ignoreDotFiles, noParentDotFiles,
/// ignoreCacheDirs, maxFileSize, oneFileSystem`, each omitted when empty), followed by keys
/// arkiv does not know.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FilesPolicy {
    /// `ignore`: gitignore-style rules, applied in stored order (`kopia policy set` stores
    /// them sorted).
    #[serde(rename = "ignore", default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_rules: Vec<String>,
    /// `noParentIgnore` (stored; kopia's snapshot does not act on it, see `arkiv_engine`'s
    /// ignore module).
    #[serde(rename = "noParentIgnore", default, skip_serializing_if = "is_false")]
    pub no_parent_ignore_rules: bool,
    /// `ignoreDotFiles`: names of the files read in each directory for more rules.
    #[serde(
        rename = "ignoreDotFiles",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub dot_ignore_files: Vec<String>,
    /// `noParentDotFiles`.
    #[serde(rename = "noParentDotFiles", default, skip_serializing_if = "is_false")]
    pub no_parent_dot_ignore_files: bool,
    /// `ignoreCacheDirs` (unset: true).
    #[serde(
        rename = "ignoreCacheDirs",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ignore_cache_dirs: Option<bool>,
    /// `maxFileSize` in bytes (0: no limit, or inherit).
    #[serde(rename = "maxFileSize", default, skip_serializing_if = "is_zero")]
    pub max_file_size: i64,
    /// `oneFileSystem` (unset: false).
    #[serde(
        rename = "oneFileSystem",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub one_file_system: Option<bool>,
    /// Unknown members, kept.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_false(b: &bool) -> bool {
    !*b
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(v: &i64) -> bool {
    *v == 0
}

impl FilesPolicy {
    /// kopia `FilesPolicy.Merge`: fill unset fields from a less specific policy. The ignore
    /// list and the dot-file list are taken whole from the most specific policy that has a
    /// non-empty one (not joined).
    pub fn merge_from(&mut self, src: &FilesPolicy) {
        if self.ignore_rules.is_empty() && !src.ignore_rules.is_empty() {
            self.ignore_rules.clone_from(&src.ignore_rules);
        }
        self.no_parent_ignore_rules |= src.no_parent_ignore_rules;
        if self.dot_ignore_files.is_empty() && !src.dot_ignore_files.is_empty() {
            self.dot_ignore_files.clone_from(&src.dot_ignore_files);
        }
        self.no_parent_dot_ignore_files |= src.no_parent_dot_ignore_files;
        if self.ignore_cache_dirs.is_none() {
            self.ignore_cache_dirs = src.ignore_cache_dirs;
        }
        if self.max_file_size == 0 {
            self.max_file_size = src.max_file_size;
        }
        if self.one_file_system.is_none() {
            self.one_file_system = src.one_file_system;
        }
    }
}

/// The `errorHandling` section (`policy.ErrorHandlingPolicy`), typed (unset = inherit).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorHandlingPolicy {
    /// `ignoreFileErrors` (unset: false).
    #[serde(
        rename = "ignoreFileErrors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ignore_file_errors: Option<bool>,
    /// `ignoreDirectoryErrors` (unset: false).
    #[serde(
        rename = "ignoreDirectoryErrors",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ignore_directory_errors: Option<bool>,
    /// `ignoreUnknownTypes` (unset: true).
    #[serde(
        rename = "ignoreUnknownTypes",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub ignore_unknown_types: Option<bool>,
    /// Unknown members, kept.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ErrorHandlingPolicy {
    /// kopia `ErrorHandlingPolicy.Merge`.
    pub fn merge_from(&mut self, src: &ErrorHandlingPolicy) {
        if self.ignore_file_errors.is_none() {
            self.ignore_file_errors = src.ignore_file_errors;
        }
        if self.ignore_directory_errors.is_none() {
            self.ignore_directory_errors = src.ignore_directory_errors;
        }
        if self.ignore_unknown_types.is_none() {
            self.ignore_unknown_types = src.ignore_unknown_types;
        }
    }
}

impl Policy {
    /// The `files` section, typed.
    pub fn files_policy(&self) -> Result<FilesPolicy> {
        from_raw("files", &self.files)
    }

    /// Replaces the `files` section.
    pub fn set_files_policy(&mut self, f: &FilesPolicy) -> Result<()> {
        self.files = to_raw(f)?;
        Ok(())
    }

    /// Sets `scheduling.intervalSeconds` like `kopia policy set --snapshot-interval`
    /// (`SchedulingPolicy.SetInterval`; 0 removes it, as Go's `omitempty` does). The key goes
    /// first, where kopia's struct declares it; the section's other members are kept as they
    /// are.
    pub fn set_scheduling_interval_seconds(&mut self, secs: i64) -> Result<()> {
        let obj: RawObject = serde_json::from_str(self.scheduling.get())
            .map_err(|e| Error::invalid("policy", format!("scheduling: {e}")))?;
        let mut members: Vec<(String, RawJson)> = obj
            .0
            .into_iter()
            .filter(|(k, _)| k != "intervalSeconds")
            .collect();
        if secs != 0 {
            members.insert(0, ("intervalSeconds".to_owned(), to_raw(&secs)?));
        }
        let mut buf = Vec::new();
        serialize_members(&mut serde_json::Serializer::new(&mut buf), &members)
            .map_err(|e| Error::json("policy", e))?;
        let text = String::from_utf8(buf).map_err(|e| Error::invalid("policy", e.to_string()))?;
        self.scheduling = RawValue::from_string(text).map_err(|e| Error::json("policy", e))?;
        Ok(())
    }

    /// The `errorHandling` section, typed.
    pub fn error_handling_policy(&self) -> Result<ErrorHandlingPolicy> {
        from_raw("errorHandling", &self.error_handling)
    }

    /// Replaces the `errorHandling` section.
    pub fn set_error_handling_policy(&mut self, e: &ErrorHandlingPolicy) -> Result<()> {
        self.error_handling = to_raw(e)?;
        Ok(())
    }

    /// This policy as it stands, not merged with any other and without defaults: what
    /// kopia's snapshot uses for a path policy below the snapshot root (see
    /// `arkiv_engine::policy::policy_tree`). Unreadable `files`/`errorHandling` sections
    /// read as empty and are named in `unreadable`.
    pub fn as_stored(&self) -> EffectivePolicy {
        let mut unreadable = Vec::new();
        let files = self.files_policy().unwrap_or_else(|e| {
            unreadable.push(format!("files: {e}"));
            FilesPolicy::default()
        });
        let error_handling = self.error_handling_policy().unwrap_or_else(|e| {
            unreadable.push(format!("errorHandling: {e}"));
            ErrorHandlingPolicy::default()
        });
        EffectivePolicy {
            retention: self.retention.clone(),
            compression: self.compression.clone(),
            metadata_compression: self.metadata_compression.compressor_name.clone(),
            splitter: self.splitter.algorithm.clone(),
            files,
            error_handling,
            unreadable,
        }
    }
}

/// The parts of an effective policy arkiv uses, merged like kopia's `MergePolicies`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EffectivePolicy {
    /// Retention (all fields set unless a `noParent` policy cut inheritance short).
    pub retention: RetentionPolicy,
    /// File-data compression.
    pub compression: CompressionPolicy,
    /// Metadata compression.
    pub metadata_compression: String,
    /// Splitter override (`""` = repository default).
    pub splitter: String,
    /// File selection (`ignore`, dot-ignore files, size limit, cache directories, …).
    pub files: FilesPolicy,
    /// What counts as a failed entry.
    pub error_handling: ErrorHandlingPolicy,
    /// Sections that could not be read while merging (each is then treated as empty).
    pub unreadable: Vec<String>,
}

impl PartialEq for CompressionPolicy {
    fn eq(&self, o: &Self) -> bool {
        self.compressor_name == o.compressor_name
            && self.only_compress == o.only_compress
            && self.no_parent_only_compress == o.no_parent_only_compress
            && self.never_compress == o.never_compress
            && self.no_parent_never_compress == o.no_parent_never_compress
            && self.min_size == o.min_size
            && self.max_size == o.max_size
            && raw_eq(&self.extra, &o.extra)
    }
}

/// Merges policies given most specific first (path, parent paths, user@host, host, global),
/// then kopia's built-in defaults, stopping early (without defaults) after a `noParent` policy,
/// exactly like kopia's `MergePolicies`.
pub fn merge(policies: &[&Policy]) -> EffectivePolicy {
    let mut eff = EffectivePolicy::default();
    let apply = |p: &Policy, eff: &mut EffectivePolicy| {
        eff.retention.merge_from(&p.retention);
        eff.compression.merge_from(&p.compression);
        if eff.metadata_compression.is_empty() {
            eff.metadata_compression
                .clone_from(&p.metadata_compression.compressor_name);
        }
        if eff.splitter.is_empty() {
            eff.splitter.clone_from(&p.splitter.algorithm);
        }
        match p.files_policy() {
            Ok(f) => eff.files.merge_from(&f),
            Err(e) => eff.unreadable.push(format!("files: {e}")),
        }
        match p.error_handling_policy() {
            Ok(h) => eff.error_handling.merge_from(&h),
            Err(e) => eff.unreadable.push(format!("errorHandling: {e}")),
        }
    };
    for p in policies {
        apply(p, &mut eff);
        if p.no_parent {
            return eff;
        }
    }
    apply(&Policy::kopia_default_global(), &mut eff);
    eff.retention.extra.clear();
    eff.compression.extra.clear();
    eff.files.extra.clear();
    eff.error_handling.extra.clear();
    eff
}

/// Labels of the global policy manifest: `type=policy`, `policyType=global`.
pub fn policy_labels_global() -> BTreeMap<String, String> {
    policy_labels_for_source(&SourceInfo::default())
}

/// Labels of the policy manifest for a target, like kopia's `LabelsForSource`:
/// path policies carry `username`, `hostname`, `path` (even when empty), user policies
/// `username`, `hostname`, host policies `hostname`, the global policy none of them.
pub fn policy_labels_for_source(si: &SourceInfo) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert(TYPE_LABEL.to_owned(), TYPE_POLICY.to_owned());
    let kind = if !si.path.is_empty() {
        m.insert(USERNAME_LABEL.to_owned(), si.user_name.clone());
        m.insert(HOSTNAME_LABEL.to_owned(), si.host.clone());
        m.insert(PATH_LABEL.to_owned(), si.path.clone());
        POLICY_TYPE_PATH
    } else if !si.user_name.is_empty() {
        m.insert(USERNAME_LABEL.to_owned(), si.user_name.clone());
        m.insert(HOSTNAME_LABEL.to_owned(), si.host.clone());
        POLICY_TYPE_USER
    } else if !si.host.is_empty() {
        m.insert(HOSTNAME_LABEL.to_owned(), si.host.clone());
        POLICY_TYPE_HOST
    } else {
        POLICY_TYPE_GLOBAL
    };
    m.insert(POLICY_TYPE_LABEL.to_owned(), kind.to_owned());
    m
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DEFAULT_GLOBAL: &str = r#"{"retention":{"keepLatest":10,"keepHourly":48,"keepDaily":7,"keepWeekly":4,"keepMonthly":24,"keepAnnual":3,"ignoreIdenticalSnapshots":false},"files":{"ignoreDotFiles":[".kopiaignore"]},"errorHandling":{"ignoreFileErrors":false,"ignoreDirectoryErrors":false,"ignoreUnknownTypes":true},"scheduling":{"runMissed":true},"compression":{"compressorName":"none"},"metadataCompression":{"compressorName":"zstd-fastest"},"splitter":{},"actions":{},"osSnapshots":{"volumeShadowCopy":{"enable":0}},"logging":{"directories":{"snapshotted":5,"ignored":5},"entries":{"snapshotted":0,"ignored":5,"cacheHit":0,"cacheMiss":0}},"upload":{"maxParallelSnapshots":1,"parallelUploadAboveSize":2147483648}}"#;

    #[test]
    fn default_global_bytes() {
        let enc = Policy::kopia_default_global().encode().unwrap();
        assert_eq!(String::from_utf8(enc.clone()).unwrap(), DEFAULT_GLOBAL);
        // repo-b.manifest-list.txt: the global policy manifest is 683 bytes long.
        assert_eq!(enc.len(), 683);
        // repo-a after `policy set --global --compression=zstd-fastest`: 691 bytes.
        let mut p = Policy::parse(&enc).unwrap();
        p.compression.compressor_name = "zstd-fastest".into();
        assert_eq!(p.encode().unwrap().len(), 691);
        assert_eq!(
            Policy::parse(DEFAULT_GLOBAL.as_bytes())
                .unwrap()
                .encode()
                .unwrap(),
            enc
        );
    }

    #[test]
    fn empty_and_unknown_fields_roundtrip() {
        let empty = Policy::default().encode().unwrap();
        assert_eq!(
            String::from_utf8(empty).unwrap(),
            r#"{"retention":{},"files":{},"errorHandling":{},"scheduling":{},"compression":{},"metadataCompression":{},"splitter":{},"actions":{},"osSnapshots":{},"logging":{},"upload":{}}"#
        );
        let input = r#"{"retention":{"keepDaily":3,"keepFortnightly":2},"files":{"ignore":["*.tmp"],"maxFileSize":5},"errorHandling":{},"scheduling":{"intervalSeconds":3600,"timeOfDay":[{"hour":1,"min":2}]},"compression":{"compressorName":"zstd","onlyCompress":[".txt"],"minSize":10,"future":{"x":1}},"metadataCompression":{},"splitter":{"algorithm":"FIXED-4M"},"actions":{"beforeSnapshotRoot":{"script":"echo \u003chi\u003e"}},"osSnapshots":{},"logging":{},"upload":{},"noParent":true,"newSection":{"a":[1,2]}}"#;
        let p = Policy::parse(input.as_bytes()).unwrap();
        assert_eq!(p.retention.keep_daily, Some(3));
        assert_eq!(p.retention.extra[0].0, "keepFortnightly");
        assert_eq!(p.compression.compressor_name, "zstd");
        assert_eq!(p.splitter.algorithm, "FIXED-4M");
        assert!(p.no_parent);
        assert_eq!(String::from_utf8(p.encode().unwrap()).unwrap(), input);
        // missing sections and null sections become {}
        let p = Policy::parse(br#"{"retention":null,"files":null}"#).unwrap();
        assert_eq!(p.encode().unwrap(), Policy::default().encode().unwrap());
        assert!(Policy::parse(br#"{"files":3}"#).is_err());
        assert!(Policy::parse(br#"{"retention":{"keepDaily":"x"}}"#).is_err());
    }

    #[test]
    fn merge_like_kopia() {
        let mut path = Policy::default();
        path.retention.keep_daily = Some(3);
        path.compression.only_compress = vec![".b".into()];
        let mut global = Policy::default();
        global.retention.keep_latest = Some(1);
        global.retention.keep_daily = Some(99);
        global.compression.compressor_name = "zstd".into();
        global.compression.only_compress = vec![".a".into()];
        let eff = merge(&[&path, &global]);
        assert_eq!(eff.retention.keep_daily, Some(3));
        assert_eq!(eff.retention.keep_latest, Some(1));
        assert_eq!(eff.retention.keep_hourly, Some(48));
        assert_eq!(eff.retention.keep_annual, Some(3));
        assert_eq!(eff.retention.ignore_identical_snapshots, Some(false));
        assert_eq!(eff.compression.compressor_name, "zstd");
        assert_eq!(eff.compression.only_compress, [".a", ".b"]);
        assert_eq!(eff.metadata_compression, "zstd-fastest");
        assert_eq!(eff.splitter, "");

        let eff = merge(&[]);
        assert_eq!(eff.retention, RetentionPolicy::kopia_default());
        assert_eq!(eff.compression.compressor_name, "none");
        assert_eq!(eff.compression.algorithm().unwrap(), None);

        // noParent stops inheritance before the built-in defaults
        path.no_parent = true;
        let eff = merge(&[&path, &global]);
        assert_eq!(eff.retention.keep_latest, None);
        assert_eq!(eff.compression.compressor_name, "");
        assert_eq!(eff.metadata_compression, "");
    }

    #[test]
    fn labels_like_kopia() {
        let fmt = |m: BTreeMap<String, String>| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(fmt(policy_labels_global()), "policyType=global,type=policy");
        let si = |s: &str| s.parse::<SourceInfo>().unwrap();
        assert_eq!(
            fmt(policy_labels_for_source(&si("u@h:/p"))),
            "hostname=h,path=/p,policyType=path,type=policy,username=u"
        );
        assert_eq!(
            fmt(policy_labels_for_source(&si("u@h"))),
            "hostname=h,policyType=user,type=policy,username=u"
        );
        assert_eq!(
            fmt(policy_labels_for_source(&si("@h"))),
            "hostname=h,policyType=host,type=policy"
        );
    }

    proptest! {
        #[test]
        fn retention_roundtrip(v in proptest::collection::vec(proptest::option::of(any::<i64>()), 6), b in proptest::option::of(any::<bool>())) {
            let p = Policy {
                retention: RetentionPolicy {
                    keep_latest: v[0], keep_hourly: v[1], keep_daily: v[2],
                    keep_weekly: v[3], keep_monthly: v[4], keep_annual: v[5],
                    ignore_identical_snapshots: b, extra: Vec::new(),
                },
                ..Default::default()
            };
            let enc = p.encode().unwrap();
            let back = Policy::parse(&enc).unwrap();
            prop_assert_eq!(&back.retention, &p.retention);
            prop_assert_eq!(back.encode().unwrap(), enc);
        }
    }
}
