//! The Python virtualenv holding pinned DAV servers and vdir clients, installed once per
//! machine under `target/dav-venv` and shared by every test binary and run.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// Exact pins, written to `target/dav-venv/requirements.txt`. Changing this text makes the
/// next test run rebuild the venv from scratch.
pub const REQUIREMENTS: &str = "\
radicale==3.9.0
xandikos==0.4.10
khal==0.14.1
khard==0.22.0
vdirsyncer==0.21.0
";

/// The interpreter used to create the venv: `$DAVSYNC_TEST_PYTHON` or `python3`.
fn python() -> String {
    std::env::var("DAVSYNC_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Cargo's target directory (`target/`), the parent of `CARGO_TARGET_TMPDIR`.
pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR has a parent")
        .to_path_buf()
}

/// Path of the venv, installing it first if needed (blocking; serialized across processes
/// with a lock file). Panics with pip's output if the install fails.
pub fn venv() -> &'static Path {
    static VENV: OnceLock<PathBuf> = OnceLock::new();
    VENV.get_or_init(install).as_path()
}

/// `venv()/bin/NAME`, e.g. `venv_bin("khal")`.
pub fn venv_bin(name: &str) -> PathBuf {
    venv().join("bin").join(name)
}

fn describe(cmd: &str, out: &Output) -> String {
    format!(
        "{cmd} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn install() -> PathBuf {
    let target = target_dir();
    fs::create_dir_all(&target).expect("create target dir");
    let dir = target.join("dav-venv");
    let marker = dir.join(".davsync-installed");

    // The marker also names the interpreter, so a changed Python rebuilds the venv...
    let py = python();
    let version = Command::new(&py)
        .args(["-c", "import sys; print(sys.version.split()[0])"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py} to build the DAV test venv: {e}"));
    assert!(
        version.status.success(),
        "{}",
        describe(&format!("{py} -c ..."), &version)
    );
    // ... and the venv's path, since its scripts have it in their `#!` line.
    let wanted = format!(
        "{REQUIREMENTS}# python {}\n# path {}\n",
        String::from_utf8_lossy(&version.stdout).trim(),
        dir.display()
    );

    let lock_path = target.join("dav-venv.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("open {}: {e}", lock_path.display()));
    lock.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));

    let done = fs::read_to_string(&marker).is_ok_and(|m| m == wanted)
        && dir.join("bin/radicale").exists()
        && dir.join("bin/xandikos").exists()
        && dir.join("bin/vdirsyncer").exists();
    if !done {
        let started = std::time::Instant::now();
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .unwrap_or_else(|e| panic!("remove stale {}: {e}", dir.display()));
        }
        let out = Command::new(&py)
            .arg("-m")
            .arg("venv")
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {py} -m venv: {e}"));
        assert!(out.status.success(), "{}", describe("python -m venv", &out));
        let req = dir.join("requirements.txt");
        fs::write(&req, REQUIREMENTS).expect("write requirements.txt");
        let out = Command::new(dir.join("bin/pip"))
            .args([
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
                "-r",
            ])
            .arg(&req)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run pip: {e}"));
        assert!(
            out.status.success(),
            "{}",
            describe(&format!("pip install -r {}", req.display()), &out)
        );
        let tmp = dir.join(".davsync-installed.tmp");
        fs::write(&tmp, &wanted).expect("write venv marker");
        fs::rename(&tmp, &marker).expect("rename venv marker");
        eprintln!(
            "dav_support: installed the DAV test venv at {} in {:.1} s",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
    }
    drop(lock); // releases the lock
    dir
}

/// Runs the venv tool `name` (khal, khard, vdirsyncer) with `-c config` and `args`, with `$HOME` (and the
/// XDG directories inside it) at `home`, UTC and a UTF-8 locale; its stdout, after checking
/// that it exited 0.
pub fn tool_output(name: &str, home: &Path, config: &Path, args: &[&str]) -> String {
    let output = Command::new(venv_bin(name))
        .current_dir(home)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_STATE_HOME", home.join(".local/state"))
        .env("XDG_CACHE_HOME", home.join(".cache"))
        .env("TZ", "UTC")
        .env("LC_ALL", "C.UTF-8")
        .env("LANG", "C.UTF-8")
        .arg("-c")
        .arg(config)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {name}: {e}"));
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name}: {}\n{out}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    out
}
