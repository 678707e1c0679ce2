//! `davsync import-vdirsyncer` on the vdirsyncer configs under `fixtures/vdirsyncer/`: the
//! davsync config it writes (golden snapshots), that davsync's own parser accepts it, the
//! errors that name a line, and `-o` never replacing a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/vdirsyncer")
}

fn davsync() -> Command {
    let mut cmd = Command::cargo_bin("davsync").expect("binary");
    cmd.env_remove("VDIRSYNCER_CONFIG")
        .env_remove("DAVSYNC_CONFIG")
        .env("HOME", "/home/alice")
        .env_remove("XDG_CONFIG_HOME");
    cmd
}

/// Runs the import of fixture `name`; returns (exit code, stdout, stderr) with the fixture
/// directory shown as `[FIXTURES]`.
fn import(name: &str) -> (i32, String, String) {
    let out = davsync()
        .arg("import-vdirsyncer")
        .arg(fixtures().join(name))
        .output()
        .expect("runs");
    let dir = fixtures().display().to_string();
    let clean = |b: &[u8]| String::from_utf8_lossy(b).replace(&dir, "[FIXTURES]");
    (
        out.status.code().unwrap_or(-1),
        clean(&out.stdout),
        clean(&out.stderr),
    )
}

/// The config parses with davsync's own parser (as if it were ~/.config/davsync/config.toml).
fn parses(text: &str) -> davsync::config::Config {
    let env: BTreeMap<String, String> = [("HOME".to_owned(), "/home/alice".to_owned())].into();
    davsync::config::parse(
        text,
        Path::new("/home/alice/.config/davsync/config.toml"),
        &env,
    )
    .unwrap_or_else(|e| panic!("davsync rejects the imported config: {e}\n{text}"))
}

fn golden(name: &str) {
    let (code, stdout, stderr) = import(&format!("{name}.config"));
    assert_eq!(code, 0, "{stderr}");
    parses(&stdout);
    insta::assert_snapshot!(name, format!("{stdout}---- stderr ----\n{stderr}"));
}

#[test]
fn khal_and_khard_with_fetch_commands() {
    golden("khal_khard");
    let (_, stdout, _) = import("khal_khard.config");
    let config = parses(&stdout);
    assert_eq!(config.pairs.len(), 2);
}

#[test]
fn singlefile_and_http() {
    golden("singlefile_http");
}

#[test]
fn google() {
    golden("google");
}

#[test]
fn odd_options_become_comments() {
    golden("odd_options");
}

#[test]
fn a_broken_line_is_named_and_exits_2() {
    let (code, stdout, stderr) = import("broken.config");
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    insta::assert_snapshot!(stderr, @r#"davsync: [FIXTURES]/broken.config:8: expected "key = value", found "this line is not an option""#);
}

#[test]
fn output_file_is_written_once_and_never_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("config.toml");
    let source = fixtures().join("khal_khard.config");
    davsync()
        .arg("import-vdirsyncer")
        .arg(&source)
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let written = std::fs::read_to_string(&out).expect("written");
    parses(&written);
    std::fs::write(&out, "# mine\n").expect("write");
    let assert = davsync()
        .arg("import-vdirsyncer")
        .arg(&source)
        .arg("-o")
        .arg(&out)
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains("exists; not replacing it"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).expect("read"), "# mine\n");
}

#[test]
fn default_location_is_vdirsyncers() {
    let home = tempfile::tempdir().expect("tempdir");
    // Nothing there: the error names where it looked.
    let assert = davsync()
        .env("HOME", home.path())
        .arg("import-vdirsyncer")
        .assert()
        .code(2);
    let stderr = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
    assert!(stderr.contains(".vdirsyncer/config"), "{stderr}");
    // ~/.config/vdirsyncer/config is found.
    let xdg = home.path().join(".config/vdirsyncer");
    std::fs::create_dir_all(&xdg).expect("mkdir");
    std::fs::copy(fixtures().join("google.config"), xdg.join("config")).expect("copy");
    let assert = davsync()
        .env("HOME", home.path())
        .arg("import-vdirsyncer")
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&assert.get_output().stdout).contains("[storage.gcal]"));
    // $VDIRSYNCER_CONFIG beats it.
    davsync()
        .env("HOME", home.path())
        .env("VDIRSYNCER_CONFIG", fixtures().join("broken.config"))
        .arg("import-vdirsyncer")
        .assert()
        .code(2);
}
