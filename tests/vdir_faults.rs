//! Real local faults under the `davsync` binary: entries that cannot be read, a read-only
//! directory, a full file system, a damaged status database, unmounted disks and a vdir path
//! that does not exist yet. The rule checked everywhere: what cannot be read is reported by
//! name with exit 1 and is never deleted anywhere, and the next clean run converges.

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use common::{Run, Sandbox, event, vdir_pair_config};

fn synced(items: &[(&str, String)]) -> Sandbox {
    let sb = Sandbox::with_vdir_pair("");
    for (name, content) in items {
        sb.write(&format!("a/{name}"), content);
    }
    sb.run(&["sync"]).success();
    sb
}

fn items(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            let uid = format!("item{i}@example.org");
            (format!("{uid}.ics"), event(&uid, &format!("Item {i}")))
        })
        .collect()
}

fn as_refs(items: &[(String, String)]) -> Vec<(&str, String)> {
    items.iter().map(|(n, c)| (n.as_str(), c.clone())).collect()
}

#[track_caller]
fn assert_names(run: &Run, names: &[&str]) {
    for name in names {
        assert!(
            run.stderr.contains(name),
            "{name} not named:\n{}",
            run.stderr
        );
    }
}

#[test]
fn entries_that_cannot_be_read_are_unreadable_never_deleted() {
    let all = items(4);
    let sb = synced(&as_refs(&all));
    let b = sb.state("b");
    // item0: a symlink loop (ELOOP); item1: a directory (EISDIR); item2: a per-file symlink
    // into a disk that is not mounted (ENOENT behind an entry that is there).
    let a = |i: usize| sb.path(&format!("a/{}", all[i].0));
    std::fs::remove_file(a(0)).unwrap();
    symlink(a(0), a(0)).unwrap();
    std::fs::remove_file(a(1)).unwrap();
    std::fs::create_dir(a(1)).unwrap();
    std::fs::remove_file(a(2)).unwrap();
    symlink(sb.path("unmounted/disk/item2.ics"), a(2)).unwrap();

    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert_names(&run, &[&all[0].0, &all[1].0, &all[2].0]);
    assert_eq!(sb.state("b"), b, "nothing deleted on b");
    assert_eq!(sb.status_items("cal"), 4, "the status still knows them all");

    // The disk is mounted again and the user repairs the other two: all converges.
    std::fs::remove_file(a(0)).unwrap();
    sb.write(&format!("a/{}", all[0].0), &all[0].1);
    std::fs::remove_dir(a(1)).unwrap();
    sb.write(&format!("a/{}", all[1].0), &all[1].1);
    sb.write("unmounted/disk/item2.ics", &all[2].1);
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: in sync");
    assert_eq!(sb.state("b"), b);
}

/// Makes a directory immutable (`chattr +i`, which binds root too, unlike mode bits) for as
/// long as the guard lives.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Immutable {
        let status = StdCommand::new("chattr").arg("+i").arg(path).status();
        assert!(
            status.as_ref().is_ok_and(|s| s.success()),
            "chattr +i {} failed ({status:?}): this test needs a file system with \
             immutable attributes and the capability to set them",
            path.display()
        );
        Immutable(path.to_owned())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = StdCommand::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn read_only_directory_fails_the_writes_by_name_and_converges() {
    let all = items(3);
    let sb = synced(&as_refs(&all));
    // An edit, a new item and a deletion on a, while b's directory refuses every change.
    sb.write(
        &format!("a/{}", all[0].0),
        event("item0@example.org", "Item 0, moved"),
    );
    sb.write("a/new@example.org.ics", event("new@example.org", "New"));
    sb.remove(&format!("a/{}", all[1].0));
    let a = sb.state("a");
    let b = sb.state("b");
    let guard = Immutable::set(&sb.path("b"));
    let run = sb.run(&["sync"]);
    drop(guard);
    run.expect_code(1);
    assert_names(&run, &[&all[0].0, "new@example.org.ics", &all[1].0]);
    assert_eq!(sb.state("a"), a, "nothing written or deleted on a");
    assert_eq!(sb.state("b"), b, "nothing changed on b");

    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 1 created, 1 updated, 1 deleted, 0 conflicts, 0 errors");
    assert_eq!(sb.ls("a"), sb.ls("b"));
    assert_eq!(
        sb.read(&format!("b/{}", all[0].0)),
        sb.read(&format!("a/{}", all[0].0))
    );
    sb.run(&["sync"]).success().expect_stdout("cal: in sync");
}

/// Runs `davsync ARGS` in the sandbox with files limited to `limit` bytes (`RLIMIT_FSIZE`, a
/// full file system as the writing process sees it: writes beyond fail with `EFBIG`).
fn run_with_file_size_limit(sb: &Sandbox, args: &[&str], limit: u64) -> Run {
    let template = sb.cmd();
    let mut cmd = StdCommand::new(template.get_program());
    for (key, value) in template.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    cmd.current_dir(sb.root()).args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // Without this the kernel kills the process with SIGXFSZ instead of failing the write.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = cmd.output().expect("run davsync");
    Run {
        code: output.status.code(),
        stdout: sb.normalize(&String::from_utf8_lossy(&output.stdout)),
        stderr: sb.normalize(&String::from_utf8_lossy(&output.stderr)),
    }
}

#[test]
fn full_file_system_fails_the_write_by_name_and_converges() {
    let all = items(2);
    let sb = synced(&as_refs(&all));
    let big = common::EventBuilder::new("Big")
        .uid("big@example.org")
        .description(&"x".repeat(300 * 1024))
        .build();
    sb.write("a/big@example.org.ics", &big);
    sb.write(
        "a/small@example.org.ics",
        event("small@example.org", "Small"),
    );
    sb.remove(&format!("a/{}", all[0].0));
    let a = sb.state("a");

    let run = run_with_file_size_limit(&sb, &["sync"], 128 * 1024);
    run.expect_code(1);
    assert_names(&run, &["big@example.org.ics"]);
    assert_eq!(sb.state("a"), a, "nothing written or deleted on a");
    assert!(!sb.exists("b/big@example.org.ics"));
    assert!(
        sb.ls("b").iter().all(|n| !n.starts_with('.')),
        "no temporary file left: {:?}",
        sb.ls("b")
    );

    let run = sb.run(&["sync"]);
    run.success();
    assert_eq!(sb.ls("a"), sb.ls("b"));
    assert_eq!(sb.read("b/big@example.org.ics"), big.as_bytes());
    sb.run(&["sync"]).success().expect_stdout("cal: in sync");
}

/// A status database damaged in two ways: garbage in place of it, and a copy cut in half.
#[test]
fn damaged_status_database_is_an_error_naming_it_and_writes_nothing() {
    for damage in ["garbage", "truncated"] {
        let all = items(40);
        let sb = synced(&as_refs(&all));
        let db = sb.path("status/cal.db");
        match damage {
            "garbage" => std::fs::write(&db, vec![0x5a; 64 * 1024]).unwrap(),
            _ => {
                let len = std::fs::metadata(&db).unwrap().len();
                let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
                file.set_len(len / 2).unwrap();
            }
        }
        for leftover in ["status/cal.db-wal", "status/cal.db-shm"] {
            if sb.exists(leftover) {
                sb.remove(leftover);
            }
        }
        // Changes on both sides that a working run would copy and delete.
        sb.write("a/new@example.org.ics", event("new@example.org", "New"));
        sb.remove(&format!("b/{}", all[0].0));
        let (a, b) = (sb.state("a"), sb.state("b"));
        let run = sb.run(&["sync"]);
        run.expect_code(1);
        assert!(
            run.stderr.contains("[TMP]/status/cal.db"),
            "{damage}: the database is not named:\n{}",
            run.stderr
        );
        assert_eq!(sb.state("a"), a, "{damage}: a untouched");
        assert_eq!(sb.state("b"), b, "{damage}: b untouched");
    }
}

/// Both disks "unmounted": each vdir directory is moved away and an empty one stands in its
/// place, as an empty mount point would.
#[test]
fn both_sides_empty_is_refused_and_nothing_is_forgotten() {
    let all = items(3);
    let sb = synced(&as_refs(&all));
    // A deletion on a that the next sync should carry to b.
    sb.remove(&format!("a/{}", all[0].0));
    for side in ["a", "b"] {
        std::fs::rename(sb.path(side), sb.path(&format!("{side}.disk"))).unwrap();
        sb.mkdir(side);
    }
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("error: cal: not synced: both sides list no items but 3 were synced before")
            && run.stderr.contains("--force-delete"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.status_items("cal"), 3);

    // Mounted again: the deletion made before still reaches b, nothing comes back.
    for side in ["a", "b"] {
        std::fs::remove_dir(sb.path(side)).unwrap();
        std::fs::rename(sb.path(&format!("{side}.disk")), sb.path(side)).unwrap();
    }
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: 0 created, 0 updated, 1 deleted");
    assert_eq!(sb.ls("a"), [all[1].0.as_str(), all[2].0.as_str()]);
    assert_eq!(sb.ls("b"), sb.ls("a"));
}

#[test]
fn force_delete_applies_only_to_what_it_names() {
    let sb = Sandbox::with_vdir_pair(r#"collections = "from a""#);
    sb.write("a/work/standup.ics", event("work@example.org", "Standup"));
    sb.write("a/home/gym.ics", event("gym@example.org", "Gym"));
    sb.write("a/other/x.ics", event("x@example.org", "X"));
    sb.run(&["sync"]).success();
    sb.remove("a/work/standup.ics");
    sb.remove("a/home/gym.ics");
    let home = sb.state("b/home");

    // The whole pair syncs; only its collection `work` may lose items.
    let run = sb.run(&["sync", "cal", "--force-delete", "cal/work"]);
    run.expect_code(1);
    assert!(sb.ls("b/work").is_empty(), "work was forced");
    assert_eq!(sb.state("b/home"), home, "home was not named");
    assert!(
        run.stderr
            .contains("error: cal/home: not synced: side a lists no items"),
        "{}",
        run.stderr
    );

    // Without a pair it is a usage error that says what it needs.
    let run = sb.run(&["sync", "--force-delete"]);
    run.expect_code(2);
    assert!(run.stderr.contains("PAIR[/COLLECTION]"), "{}", run.stderr);
    assert_eq!(sb.state("b/home"), home);

    // `sync --force-delete PAIR` syncs that pair alone, forced.
    sb.run(&["sync", "--force-delete", "cal"]).success();
    assert!(sb.ls("b/home").is_empty());
}

#[test]
fn missing_vdir_path_is_created_on_a_first_sync_and_refused_later() {
    let sb = Sandbox::new();
    sb.write_config(&vdir_pair_config(".ics", ""));
    sb.write("a/lunch.ics", event("lunch@example.org", "Lunch"));
    // b does not exist yet, as after following the usual setup.
    let run = sb.run(&["sync"]);
    run.success();
    run.expect_stdout("cal: created [TMP]/b (did not exist yet)");
    run.expect_stdout("cal: 1 created");
    let mode = std::fs::metadata(sb.path("b"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(sb.ls("b"), ["lunch@example.org.ics"]);

    // Now the status knows items: a missing b is an unmounted disk, never recreated empty.
    std::fs::rename(sb.path("b"), sb.path("b.disk")).unwrap();
    let a = sb.state("a");
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("[TMP]/b: missing — unmounted?"),
        "{}",
        run.stderr
    );
    assert!(!sb.exists("b"), "not recreated");
    assert_eq!(sb.state("a"), a);
}

#[test]
fn an_item_over_64_mib_is_unreadable_by_name() {
    let all = items(1);
    let sb = synced(&as_refs(&all));
    // Sparse: 65 MiB that take no room and no time to write.
    let big = std::fs::File::create(sb.path("a/huge.ics")).unwrap();
    big.set_len(65 * 1024 * 1024).unwrap();
    let b = sb.state("b");
    let run = sb.run(&["sync"]);
    run.expect_code(1);
    assert!(
        run.stderr.contains("[TMP]/a/huge.ics: larger than 64 MiB"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.state("b"), b);
}
