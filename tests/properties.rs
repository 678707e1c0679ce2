//! Property tests over arbitrary and mutated input for the three parsers that read what other
//! programs wrote: the content-line layer (`davsync::vobject`), the multistatus parser
//! (`davsync::storage::dav::xml`) and the config loader (`davsync::config`). None of them may panic on any
//! input, and the normalized hash must not see what only looks different. Case counts keep the
//! whole file to a few seconds; `fuzz/` has the same targets for longer runs by hand.

use std::collections::BTreeMap;
use std::path::Path;

use davsync::config::{self, ConfigError};
use davsync::storage::dav::xml;
use davsync::vobject;
use proptest::prelude::*;

/// Pieces of real content-line syntax, so that random concatenations reach deep paths.
fn vobject_piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"BEGIN:VCALENDAR".to_vec()),
        Just(b"END:VCALENDAR".to_vec()),
        Just(b"BEGIN:VEVENT\r\nUID:a".to_vec()),
        Just(b"END:VEVENT".to_vec()),
        Just(b"BEGIN:VCARD\nVERSION:4.0".to_vec()),
        Just(b"END:VCARD".to_vec()),
        Just(b"BEGIN:VTIMEZONE\nTZID:z".to_vec()),
        Just(b"X;TZID=\"z\";ENCODING=QUOTED-PRINTABLE:a=".to_vec()),
        Just(b"ATTENDEE;ROLE=req-participant;CN=\"a;b:c\";RSVP=FALSE:mailto:x".to_vec()),
        Just(b"CLASS:PUBLIC".to_vec()),
        Just(b"DTSTART;VALUE=DATE-TIME:20240101T000000Z".to_vec()),
        Just(b"RRULE:FREQ=DAILY;;BYDAY=MO".to_vec()),
        Just(b";\"=".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\r\n ".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ]
}

/// Every public function of the content-line layer on `bytes`; none may panic.
fn exercise_vobject(bytes: &[u8]) {
    let checked = vobject::check(bytes);
    let _ = vobject::uid(bytes);
    let _ = vobject::component_type(bytes);
    assert_eq!(vobject::normalized_hash(bytes).len(), 64);
    assert_eq!(vobject::legacy_hash(bytes).len(), 64);
    if let Ok(items) = vobject::split_calendar(bytes) {
        let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        for item in &refs {
            // Lines are copied as bytes: a split item has no structural problem, but a line
            // that is not UTF-8 stays so, and the item is named unreadable on its own.
            let problem = vobject::check(item).err().map(|m| m.problem);
            assert!(
                matches!(problem, None | Some(vobject::Problem::NotUtf8)),
                "a split item is well-formed: {problem:?}"
            );
        }
        let _ = vobject::join_calendar(&refs);
    }
    if checked.is_ok() {
        let _ = vobject::join_calendar(&[bytes]);
    }
}

/// One property line of a generated item: name, parameters, value (printable ASCII, no line
/// ends, no trailing '=' that could read as a quoted-printable soft break).
fn property() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("SUMMARY"),
        Just("DESCRIPTION"),
        Just("ATTENDEE"),
        Just("DTSTART"),
        Just("X-THING"),
        Just("CATEGORIES"),
        Just("RRULE"),
        Just("CLASS"),
    ];
    let params = proptest::collection::vec(
        prop_oneof![
            Just(";CN=\"Doe, Jane\""),
            Just(";ROLE=CHAIR"),
            Just(";RSVP=TRUE"),
            Just(";TZID=Europe/Berlin"),
            Just(";LANGUAGE=en"),
            Just(";X-P=\"a:b;c\""),
        ],
        0..3,
    );
    (name, params, "[ -~]{0,90}[ -<>-~]")
        .prop_map(|(name, params, value)| format!("{name}{}:{value}", params.concat()))
}

/// A generated VCALENDAR as CRLF lines, its VEVENT holding `props`.
fn calendar(props: &[String]) -> Vec<String> {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "BEGIN:VEVENT".to_owned(),
        "UID:generated".to_owned(),
    ];
    lines.extend(props.iter().cloned());
    lines.extend(["END:VEVENT".to_owned(), "END:VCALENDAR".to_owned()]);
    lines
}

/// `lines` joined with `end`, every line folded after `width` bytes (ASCII only).
fn render(lines: &[String], end: &str, width: usize) -> String {
    let mut out = String::new();
    for line in lines {
        let mut rest = line.as_str();
        while rest.len() > width {
            out.push_str(&rest[..width]);
            out.push_str(end);
            out.push(' ');
            rest = &rest[width..];
        }
        out.push_str(rest);
        out.push_str(end);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn vobject_never_panics_on_syntax_pieces(parts in proptest::collection::vec(vobject_piece(), 0..48)) {
        exercise_vobject(&parts.concat());
    }

    #[test]
    fn vobject_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise_vobject(&bytes);
    }

    #[test]
    fn hash_ignores_line_ends_folding_and_property_order(
        props in proptest::collection::vec(property(), 1..12),
        width in 8usize..80,
        seed in any::<u64>(),
    ) {
        let lines = calendar(&props);
        let base = render(&lines, "\r\n", usize::MAX);
        let hash = vobject::normalized_hash(base.as_bytes());
        prop_assert_eq!(vobject::check(base.as_bytes()), Ok(()));
        prop_assert_eq!(vobject::normalized_hash(render(&lines, "\n", usize::MAX).as_bytes()), hash.clone());
        prop_assert_eq!(vobject::normalized_hash(render(&lines, "\r\n", width).as_bytes()), hash.clone());
        prop_assert_eq!(vobject::normalized_hash(render(&lines, "\n", width).as_bytes()), hash.clone());
        // Another order of the event's properties: rotate by a seed-chosen amount, then reverse.
        let mut shuffled = props.clone();
        let by = usize::try_from(seed % props.len() as u64).unwrap_or(0);
        shuffled.rotate_left(by);
        if seed & 1 == 1 {
            shuffled.reverse();
        }
        let reordered = render(&calendar(&shuffled), "\r\n", width);
        prop_assert_eq!(vobject::normalized_hash(reordered.as_bytes()), hash.clone());
        // A changed value is seen.
        let mut edited = props.clone();
        edited[0].push('!');
        prop_assert_ne!(vobject::normalized_hash(render(&calendar(&edited), "\r\n", width).as_bytes()), hash);
    }
}

/// A realistic multistatus answer (calendar-multiget with data, a 404, a sync token).
const MULTISTATUS: &str = concat!(
    r#"<?xml version="1.0" encoding="utf-8"?>"#,
    r#"<D:multistatus xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">"#,
    r#"<D:sync-token>http://example.org/sync/1</D:sync-token>"#,
    r#"<D:response><D:href>/cal/a%40x.ics</D:href><D:propstat><D:prop>"#,
    r#"<D:getetag>"abc"</D:getetag><C:calendar-data>BEGIN:VCALENDAR&#13;"#,
    "\nEND:VCALENDAR&#x0D;\n</C:calendar-data><D:getcontenttype>text/calendar</D:getcontenttype>",
    r#"</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>"#,
    r#"<D:propstat><D:prop><D:displayname/></D:prop><D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>"#,
    r#"<D:response><D:href>/cal/gone.ics</D:href><D:status>HTTP/1.1 404 Not Found</D:status></D:response>"#,
    r#"<D:response><D:href>/cal/</D:href><D:propstat><D:prop><D:resourcetype><D:collection/><C:calendar/></D:resourcetype>"#,
    r#"<D:supported-report-set><D:supported-report><D:report><D:sync-collection/></D:report></D:supported-report></D:supported-report-set>"#,
    r#"<C:calendar-home-set><D:href>/cal/</D:href></C:calendar-home-set></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"#,
    r#"</D:multistatus>"#,
);

/// One edit of a byte string: at a position (taken modulo the length), delete a range, insert
/// bytes, or overwrite a byte.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Overwrite(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let insert = prop_oneof![
        Just(b"<".to_vec()),
        Just(b">".to_vec()),
        Just(b"</D:prop>".to_vec()),
        Just(b"<D:response>".to_vec()),
        Just(b"&#0;".to_vec()),
        Just(b"&amp".to_vec()),
        Just(b"xmlns:D=\"x\"".to_vec()),
        Just(b"<![CDATA[".to_vec()),
        proptest::collection::vec(any::<u8>(), 1..6),
    ];
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete(at, len)),
        (any::<usize>(), insert).prop_map(|(at, bytes)| Mutation::Insert(at, bytes)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Overwrite(at, b)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let at = |i: usize| i % (bytes.len() + 1);
        match m {
            Mutation::Delete(i, len) => {
                let start = at(*i);
                let end = (start + len).min(bytes.len());
                bytes.drain(start..end);
            }
            Mutation::Insert(i, new) => {
                let start = at(*i);
                bytes.splice(start..start, new.iter().copied());
            }
            Mutation::Overwrite(i, b) => {
                if !bytes.is_empty() {
                    let i = i % bytes.len();
                    bytes[i] = *b;
                }
            }
        }
    }
    bytes
}

#[test]
fn the_multistatus_sample_parses() {
    let parsed = xml::parse_multistatus(MULTISTATUS.as_bytes()).expect("the sample parses");
    assert_eq!(parsed.responses.len(), 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn multistatus_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = xml::parse_multistatus(&bytes);
        let _ = xml::parse_error_condition(&bytes);
    }

    #[test]
    fn multistatus_never_panics_on_mutated_answers(
        mutations in proptest::collection::vec(mutation(), 1..6),
        cut in any::<usize>(),
    ) {
        let mutated = mutate(MULTISTATUS.as_bytes().to_vec(), &mutations);
        let _ = xml::parse_multistatus(&mutated);
        let _ = xml::parse_error_condition(&mutated);
        // Cut short anywhere, as a dropped connection leaves it.
        let cut = cut % (mutated.len() + 1);
        let _ = xml::parse_multistatus(&mutated[..cut]);
    }
}

/// A valid config with most kinds of tables and values.
const CONFIG: &str = r#"status_path = "~/.local/share/davsync"

[storage.laptop]
type = "vdir"
path = "$HOME/calendars"
fileext = ".ics"

[storage.server]
type = "caldav"
url = "https://dav.example.org/"
username = "alice"
password.cmd = ["pass", "dav"]

[pair.cal]
a = "laptop"
b = "server"
collections = "from b"
conflict_resolution = "a wins"
"#;

fn config_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[storage.x]\n".to_owned()),
        Just("[pair.p]\n".to_owned()),
        Just("type = \"vdir\"\n".to_owned()),
        Just("type = \"carddav\"\n".to_owned()),
        Just("path = \"${UNSET}\"\n".to_owned()),
        Just("url = \"http://[::1\"\n".to_owned()),
        Just("a = \"x\"\nb = \"x\"\n".to_owned()),
        Just("collections = [\"from b\", [\"a\", \"b\", \"c\"]]\n".to_owned()),
        Just("item_types = [\"VEVENT\"]\n".to_owned()),
        Just("timeout = -1\n".to_owned()),
        Just("= \n".to_owned()),
        Just("\"\n".to_owned()),
        "[ -~\n]{0,20}",
    ]
}

/// Parses `text`; every error that is about the file's content names a line.
fn parse_config(text: &str) -> Result<(), String> {
    let env: BTreeMap<String, String> = [("HOME".to_owned(), "/home/u".to_owned())].into();
    match config::parse(text, Path::new("/etc/davsync/config.toml"), &env) {
        Ok(_) => Ok(()),
        Err(e @ ConfigError::Invalid { line: None, .. }) => Err(format!("no line in: {e}")),
        Err(_) => Ok(()),
    }
}

#[test]
fn the_config_sample_parses() {
    let env: BTreeMap<String, String> = [("HOME".to_owned(), "/home/u".to_owned())].into();
    config::parse(CONFIG, Path::new("/etc/davsync/config.toml"), &env).expect("the sample parses");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn config_never_panics_on_arbitrary_text(text in "\\PC{0,300}") {
        prop_assert_eq!(parse_config(&text), Ok(()));
    }

    #[test]
    fn config_errors_name_a_line(
        pieces in proptest::collection::vec(config_piece(), 0..12),
        keep in any::<usize>(),
    ) {
        // A valid file with random pieces spliced in at a line boundary.
        let lines: Vec<&str> = CONFIG.lines().collect();
        let at = keep % (lines.len() + 1);
        let text = format!("{}\n{}{}\n", lines[..at].join("\n"), pieces.concat(), lines[at..].join("\n"));
        prop_assert_eq!(parse_config(&text), Ok(()));
    }
}
