//! `davsync import-vdirsyncer` on the vdirsyncer configs under `fixtures/vdirsyncer/`: the
//! davsync config it writes (golden snapshots), that davsync's own parser accepts it, the
//! errors that name a line, and `-o` never replacing a file. Then adoption: vdirsyncer 0.21
//! itself syncs a vdir with Radicale, its config is imported, and davsync's first sync writes
//! nothing on either side and reports no conflict.

mod dav_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use dav_support::{DavServer, Radicale, tool_output};

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

fn event(uid: &str, summary: &str, day: u32) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n\
         DTSTAMP:20260101T000000Z\r\nDTSTART:202605{day:02}T100000Z\r\n\
         DTEND:202605{day:02}T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// (file name, mtime in ns, inode, size) of every file under `dir`, sorted.
fn vdir_state(dir: &Path) -> Vec<(String, i128, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read vdir") {
        let entry = entry.expect("entry");
        let meta = entry.metadata().expect("metadata");
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            meta.ino(),
            meta.len(),
        ));
    }
    out.sort();
    out
}

#[test]
fn adoption_after_vdirsyncer_writes_nothing() {
    let server = Radicale::start();
    let client = server.client();
    let calendar = format!("{}work/", server.calendar_home_url());
    assert!(client.mkcalendar(&calendar).is_success());
    // Two events made on the server, three in the vdir: vdirsyncer copies each way, and
    // Radicale re-serializes what it is sent.
    for (uid, day) in [("server-1", 4), ("server-2", 5)] {
        let put = client.put_item(
            &format!("{calendar}{uid}.ics"),
            event(uid, &format!("made on the server {day}"), day).as_bytes(),
        );
        assert!(put.is_success(), "{}", put.text());
    }
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    let vdir = home.join("calendars/work");
    std::fs::create_dir_all(&vdir).expect("mkdir");
    for (uid, day) in [("local-1", 1), ("local-2", 2), ("local-3", 3)] {
        std::fs::write(
            vdir.join(format!("{uid}.ics")),
            event(uid, &format!("made locally {day}"), day),
        )
        .expect("write");
    }
    std::fs::write(home.join("pw"), format!("{}\n", Radicale::PASSWORD)).expect("pw");
    let vconfig = home.join("vdirsyncer.config");
    std::fs::write(
        &vconfig,
        format!(
            "[general]\nstatus_path = \"~/vdirsyncer-status/\"\n\n\
             [pair cal]\na = \"local\"\nb = \"remote\"\ncollections = [\"from a\", \"from b\"]\n\
             metadata = [\"displayname\"]\n\n\
             [storage local]\ntype = \"filesystem\"\npath = \"~/calendars/\"\nfileext = \".ics\"\n\n\
             [storage remote]\ntype = \"caldav\"\nurl = \"{}\"\nusername = \"{}\"\n\
             password.fetch = [\"command\", \"cat\", \"~/pw\"]\n",
            server.url(),
            Radicale::USER
        ),
    )
    .expect("vdirsyncer config");
    tool_output("vdirsyncer", home, &vconfig, &["discover"]);
    tool_output("vdirsyncer", home, &vconfig, &["sync"]);
    tool_output("vdirsyncer", home, &vconfig, &["metasync"]);
    let synced = vdir_state(&vdir);
    // Five items, and the display name metasync copied from the server.
    assert_eq!(synced.len(), 6, "vdirsyncer synced both ways: {synced:?}");

    let dconfig = home.join("davsync.toml");
    davsync()
        .env("HOME", home)
        .arg("import-vdirsyncer")
        .arg(&vconfig)
        .arg("-o")
        .arg(&dconfig)
        .assert()
        .success();
    let before = server.logged_requests().len();
    // The log is read right: vdirsyncer's uploads of the three local events are in it.
    let puts = server.logged_requests()[..before]
        .iter()
        .filter(|(method, path)| method == "PUT" && path.contains("/local-"))
        .count();
    assert_eq!(puts, 3);
    let run = davsync()
        .env("HOME", home)
        .arg("-c")
        .arg(&dconfig)
        .arg("sync")
        .output()
        .expect("davsync sync");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert!(run.status.success(), "{stdout}\n{stderr}");
    assert!(
        !format!("{stdout}{stderr}").contains("conflict:"),
        "{stdout}\n{stderr}"
    );
    assert_eq!(
        vdir_state(&vdir),
        synced,
        "the vdir was written:\n{stdout}\n{stderr}"
    );
    let writes: Vec<_> = server.logged_requests()[before..]
        .iter()
        .filter(|(method, _)| !["GET", "PROPFIND", "REPORT", "OPTIONS"].contains(&method.as_str()))
        .cloned()
        .collect();
    assert!(
        writes.is_empty(),
        "davsync wrote to the server: {writes:?}\n{stdout}\n{stderr}"
    );
    insta::assert_snapshot!(stdout.replace(&server.url(), "[URL]"), @"cal/work: in sync");
}
