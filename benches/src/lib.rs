//! Benchmark support: a deterministic generator of realistic backup source
//! trees, shaped like self-hosted applications' persistent volumes (PVCs),
//! and the mutator for the "1 % change" re-backup step.
//!
//! Nothing here touches the repository format: the generator stands apart
//! from the engine so the comparison script (`benches/compare.py`) can feed
//! the same tree to arkiv, restic, borg, kopia and rustic.
//!
//! Determinism: trees depend only on the [`TreeSpec`] (and the mutator only
//! on the tree and its seed). The PRNG and hashes are implemented here so
//! no dependency upgrade can change the bytes.
//!
//! ```no_run
//! use arkiv_benches::{TreeSpec, generate_tree, mutate_tree};
//! let root = std::path::Path::new("/tmp/tree");
//! let stats = generate_tree(root, &TreeSpec::pvc_like(0.05))?;
//! println!("{stats}");
//! mutate_tree(root, 0.01, 1)?;
//! # Ok::<(), std::io::Error>(())
//! ```

mod content;
mod mutate;
mod rng;
mod spec;
mod tree;

pub use content::{Content, PAGE_SIZE, write_content};
pub use mutate::{MutateStats, mutate_tree};
pub use rng::{Digest, Rng};
pub use spec::{AppSpec, TreeSpec};
pub use tree::{PlannedEntry, PlannedKind, TreeStats, generate_tree, plan_tree, tree_digest};
