//! Shell completion through the real binary: what `COMPLETE=<shell> davsync -- <words>` offers
//! (commands without the hidden `generate`, pairs, `PAIR/COLLECTION`, storages, all read from
//! the config the command line names), and the shipped bash script driving it.

mod common;

use common::{Sandbox, event};

const CONFIG: &str = r#"
status_path = "{root}/status"

[storage.laptop]
type = "vdir"
path = "{root}/a"
fileext = ".ics"

[storage.backup]
type = "vdir"
path = "{root}/b"
fileext = ".ics"

[storage.google]
type = "google_calendar"
client_id = "id"
client_secret = "secret"

[pair.demo]
a = "laptop"
b = "backup"
collections = "from a"

[pair.work]
a = "laptop"
b = "backup"
collections = ["todo", "cal"]
"#;

/// The values offered for the last word of `words` (fish's protocol: value, tab, help).
fn offered(sb: &Sandbox, words: &[&str]) -> Vec<String> {
    let mut args = vec!["--", "davsync"];
    args.extend_from_slice(words);
    let run = sb.run_env(&args, &[("COMPLETE", "fish")]);
    run.success();
    run.stdout
        .lines()
        .map(|line| line.split('\t').next().unwrap_or_default().to_owned())
        .collect()
}

fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.write_config(CONFIG);
    sb
}

#[test]
fn commands_are_offered_without_the_hidden_generate() {
    let sb = sandbox();
    let commands: Vec<String> = offered(&sb, &[""])
        .into_iter()
        .filter(|c| !c.starts_with('-'))
        .collect();
    assert_eq!(
        commands,
        [
            "sync",
            "daemon",
            "discover",
            "check",
            "status",
            "repair",
            "auth",
            "import-vdirsyncer",
            "help"
        ]
    );
    // Not even once its name is typed, nor as a topic of help.
    assert_eq!(offered(&sb, &["gen"]), Vec::<String>::new());
    assert!(!offered(&sb, &["help", ""]).contains(&"generate".to_owned()));
}

#[test]
fn pairs_come_from_the_config_with_their_storages_as_help() {
    let sb = sandbox();
    let run = sb.run_env(&["--", "davsync", "status", ""], &[("COMPLETE", "fish")]);
    let pairs: Vec<&str> = run.stdout.lines().filter(|l| !l.starts_with('-')).collect();
    assert_eq!(pairs, ["demo\tlaptop ↔ backup", "work\tlaptop ↔ backup"]);
    assert_eq!(offered(&sb, &["sync", "w"]), ["work"]);
    assert_eq!(offered(&sb, &["sync", "--force-delete", "d"]), ["demo"]);
    assert_eq!(offered(&sb, &["check", "d"]), ["demo"]);
    assert_eq!(offered(&sb, &["daemon", "w"]), ["work"]);
    assert_eq!(offered(&sb, &["discover", "d"]), ["demo"]);
}

#[test]
fn collections_come_from_the_config_list_or_from_earlier_syncs() {
    let sb = sandbox();
    // An explicit list, offered in order of name.
    assert_eq!(offered(&sb, &["sync", "work/"]), ["work/cal", "work/todo"]);
    assert_eq!(offered(&sb, &["sync", "work/t"]), ["work/todo"]);
    // Discovered collections: known once the pair has synced.
    assert_eq!(offered(&sb, &["sync", "demo/"]), Vec::<String>::new());
    sb.write("a/home/x.ics", event("x@example.org", "X"));
    sb.write("a/office/y.ics", event("y@example.org", "Y"));
    sb.run(&["sync", "demo"]).success();
    assert_eq!(
        offered(&sb, &["sync", "demo/"]),
        ["demo/home", "demo/office"]
    );
    assert_eq!(
        offered(&sb, &["sync", "--force-delete", "demo/o"]),
        ["demo/office"]
    );
    assert_eq!(offered(&sb, &["sync", "nopair/"]), Vec::<String>::new());
}

#[test]
fn the_config_named_on_the_command_line_is_the_one_read() {
    let sb = sandbox();
    sb.write(
        "other.toml",
        sb.expand(
            r#"
            status_path = "{root}/status"
            [storage.x]
            type = "vdir"
            path = "{root}/x"
            fileext = ".ics"
            [storage.y]
            type = "vdir"
            path = "{root}/y"
            fileext = ".ics"
            [pair.elsewhere]
            a = "x"
            b = "y"
            "#,
        ),
    );
    for words in [
        &["-c", "other.toml", "status", ""][..],
        &["status", "--config", "other.toml", ""],
        &["--config=other.toml", "status", ""],
    ] {
        let pairs: Vec<String> = offered(&sb, words)
            .into_iter()
            .filter(|c| !c.starts_with('-'))
            .collect();
        assert_eq!(pairs, ["elsewhere"], "{words:?}");
    }
    // A config that does not load offers nothing, and prints no error into the command line.
    let run = sb.run_env(
        &["--", "davsync", "-c", "missing.toml", "sync", "d"],
        &[("COMPLETE", "fish")],
    );
    run.success();
    assert_eq!((run.stdout.as_str(), run.stderr.as_str()), ("", ""));
}

#[test]
fn storages_for_repair_and_only_google_ones_for_auth() {
    let sb = sandbox();
    let storages = |words: &[&str]| -> Vec<String> {
        offered(&sb, words)
            .into_iter()
            .filter(|c| !c.starts_with('-'))
            .collect()
    };
    assert_eq!(storages(&["repair", ""]), ["backup", "google", "laptop"]);
    assert_eq!(storages(&["auth", ""]), ["google"]);
}

#[test]
fn the_shipped_bash_script_completes_through_the_binary() {
    let sb = sandbox();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/completions/davsync.bash"
    );
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_davsync"))
        .parent()
        .expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // What bash sets before calling a completion function for `davsync sync w<Tab>`.
    let complete = r#"
        source "$1"
        complete -p davsync
        COMP_WORDS=(davsync sync w); COMP_CWORD=2; COMP_TYPE=9
        _clap_complete_davsync davsync w sync
        printf '%s\n' "${COMPREPLY[@]}"
        COMP_WORDS=(davsync ''); COMP_CWORD=1
        _clap_complete_davsync davsync '' davsync
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let run = std::process::Command::new("bash")
        .arg("-c")
        .arg(complete)
        .arg("bash")
        .arg(script)
        .current_dir(sb.root())
        .env("DAVSYNC_CONFIG", sb.config_path())
        .env("HOME", sb.home())
        .env("PATH", path)
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut lines = stdout.lines();
    assert!(
        lines.next().is_some_and(|l| l.ends_with(" davsync")),
        "{stdout}"
    );
    let rest: Vec<&str> = lines.collect();
    assert_eq!(rest.first(), Some(&"work"), "{stdout}");
    assert!(
        rest.contains(&"sync") && !rest.contains(&"generate"),
        "{stdout}"
    );
}
