//! Grouping approved edits into patchsets (one commit each).

use super::Grouping;

/// What grouping needs to know about an approved edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInput {
    pub file_path: String,
    pub lines_changed: u32,
}

/// Groups edits into at most `max` patchsets and returns, per patchset, the indices of its
/// edits into `edits`.
///
/// Stable: the result depends only on the paths and sizes, never on input order. Groups are
/// ordered by their key (the module path); while there are more than `max`, the smallest group
/// (fewest changed lines, then the earlier key) is merged into its smaller neighbour in key
/// order, so related modules stay together.
pub fn group_into_patchsets(
    edits: &[GroupInput],
    grouping: &Grouping,
    max: usize,
) -> Vec<Vec<usize>> {
    let max = max.max(1);
    let mut keyed: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
    for (i, e) in edits.iter().enumerate() {
        let key = match grouping {
            Grouping::PerFile => e.file_path.clone(),
            Grouping::PerModule { depth } => module_key(&e.file_path, *depth),
            Grouping::PerPack | Grouping::Single => String::new(),
        };
        keyed.entry(key).or_default().push(i);
    }
    let mut groups: Vec<(String, Vec<usize>)> = keyed.into_iter().collect();
    for (_, members) in groups.iter_mut() {
        members.sort_by(|a, b| edits[*a].file_path.cmp(&edits[*b].file_path).then(a.cmp(b)));
    }
    let size = |g: &(String, Vec<usize>)| -> u64 {
        g.1.iter().map(|i| edits[*i].lines_changed as u64).sum()
    };
    while groups.len() > max {
        let (smallest, _) = groups
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| size(a).cmp(&size(b)).then(a.0.cmp(&b.0)))
            .expect("more than one group");
        let neighbour = match (smallest.checked_sub(1), groups.get(smallest + 1)) {
            (Some(l), Some(r)) => {
                if size(&groups[l]) <= size(r) {
                    l
                } else {
                    smallest + 1
                }
            }
            (Some(l), None) => l,
            (None, _) => smallest + 1,
        };
        let (keep, drop) = (smallest.min(neighbour), smallest.max(neighbour));
        let (_, moved) = groups.remove(drop);
        groups[keep].1.extend(moved);
        let members = &mut groups[keep].1;
        members.sort_by(|a, b| edits[*a].file_path.cmp(&edits[*b].file_path).then(a.cmp(b)));
    }
    groups
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| !m.is_empty())
        .collect()
}

/// The directory prefix of `path` with at most `depth` components; top-level files group
/// under their own name's directory, the root (`""`).
fn module_key(path: &str, depth: usize) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let dirs = &parts[..parts.len().saturating_sub(1)];
    dirs[..dirs.len().min(depth)].join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(p: &str, n: u32) -> GroupInput {
        GroupInput {
            file_path: p.into(),
            lines_changed: n,
        }
    }

    fn paths(edits: &[GroupInput], groups: &[Vec<usize>]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|i| edits[*i].file_path.clone()).collect())
            .collect()
    }

    #[test]
    fn per_module_groups_by_directory() {
        let edits = vec![
            e("a/x.py", 1),
            e("b/y.py", 2),
            e("a/z.py", 3),
            e("top.py", 1),
        ];
        let g = group_into_patchsets(&edits, &Grouping::PerModule { depth: 1 }, 5);
        assert_eq!(
            paths(&edits, &g),
            vec![vec!["top.py"], vec!["a/x.py", "a/z.py"], vec!["b/y.py"]]
        );
    }

    #[test]
    fn caps_at_max_by_merging_smallest_and_is_order_independent() {
        let edits: Vec<_> = (0..9).map(|i| e(&format!("f{i}.py"), i + 1)).collect();
        let g = group_into_patchsets(&edits, &Grouping::PerFile, 5);
        assert_eq!(g.len(), 5);
        let mut rev = edits.clone();
        rev.reverse();
        let g2 = group_into_patchsets(&rev, &Grouping::PerFile, 5);
        assert_eq!(paths(&edits, &g), paths(&rev, &g2));
        let all: usize = g.iter().map(|m| m.len()).sum();
        assert_eq!(all, 9);
    }

    #[test]
    fn single_and_per_pack_make_one() {
        let edits = vec![e("a.py", 1), e("b/c.py", 1)];
        assert_eq!(group_into_patchsets(&edits, &Grouping::Single, 5).len(), 1);
        assert_eq!(group_into_patchsets(&edits, &Grouping::PerPack, 5).len(), 1);
        assert!(group_into_patchsets(&[], &Grouping::PerFile, 5).is_empty());
    }
}

/// A run's planned patchsets (`state/patchsets.json`), in commit order.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PatchsetPlan {
    pub patchsets: Vec<PlannedPatchset>,
}

/// One commit's worth of approved edits.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PlannedPatchset {
    /// The approvals whose edits it applies.
    pub approval_ids: Vec<String>,
    /// The files it changes, relative to the repository root.
    pub files: Vec<String>,
    pub status: PatchsetStatus,
    /// The commit on the run's branch, once committed.
    pub commit_sha: Option<String>,
    /// Why it failed, when it did.
    pub reason: Option<String>,
}

/// `planned` → `committed`, or `failed` when its checks failed and it was rolled back.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PatchsetStatus {
    /// Grouped, not committed yet.
    Planned,
    /// Applied, checked and committed (`commit_sha` says where).
    Committed,
    /// Its checks failed; it was rolled back (`reason` says why).
    Failed,
}
