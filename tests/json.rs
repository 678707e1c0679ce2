//! `--json` on `sync`, `status`, `discover` and `check`: the real output of each command,
//! in runs with changes, a conflict, an unreadable item, a refused collection, a collection
//! gone for good, a dry run, a config error, and against Radicale, validated against its
//! schema in `docs/schema/` (JSON Schema 2020-12), plus what a script would read from it.
//! The schemas are strict (no unknown members, every member required): a wrong document is
//! shown to fail, so the validator is known to look.

mod common;
mod dav_support;

use std::path::Path;

use common::{Run, Sandbox, event};
use dav_support::{DavServer, Radicale};
use serde_json::{Value, json};

/// The schema `docs/schema/<command>.json`, checked against the 2020-12 meta-schema.
fn validator(command: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/schema/{command}.json"));
    let text = std::fs::read_to_string(&path).expect("read the schema");
    let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::draft202012::new(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()))
}

/// The errors of `doc` against `command`'s schema, one per line.
fn errors(command: &str, doc: &Value) -> Vec<String> {
    validator(command)
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Runs `davsync ARGS` (the command first, `--json` added) with `env`, checks that stdout is
/// one JSON document valid against the command's schema whose `exit` matches the exit
/// status, and returns it with the run.
fn json_run(sb: &Sandbox, args: &[&str], env: &[(&str, &str)]) -> (Value, Run) {
    let mut all = args.to_vec();
    all.push("--json");
    let run = sb.run_env(&all, env);
    let doc: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", run.both()));
    let problems = errors(args[0], &doc);
    assert!(
        problems.is_empty(),
        "davsync {} --json does not match docs/schema/{}.json:\n{}\n{}",
        args.join(" "),
        args[0],
        problems.join("\n"),
        run.both()
    );
    assert_eq!(
        doc["schema"],
        json!(format!("davsync/{}/1", args[0])),
        "{}",
        run.stdout
    );
    assert_eq!(
        doc["exit"]["code"].as_i64(),
        run.code.map(i64::from),
        "{}",
        run.both()
    );
    (doc, run)
}

/// The collection `name` of the first pair of a sync document.
fn collection<'d>(doc: &'d Value, name: &str) -> &'d Value {
    doc["pairs"][0]["collections"]
        .as_array()
        .expect("collections")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no collection {name} in {doc:#}"))
}

fn two_collections() -> Sandbox {
    let sb = Sandbox::with_vdir_pair(r#"collections = "all""#);
    sb.write(
        "a/work/standup.ics",
        event("standup@example.org", "Standup"),
    );
    sb.write("a/work/review.ics", event("review@example.org", "Review"));
    sb.write("a/home/gym.ics", event("gym@example.org", "Gym"));
    sb.write("a/trips/rome.ics", event("rome@example.org", "Rome"));
    sb
}

#[test]
fn every_command_on_a_vdir_pair_matches_its_schema() {
    let sb = two_collections();

    // A first sync: every action with where it came from.
    let (doc, run) = json_run(&sb, &["sync"], &[]);
    run.success();
    assert_eq!(
        doc["exit"],
        json!({"code": 0, "status": "ok", "message": null})
    );
    let work = collection(&doc, "work");
    assert_eq!(work["counts"]["created"], 2);
    assert_eq!(work["counts"]["by_side"]["b"]["created"], 2);
    assert_eq!(work["collection_created"], json!(["b"]));
    let create = &work["actions"][0];
    assert_eq!(create["kind"], "create");
    assert_eq!(create["outcome"], "applied");
    assert_eq!(create["to"], "b");
    assert_eq!(create["source"]["side"], "a");
    assert!(
        create["source"]["location"]
            .as_str()
            .is_some_and(|l| l.ends_with("/a/work/review.ics")),
        "{create:#}"
    );
    // People's text went to stderr.
    assert!(
        run.stderr
            .contains("cal/work: 2 created, 0 updated, 0 deleted"),
        "{}",
        run.stderr
    );

    // A conflict in work, an unreadable item in home, trips emptied on b (refused).
    sb.write(
        "a/work/standup.ics",
        event("standup@example.org", "Standup on a"),
    );
    sb.write(
        "b/work/standup@example.org.ics",
        event("standup@example.org", "Standup on b"),
    );
    sb.write("a/home/broken.ics", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n");
    sb.remove("b/trips/rome@example.org.ics");
    let (doc, run) = json_run(&sb, &["sync"], &[]);
    run.expect_code(1);
    assert_eq!(doc["exit"]["status"], "unsynced");
    let work = collection(&doc, "work");
    assert_eq!(work["clean"], false);
    let conflict = &work["conflicts"][0];
    assert_eq!(conflict["ident"], "standup@example.org");
    assert!(
        conflict["b"]["location"]
            .as_str()
            .is_some_and(|l| l.ends_with("/b/work/standup@example.org.ics")),
        "{conflict:#}"
    );
    let home = collection(&doc, "home");
    assert_eq!(home["counts"]["errors"], 1);
    assert!(
        home["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("/a/home/broken.ics")),
        "{home:#}"
    );
    let trips = collection(&doc, "trips");
    assert!(
        trips["refused"]
            .as_str()
            .is_some_and(|r| r.contains("side b lists no items")),
        "{trips:#}"
    );

    // A dry run plans.
    sb.write("a/work/new.ics", event("new@example.org", "New"));
    let (doc, _) = json_run(&sb, &["sync", "--dry-run", "cal/work"], &[]);
    assert_eq!(doc["dry_run"], true);
    assert_eq!(collection(&doc, "work")["actions"][0]["outcome"], "planned");

    // status, discover, check.
    let (doc, _) = json_run(&sb, &["status"], &[]);
    let pair = &doc["pairs"][0];
    assert_eq!(pair["synced"], true);
    let work = pair["collections"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "work"))
        .expect("work in status");
    assert_eq!(work["conflicts"][0]["ident"], "standup@example.org");
    let (doc, run) = json_run(&sb, &["discover"], &[]);
    run.success();
    assert_eq!(
        doc["pairs"][0]["storages"],
        json!({"a": "laptop", "b": "backup"})
    );
    assert_eq!(
        doc["pairs"][0]["collections"].as_array().map(Vec::len),
        Some(3)
    );
    let (doc, run) = json_run(&sb, &["check"], &[]);
    run.success();
    assert_eq!(doc["problems"], 0);
    assert_eq!(doc["storages"][0]["type"], "vdir");

    // A collection gone from both sides: reported once and forgotten.
    for side in ["a", "b"] {
        std::fs::remove_dir_all(sb.path(&format!("{side}/trips"))).expect("remove trips");
    }
    let (doc, _) = json_run(&sb, &["sync"], &[]);
    let gone = &doc["pairs"][0]["gone"][0];
    assert_eq!(gone["name"], "trips");
    assert_eq!(gone["gone_from"], json!(["a", "b"]));
    assert_eq!(gone["forgotten"], true);
}

/// A deletion a failing `pre_deletion_hook` stops is a failed action, with why.
#[test]
fn a_failed_action_says_why() {
    let sb = Sandbox::new();
    sb.mkdir("a");
    sb.mkdir("b");
    sb.write_config(&common::vdir_pair_config(".ics", "").replace(
        "path = \"{root}/b\"",
        "path = \"{root}/b\"\npre_deletion_hook = [\"false\"]",
    ));
    sb.write("a/gym.ics", event("gym@example.org", "Gym"));
    sb.write("a/keep.ics", event("keep@example.org", "Keep"));
    sb.run(&["sync"]).success();
    sb.remove("a/gym.ics");
    let (doc, run) = json_run(&sb, &["sync"], &[]);
    run.expect_code(1);
    let cal = collection(&doc, "");
    let delete = &cal["actions"][0];
    assert_eq!(delete["kind"], "delete", "{cal:#}");
    assert_eq!(delete["outcome"], "failed");
    assert_eq!(delete["to"], "b");
    assert!(
        delete["message"]
            .as_str()
            .is_some_and(|m| m.contains("pre_deletion_hook")),
        "{delete:#}"
    );
    assert_eq!(cal["counts"]["by_side"]["b"]["deleted"], 0);
    assert_eq!(cal["counts"]["errors"], 1);
}

#[test]
fn a_config_error_still_prints_a_document() {
    let sb = Sandbox::new();
    sb.write_config("[pair.p]\na = \"nowhere\"\n");
    for command in ["sync", "status", "discover", "check"] {
        let (doc, run) = json_run(&sb, &[command], &[]);
        run.expect_code(2);
        assert_eq!(doc["exit"]["status"], "usage", "{}", run.both());
    }
}

#[test]
fn a_wrong_document_fails_validation() {
    let sb = two_collections();
    let (doc, _) = json_run(&sb, &["sync"], &[]);
    let mut unknown = doc.clone();
    unknown["pairs"][0]["collections"][0]["surprise"] = json!(1);
    let mut missing = doc.clone();
    missing["pairs"][0]["collections"][0]
        .as_object_mut()
        .expect("an object")
        .remove("counts");
    let mut wrong_type = doc.clone();
    wrong_type["pairs"][0]["collections"][0]["counts"]["created"] = json!("two");
    let mut wrong_kind = doc.clone();
    wrong_kind["pairs"][0]["collections"][0]["actions"][0]["kind"] = json!("copy");
    let mut other_version = doc;
    other_version["schema"] = json!("davsync/sync/2");
    for (what, bad) in [
        ("an unknown member", unknown),
        ("a missing member", missing),
        ("a count as text", wrong_type),
        ("an unknown action kind", wrong_kind),
        ("another version", other_version),
    ] {
        assert!(!errors("sync", &bad).is_empty(), "{what} passes the schema");
    }
    assert!(!errors("status", &json!({"schema": "davsync/status/1"})).is_empty());
}

#[test]
fn every_command_against_radicale_matches_its_schema() {
    let server = Radicale::start();
    let sb = Sandbox::new();
    sb.write("cals/work/a.ics", event("a@example.org", "A"));
    sb.write_config(&format!(
        r#"status_path = "{{root}}/status"
[storage.local]
type = "vdir"
path = "{{root}}/cals"
fileext = ".ics"
[storage.server]
type = "caldav"
url = "{url}"
username = "alice"
password = {{ env = "DAVSYNC_TEST_PW" }}
[pair.p]
a = "local"
b = "server"
collections = "from a"
"#,
        url = server.url()
    ));
    let env = [("DAVSYNC_TEST_PW", server.password())];
    let (doc, run) = json_run(&sb, &["sync"], &env);
    run.success();
    let work = collection(&doc, "work");
    assert_eq!(work["counts"]["by_side"]["b"]["created"], 1);
    assert!(
        work["location"]["b"]
            .as_str()
            .is_some_and(|l| l.starts_with(&server.url())),
        "{work:#}"
    );
    // The server's copy changes: an update whose source is a URL.
    sb.write("cals/work/a.ics", event("a@example.org", "A, moved"));
    let (doc, run) = json_run(&sb, &["sync"], &env);
    run.success();
    let update = &collection(&doc, "work")["actions"][0];
    assert_eq!(update["kind"], "update");
    assert!(
        update["target"]["location"]
            .as_str()
            .is_some_and(|l| l.starts_with(&server.url())),
        "{update:#}"
    );
    json_run(&sb, &["status"], &env).1.success();
    json_run(&sb, &["discover"], &env).1.success();
    let (doc, run) = json_run(&sb, &["check"], &env);
    run.success();
    let server_check = doc["storages"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "server"))
        .expect("the server in check");
    assert_eq!(server_check["auth"], "basic as alice");
    assert_eq!(
        server_check["collections"][0]["listing"]["method"],
        "sync-collection"
    );

    // The calendar deleted on the server while the vdir keeps it: refused, not made again.
    let calendar = format!("{}work/", server.calendar_home_url());
    let client = server.client();
    let deleted = client.request("DELETE", &calendar, &[], &[]);
    assert!(
        deleted.is_success(),
        "DELETE {calendar}: {}",
        deleted.status
    );
    let (doc, run) = json_run(&sb, &["sync"], &env);
    run.expect_code(1);
    let refused = collection(&doc, "work")["refused"]
        .as_str()
        .unwrap_or_default();
    assert!(
        refused.contains("the collection is gone from b (was http://"),
        "{}",
        run.both()
    );
    assert_eq!(client.get(&calendar).status, 404, "not created again");
}

#[test]
fn an_unreachable_server_is_retry_later_and_status_tells_the_attempt_from_the_clean_sync() {
    // Synced clean once between two vdirs; then side b is a server whose port is closed.
    let sb = Sandbox::with_vdir_pair(r#"collections = "from a""#);
    sb.write("a/home/x.ics", event("x@example.org", "X"));
    sb.run(&["sync"]).success();
    let config = sb.read_string("config.toml");
    let vdir_b = config
        .split("[storage.backup]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("the backup storage's table");
    let port = common::closed_port();
    sb.write(
        "config.toml",
        config.replace(
            vdir_b,
            &format!("\ntype = \"caldav\"\nurl = \"http://127.0.0.1:{port}/cal/\"\ntimeout = 5\n"),
        ),
    );
    let (doc, _) = json_run(&sb, &["sync"], &[]);
    assert_eq!(doc["exit"]["code"], json!(75), "{doc:#}");
    assert_eq!(doc["exit"]["status"], json!("retry_later"), "{doc:#}");

    let (doc, _) = json_run(&sb, &["status"], &[]);
    assert_eq!(doc["exit"]["code"], json!(1), "{doc:#}");
    let home = &doc["pairs"][0]["collections"][0];
    assert_eq!(home["name"], json!("home"), "{doc:#}");
    let (attempt, clean) = (home["last_sync"].as_i64(), home["last_clean"].as_i64());
    assert!(
        clean.is_some() && attempt >= clean,
        "last attempt {attempt:?}, last clean sync {clean:?}"
    );
    assert!(
        home["failures"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("not synced: PROPFIND")),
        "{doc:#}"
    );
}

#[test]
fn status_shows_a_pair_refused_before_any_collection() {
    // The pair never got to a collection: its server's password command fails.
    let sb = Sandbox::with_vdir_pair("");
    let config = sb.read_string("config.toml");
    let vdir_b = config
        .split("[storage.backup]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("the backup storage's table");
    sb.write(
        "config.toml",
        config.replace(
            vdir_b,
            "\ntype = \"caldav\"\nurl = \"http://127.0.0.1:9/cal/\"\nusername = \"me\"\n\
             password = { cmd = [\"false\"] }\n",
        ),
    );
    let (doc, _) = json_run(&sb, &["status"], &[]);
    assert_eq!(doc["pairs"][0]["refused"], Value::Null, "{doc:#}");
    let (doc, _) = json_run(&sb, &["sync"], &[]);
    assert_eq!(doc["exit"]["code"], json!(1), "{doc:#}");

    let (doc, _) = json_run(&sb, &["status"], &[]);
    assert_eq!(doc["exit"]["code"], json!(1), "{doc:#}");
    let refused = &doc["pairs"][0]["refused"];
    assert_eq!(
        refused["reason"],
        json!(
            "not synced: storage backup: http://127.0.0.1:9/cal/: password command \"false\" \
             failed (exit status: 1)"
        ),
        "{doc:#}"
    );
    assert!(refused["finished_at"].is_i64(), "{doc:#}");
    assert!(
        refused["finished_at_utc"]
            .as_str()
            .is_some_and(|t| t.ends_with(" UTC")),
        "{doc:#}"
    );
}
