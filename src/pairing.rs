//! Which collection of side A goes with which collection of side B.
//!
//! [`match_collections`] is pure: it takes what both storages listed and the pair's
//! `collections` setting, and says for each pair-level collection name what exists on each side.

use crate::config::CollectionsSpec;
use crate::storage::CollectionInfo;

/// One pair-level collection and what exists of it on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionPair {
    /// The pair-level name (the status database key); empty for a pair without `collections`,
    /// where each storage is itself the collection.
    pub name: String,
    /// Name of the collection on side A.
    pub a_name: String,
    /// Name of the collection on side B.
    pub b_name: String,
    /// The collection on side A, if it exists.
    pub a: Option<CollectionInfo>,
    /// The collection on side B, if it exists.
    pub b: Option<CollectionInfo>,
}

/// Pairs the collections listed on both sides according to `spec`. Not used for
/// [`CollectionsSpec::Root`], which has no listing.
pub fn match_collections(
    spec: &CollectionsSpec,
    a: &[CollectionInfo],
    b: &[CollectionInfo],
) -> Vec<CollectionPair> {
    let find = |list: &[CollectionInfo], name: &str| list.iter().find(|c| c.name == name).cloned();
    let same_name = |name: &str| CollectionPair {
        name: name.to_owned(),
        a_name: name.to_owned(),
        b_name: name.to_owned(),
        a: find(a, name),
        b: find(b, name),
    };
    let mut names: Vec<&str> = match spec {
        CollectionsSpec::Root => Vec::new(),
        CollectionsSpec::FromA => a.iter().map(|c| c.name.as_str()).collect(),
        CollectionsSpec::FromB => b.iter().map(|c| c.name.as_str()).collect(),
        CollectionsSpec::All => a.iter().chain(b).map(|c| c.name.as_str()).collect(),
        CollectionsSpec::Explicit(mappings) => {
            return mappings
                .iter()
                .map(|m| CollectionPair {
                    name: m.name.clone(),
                    a_name: m.a.clone(),
                    b_name: m.b.clone(),
                    a: find(a, &m.a),
                    b: find(b, &m.b),
                })
                .collect();
        }
    };
    names.sort_unstable();
    names.dedup();
    names.into_iter().map(same_name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CollectionMapping;

    fn colls(names: &[&str]) -> Vec<CollectionInfo> {
        names
            .iter()
            .map(|n| CollectionInfo {
                name: (*n).into(),
                id: format!("/x/{n}"),
            })
            .collect()
    }

    fn summary(pairs: &[CollectionPair]) -> Vec<String> {
        pairs
            .iter()
            .map(|p| {
                format!(
                    "{}: a={}{} b={}{}",
                    p.name,
                    p.a_name,
                    if p.a.is_some() { "" } else { "(missing)" },
                    p.b_name,
                    if p.b.is_some() { "" } else { "(missing)" }
                )
            })
            .collect()
    }

    #[test]
    fn from_a_from_b_all_and_explicit() {
        let a = colls(&["home", "work"]);
        let b = colls(&["home", "shared"]);
        assert_eq!(
            summary(&match_collections(&CollectionsSpec::FromA, &a, &b)),
            ["home: a=home b=home", "work: a=work b=work(missing)"]
        );
        assert_eq!(
            summary(&match_collections(&CollectionsSpec::FromB, &a, &b)),
            ["home: a=home b=home", "shared: a=shared(missing) b=shared"]
        );
        assert_eq!(
            summary(&match_collections(&CollectionsSpec::All, &a, &b)),
            [
                "home: a=home b=home",
                "shared: a=shared(missing) b=shared",
                "work: a=work b=work(missing)"
            ]
        );
        let explicit = CollectionsSpec::Explicit(vec![CollectionMapping {
            name: "private".into(),
            a: "home".into(),
            b: "shared".into(),
        }]);
        assert_eq!(
            summary(&match_collections(&explicit, &a, &b)),
            ["private: a=home b=shared"]
        );
    }
}
