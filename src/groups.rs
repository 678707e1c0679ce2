//! Which pairs may sync at the same time, sans-IO: pairs that share a server (the origin of a
//! network storage) or a local path (equal, or one inside the other) share a group, so that one
//! server's requests stay under its own limits and two pairs never write one vdir or file at
//! once. `davsync sync` runs groups at the same time and a group's pairs one after another;
//! `davsync daemon`'s [`crate::daemon::Scheduler`] never runs two jobs of one group at once.

use std::path::PathBuf;

use crate::config::{Config, PairConfig};
use crate::storage::{Place, StorageKind};

/// `pairs` in groups that must not run at the same time, transitively (a pair sharing a server
/// with one pair and a path with another joins both into one group). Each group holds indices
/// into `pairs`, in order; groups come in the order of their first pair.
pub fn pair_groups<'c>(
    config: &Config,
    pairs: impl IntoIterator<Item = &'c PairConfig>,
) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Vec<Contention>, Vec<usize>)> = Vec::new();
    for (index, pair) in pairs.into_iter().enumerate() {
        let keys: Vec<Contention> = [&pair.a, &pair.b]
            .into_iter()
            .filter_map(|name| config.storages.get(name))
            .map(|storage| Contention::of(&storage.kind))
            .collect();
        let (mut joined, apart): (Vec<_>, Vec<_>) = std::mem::take(&mut groups)
            .into_iter()
            .partition(|(held, _)| held.iter().any(|h| keys.iter().any(|k| k.meets(h))));
        let mut merged = (keys, vec![index]);
        for (held, members) in joined.drain(..) {
            merged.0.extend(held);
            merged.1.extend(members);
        }
        merged.1.sort_unstable();
        groups = apart;
        groups.push(merged);
    }
    groups.sort_by_key(|(_, members)| members[0]);
    groups.into_iter().map(|(_, members)| members).collect()
}

/// What two storages may have in common that keeps them from being worked on at the same
/// time.
#[derive(Debug, PartialEq, Eq)]
enum Contention {
    /// The origin of a network storage (its per-server limits; a Google account's too).
    Server(String),
    /// A local directory or file.
    Path(PathBuf),
}

impl Contention {
    fn of(kind: &StorageKind) -> Contention {
        if let Some(origin) = kind.http().and_then(|http| crate::http::origin(&http.url)) {
            return Contention::Server(origin);
        }
        match kind.place() {
            Place::Path(path) | Place::Account(path) => Contention::Path(path.to_path_buf()),
            Place::Url(url) => Contention::Server(url.to_owned()),
        }
    }

    /// Whether both name one server, or one path holds the other (a vdir inside a vdir).
    fn meets(&self, other: &Contention) -> bool {
        match (self, other) {
            (Contention::Server(a), Contention::Server(b)) => a == b,
            (Contention::Path(a), Contention::Path(b)) => a.starts_with(b) || b.starts_with(a),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;

    #[test]
    fn pairs_sharing_a_server_or_a_path_share_a_group() {
        let mut text = String::from("status_path = \"/x/status\"\n");
        for (name, url) in [
            ("s1", "http://a.example/dav/"),
            ("s2", "http://a.example/other/"),
            ("s3", "https://b.example/"),
        ] {
            text.push_str(&format!(
                "[storage.{name}]\ntype = \"caldav\"\nurl = \"{url}\"\n"
            ));
        }
        for (name, path) in [
            ("v1", "/x/one"),
            ("v2", "/x/two"),
            ("v3", "/x/shared"),
            ("v4", "/x/shared/inner"),
            ("v5", "/x/five"),
            ("v6", "/x/six"),
            ("v7", "/x/seven"),
            ("v8", "/x/eight"),
            ("v9", "/x/nine"),
        ] {
            text.push_str(&format!(
                "[storage.{name}]\ntype = \"vdir\"\npath = \"{path}\"\nfileext = \".ics\"\n"
            ));
        }
        for (name, a, b) in [
            // One server: a_one and b_two.
            ("a_one", "v1", "s1"),
            ("b_two", "v2", "s2"),
            // Another server, and through f_local's vdir g_bridge ties f_local to it.
            ("c_other", "v5", "s3"),
            // A vdir inside another's directory.
            ("d_shared", "v3", "v6"),
            ("e_inner", "v4", "v7"),
            ("f_local", "v8", "v9"),
            ("g_bridge", "v8", "s3"),
        ] {
            text.push_str(&format!(
                "[pair.{name}]\na = \"{a}\"\nb = \"{b}\"\ncollections = \"from a\"\n"
            ));
        }
        let env: BTreeMap<String, String> = BTreeMap::new();
        let config =
            crate::config::parse(&text, Path::new("/x/config.toml"), &env).expect("config parses");
        assert_eq!(
            pair_groups(&config, config.pairs.values()),
            [vec![0, 1], vec![2, 5, 6], vec![3, 4]]
        );
    }
}
