//! Man pages and shell completions are generated from the clap definitions; these tests fail
//! when the committed copies are stale (regenerate with
//! `cargo run -- generate --man man --completions packaging/completions`). The hand-written
//! davsync.toml(5) is checked against the config parser: its example must parse and every key
//! the parser accepts must be documented.

use std::fs;
use std::path::Path;

use assert_cmd::Command;

fn assert_same_files(generated: &Path, committed: &Path) {
    let mut names: Vec<_> = fs::read_dir(generated)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert!(
        !names.is_empty(),
        "nothing generated into {}",
        generated.display()
    );
    for name in names {
        let fresh = fs::read(generated.join(&name)).unwrap();
        let old = fs::read(committed.join(&name)).unwrap_or_default();
        assert!(
            fresh == old,
            "{} is stale: run `cargo run -- generate --man man --completions packaging/completions`",
            committed.join(&name).display()
        );
    }
}

#[test]
fn man_pages_and_completions_are_current() {
    let tmp = tempfile::tempdir().unwrap();
    let (man, completions) = (tmp.path().join("man"), tmp.path().join("completions"));
    Command::cargo_bin("davsync")
        .unwrap()
        .arg("generate")
        .arg("--man")
        .arg(&man)
        .arg("--completions")
        .arg(&completions)
        .assert()
        .success();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_same_files(&man, &root.join("man"));
    assert_same_files(&completions, &root.join("packaging/completions"));
}

#[test]
fn config_man_page_example_parses_and_documents_every_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = fs::read_to_string(root.join("man/davsync.toml.5")).unwrap();
    let example = page
        .split_once(".SH EXAMPLE\n.nf\n")
        .and_then(|(_, rest)| rest.split_once(".fi\n"))
        .map(|(example, _)| example)
        .expect("an EXAMPLE section between .nf and .fi");
    let env: std::collections::BTreeMap<String, String> =
        [("HOME".to_owned(), "/home/u".to_owned())].into();
    let config = davsync::config::parse(example, Path::new("/home/u/example.toml"), &env)
        .expect("the documented example is a valid config");
    assert_eq!(config.pairs.len(), 1);
    use davsync::config::{COMMON_STORAGE_KEYS, PAIR_KEYS, TOP_LEVEL_KEYS};
    let type_keys = davsync::storage::type_keys();
    let keys = TOP_LEVEL_KEYS
        .iter()
        .chain(COMMON_STORAGE_KEYS)
        .chain(&type_keys)
        .chain(PAIR_KEYS);
    let values = ["cmd", "from a", "from b", "all", "a wins", "b wins", "vdir"];
    for key in keys.chain(&values) {
        assert!(
            page.contains(key),
            "davsync.toml.5 does not mention {key:?}"
        );
    }
}
