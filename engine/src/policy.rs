//! Policy manifests in a repository: finding, merging and writing them like kopia
//! (FORMAT.md §11.5).
//!
//! Facts from kopia (`snapshot/policy/policy_manager.go`, `repo/repository.go`,
//! `repo/manifest/manifest_manager.go`, `cli/command_policy_set.go`; checked against
//! kopia/kopia master, 2026-08):
//!
//! * A policy manifest is found by *subset* label match on `LabelsForSource(target)`
//!   ([`policy::policy_labels_for_source`]): `type=policy`, `policyType`, and the
//!   `hostname`/`username`/`path` labels of the target.
//! * The effective policy of a source (`GetPolicyHierarchy`) merges, most specific first: the
//!   policies of the path and then of each parent path up to the root (`getParentPathOSIndependent`:
//!   `/a/b` → `/a` → `/`), then `user@host`, then `host`, then global, then built-in defaults.
//!   Within one level every matching manifest is used, oldest `modified` first (kopia's `Find`
//!   sorts by modification time).
//! * `kopia policy set` reads the defined policy of the target (`GetDefinedPolicy`: the latest
//!   matching manifest by `modified`, an empty policy when there is none), applies the flags,
//!   refuses when nothing changed, and stores it with `ReplaceManifests(LabelsForSource(target))`:
//!   every manifest matching the labels gets a tombstone and the policy is put as a NEW manifest
//!   (fresh random 16-byte ID, `modified` = now, the same labels), all in one write session that
//!   is flushed at the end. kopia sleeps so that at least 100 ms pass after the replaced
//!   manifest's `modified`; arkiv instead stamps the tombstone at least 1 ms after it, which
//!   is what makes the tombstone win the merge (strictly later `modified` wins).

use std::collections::BTreeMap;
use std::sync::Arc;

use arkiv_format::ids::ManifestId;
use arkiv_format::manifest::ManifestEntry;
use arkiv_format::policy::{self, EffectivePolicy, Policy};
use arkiv_format::snapshot::SourceInfo;
use chrono::{DateTime, Utc};

use crate::content::writer::ContentWriter;
use crate::manifest::ManifestBatch;
use crate::repo::Repository;
use crate::{Error, Result};

/// What a policy applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyTarget {
    /// The global policy.
    Global,
    /// A host (`host` only), `user@host` (empty path) or `user@host:/path` policy.
    Source(SourceInfo),
}

impl PolicyTarget {
    /// The target as kopia's `SourceInfo` (all empty for the global policy).
    pub fn source_info(&self) -> SourceInfo {
        match self {
            PolicyTarget::Global => SourceInfo::default(),
            PolicyTarget::Source(s) => s.clone(),
        }
    }

    /// The labels of the target's policy manifest (kopia's `LabelsForSource`).
    pub fn labels(&self) -> BTreeMap<String, String> {
        policy::policy_labels_for_source(&self.source_info())
    }
}

impl From<SourceInfo> for PolicyTarget {
    fn from(s: SourceInfo) -> Self {
        if s.is_global() {
            PolicyTarget::Global
        } else {
            PolicyTarget::Source(s)
        }
    }
}

impl std::fmt::Display for PolicyTarget {
    /// Like kopia: `(global)`, `@host`, `user@host`, `user@host:/path`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.source_info();
        if !s.is_global() && s.user_name.is_empty() && s.path.is_empty() {
            write!(f, "@{}", s.host)
        } else {
            write!(f, "{s}")
        }
    }
}

/// A policy manifest that was found, with its ID and labels.
#[derive(Debug, Clone)]
pub struct StoredPolicy {
    /// Manifest ID.
    pub id: ManifestId,
    /// When the manifest was written.
    pub modified: DateTime<Utc>,
    /// Labels (`type`, `policyType`, `hostname`, `username`, `path`).
    pub labels: BTreeMap<String, String>,
    /// The policy.
    pub policy: Policy,
}

impl StoredPolicy {
    /// The target this policy applies to, from its labels.
    pub fn target(&self) -> PolicyTarget {
        let get = |k: &str| self.labels.get(k).cloned().unwrap_or_default();
        PolicyTarget::from(SourceInfo {
            host: get(arkiv_format::manifest::HOSTNAME_LABEL),
            user_name: get(arkiv_format::manifest::USERNAME_LABEL),
            path: get(arkiv_format::manifest::PATH_LABEL),
        })
    }
}

/// A copy of `repo` that sees what was written since it was opened (manifests are found through
/// the index set, which an open [`Repository`] keeps as loaded).
pub(crate) async fn fresh(repo: &Repository) -> Result<Repository> {
    let mut r = repo.clone();
    r.refresh().await?;
    Ok(r)
}

/// Matching policy manifests, oldest `modified` first (ties by ID) like kopia's `Find`.
fn find(
    manifests: &BTreeMap<ManifestId, ManifestEntry>,
    labels: &BTreeMap<String, String>,
) -> Vec<StoredPolicy> {
    let mut out: Vec<StoredPolicy> = manifests
        .iter()
        .filter(|(_, e)| e.matches(labels))
        .filter_map(|(id, e)| {
            let data = e.data.as_ref()?;
            match Policy::parse(data.get().as_bytes()) {
                Ok(policy) => Some(StoredPolicy {
                    id: id.clone(),
                    modified: e.modified,
                    labels: e.labels.clone().unwrap_or_default(),
                    policy,
                }),
                Err(e) => {
                    tracing::warn!("ignoring unreadable policy manifest {id}: {e}");
                    None
                }
            }
        })
        .collect();
    out.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.id.cmp(&b.id)));
    out
}

/// kopia's `getParentPathOSIndependent` for `/`-separated paths (Windows volumes included).
fn parent_path(p: &str) -> String {
    let (vol, path) = match p.as_bytes() {
        [_, b':', b'/' | b'\\', ..] => p.split_at(2),
        _ => ("", p),
    };
    let is_sep = |c: char| c == '/' || c == '\\';
    let mut pth = path;
    let mut last = pth.rfind(is_sep);
    if let Some(l) = last {
        if l + 1 == pth.len() && l != 0 {
            pth = pth.get(..l).unwrap_or_default();
            last = pth.rfind(is_sep);
        }
    }
    match last {
        None => p.to_owned(),
        Some(0) => format!("{vol}{}", pth.get(..1).unwrap_or_default()),
        Some(l) => format!("{vol}{}", pth.get(..l).unwrap_or_default()),
    }
}

/// The policies that apply to `source`, most specific first (kopia's `GetPolicyHierarchy`,
/// without the artificial empty policy, which changes nothing when merged).
pub fn policy_hierarchy(
    manifests: &BTreeMap<ManifestId, ManifestEntry>,
    source: &SourceInfo,
) -> Vec<StoredPolicy> {
    let mut out = Vec::new();
    if !source.path.is_empty() {
        let mut tmp = source.clone();
        loop {
            out.extend(find(manifests, &policy::policy_labels_for_source(&tmp)));
            let parent = parent_path(&tmp.path);
            if parent == tmp.path {
                break;
            }
            tmp.path = parent;
        }
    }
    let user = SourceInfo {
        host: source.host.clone(),
        user_name: source.user_name.clone(),
        path: String::new(),
    };
    let host = SourceInfo {
        host: source.host.clone(),
        ..SourceInfo::default()
    };
    for level in [user, host, SourceInfo::default()] {
        out.extend(find(manifests, &policy::policy_labels_for_source(&level)));
    }
    out
}

/// The effective policy of `source`: path, parent paths, user@host, host, global, built-in
/// defaults, merged like kopia's `MergePolicies`.
pub async fn effective_policy(repo: &Repository, source: &SourceInfo) -> Result<EffectivePolicy> {
    let repo = fresh(repo).await?;
    Ok(effective_from(&repo.manifests().await?, source))
}

/// [`effective_policy`] over already loaded manifests.
pub fn effective_from(
    manifests: &BTreeMap<ManifestId, ManifestEntry>,
    source: &SourceInfo,
) -> EffectivePolicy {
    let hierarchy = policy_hierarchy(manifests, source);
    let list: Vec<&Policy> = hierarchy.iter().map(|p| &p.policy).collect();
    policy::merge(&list)
}

/// kopia's policy tree for one snapshot (`snapshot/policy/policy_tree.go`,
/// `policy_manager.go` `TreeForSource`), as kopia 0.20.1 used it (recorded in
/// `shared/kopia/fixtures/README.md`, repo-c, point 1):
///
/// * the root node holds the source's *merged* policy ([`effective_from`]);
/// * every other path policy of the same `user@host` below the source path is a node **as
///   stored**, not merged with anything ([`Policy::as_stored`]);
/// * a directory without a policy uses the node of the nearest directory above it that has one
///   (it is an "inherited" node: [`PolicyTree::defined`] is `None` there).
#[derive(Debug, Clone)]
pub struct PolicyTree(Arc<TreeNode>);

#[derive(Debug)]
struct TreeNode {
    effective: Arc<EffectivePolicy>,
    origin: Arc<str>,
    inherited: bool,
    children: BTreeMap<String, PolicyTree>,
}

impl PolicyTree {
    /// A tree of one node: `root` everywhere (with `origin` naming where it came from).
    pub fn single(root: EffectivePolicy, origin: &str) -> Self {
        Self::build(BTreeMap::from([(
            ".".to_owned(),
            (origin.to_owned(), root),
        )]))
    }

    /// Builds the tree from policies keyed by `.` (the root) and `./a/b` paths, each with a
    /// label naming its origin (kopia's `BuildTree`; a missing root gets kopia's defaults).
    pub fn build(defined: BTreeMap<String, (String, EffectivePolicy)>) -> Self {
        let defined: BTreeMap<String, (Arc<str>, Arc<EffectivePolicy>)> = defined
            .into_iter()
            .map(|(k, (o, p))| (k, (Arc::from(o.as_str()), Arc::new(p))))
            .collect();
        let default = (Arc::from("built-in defaults"), Arc::new(policy::merge(&[])));
        build_node(&defined, ".", &default)
    }

    /// The policy that applies here (defined here or inherited).
    pub fn effective(&self) -> &EffectivePolicy {
        &self.0.effective
    }

    /// The policy defined for exactly this node, `None` where it is inherited.
    pub fn defined(&self) -> Option<&EffectivePolicy> {
        (!self.0.inherited).then_some(&*self.0.effective)
    }

    /// Where the effective policy comes from (`user@host:/path`, or the root's description).
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// The node of the entry `name` (kopia's `Tree.Child`).
    pub fn child(&self, name: &str) -> PolicyTree {
        if name.is_empty() || name == "." {
            return self.clone();
        }
        if let Some(c) = self.0.children.get(name) {
            return c.clone();
        }
        if self.0.children.is_empty() && self.0.inherited {
            return self.clone();
        }
        PolicyTree(Arc::new(TreeNode {
            effective: self.0.effective.clone(),
            origin: self.0.origin.clone(),
            inherited: true,
            children: BTreeMap::new(),
        }))
    }
}

fn build_node(
    defined: &BTreeMap<String, (Arc<str>, Arc<EffectivePolicy>)>,
    path: &str,
    inherit: &(Arc<str>, Arc<EffectivePolicy>),
) -> PolicyTree {
    let (own, inherited) = match defined.get(path) {
        Some(p) => (p.clone(), false),
        None => (inherit.clone(), true),
    };
    let prefix = format!("{path}/");
    let names: std::collections::BTreeSet<&str> = defined
        .keys()
        .filter_map(|k| k.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('/').next())
        .collect();
    let children = names
        .into_iter()
        .map(|n| {
            (
                n.to_owned(),
                build_node(defined, &format!("{prefix}{n}"), &own),
            )
        })
        .collect();
    PolicyTree(Arc::new(TreeNode {
        effective: own.1,
        origin: own.0,
        inherited,
        children,
    }))
}

/// kopia's `nestedRelativePathNormalizedToSlashes`: `child` relative to `parent`, `None`
/// when it is not strictly below it.
fn nested_relative(parent: &str, child: &str) -> Option<String> {
    let is_win = matches!(parent.as_bytes(), [_, b':', ..]);
    let parent = parent
        .strip_suffix('/')
        .or_else(|| parent.strip_suffix('\\'))
        .unwrap_or(parent);
    let rest = child.strip_prefix(parent)?;
    let rest = rest.strip_prefix('/').or_else(|| rest.strip_prefix('\\'))?;
    if is_win {
        Some(rest.replace('\\', "/"))
    } else {
        Some(rest.to_owned())
    }
}

/// The policy tree of a snapshot of `source` ([`PolicyTree`]) over already loaded manifests.
pub fn policy_tree_from(
    manifests: &BTreeMap<ManifestId, ManifestEntry>,
    source: &SourceInfo,
) -> PolicyTree {
    let mut defined = BTreeMap::new();
    defined.insert(
        ".".to_owned(),
        (
            format!("{source} (merged)"),
            effective_from(manifests, source),
        ),
    );
    let mut q = BTreeMap::new();
    q.insert(
        arkiv_format::manifest::TYPE_LABEL.to_owned(),
        arkiv_format::manifest::TYPE_POLICY.to_owned(),
    );
    q.insert(
        arkiv_format::manifest::POLICY_TYPE_LABEL.to_owned(),
        policy::POLICY_TYPE_PATH.to_owned(),
    );
    q.insert(
        arkiv_format::manifest::USERNAME_LABEL.to_owned(),
        source.user_name.clone(),
    );
    q.insert(
        arkiv_format::manifest::HOSTNAME_LABEL.to_owned(),
        source.host.clone(),
    );
    // oldest first: a later manifest for the same path replaces an earlier one
    for p in find(manifests, &q) {
        let path = p
            .labels
            .get(arkiv_format::manifest::PATH_LABEL)
            .cloned()
            .unwrap_or_default();
        let Some(rel) = nested_relative(&source.path, &path).filter(|r| !r.is_empty()) else {
            continue;
        };
        let target = p.target().to_string();
        defined.insert(format!("./{rel}"), (target, p.policy.as_stored()));
    }
    PolicyTree::build(defined)
}

/// [`policy_tree_from`] over the repository's current manifests.
pub async fn policy_tree(repo: &Repository, source: &SourceInfo) -> Result<PolicyTree> {
    let repo = fresh(repo).await?;
    Ok(policy_tree_from(&repo.manifests().await?, source))
}

/// Every policy manifest in the repository (unreadable ones skipped with a warning).
pub async fn all_policies(repo: &Repository) -> Result<Vec<StoredPolicy>> {
    let repo = fresh(repo).await?;
    let manifests = repo.manifests().await?;
    let mut q = BTreeMap::new();
    q.insert(
        arkiv_format::manifest::TYPE_LABEL.to_owned(),
        arkiv_format::manifest::TYPE_POLICY.to_owned(),
    );
    Ok(find(&manifests, &q))
}

/// The policy defined for exactly `target` (kopia's `GetDefinedPolicy`: the latest matching
/// manifest), or `None`.
pub async fn get_policy(
    repo: &Repository,
    target: &PolicyTarget,
) -> Result<Option<(ManifestId, Policy)>> {
    let repo = fresh(repo).await?;
    let manifests = repo.manifests().await?;
    Ok(find(&manifests, &target.labels())
        .pop()
        .map(|p| (p.id, p.policy)))
}

/// Creates or updates the target's policy manifest like `kopia policy set`: the defined policy
/// (or an empty one) is passed to `edit`, every manifest with the target's labels is deleted
/// and the result is put as a new manifest, in one write session attributed to
/// `username@hostname`. Returns the new manifest ID.
pub async fn set_policy(
    repo: &Repository,
    target: &PolicyTarget,
    username: &str,
    hostname: &str,
    edit: impl FnOnce(&mut Policy) + Send + 'static,
) -> Result<ManifestId> {
    if let PolicyTarget::Source(s) = target {
        validate_target(s)?;
    }
    let repo = fresh(repo).await?;
    let manifests = repo.manifests().await?;
    let labels = target.labels();
    let existing = find(&manifests, &labels);
    let mut pol = existing
        .last()
        .map(|p| p.policy.clone())
        .unwrap_or_default();
    edit(&mut pol);
    let payload = pol
        .encode()
        .map_err(|e| Error::format(format!("policy for {target}"), e))?;
    let now = repo.clock().now();
    let replaced: Vec<(ManifestId, DateTime<Utc>)> = existing
        .into_iter()
        .map(|p| (p.id, tombstone_time(now, p.modified)))
        .collect();
    let rt = tokio::runtime::Handle::current();
    let cw = ContentWriter::new(repo.clone(), rt, username, hostname)?;
    let mut batch = ManifestBatch::default();
    for (id, at) in replaced {
        batch.delete(id, at);
    }
    let id = batch.put(labels, &payload, now)?;
    batch.commit_async(&cw).await?;
    cw.flush_async().await?;
    Ok(id)
}

/// kopia's `validatePolicyPath` and target shape checks, for the cases arkiv can produce.
fn validate_target(s: &SourceInfo) -> Result<()> {
    if s.host.is_empty() {
        return Err(Error::Config(format!("policy target {s} has no host name")));
    }
    if !s.path.is_empty() && s.user_name.is_empty() {
        return Err(Error::Config(format!(
            "policy target {s}: a path policy needs a user name"
        )));
    }
    let p = &s.path;
    if p.len() > 1 && (p.ends_with('/') || p.ends_with('\\')) {
        return Err(Error::Config(format!(
            "invalid policy path {p:?}: trailing slash"
        )));
    }
    Ok(())
}

/// When to stamp a tombstone for a manifest last modified at `modified`: now, but strictly
/// after `modified` (a tombstone only wins the merge with a strictly later time).
pub(crate) fn tombstone_time(now: DateTime<Utc>, modified: DateTime<Utc>) -> DateTime<Utc> {
    now.max(modified + chrono::Duration::milliseconds(1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn parent_paths_like_kopia() {
        assert_eq!(parent_path("/a/b/c"), "/a/b");
        assert_eq!(parent_path("/a/b/"), "/a");
        assert_eq!(parent_path("/a"), "/");
        assert_eq!(parent_path("/"), "/");
        assert_eq!(parent_path("rel"), "rel");
        assert_eq!(parent_path("C:\\x\\y"), "C:\\x");
        assert_eq!(parent_path("C:\\x"), "C:\\");
    }

    #[test]
    fn target_display() {
        assert_eq!(PolicyTarget::Global.to_string(), "(global)");
        let host = PolicyTarget::from(SourceInfo {
            host: "h".into(),
            ..Default::default()
        });
        assert_eq!(host.to_string(), "@h");
        let path = PolicyTarget::from(SourceInfo {
            host: "h".into(),
            user_name: "u".into(),
            path: "/d".into(),
        });
        assert_eq!(path.to_string(), "u@h:/d");
        assert_eq!(path.labels()["policyType"], "path");
    }

    #[test]
    fn hierarchy_order() {
        let mk = |si: &SourceInfo, secs: i64, keep: i64| {
            let mut p = Policy::default();
            p.retention.keep_latest = Some(keep);
            let id = ManifestId::from_random(rand::random());
            let e = ManifestEntry {
                id: id.clone(),
                labels: Some(policy::policy_labels_for_source(si)),
                modified: DateTime::from_timestamp(secs, 0).unwrap(),
                deleted: false,
                data: Some(
                    serde_json::value::RawValue::from_string(
                        String::from_utf8(p.encode().unwrap()).unwrap(),
                    )
                    .unwrap(),
                ),
            };
            (id, e)
        };
        let src = |u: &str, h: &str, p: &str| SourceInfo {
            user_name: u.into(),
            host: h.into(),
            path: p.into(),
        };
        let m: BTreeMap<_, _> = [
            mk(&SourceInfo::default(), 1, 1),
            mk(&src("", "h", ""), 2, 2),
            mk(&src("u", "h", ""), 3, 3),
            mk(&src("u", "h", "/"), 4, 4),
            mk(&src("u", "h", "/data"), 5, 5),
            mk(&src("u", "h", "/data/x"), 6, 6),
            mk(&src("u", "h", "/dat"), 7, 7),
            mk(&src("u", "other", "/data"), 8, 8),
            mk(&src("v", "h", ""), 9, 9),
        ]
        .into_iter()
        .collect();
        let h = policy_hierarchy(&m, &src("u", "h", "/data/x"));
        let keeps: Vec<i64> = h
            .iter()
            .map(|p| p.policy.retention.keep_latest.unwrap())
            .collect();
        assert_eq!(keeps, [6, 5, 4, 3, 2, 1]);
    }
}
