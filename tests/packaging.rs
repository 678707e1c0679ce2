//! The Arch `packaging/arch/PKGBUILD`: its version is the crate's, and its `package()` (run by
//! bash as makepkg would, on a copy of the binary under test standing in for the dist build)
//! installs the binary, every man page, the completions, the user units, the README and the MIT
//! license text, and nothing else. The license: the crate's `license`, the two license files
//! and the Debian copyright file cargo-deb ships agree. The PKGBUILD has what makepkg reads
//! (makepkg and namcap are not needed), and the systemd user units pass
//! `systemd-analyze verify --user` where systemd is installed. (The .deb itself is checked by
//! `packaging/deb/check.sh`, run by `.ci/run`.)

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn pkgbuild_version_is_the_crate_version() {
    let pkgbuild = fs::read_to_string(Path::new(ROOT).join("packaging/arch/PKGBUILD")).unwrap();
    let pkgver = pkgbuild
        .lines()
        .find_map(|l| l.strip_prefix("pkgver="))
        .expect("a pkgver= line");
    assert_eq!(pkgver, env!("CARGO_PKG_VERSION"));
}

/// Every regular file below `dir`, relative, with its permission bits.
fn files(dir: &Path) -> BTreeMap<String, u32> {
    let mut found = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(current) = todo.pop() {
        for entry in fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                found.insert(rel, meta.permissions().mode() & 0o7777);
            }
        }
    }
    found
}

#[test]
fn pkgbuild_package_installs_what_a_user_needs() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target");
    fs::create_dir_all(target.join("dist")).unwrap();
    fs::copy(env!("CARGO_BIN_EXE_davsync"), target.join("dist/davsync")).unwrap();
    let pkgdir = tmp.path().join("pkg");
    let run = Command::new("bash")
        .arg("-c")
        .arg("set -euo pipefail; source PKGBUILD; package")
        .current_dir(Path::new(ROOT).join("packaging/arch"))
        .env("startdir", Path::new(ROOT).join("packaging/arch"))
        .env("pkgdir", &pkgdir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .expect("run bash");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let mut expected = BTreeMap::from([
        ("usr/bin/davsync".to_owned(), 0o755),
        ("usr/share/man/man5/davsync.toml.5".to_owned(), 0o644),
        (
            "usr/share/bash-completion/completions/davsync".to_owned(),
            0o644,
        ),
        ("usr/share/zsh/site-functions/_davsync".to_owned(), 0o644),
        (
            "usr/share/fish/vendor_completions.d/davsync.fish".to_owned(),
            0o644,
        ),
        ("usr/lib/systemd/user/davsync.service".to_owned(), 0o644),
        ("usr/lib/systemd/user/davsync.timer".to_owned(), 0o644),
        (
            "usr/lib/systemd/user/davsync-daemon.service".to_owned(),
            0o644,
        ),
        ("usr/share/doc/davsync/README.md".to_owned(), 0o644),
        ("usr/share/licenses/davsync/LICENSE-MIT".to_owned(), 0o644),
    ]);
    for entry in fs::read_dir(Path::new(ROOT).join("man")).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".1") {
            expected.insert(format!("usr/share/man/man1/{name}"), 0o644);
        }
    }
    assert_eq!(files(&pkgdir), expected);
    assert_eq!(
        fs::read(pkgdir.join("usr/share/licenses/davsync/LICENSE-MIT")).unwrap(),
        fs::read(Path::new(ROOT).join("LICENSE-MIT")).unwrap()
    );

    let version = Command::new(pkgdir.join("usr/bin/davsync"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("davsync {}", env!("CARGO_PKG_VERSION"))
    );
}

fn read(path: &str) -> String {
    fs::read_to_string(Path::new(ROOT).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn the_license_is_mit_or_apache_and_ships_with_the_packages() {
    assert_eq!(env!("CARGO_PKG_LICENSE"), "MIT OR Apache-2.0");
    let mit = read("LICENSE-MIT");
    assert!(mit.starts_with("MIT License\n\nCopyright (c) The davsync developers\n"));
    let apache = read("LICENSE-APACHE");
    assert!(
        apache.contains("Apache License\n                           Version 2.0, January 2004")
    );
    assert!(apache.contains("END OF TERMS AND CONDITIONS"));

    // makepkg joins the license array's entries with AND: the dual license is one expression.
    let pkgbuild = read("packaging/arch/PKGBUILD");
    assert!(pkgbuild.contains("\nlicense=('MIT OR Apache-2.0')\n"));

    // cargo-deb ships packaging/deb/copyright as /usr/share/doc/davsync/copyright (as it is,
    // since it is in Debian's machine-readable format), with a real maintainer.
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let deb = &manifest["package"]["metadata"]["deb"];
    assert_eq!(
        deb["license-file"],
        toml::Value::Array(vec!["packaging/deb/copyright".into(), "0".into()])
    );
    let maintainer = deb["maintainer"].as_str().unwrap();
    assert!(
        maintainer.starts_with("The davsync developers <") && maintainer.ends_with('>'),
        "{maintainer}"
    );
    let copyright = read("packaging/deb/copyright");
    assert!(copyright.starts_with(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
    ));
    assert!(
        copyright.contains(
            "\nFiles: *\nCopyright: The davsync developers\nLicense: MIT or Apache-2.0\n"
        )
    );
    // The MIT text in full, as a DEP-5 paragraph: each line indented, empty lines a dot.
    let mit_body: String = mit
        .lines()
        .skip_while(|l| !l.starts_with("Permission"))
        .map(|l| {
            if l.is_empty() {
                " .\n".to_owned()
            } else {
                format!(" {l}\n")
            }
        })
        .collect();
    assert!(
        copyright.contains(&format!("\nLicense: MIT\n{mit_body}")),
        "{copyright}"
    );
    assert!(copyright.contains("\nLicense: Apache-2.0\n"));
    assert!(copyright.contains("/usr/share/common-licenses/Apache-2.0"));
}

/// `systemd-analyze verify --user` on the three user units (with man pages not looked up:
/// they are installed only with a package). It exits 0 even for a unit it ignores lines of
/// ("Unknown key", "Failed to parse"), so any output fails the test. Where systemd-analyze is
/// missing (a machine without systemd) the test says so and checks nothing, except under
/// `CI=true`, where that is a failure.
#[test]
fn systemd_user_units_verify() {
    let units: Vec<_> = ["davsync.service", "davsync.timer", "davsync-daemon.service"]
        .iter()
        .map(|unit| Path::new(ROOT).join("packaging/systemd").join(unit))
        .collect();
    // `--user` wants a runtime directory; a test may run without a login session.
    let runtime = tempfile::tempdir().unwrap();
    let run = Command::new("systemd-analyze")
        .args(["verify", "--user", "--man=no"])
        .args(&units)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .output();
    let run = match run {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but systemd-analyze is missing: the user units cannot be verified"
            );
            println!("systemd-analyze not found: the user units were not verified");
            return;
        }
        run => run.expect("run systemd-analyze"),
    };
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success() && output.is_empty(), "{output}");
}

/// What makepkg would read of the PKGBUILD, without makepkg: bash parses it, it sets the
/// variables makepkg needs and defines the functions it runs.
#[test]
fn pkgbuild_has_what_makepkg_reads() {
    let run = Command::new("bash")
        .arg("-c")
        .arg(
            "set -euo pipefail; bash -n PKGBUILD; source PKGBUILD
             for v in pkgname pkgver pkgrel pkgdesc; do [[ -n ${!v} ]] || { echo \"no $v\"; exit 1; }; done
             (( ${#arch[@]} && ${#license[@]} && ${#makedepends[@]} )) || { echo 'empty array'; exit 1; }
             for f in prepare build check package; do declare -F \"$f\" >/dev/null || { echo \"no $f()\"; exit 1; }; done",
        )
        .current_dir(Path::new(ROOT).join("packaging/arch"))
        .output()
        .expect("run bash");
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}
