//! Hrefs and URLs of DAV resources: percent-encoding, resolving and comparing.
//!
//! Servers spell the same resource in several ways (`%40` or `@`, upper- or lower-case hex, with
//! or without a trailing slash, a path or a full URL), so hrefs are compared with
//! [`same_href`], never with `==`.

use percent_encoding::{
    AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode, utf8_percent_encode,
};

/// Bytes left unencoded in a path segment: RFC 3986 unreserved characters plus `@`. The
/// sub-delimiters (`+`, `=`, `;`, ...) are legal in a path but some servers decode `+` as a
/// space or mangle the others, so they are encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// Percent-encodes one path segment: everything but `A-Z a-z 0-9 - . _ ~ @` (so `/` and space
/// become `%2F` and `%20`).
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// The one spelling of an item's href davsync keeps, used alike for listing, the status
/// database and requests: the path of `raw` (a path or a full URL), each segment
/// percent-decoded to bytes and encoded again as [`encode_segment`] does, so `%40`, `%40` and
/// `@` name the same item. Bytes that are not UTF-8 (`%E9` from a Latin-1 server) stay those
/// bytes: the request goes to exactly the resource the server listed.
pub fn canonical_path(raw: &str) -> String {
    split(raw.trim())
        .path
        .split('/')
        .map(|segment| {
            percent_encode(&percent_decode_str(segment).collect::<Vec<u8>>(), SEGMENT).to_string()
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The parts of a URI reference (RFC 3986 §3), borrowed from it.
#[derive(Debug, Default, Clone, Copy)]
struct Parts<'a> {
    scheme: Option<&'a str>,
    authority: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    fragment: Option<&'a str>,
}

/// Splits a URI reference into its parts (RFC 3986 appendix B, without a regex).
fn split(s: &str) -> Parts<'_> {
    let (rest, fragment) = match s.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (s, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    // A scheme is letters, digits, `+ - .` starting with a letter, before the first `:` that
    // comes before any `/` (a relative path whose first segment has a colon is not a scheme).
    let (scheme, rest) = match rest.find(':') {
        Some(i)
            if i > 0
                && !rest[..i].contains('/')
                && rest[..i].starts_with(|c: char| c.is_ascii_alphabetic())
                && rest[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')) =>
        {
            (Some(&rest[..i]), &rest[i + 1..])
        }
        _ => (None, rest),
    };
    let (authority, path) = match rest.strip_prefix("//") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, rest),
    };
    Parts {
        scheme,
        authority,
        path,
        query,
        fragment,
    }
}

/// RFC 3986 §5.2.4: resolves `.` and `..` segments.
fn remove_dot_segments(path: &str) -> String {
    let mut output: Vec<&str> = Vec::new();
    let absolute = path.starts_with('/');
    let segments: Vec<&str> = path.split('/').collect();
    let last = segments.len().saturating_sub(1);
    // Skip the empty segment before a leading slash; it is put back below.
    let start = usize::from(absolute);
    for (i, segment) in segments.iter().enumerate().skip(start) {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    output.pop();
                }
                // A trailing `.` or `..` still names a directory: keep its slash.
                if i == last {
                    output.push("");
                }
            }
            s => output.push(s),
        }
    }
    let joined = output.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// RFC 3986 §5.2.3: the reference's relative path appended to the base path's directory.
fn merge(base: &Parts<'_>, path: &str) -> String {
    if base.authority.is_some() && base.path.is_empty() {
        format!("/{path}")
    } else {
        let dir = base.path.rfind('/').map_or("", |i| &base.path[..=i]);
        format!("{dir}{path}")
    }
}

fn assemble(
    scheme: Option<&str>,
    authority: Option<&str>,
    path: &str,
    query: Option<&str>,
    fragment: Option<&str>,
) -> String {
    let mut out = String::new();
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push(':');
    }
    if let Some(authority) = authority {
        out.push_str("//");
        out.push_str(authority);
    }
    out.push_str(path);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

/// Resolves `href` (a full URL, an absolute path, or a relative reference) against `base`, an
/// absolute URL, following RFC 3986 §5.2. The result is an absolute URL when `base` is one.
/// An empty `href` gives `base` itself (without its fragment).
pub fn join(base: &str, href: &str) -> String {
    let b = split(base);
    let r = split(href.trim());
    if r.scheme.is_some() {
        let path = remove_dot_segments(r.path);
        return assemble(r.scheme, r.authority, &path, r.query, r.fragment);
    }
    if r.authority.is_some() {
        let path = remove_dot_segments(r.path);
        return assemble(b.scheme, r.authority, &path, r.query, r.fragment);
    }
    let (path, query) = if r.path.is_empty() {
        (b.path.to_owned(), r.query.or(b.query))
    } else if r.path.starts_with('/') {
        (remove_dot_segments(r.path), r.query)
    } else {
        (remove_dot_segments(&merge(&b, r.path)), r.query)
    };
    assemble(b.scheme, b.authority, &path, query, r.fragment)
}

/// The path of an href, with `.`/`..` resolved, each segment percent-decoded to bytes, a
/// trailing slash dropped (a collection with and without it is one resource), and the query
/// kept as written.
fn normalized_path(parts: &Parts<'_>) -> (Vec<Vec<u8>>, Option<String>) {
    let path = remove_dot_segments(parts.path);
    let trimmed = path.strip_suffix('/').unwrap_or(&path);
    let segments = trimmed
        .split('/')
        .map(|segment| percent_decode_str(segment).collect())
        .collect();
    (segments, parts.query.map(str::to_owned))
}

/// An href's path in the form [`same_href`] compares, for looking many hrefs up in a map:
/// two hrefs on the same server name the same resource exactly when their keys are equal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathKey((Vec<Vec<u8>>, Option<String>));

/// The [`PathKey`] of an href (a path or a full URL on the same server).
pub fn path_key(href: &str) -> PathKey {
    PathKey(normalized_path(&split(href.trim())))
}

/// The scheme and authority, lower-cased, with the scheme's default port dropped.
fn normalized_origin(parts: &Parts<'_>) -> Option<(String, String)> {
    let scheme = parts.scheme?.to_ascii_lowercase();
    let mut authority = parts.authority.unwrap_or("").to_ascii_lowercase();
    // User info never names a different resource.
    if let Some(at) = authority.rfind('@') {
        authority.drain(..=at);
    }
    let default_port = match scheme.as_str() {
        "http" => Some(":80"),
        "https" => Some(":443"),
        _ => None,
    };
    if let Some(port) = default_port
        && authority.ends_with(port)
    {
        authority.truncate(authority.len() - port.len());
    }
    Some((scheme, authority))
}

/// Whether two hrefs name the same resource despite different spellings: percent-encoding
/// (`%40` or `@`, `%2f` or `%2F`), a trailing slash, or one being a full URL and the other an
/// absolute path (then only paths are compared; two full URLs must also have the same scheme and
/// host). Relative hrefs are compared as written: [`join`] them first.
pub fn same_href(a: &str, b: &str) -> bool {
    let pa = split(a.trim());
    let pb = split(b.trim());
    if let (Some(oa), Some(ob)) = (normalized_origin(&pa), normalized_origin(&pb))
        && oa != ob
    {
        return false;
    }
    normalized_path(&pa) == normalized_path(&pb)
}

/// The last path segment of an href, percent-decoded, ignoring a trailing slash: a collection's
/// name, used to pair collections across storages. Empty for the root path.
pub fn last_segment(href: &str) -> String {
    let parts = split(href.trim());
    let path = parts.path.strip_suffix('/').unwrap_or(parts.path);
    let segment = path.rsplit('/').next().unwrap_or(path);
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_path_keeps_bytes_that_are_not_utf8() {
        assert_eq!(canonical_path("/cal/caf%E9.ics"), "/cal/caf%E9.ics");
        assert_eq!(canonical_path("/cal/caf%e9.ics"), "/cal/caf%E9.ics");
        assert_eq!(
            canonical_path("http://h:8/cal/caf%C3%A9%40x.ics"),
            "/cal/caf%C3%A9@x.ics"
        );
        assert_eq!(canonical_path("/cal/café.ics"), "/cal/caf%C3%A9.ics");
        // Latin-1 and UTF-8 spellings of é are different resources.
        assert_ne!(
            canonical_path("/c/caf%E9.ics"),
            canonical_path("/c/caf%C3%A9.ics")
        );
        let once = canonical_path("/c/a%20b%E9%FF+.ics");
        assert_eq!(canonical_path(&once), once);
        assert!(same_href(&once, "/c/a%20b%E9%FF+.ics"));
    }

    #[test]
    fn encode_segment_encodes_all_but_unreserved_and_at() {
        assert_eq!(encode_segment("a-Z_0.9~@"), "a-Z_0.9~@");
        assert_eq!(encode_segment("a b/c+d=e;f,g"), "a%20b%2Fc%2Bd%3De%3Bf%2Cg");
        assert_eq!(encode_segment("ü%"), "%C3%BC%25");
        assert_eq!(encode_segment(""), "");
    }

    #[test]
    fn join_resolves_all_reference_forms() {
        let base = "https://dav.example.com/alice/calendars/work/";
        assert_eq!(
            join(base, "x.ics"),
            "https://dav.example.com/alice/calendars/work/x.ics"
        );
        assert_eq!(join(base, "/bob/"), "https://dav.example.com/bob/");
        assert_eq!(
            join(base, "../home/"),
            "https://dav.example.com/alice/calendars/home/"
        );
        assert_eq!(
            join(base, "./"),
            "https://dav.example.com/alice/calendars/work/"
        );
        assert_eq!(join(base, ".."), "https://dav.example.com/alice/calendars/");
        assert_eq!(join(base, "http://other:8080/p/"), "http://other:8080/p/");
        assert_eq!(
            join(base, "//cdn.example.com/p"),
            "https://cdn.example.com/p"
        );
        assert_eq!(join(base, ""), base);
        assert_eq!(
            join(base, "  /trimmed/ "),
            "https://dav.example.com/trimmed/"
        );
        assert_eq!(join(base, "?q=1"), format!("{base}?q=1"));
        assert_eq!(
            join("https://h.example", "a.ics"),
            "https://h.example/a.ics"
        );
        assert_eq!(
            join("https://h.example/dir/file", "other"),
            "https://h.example/dir/other"
        );
        assert_eq!(join("http://h/a/b/c", "../../../../g"), "http://h/g");
        assert_eq!(
            join("http://h:5232/", "/.well-known/caldav"),
            "http://h:5232/.well-known/caldav"
        );
        // A colon after a slash is not a scheme.
        assert_eq!(join("http://h/c/", "./a:b.ics"), "http://h/c/a:b.ics");
        assert_eq!(join("http://h/c/", "x/a:b.ics"), "http://h/c/x/a:b.ics");
        // Percent-encoding is kept as sent.
        assert_eq!(join(base, "a%40b.ics"), format!("{base}a%40b.ics"));
    }

    #[test]
    fn join_rfc3986_examples() {
        // RFC 3986 §5.4.1 and §5.4.2.
        let base = "http://a/b/c/d;p?q";
        for (href, want) in [
            ("g:h", "g:h"),
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q#s"),
            ("g#s", "http://a/b/c/g#s"),
            (";x", "http://a/b/c/;x"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
        ] {
            assert_eq!(join(base, href), want, "{href:?}");
        }
    }

    #[test]
    fn same_href_ignores_spelling() {
        assert!(same_href("/alice/a%40b.ics", "/alice/a@b.ics"));
        assert!(same_href("/alice/a%2fb.ics", "/alice/a%2Fb.ics"));
        assert!(same_href("/alice/cal/", "/alice/cal"));
        assert!(same_href("https://h.example/alice/cal/", "/alice/cal/"));
        assert!(same_href("/alice/cal/", "HTTPS://H.example:443/alice/cal"));
        assert!(same_href("http://u@h/alice/", "http://h:80/alice"));
        assert!(same_href("/alice/my%20cal/", "/alice/my cal/"));
        assert!(same_href(" /a/ ", "/a/"));
        assert!(same_href("/a/./b/../c", "/a/c"));
        assert!(same_href("https://h", "/"));
    }

    #[test]
    fn same_href_tells_resources_apart() {
        assert!(!same_href("/alice/a.ics", "/alice/b.ics"));
        assert!(!same_href("/alice/a%2Fb.ics", "/alice/a/b.ics"));
        assert!(!same_href("https://h1/a/", "https://h2/a/"));
        assert!(!same_href("http://h/a/", "https://h/a/"));
        assert!(!same_href("/alice/A.ics", "/alice/a.ics"));
        assert!(!same_href("/a/", "/a/b/"));
        assert!(!same_href("", "/a/"));
    }

    #[test]
    fn last_segment_decodes_and_ignores_trailing_slash() {
        assert_eq!(last_segment("/alice/calendars/my%20cal/"), "my cal");
        assert_eq!(last_segment("https://h/alice/work"), "work");
        assert_eq!(last_segment("https://h/alice/a%40b.ics"), "a@b.ics");
        assert_eq!(last_segment("/"), "");
        assert_eq!(last_segment("https://h"), "");
        assert_eq!(last_segment("name"), "name");
        assert_eq!(last_segment("/c/x?y=1"), "x");
    }
}
