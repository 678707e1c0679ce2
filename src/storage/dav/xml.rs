//! WebDAV, CalDAV and CardDAV XML, without I/O: request bodies out, parsed multistatus in.
//!
//! Bodies are built as plain strings with every inserted value escaped. Answers are read with
//! quick-xml's namespace-aware reader into a small element tree, and only the properties davsync
//! uses are picked out, matched on namespace + local name so that any prefix (`d:`, `D:`, a
//! default `xmlns`) works and properties from foreign namespaces are ignored.

use std::borrow::Cow;
use std::fmt::Write as _;

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use thiserror::Error;

use crate::config::{DavKind, MetadataKey};

const NS_DAV: &str = "DAV:";
const NS_CALDAV: &str = "urn:ietf:params:xml:ns:caldav";
const NS_CARDDAV: &str = "urn:ietf:params:xml:ns:carddav";
const NS_CALSERVER: &str = "http://calendarserver.org/ns/";
const NS_APPLE: &str = "http://apple.com/ns/ical/";

/// Nesting deeper than this is refused: no DAV answer comes near it, and the element tree is
/// dropped recursively, so a hostile body must not be able to exhaust the stack.
const MAX_DEPTH: usize = 64;

const XML_DECL: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n";

/// Why a body could not be read as the expected DAV XML document.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    /// The body has no content at all (or only whitespace).
    #[error("empty body where an XML document was expected")]
    Empty,
    /// The body is not UTF-8; DAV servers send UTF-8, and other encodings are not decoded.
    #[error("body is not UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Byte offset of the first invalid byte.
        offset: usize,
    },
    /// The XML itself is broken.
    #[error("malformed XML at byte {offset}: {message}")]
    Malformed {
        /// Byte offset in the body where the problem was noticed.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// The body ends before the document is complete (a cut connection, a size limit).
    #[error("XML body is truncated: it ends at byte {offset} inside <{inside}>")]
    Truncated {
        /// Length of the body.
        offset: u64,
        /// Local name of the innermost element still open.
        inside: String,
    },
    /// The document is something else, e.g. an HTML error page or another DAV element.
    #[error("expected a {expected} document, found {found}")]
    Unexpected {
        /// The root element wanted, e.g. `DAV:multistatus`.
        expected: String,
        /// What the body starts with instead.
        found: String,
    },
}

/// The namespaces davsync reads; everything else is [`Ns::Other`] and never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ns {
    Dav,
    CalDav,
    CardDav,
    CalServer,
    Apple,
    Other,
}

impl Ns {
    fn from_uri(uri: &str) -> Ns {
        match uri {
            NS_DAV => Ns::Dav,
            NS_CALDAV => Ns::CalDav,
            NS_CARDDAV => Ns::CardDav,
            NS_CALSERVER => Ns::CalServer,
            NS_APPLE => Ns::Apple,
            _ => Ns::Other,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Ns::Dav => "DAV:",
            Ns::CalDav => "CalDAV:",
            Ns::CardDav => "CardDAV:",
            Ns::CalServer => "CS:",
            Ns::Apple => "Apple:",
            Ns::Other => "",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

impl MetadataKey {
    /// The prefixed element name, using the prefixes declared by [`root_open`].
    fn qname(self, kind: DavKind) -> &'static str {
        match (self, kind) {
            (MetadataKey::DisplayName, _) => "d:displayname",
            (MetadataKey::Color, _) => "ic:calendar-color",
            (MetadataKey::Order, _) => "ic:calendar-order",
            (MetadataKey::Description, DavKind::CalDav) => "c:calendar-description",
            (MetadataKey::Description, DavKind::CardDav) => "card:addressbook-description",
        }
    }
}

/// Escapes `s` for use in XML text or a double- or single-quoted attribute.
///
/// A carriage return is written as `&#13;` because a literal one would be turned into a line
/// feed by the server's XML parser (end-of-line normalization). Characters XML 1.0 cannot carry
/// at all (most C0 controls) become U+FFFD rather than silently vanishing or making the whole
/// body unparseable.
fn escape(s: &str) -> Cow<'_, str> {
    let needs = |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'' | '\r') || !xml_char(c);
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            c if !xml_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Whether XML 1.0 allows `c` in a document.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        || c >= '\u{10000}'
}

/// Opens a root element with the namespace declarations for the given prefixes
/// (`d`, `c`, `card`, `cs`, `ic`).
fn root_open(out: &mut String, qname: &str, prefixes: &[&str]) {
    out.push_str(XML_DECL);
    out.push('<');
    out.push_str(qname);
    for prefix in prefixes {
        let uri = match *prefix {
            "d" => NS_DAV,
            "c" => NS_CALDAV,
            "card" => NS_CARDDAV,
            "cs" => NS_CALSERVER,
            _ => NS_APPLE,
        };
        let _ = write!(out, " xmlns:{prefix}=\"{uri}\"");
    }
    out.push_str(">\n");
}

fn kind_prefix(kind: DavKind) -> &'static str {
    match kind {
        DavKind::CalDav => "c",
        DavKind::CardDav => "card",
    }
}

/// A PROPFIND body asking for the given empty property elements.
fn propfind(prefixes: &[&str], props: &[&str]) -> String {
    let mut out = String::new();
    root_open(&mut out, "d:propfind", prefixes);
    out.push_str("  <d:prop>\n");
    for prop in props {
        let _ = writeln!(out, "    <{prop}/>");
    }
    out.push_str("  </d:prop>\n</d:propfind>\n");
    out
}

/// PROPFIND body for `DAV:current-user-principal` (RFC 5397), the first step of discovery.
pub fn propfind_principal() -> String {
    propfind(&["d"], &["d:current-user-principal"])
}

/// PROPFIND body for both home sets (`CalDAV:calendar-home-set`,
/// `CardDAV:addressbook-home-set`) plus `DAV:current-user-principal`, so that one request on
/// the configured URL either finds the home set or says where the principal is. The same body
/// for calendars and address books lets their storages share the answer.
pub fn propfind_home_sets() -> String {
    propfind(
        &["d", "c", "card"],
        &[
            "c:calendar-home-set",
            "card:addressbook-home-set",
            "d:current-user-principal",
        ],
    )
}

/// PROPFIND body describing collections: for Depth 1 on a home set, or Depth 0 on one
/// collection. Asks for everything needed to pair collections, sync their metadata and decide
/// whether anything changed (ctag) and how to list it (supported reports), for calendars and
/// address books alike, so that both kinds of storage on one home set can share one answer.
pub fn propfind_collections() -> String {
    // No sync-token here: Radicale computes it by hashing every item, several times the cost
    // of the ctag, and this PROPFIND is all a sync with nothing to do sends. The token comes
    // with the sync-collection answer instead.
    propfind(
        &["d", "c", "card", "cs", "ic"],
        &[
            "d:resourcetype",
            "d:displayname",
            "cs:getctag",
            "d:supported-report-set",
            "ic:calendar-color",
            "ic:calendar-order",
            "c:calendar-description",
            "c:supported-calendar-component-set",
            "card:addressbook-description",
        ],
    )
}

/// PROPFIND body for a Depth 1 listing of a collection's items: ETags, plus resource and
/// content types so that sub-collections and foreign files can be skipped.
pub fn propfind_etags() -> String {
    propfind(&["d"], &["d:getetag", "d:resourcetype", "d:getcontenttype"])
}

/// RFC 6578 `sync-collection` REPORT body (`sync-level` 1, prop `getetag`). `None` asks for
/// the initial full listing with an empty `<sync-token/>`. With `content`, the item data of
/// that kind (`calendar-data` or `address-data`) is asked for too, which saves the multigets
/// when every listed item is going to be fetched anyway.
pub fn sync_collection(token: Option<&str>, content: Option<DavKind>) -> String {
    let mut out = String::new();
    let mut prefixes = vec!["d"];
    prefixes.extend(content.map(kind_prefix));
    root_open(&mut out, "d:sync-collection", &prefixes);
    match token {
        Some(token) => {
            let _ = writeln!(out, "  <d:sync-token>{}</d:sync-token>", escape(token));
        }
        None => out.push_str("  <d:sync-token/>\n"),
    }
    out.push_str("  <d:sync-level>1</d:sync-level>\n  <d:prop>\n    <d:getetag/>\n");
    if let Some(kind) = content {
        let _ = writeln!(out, "    <{}/>", data_element(kind));
    }
    out.push_str("  </d:prop>\n</d:sync-collection>\n");
    out
}

/// The element carrying an item's data in CalDAV or CardDAV reports.
fn data_element(kind: DavKind) -> &'static str {
    match kind {
        DavKind::CalDav => "c:calendar-data",
        DavKind::CardDav => "card:address-data",
    }
}

/// `calendar-multiget` (RFC 4791) or `addressbook-multiget` (RFC 6352) REPORT body fetching
/// the ETag and data of each href (sent as given, so pass them as the server spelled them).
pub fn multiget(kind: DavKind, hrefs: &[&str]) -> String {
    let root = match kind {
        DavKind::CalDav => "c:calendar-multiget",
        DavKind::CardDav => "card:addressbook-multiget",
    };
    let data = data_element(kind);
    let mut out = String::new();
    root_open(&mut out, root, &["d", kind_prefix(kind)]);
    let _ = writeln!(
        out,
        "  <d:prop>\n    <d:getetag/>\n    <{data}/>\n  </d:prop>"
    );
    for href in hrefs {
        let _ = writeln!(out, "  <d:href>{}</d:href>", escape(href));
    }
    let _ = writeln!(out, "</{root}>");
    out
}

/// `calendar-query` REPORT body listing the ETags of the items whose main component is
/// `component` (e.g. `VEVENT`). One component per query: several `comp-filter`s inside
/// `VCALENDAR` must all match (AND), so listing events and tasks takes one query each.
pub fn calendar_query_etags(component: &str) -> String {
    let mut out = String::new();
    root_open(&mut out, "c:calendar-query", &["d", "c"]);
    out.push_str("  <d:prop>\n    <d:getetag/>\n  </d:prop>\n");
    let _ = writeln!(
        out,
        "  <c:filter>\n    <c:comp-filter name=\"VCALENDAR\">\n      \
         <c:comp-filter name=\"{}\"/>\n    </c:comp-filter>\n  </c:filter>",
        escape(component)
    );
    out.push_str("</c:calendar-query>\n");
    out
}

/// `calendar-query` REPORT body asking for the ETag (and the data if `data`) of the items whose
/// main component is `component` and that have an occurrence overlapping `start`..`end` (UTC
/// date-times such as `20260101T000000Z`; `end` exclusive; either may be left open, RFC 4791
/// §9.9). A recurring item matches when any of its instances does (§9.9).
pub fn calendar_query_time_range(
    component: &str,
    start: Option<&str>,
    end: Option<&str>,
    data: bool,
) -> String {
    let mut out = String::new();
    root_open(&mut out, "c:calendar-query", &["d", "c"]);
    out.push_str("  <d:prop>\n    <d:getetag/>\n");
    if data {
        out.push_str("    <c:calendar-data/>\n");
    }
    out.push_str("  </d:prop>\n");
    let mut range = String::new();
    for (name, value) in [("start", start), ("end", end)] {
        if let Some(value) = value {
            let _ = write!(range, " {name}=\"{}\"", escape(value));
        }
    }
    let _ = writeln!(
        out,
        "  <c:filter>\n    <c:comp-filter name=\"VCALENDAR\">\n      \
         <c:comp-filter name=\"{}\">\n        <c:time-range{range}/>\n      \
         </c:comp-filter>\n    </c:comp-filter>\n  </c:filter>",
        escape(component)
    );
    out.push_str("</c:calendar-query>\n");
    out
}

/// `calendar-query` (RFC 4791 §7.8) or `addressbook-query` (RFC 6352 §8.6) REPORT body
/// listing the ETags of the items whose `UID` is exactly `uid`; for a calendar, among items
/// whose main component is `component`. Used to name the item a server says already holds
/// a UID.
pub fn query_by_uid(kind: DavKind, component: &str, uid: &str) -> String {
    let mut out = String::new();
    let prefix = kind_prefix(kind);
    let root = match kind {
        DavKind::CalDav => "c:calendar-query",
        DavKind::CardDav => "card:addressbook-query",
    };
    root_open(&mut out, root, &["d", prefix]);
    out.push_str("  <d:prop>\n    <d:getetag/>\n  </d:prop>\n");
    let uid_filter = format!(
        "<{prefix}:prop-filter name=\"UID\"><{prefix}:text-match collation=\"i;octet\" \
         match-type=\"equals\">{}</{prefix}:text-match></{prefix}:prop-filter>",
        escape(uid)
    );
    let _ = match kind {
        DavKind::CalDav => writeln!(
            out,
            "  <c:filter><c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"{}\">\
             {uid_filter}</c:comp-filter></c:comp-filter></c:filter>",
            escape(component)
        ),
        DavKind::CardDav => writeln!(out, "  <card:filter>{uid_filter}</card:filter>"),
    };
    let _ = writeln!(out, "</{root}>");
    out
}

/// MKCALENDAR body (RFC 4791) setting the display name and the allowed component types.
/// With neither, the body has no `<set>`: the server's defaults apply.
pub fn mkcalendar(displayname: Option<&str>, components: &[&str]) -> String {
    let mut out = String::new();
    root_open(&mut out, "c:mkcalendar", &["d", "c"]);
    if displayname.is_some() || !components.is_empty() {
        out.push_str("  <d:set>\n    <d:prop>\n");
        if let Some(name) = displayname {
            let _ = writeln!(out, "      <d:displayname>{}</d:displayname>", escape(name));
        }
        if !components.is_empty() {
            out.push_str("      <c:supported-calendar-component-set>\n");
            for comp in components {
                let _ = writeln!(out, "        <c:comp name=\"{}\"/>", escape(comp));
            }
            out.push_str("      </c:supported-calendar-component-set>\n");
        }
        out.push_str("    </d:prop>\n  </d:set>\n");
    }
    out.push_str("</c:mkcalendar>\n");
    out
}

/// Extended MKCOL body (RFC 5689) creating a calendar or address book: `resourcetype` is
/// `collection` plus `calendar` or `addressbook`. For servers without MKCALENDAR, and the
/// standard way to create an address book.
pub fn mkcol_extended(kind: DavKind, displayname: Option<&str>) -> String {
    let mut out = String::new();
    let prefix = kind_prefix(kind);
    root_open(&mut out, "d:mkcol", &["d", prefix]);
    let kind_type = match kind {
        DavKind::CalDav => "c:calendar",
        DavKind::CardDav => "card:addressbook",
    };
    let _ = writeln!(
        out,
        "  <d:set>\n    <d:prop>\n      <d:resourcetype><d:collection/><{kind_type}/></d:resourcetype>"
    );
    if let Some(name) = displayname {
        let _ = writeln!(out, "      <d:displayname>{}</d:displayname>", escape(name));
    }
    out.push_str("    </d:prop>\n  </d:set>\n</d:mkcol>\n");
    out
}

/// PROPPATCH body (RFC 4918 `propertyupdate`) setting and removing collection properties,
/// each mapped to its namespace for `kind` (see [`MetadataKey`]). With both lists empty the body
/// is an empty `propertyupdate`, which servers reject: don't send it.
pub fn proppatch(kind: DavKind, set: &[(MetadataKey, &str)], remove: &[MetadataKey]) -> String {
    let mut out = String::new();
    root_open(
        &mut out,
        "d:propertyupdate",
        &["d", kind_prefix(kind), "ic"],
    );
    if !set.is_empty() {
        out.push_str("  <d:set>\n    <d:prop>\n");
        for (prop, value) in set {
            let qname = prop.qname(kind);
            let _ = writeln!(out, "      <{qname}>{}</{qname}>", escape(value));
        }
        out.push_str("    </d:prop>\n  </d:set>\n");
    }
    if !remove.is_empty() {
        out.push_str("  <d:remove>\n    <d:prop>\n");
        for prop in remove {
            let _ = writeln!(out, "      <{}/>", prop.qname(kind));
        }
        out.push_str("    </d:prop>\n  </d:remove>\n");
    }
    out.push_str("</d:propertyupdate>\n");
    out
}

// ---------------------------------------------------------------------------------------------
// Parsed answers
// ---------------------------------------------------------------------------------------------

/// A parsed `DAV:multistatus` (207) body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Multistatus {
    /// One entry per `<response>`, in document order. A status-form response naming several
    /// hrefs is split into one entry per href.
    pub responses: Vec<Response>,
    /// The top-level `<sync-token>` of a sync-collection answer, trimmed, wherever it appears
    /// (Xandikos puts it after the responses).
    pub sync_token: Option<String>,
    /// Some response has response-level status 507 and no properties (RFC 6578's sign that the
    /// server returned only part of the changes), or carries the RFC 5323
    /// `DAV:number-of-matches-within-limits` error: the answer is not the whole listing.
    pub truncated: bool,
}

/// One `<response>` of a multistatus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// The href exactly as sent (entity references decoded, whitespace trimmed, still
    /// percent-encoded). Empty when the server sent `<href/>` or none.
    pub href: String,
    /// The response-level `<status>` code (as for a deleted member in sync-collection, or a
    /// missing href in a multiget); `None` when the response carries propstats instead, or the
    /// status line could not be read.
    pub status: Option<u16>,
    /// Properties from the propstats with a 2xx status (or no status at all).
    pub props: Props,
    /// The status of the first propstat that failed with something other than 404 (a 403 or
    /// 500 for the item's data): the properties it names exist but could not be read.
    pub failed_propstat: Option<u16>,
    /// The condition in the response's own `DAV:error` element, if any (e.g.
    /// `number-of-matches-within-limits`).
    pub error: Option<String>,
    /// Local names of the properties reported in propstats with a non-2xx status (typically
    /// 404: the server does not have that property).
    pub missing: Vec<String>,
}

/// The properties davsync reads, picked out of successful propstats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props {
    /// `resourcetype` contains `DAV:collection`.
    pub is_collection: bool,
    /// `resourcetype` contains `CalDAV:calendar`.
    pub is_calendar: bool,
    /// `resourcetype` contains `CardDAV:addressbook`.
    pub is_addressbook: bool,
    /// `DAV:displayname`, exactly as sent (it is user text, so not trimmed).
    pub displayname: Option<String>,
    /// Apple `calendar-color`, trimmed (e.g. `#FF0000FF`).
    pub color: Option<String>,
    /// `calendar-description` or `addressbook-description`, exactly as sent.
    pub description: Option<String>,
    /// Apple `calendar-order`, trimmed.
    pub order: Option<String>,
    /// The `name`s in `supported-calendar-component-set`, as sent (e.g. `VEVENT`).
    pub components: Vec<String>,
    /// `supported-report-set` lists `DAV:sync-collection` (RFC 6578).
    pub supports_sync_collection: bool,
    /// The collection's `DAV:sync-token` property, trimmed.
    pub sync_token: Option<String>,
    /// CalendarServer `getctag`, trimmed.
    pub ctag: Option<String>,
    /// `DAV:getetag`, trimmed, quotes and any `W/` kept: it is opaque and goes back verbatim in
    /// `If-Match`.
    pub etag: Option<String>,
    /// `DAV:getcontenttype`, trimmed.
    pub content_type: Option<String>,
    /// `calendar-data` or `address-data`: the item's bytes exactly as sent, with only entity and
    /// character references decoded (no trimming, no line-ending normalization).
    pub data: Option<Vec<u8>>,
    /// The `<href>` inside `current-user-principal`, trimmed.
    pub current_user_principal: Option<String>,
    /// The `<href>`s inside `calendar-home-set`, trimmed.
    pub calendar_home_set: Vec<String>,
    /// The `<href>`s inside `addressbook-home-set`, trimmed.
    pub addressbook_home_set: Vec<String>,
}

/// Parses a `DAV:multistatus` body (PROPFIND, REPORT and PROPPATCH answers).
///
/// Errors say what is wrong and where: an empty body, an HTML error page or another document,
/// malformed XML (with its byte offset), or a body cut short.
pub fn parse_multistatus(body: &[u8]) -> Result<Multistatus, XmlError> {
    let root = parse_tree(body, Ns::Dav, "multistatus")?;
    let mut result = Multistatus::default();
    for child in root.children {
        match (child.ns, child.local.as_str()) {
            (Ns::Dav, "response") => result.responses.extend(parse_response(child)),
            (Ns::Dav, "sync-token") => result.sync_token = trimmed(&child.text),
            _ => {}
        }
    }
    result.truncated = result.responses.iter().any(|r| {
        (r.status == Some(507) && r.props == Props::default())
            || r.error.as_deref() == Some("number-of-matches-within-limits")
    });
    Ok(result)
}

/// A precondition or postcondition a server named in a `DAV:error` body (RFC 4918 §16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The local name of the first child element, e.g. `valid-sync-token` for a rejected sync
    /// token or `no-uid-conflict` for a UID another item already has.
    pub name: String,
    /// The first `DAV:href` inside that element: for `no-uid-conflict`, the item that already
    /// holds the UID (RFC 4791 §5.3.2.1, RFC 6352 §6.3.2.1).
    pub href: Option<String>,
}

/// The condition named in a `DAV:error` body; `None` when the body is not such a document.
pub fn parse_error_condition(body: &[u8]) -> Option<Condition> {
    let root = parse_tree(body, Ns::Dav, "error").ok()?;
    root.children.into_iter().next().map(|c| Condition {
        href: hrefs_in(&c).into_iter().next(),
        name: c.local,
    })
}

fn parse_response(response: Element) -> Vec<Response> {
    let mut hrefs = Vec::new();
    let mut parsed = Response::default();
    for child in response.children {
        match (child.ns, child.local.as_str()) {
            (Ns::Dav, "href") => hrefs.push(child.text.trim().to_owned()),
            (Ns::Dav, "status") => parsed.status = parse_status(&child.text),
            (Ns::Dav, "propstat") => parse_propstat(child, &mut parsed),
            (Ns::Dav, "error") => parsed.error = child.children.into_iter().next().map(|c| c.local),
            _ => {}
        }
    }
    match hrefs.len() {
        0 => vec![parsed],
        1 => {
            parsed.href = hrefs.swap_remove(0);
            vec![parsed]
        }
        // RFC 4918 allows several hrefs sharing one status (e.g. a multiget's missing ones).
        _ => hrefs
            .into_iter()
            .map(|href| Response {
                href,
                ..parsed.clone()
            })
            .collect(),
    }
}

fn parse_propstat(propstat: Element, response: &mut Response) {
    let mut ok = true;
    let mut props = Vec::new();
    for child in propstat.children {
        match (child.ns, child.local.as_str()) {
            // A propstat without a readable status is taken as successful: losing a property
            // the server did send is worse than keeping one it did not mean.
            (Ns::Dav, "status") => {
                let status = parse_status(&child.text);
                ok = status.is_none_or(|s| (200..300).contains(&s));
                if let Some(s) = status.filter(|&s| !ok && s != 404) {
                    response.failed_propstat = response.failed_propstat.or(Some(s));
                }
            }
            (Ns::Dav, "prop") => props.extend(child.children),
            _ => {}
        }
    }
    for prop in props {
        if ok {
            apply_prop(prop, &mut response.props);
        } else {
            response.missing.push(prop.local);
        }
    }
}

fn apply_prop(prop: Element, props: &mut Props) {
    match (prop.ns, prop.local.as_str()) {
        (Ns::Dav, "resourcetype") => {
            for t in &prop.children {
                match (t.ns, t.local.as_str()) {
                    (Ns::Dav, "collection") => props.is_collection = true,
                    (Ns::CalDav, "calendar") => props.is_calendar = true,
                    (Ns::CardDav, "addressbook") => props.is_addressbook = true,
                    _ => {}
                }
            }
        }
        (Ns::Dav, "displayname") => props.displayname = Some(prop.text),
        (Ns::Apple, "calendar-color") => props.color = trimmed(&prop.text),
        (Ns::Apple, "calendar-order") => props.order = trimmed(&prop.text),
        (Ns::CalDav, "calendar-description") | (Ns::CardDav, "addressbook-description") => {
            props.description = Some(prop.text);
        }
        (Ns::CalDav, "supported-calendar-component-set") => {
            props.components = prop
                .children
                .iter()
                .filter(|c| c.is(Ns::CalDav, "comp"))
                .filter_map(|c| c.attr("name"))
                .map(|name| name.trim().to_owned())
                .collect();
        }
        (Ns::Dav, "supported-report-set") => {
            props.supports_sync_collection = prop
                .children
                .iter()
                .filter(|c| c.is(Ns::Dav, "supported-report"))
                .flat_map(|c| c.children.iter().filter(|r| r.is(Ns::Dav, "report")))
                .any(|r| r.children.iter().any(|x| x.is(Ns::Dav, "sync-collection")));
        }
        (Ns::Dav, "sync-token") => props.sync_token = trimmed(&prop.text),
        (Ns::CalServer, "getctag") => props.ctag = trimmed(&prop.text),
        (Ns::Dav, "getetag") => props.etag = trimmed(&prop.text),
        (Ns::Dav, "getcontenttype") => props.content_type = trimmed(&prop.text),
        (Ns::CalDav, "calendar-data") | (Ns::CardDav, "address-data") => {
            props.data = Some(prop.text.into_bytes());
        }
        (Ns::Dav, "current-user-principal") => {
            props.current_user_principal = hrefs_in(&prop).into_iter().next();
        }
        (Ns::CalDav, "calendar-home-set") => props.calendar_home_set = hrefs_in(&prop),
        (Ns::CardDav, "addressbook-home-set") => props.addressbook_home_set = hrefs_in(&prop),
        _ => {}
    }
}

/// The trimmed, non-empty `DAV:href` children of `e`.
fn hrefs_in(e: &Element) -> Vec<String> {
    e.children
        .iter()
        .filter(|c| c.is(Ns::Dav, "href"))
        .filter_map(|c| trimmed(&c.text))
        .collect()
}

/// `Some(trimmed)` unless `s` is empty or only whitespace: an empty token or ETag is as good as
/// none.
fn trimmed(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

/// The code in a status line such as `HTTP/1.1 404 Not Found`.
fn parse_status(line: &str) -> Option<u16> {
    let mut words = line.split_whitespace();
    let first = words.next()?;
    // Some servers omit the protocol and send only "404 Not Found".
    let code = if first.starts_with("HTTP/") {
        words.next()?
    } else {
        first
    };
    code.parse().ok().filter(|c| (100..1000).contains(c))
}

// ---------------------------------------------------------------------------------------------
// Element tree
// ---------------------------------------------------------------------------------------------

/// One element of a parsed body: just what the DAV answers need.
#[derive(Debug)]
struct Element {
    ns: Ns,
    local: String,
    /// Unprefixed attributes (local name, decoded value), e.g. `name` on `CalDAV:comp`.
    attrs: Vec<(String, String)>,
    children: Vec<Element>,
    /// All character data directly inside, references decoded, CDATA included, line endings
    /// untouched (iCalendar wants CRLF, and a server writing raw CRLF means it).
    text: String,
}

impl Element {
    fn is(&self, ns: Ns, local: &str) -> bool {
        self.ns == ns && self.local == local
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses `body` into an element tree whose root must be `expected_ns:expected`.
fn parse_tree(body: &[u8], expected_ns: Ns, expected: &'static str) -> Result<Element, XmlError> {
    // A UTF-8 byte order mark is legal before the XML declaration; offsets stay body offsets.
    let (bom, body) = match body.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (3u64, rest),
        None => (0u64, body),
    };
    let text = std::str::from_utf8(body).map_err(|e| XmlError::NotUtf8 {
        offset: e.valid_up_to() + bom as usize,
    })?;
    if text.trim().is_empty() {
        return Err(XmlError::Empty);
    }
    // How the wanted root is named in errors.
    let wanted = format!("{}{expected}", expected_ns.describe());
    let mut reader = NsReader::from_str(text);
    let malformed = |offset: u64, message: String| XmlError::Malformed {
        offset: offset + bom,
        message,
    };
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ResolveResult::Bound(ns), event)) => (Ns::from_uri(ns.into_inner()), event),
            Ok((_, event)) => (Ns::Other, event),
            Err(e) => return Err(malformed(reader.error_position(), e.to_string())),
        };
        let position = reader.buffer_position();
        match event {
            Event::Start(start) | Event::Empty(start) if root.is_some() => {
                let name = start.name().as_ref().to_owned();
                return Err(malformed(
                    position,
                    format!("element <{name}> after the end of the root element"),
                ));
            }
            Event::Start(start) => {
                let element =
                    new_element(&start, ns, &stack, (expected_ns, expected), position + bom)?;
                stack.push(element);
            }
            Event::Empty(start) => {
                let element =
                    new_element(&start, ns, &stack, (expected_ns, expected), position + bom)?;
                attach(&mut stack, &mut root, element);
            }
            Event::End(_) => {
                // quick-xml has already checked that the end tag matches the open one.
                match stack.pop() {
                    Some(element) => attach(&mut stack, &mut root, element),
                    None => {
                        return Err(malformed(position, "unexpected end tag".to_owned()));
                    }
                }
            }
            Event::Text(t) => {
                let raw = t.into_inner();
                push_text(&mut stack, &root, &raw, position + bom, &wanted)?;
            }
            Event::CData(c) => {
                let raw = c.into_inner();
                push_text(&mut stack, &root, &raw, position + bom, &wanted)?;
            }
            Event::GeneralRef(r) => {
                let decoded = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match predefined_entity(&r) {
                        Some(s) => s.to_owned(),
                        None => {
                            return Err(malformed(position, format!("unknown entity &{};", &*r)));
                        }
                    },
                    Err(e) => return Err(malformed(position, e.to_string())),
                };
                push_text(&mut stack, &root, &decoded, position + bom, &wanted)?;
            }
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if let Some(open) = stack.last() {
        return Err(XmlError::Truncated {
            offset: text.len() as u64 + bom,
            inside: format!("{}{}", open.ns.describe(), open.local),
        });
    }
    root.ok_or_else(|| XmlError::Unexpected {
        expected: wanted,
        found: "no element at all".to_owned(),
    })
}

/// Builds the element for a start tag, after checking the root and the nesting depth.
fn new_element(
    start: &BytesStart<'_>,
    ns: Ns,
    stack: &[Element],
    (expected_ns, expected): (Ns, &'static str),
    position: u64,
) -> Result<Element, XmlError> {
    let malformed = |message: String| XmlError::Malformed {
        offset: position,
        message,
    };
    let local = start.local_name().as_ref().to_owned();
    if stack.is_empty() && !(ns == expected_ns && local == expected) {
        // Decide on the root at once, so that an HTML page gets this clear error rather than a
        // complaint about its unclosed <br>.
        return Err(XmlError::Unexpected {
            expected: format!("{}{expected}", expected_ns.describe()),
            found: format!("<{}{local}> at the root", ns.describe()),
        });
    }
    if stack.len() >= MAX_DEPTH {
        return Err(malformed(format!(
            "elements nested deeper than {MAX_DEPTH}"
        )));
    }
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| malformed(e.to_string()))?;
        // Only unprefixed attributes are used (`name` on CalDAV:comp); namespace declarations
        // and foreign attributes are skipped.
        if attr.key.prefix().is_some() || attr.key.as_ref() == "xmlns" {
            continue;
        }
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| malformed(e.to_string()))?;
        let key = attr.key.local_name().as_ref().to_owned();
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        ns,
        local,
        attrs,
        children: Vec::new(),
        text: String::new(),
    })
}

/// Adds a finished element to its parent, or makes it the root.
fn attach(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

/// Appends character data to the open element; outside the root only whitespace is allowed.
fn push_text(
    stack: &mut [Element],
    root: &Option<Element>,
    s: &str,
    position: u64,
    expected: &str,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(open) => {
            open.text.push_str(s);
            Ok(())
        }
        None if s.trim().is_empty() => Ok(()),
        None if root.is_none() => {
            // Plain-text error pages ("Internal Server Error") land here.
            let start: String = s.trim().chars().take(60).collect();
            Err(XmlError::Unexpected {
                expected: expected.to_owned(),
                found: format!("text {start:?}"),
            })
        }
        None => Err(XmlError::Malformed {
            offset: position,
            message: "text after the end of the root element".to_owned(),
        }),
    }
}

/// The five entities XML predefines; a DAV body declares no others.
fn predefined_entity(name: &str) -> Option<&'static str> {
    match name {
        "amp" => Some("&"),
        "lt" => Some("<"),
        "gt" => Some(">"),
        "quot" => Some("\""),
        "apos" => Some("'"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a built body back and returns its root, checking the root's namespace and name.
    fn parse_body(body: &str, ns: Ns, root: &'static str) -> Element {
        match parse_tree(body.as_bytes(), ns, root) {
            Ok(element) => element,
            Err(e) => panic!("{e}\n{body}"),
        }
    }

    fn child<'a>(e: &'a Element, ns: Ns, local: &str) -> &'a Element {
        match e.children.iter().find(|c| c.is(ns, local)) {
            Some(c) => c,
            None => panic!("no {local} in <{}>: {:?}", e.local, e.children),
        }
    }

    /// The (namespace, local name) of the children of `e`.
    fn names(e: &Element) -> Vec<(Ns, &str)> {
        e.children
            .iter()
            .map(|c| (c.ns, c.local.as_str()))
            .collect()
    }

    fn ms(body: &str) -> Multistatus {
        match parse_multistatus(body.as_bytes()) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    // --- Request bodies -----------------------------------------------------------------

    #[test]
    fn principal_body() {
        let body = propfind_principal();
        assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"));
        let root = parse_body(&body, Ns::Dav, "propfind");
        let prop = child(&root, Ns::Dav, "prop");
        assert_eq!(names(prop), [(Ns::Dav, "current-user-principal")]);
    }

    #[test]
    fn home_set_body() {
        let root = parse_body(&propfind_home_sets(), Ns::Dav, "propfind");
        assert_eq!(
            names(child(&root, Ns::Dav, "prop")),
            [
                (Ns::CalDav, "calendar-home-set"),
                (Ns::CardDav, "addressbook-home-set"),
                (Ns::Dav, "current-user-principal")
            ]
        );
    }

    #[test]
    fn collection_body() {
        let root = parse_body(&propfind_collections(), Ns::Dav, "propfind");
        assert_eq!(
            names(child(&root, Ns::Dav, "prop")),
            [
                (Ns::Dav, "resourcetype"),
                (Ns::Dav, "displayname"),
                (Ns::CalServer, "getctag"),
                (Ns::Dav, "supported-report-set"),
                (Ns::Apple, "calendar-color"),
                (Ns::Apple, "calendar-order"),
                (Ns::CalDav, "calendar-description"),
                (Ns::CalDav, "supported-calendar-component-set"),
                (Ns::CardDav, "addressbook-description"),
            ]
        );
    }

    #[test]
    fn etags_body() {
        let root = parse_body(&propfind_etags(), Ns::Dav, "propfind");
        assert_eq!(
            names(child(&root, Ns::Dav, "prop")),
            [
                (Ns::Dav, "getetag"),
                (Ns::Dav, "resourcetype"),
                (Ns::Dav, "getcontenttype")
            ]
        );
    }

    #[test]
    fn sync_collection_bodies() {
        let initial = sync_collection(None, None);
        assert!(initial.contains("<d:sync-token/>"));
        let root = parse_body(&initial, Ns::Dav, "sync-collection");
        assert_eq!(
            names(&root),
            [
                (Ns::Dav, "sync-token"),
                (Ns::Dav, "sync-level"),
                (Ns::Dav, "prop")
            ]
        );
        assert_eq!(child(&root, Ns::Dav, "sync-token").text, "");
        assert_eq!(child(&root, Ns::Dav, "sync-level").text, "1");
        assert_eq!(names(child(&root, Ns::Dav, "prop")), [(Ns::Dav, "getetag")]);

        let token = "http://radicale.org/ns/sync/abc?x=1&y=<2>";
        let root = parse_body(
            &sync_collection(Some(token), None),
            Ns::Dav,
            "sync-collection",
        );
        assert_eq!(child(&root, Ns::Dav, "sync-token").text, token);

        for (kind, data) in [
            (DavKind::CalDav, (Ns::CalDav, "calendar-data")),
            (DavKind::CardDav, (Ns::CardDav, "address-data")),
        ] {
            let root = parse_body(
                &sync_collection(None, Some(kind)),
                Ns::Dav,
                "sync-collection",
            );
            assert_eq!(
                names(child(&root, Ns::Dav, "prop")),
                [(Ns::Dav, "getetag"), data]
            );
        }
    }

    #[test]
    fn multiget_bodies() {
        let hrefs = ["/alice/work/a.ics", "/alice/work/b%40x&y.ics"];
        let body = multiget(DavKind::CalDav, &hrefs);
        let root = parse_body(&body, Ns::CalDav, "calendar-multiget");
        assert_eq!(
            names(child(&root, Ns::Dav, "prop")),
            [(Ns::Dav, "getetag"), (Ns::CalDav, "calendar-data")]
        );
        let sent: Vec<&str> = root
            .children
            .iter()
            .filter(|c| c.is(Ns::Dav, "href"))
            .map(|c| c.text.as_str())
            .collect();
        assert_eq!(sent, hrefs);
        assert!(body.contains("b%40x&amp;y.ics"));

        let root = parse_body(
            &multiget(DavKind::CardDav, &["/c.vcf"]),
            Ns::CardDav,
            "addressbook-multiget",
        );
        assert_eq!(
            names(child(&root, Ns::Dav, "prop")),
            [(Ns::Dav, "getetag"), (Ns::CardDav, "address-data")]
        );
        assert_eq!(child(&root, Ns::Dav, "href").text, "/c.vcf");
    }

    #[test]
    fn calendar_query_body() {
        let root = parse_body(&calendar_query_etags("VTODO"), Ns::CalDav, "calendar-query");
        assert_eq!(names(child(&root, Ns::Dav, "prop")), [(Ns::Dav, "getetag")]);
        let filter = child(&root, Ns::CalDav, "filter");
        let vcalendar = child(filter, Ns::CalDav, "comp-filter");
        assert_eq!(vcalendar.attr("name"), Some("VCALENDAR"));
        let inner = child(vcalendar, Ns::CalDav, "comp-filter");
        assert_eq!(inner.attr("name"), Some("VTODO"));
        assert!(inner.children.is_empty());
    }

    #[test]
    fn time_range_query_body() {
        let body = calendar_query_time_range("VEVENT", Some("20260101T000000Z"), None, true);
        let root = parse_body(&body, Ns::CalDav, "calendar-query");
        assert_eq!(
            names(child(&root, Ns::Dav, "prop")),
            [(Ns::Dav, "getetag"), (Ns::CalDav, "calendar-data")]
        );
        let vcalendar = child(
            child(&root, Ns::CalDav, "filter"),
            Ns::CalDav,
            "comp-filter",
        );
        assert_eq!(vcalendar.attr("name"), Some("VCALENDAR"));
        let inner = child(vcalendar, Ns::CalDav, "comp-filter");
        assert_eq!(inner.attr("name"), Some("VEVENT"));
        let range = child(inner, Ns::CalDav, "time-range");
        assert_eq!(range.attr("start"), Some("20260101T000000Z"));
        assert_eq!(range.attr("end"), None);

        let body = calendar_query_time_range("VTODO", None, Some("20270101T000000Z"), false);
        let root = parse_body(&body, Ns::CalDav, "calendar-query");
        assert_eq!(names(child(&root, Ns::Dav, "prop")), [(Ns::Dav, "getetag")]);
        let vcalendar = child(
            child(&root, Ns::CalDav, "filter"),
            Ns::CalDav,
            "comp-filter",
        );
        let range = child(
            child(vcalendar, Ns::CalDav, "comp-filter"),
            Ns::CalDav,
            "time-range",
        );
        assert_eq!(range.attr("start"), None);
        assert_eq!(range.attr("end"), Some("20270101T000000Z"));
    }

    #[test]
    fn mkcalendar_body_escapes_values() {
        let name = "Work & <Play> \"quoted\" 'single'\r\nnext";
        let body = mkcalendar(Some(name), &["VEVENT", "VTODO"]);
        assert!(!body.contains('\r'), "a raw CR would be normalized away");
        let root = parse_body(&body, Ns::CalDav, "mkcalendar");
        let prop = child(child(&root, Ns::Dav, "set"), Ns::Dav, "prop");
        assert_eq!(child(prop, Ns::Dav, "displayname").text, name);
        let set = child(prop, Ns::CalDav, "supported-calendar-component-set");
        let comps: Vec<_> = set.children.iter().filter_map(|c| c.attr("name")).collect();
        assert_eq!(comps, ["VEVENT", "VTODO"]);

        let bare = parse_body(&mkcalendar(None, &[]), Ns::CalDav, "mkcalendar");
        assert!(bare.children.is_empty());
        let only_name = parse_body(&mkcalendar(Some("N"), &[]), Ns::CalDav, "mkcalendar");
        let prop = child(child(&only_name, Ns::Dav, "set"), Ns::Dav, "prop");
        assert_eq!(names(prop), [(Ns::Dav, "displayname")]);
    }

    #[test]
    fn escape_replaces_characters_xml_cannot_carry() {
        assert_eq!(escape("plain"), "plain");
        assert_eq!(escape("a\u{1}b\tc"), "a\u{FFFD}b\tc");
        let body = mkcalendar(Some("bell\u{7}"), &[]);
        let root = parse_body(&body, Ns::CalDav, "mkcalendar");
        let prop = child(child(&root, Ns::Dav, "set"), Ns::Dav, "prop");
        assert_eq!(child(prop, Ns::Dav, "displayname").text, "bell\u{FFFD}");
    }

    #[test]
    fn mkcol_bodies() {
        let root = parse_body(
            &mkcol_extended(DavKind::CalDav, Some("Home")),
            Ns::Dav,
            "mkcol",
        );
        let prop = child(child(&root, Ns::Dav, "set"), Ns::Dav, "prop");
        assert_eq!(
            names(child(prop, Ns::Dav, "resourcetype")),
            [(Ns::Dav, "collection"), (Ns::CalDav, "calendar")]
        );
        assert_eq!(child(prop, Ns::Dav, "displayname").text, "Home");

        let root = parse_body(&mkcol_extended(DavKind::CardDav, None), Ns::Dav, "mkcol");
        let prop = child(child(&root, Ns::Dav, "set"), Ns::Dav, "prop");
        assert_eq!(
            names(child(prop, Ns::Dav, "resourcetype")),
            [(Ns::Dav, "collection"), (Ns::CardDav, "addressbook")]
        );
        assert_eq!(names(prop), [(Ns::Dav, "resourcetype")]);
    }

    #[test]
    fn proppatch_bodies() {
        let body = proppatch(
            DavKind::CalDav,
            &[
                (MetadataKey::DisplayName, "A & B"),
                (MetadataKey::Color, "#FF0000FF"),
                (MetadataKey::Description, "line\r\nline"),
                (MetadataKey::Order, "3"),
            ],
            &[MetadataKey::Color],
        );
        let root = parse_body(&body, Ns::Dav, "propertyupdate");
        assert_eq!(names(&root), [(Ns::Dav, "set"), (Ns::Dav, "remove")]);
        let set = child(child(&root, Ns::Dav, "set"), Ns::Dav, "prop");
        assert_eq!(
            names(set),
            [
                (Ns::Dav, "displayname"),
                (Ns::Apple, "calendar-color"),
                (Ns::CalDav, "calendar-description"),
                (Ns::Apple, "calendar-order"),
            ]
        );
        assert_eq!(child(set, Ns::Dav, "displayname").text, "A & B");
        assert_eq!(
            child(set, Ns::CalDav, "calendar-description").text,
            "line\r\nline"
        );
        let remove = child(child(&root, Ns::Dav, "remove"), Ns::Dav, "prop");
        assert_eq!(names(remove), [(Ns::Apple, "calendar-color")]);

        let body = proppatch(
            DavKind::CardDav,
            &[(MetadataKey::Description, "d")],
            &[MetadataKey::DisplayName, MetadataKey::Order],
        );
        let root = parse_body(&body, Ns::Dav, "propertyupdate");
        let set = child(child(&root, Ns::Dav, "set"), Ns::Dav, "prop");
        assert_eq!(names(set), [(Ns::CardDav, "addressbook-description")]);
        let remove = child(child(&root, Ns::Dav, "remove"), Ns::Dav, "prop");
        assert_eq!(
            names(remove),
            [(Ns::Dav, "displayname"), (Ns::Apple, "calendar-order")]
        );

        let root = parse_body(
            &proppatch(DavKind::CalDav, &[], &[]),
            Ns::Dav,
            "propertyupdate",
        );
        assert!(root.children.is_empty());
    }

    // --- Answers captured from Radicale 3.9 and Xandikos 0.4.10 ---------------------------

    /// Radicale, PROPFIND Depth 1 on the home set `/alice/` (the principal itself, an address
    /// book and two calendars), verbatim.
    const RADICALE_HOME_DEPTH1: &str = concat!(
        "<?xml version='1.0' encoding='utf-8'?>\n",
        r#"<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:CS="http://calendarserver.org/ns/" xmlns:ICAL="http://apple.com/ns/ical/">"#,
        r#"<response><href>/alice/</href><propstat><prop><resourcetype><principal /><collection /></resourcetype><supported-report-set><supported-report><report><expand-property /></report></supported-report><supported-report><report><principal-search-property-set /></report></supported-report><supported-report><report><principal-property-search /></report></supported-report></supported-report-set></prop><status>HTTP/1.1 200 OK</status></propstat><propstat><prop><displayname /><CS:getctag /><sync-token /><ICAL:calendar-color /><ICAL:calendar-order /><C:calendar-description /><C:supported-calendar-component-set /></prop><status>HTTP/1.1 404 Not Found</status></propstat></response>"#,
        r#"<response><href>/alice/friends/</href><propstat><prop><resourcetype><CR:addressbook /><collection /></resourcetype><displayname>Friends</displayname><CS:getctag>"3c142a79c182dbf73472fa1099fde534cf8c588130342e33bfe65208b26d3525"</CS:getctag><sync-token>http://radicale.org/ns/sync/cbce2b71b10ddc1bdfd33a38645fbbe6fa6a166893638668b34ab510d3bd5fd2</sync-token><supported-report-set><supported-report><report><expand-property /></report></supported-report><supported-report><report><principal-search-property-set /></report></supported-report><supported-report><report><principal-property-search /></report></supported-report><supported-report><report><sync-collection /></report></supported-report><supported-report><report><CR:addressbook-multiget /></report></supported-report><supported-report><report><CR:addressbook-query /></report></supported-report></supported-report-set><C:supported-calendar-component-set /></prop><status>HTTP/1.1 200 OK</status></propstat><propstat><prop><ICAL:calendar-color /><ICAL:calendar-order /><C:calendar-description /></prop><status>HTTP/1.1 404 Not Found</status></propstat></response>"#,
        r#"<response><href>/alice/work/</href><propstat><prop><resourcetype><C:calendar /><collection /></resourcetype><displayname>alice/work</displayname><CS:getctag>"b0cada857dda804658bb81195b250d64e51ee9c7ec839a9254b64d6d77b25c54"</CS:getctag><sync-token>http://radicale.org/ns/sync/80326e2a9a6a7f0994ab509b9604ffb5c901d424a3422439f6f044965667eb73</sync-token><supported-report-set><supported-report><report><expand-property /></report></supported-report><supported-report><report><principal-search-property-set /></report></supported-report><supported-report><report><principal-property-search /></report></supported-report><supported-report><report><sync-collection /></report></supported-report><supported-report><report><C:calendar-multiget /></report></supported-report><supported-report><report><C:calendar-query /></report></supported-report><supported-report><report><C:free-busy-query /></report></supported-report></supported-report-set><ICAL:calendar-color>#FF0000FF</ICAL:calendar-color><ICAL:calendar-order>3</ICAL:calendar-order><C:calendar-description>d"#,
        "\r\n",
        r#"x</C:calendar-description><C:supported-calendar-component-set><C:comp name="VEVENT" /><C:comp name="VTODO" /></C:supported-calendar-component-set></prop><status>HTTP/1.1 200 OK</status></propstat></response>"#,
        r#"<response><href>/alice/home/</href><propstat><prop><resourcetype><C:calendar /><collection /></resourcetype><displayname>Home</displayname><CS:getctag>"49116457d9d5500d132883911b84b8bcfa1ead166b201f079a0f667ca22411b9"</CS:getctag><sync-token>http://radicale.org/ns/sync/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855</sync-token><supported-report-set><supported-report><report><expand-property /></report></supported-report><supported-report><report><principal-search-property-set /></report></supported-report><supported-report><report><principal-property-search /></report></supported-report><supported-report><report><sync-collection /></report></supported-report><supported-report><report><C:calendar-multiget /></report></supported-report><supported-report><report><C:calendar-query /></report></supported-report><supported-report><report><C:free-busy-query /></report></supported-report></supported-report-set><C:supported-calendar-component-set><C:comp name="VTODO" /><C:comp name="VEVENT" /><C:comp name="VJOURNAL" /></C:supported-calendar-component-set></prop><status>HTTP/1.1 200 OK</status></propstat><propstat><prop><ICAL:calendar-color /><ICAL:calendar-order /><C:calendar-description /></prop><status>HTTP/1.1 404 Not Found</status></propstat></response>"#,
        "</multistatus>"
    );

    #[test]
    fn radicale_home_set_listing() {
        let m = ms(RADICALE_HOME_DEPTH1);
        assert_eq!(m.sync_token, None);
        assert!(!m.truncated);
        let hrefs: Vec<_> = m.responses.iter().map(|r| r.href.as_str()).collect();
        assert_eq!(
            hrefs,
            ["/alice/", "/alice/friends/", "/alice/work/", "/alice/home/"]
        );

        let principal = &m.responses[0];
        assert_eq!(principal.status, None);
        assert!(principal.props.is_collection);
        assert!(!principal.props.is_calendar && !principal.props.is_addressbook);
        assert!(!principal.props.supports_sync_collection);
        assert_eq!(
            principal.missing,
            [
                "displayname",
                "getctag",
                "sync-token",
                "calendar-color",
                "calendar-order",
                "calendar-description",
                "supported-calendar-component-set"
            ]
        );

        let book = &m.responses[1].props;
        assert!(book.is_collection && book.is_addressbook && !book.is_calendar);
        assert_eq!(book.displayname.as_deref(), Some("Friends"));
        assert!(book.components.is_empty());

        let work = &m.responses[2];
        assert!(work.missing.is_empty());
        assert_eq!(
            work.props,
            Props {
                is_collection: true,
                is_calendar: true,
                displayname: Some("alice/work".into()),
                color: Some("#FF0000FF".into()),
                description: Some("d\r\nx".into()),
                order: Some("3".into()),
                components: vec!["VEVENT".into(), "VTODO".into()],
                supports_sync_collection: true,
                sync_token: Some(
                    "http://radicale.org/ns/sync/80326e2a9a6a7f0994ab509b9604ffb5c901d424a3422439f6f044965667eb73"
                        .into()
                ),
                ctag: Some(
                    "\"b0cada857dda804658bb81195b250d64e51ee9c7ec839a9254b64d6d77b25c54\"".into()
                ),
                ..Props::default()
            }
        );

        let home = &m.responses[3].props;
        assert!(home.is_calendar && home.supports_sync_collection);
        assert_eq!(home.displayname.as_deref(), Some("Home"));
        assert_eq!(home.components, ["VTODO", "VEVENT", "VJOURNAL"]);
        assert_eq!(home.color, None);
        assert_eq!(
            m.responses[3].missing,
            ["calendar-color", "calendar-order", "calendar-description"]
        );
    }

    /// Xandikos, PROPFIND Depth 1 on `/alice/calendars/` (the home set and two calendars),
    /// verbatim: `ns0:`-style prefixes and the status before the prop.
    const XANDIKOS_HOME_DEPTH1: &str = concat!(
        r#"<ns0:multistatus xmlns:ns0="DAV:" xmlns:ns1="http://calendarserver.org/ns/" xmlns:ns2="http://apple.com/ns/ical/" xmlns:ns3="urn:ietf:params:xml:ns:caldav">"#,
        r#"<ns0:response><ns0:href>/alice/calendars/</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns0:resourcetype><ns0:collection /></ns0:resourcetype><ns0:displayname>calendars</ns0:displayname><ns1:getctag>4b825dc642cb6eb9a060e54bf8d69288fbee4904</ns1:getctag><ns0:sync-token>4b825dc642cb6eb9a060e54bf8d69288fbee4904</ns0:sync-token><ns0:supported-report-set><ns0:supported-report><ns0:report><ns0:expand-property /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns0:principal-property-search /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns0:sync-collection /></ns0:report></ns0:supported-report></ns0:supported-report-set></ns0:prop></ns0:propstat><ns0:propstat><ns0:status>HTTP/1.1 404 Not Found</ns0:status><ns0:prop><ns2:calendar-color /><ns2:calendar-order /><ns3:calendar-description /><ns3:supported-calendar-component-set /></ns0:prop></ns0:propstat></ns0:response>"#,
        r#"<ns0:response><ns0:href>/alice/calendars/work/</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns0:resourcetype><ns0:collection /><ns3:calendar /></ns0:resourcetype><ns0:displayname>work</ns0:displayname><ns1:getctag>59a32df8a16e2f99d8b6569b9e732b9d28dbfe59</ns1:getctag><ns0:sync-token>59a32df8a16e2f99d8b6569b9e732b9d28dbfe59</ns0:sync-token><ns0:supported-report-set><ns0:supported-report><ns0:report><ns3:calendar-multiget /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns3:calendar-query /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns0:expand-property /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns0:principal-property-search /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns0:sync-collection /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns3:free-busy-query /></ns0:report></ns0:supported-report></ns0:supported-report-set><ns2:calendar-color>#FF0000FF</ns2:calendar-color><ns2:calendar-order>3</ns2:calendar-order><ns3:calendar-description>d"#,
        "\n",
        r#"x</ns3:calendar-description><ns3:supported-calendar-component-set><ns3:comp name="VEVENT" /><ns3:comp name="VTODO" /></ns3:supported-calendar-component-set></ns0:prop></ns0:propstat></ns0:response>"#,
        r#"<ns0:response><ns0:href>/alice/calendars/calendar/</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns0:resourcetype><ns0:collection /><ns3:calendar /></ns0:resourcetype><ns0:displayname>calendar</ns0:displayname><ns1:getctag>1fb4c06600fdc9f870565ea16e4b5423b083452b</ns1:getctag><ns0:sync-token>1fb4c06600fdc9f870565ea16e4b5423b083452b</ns0:sync-token><ns0:supported-report-set><ns0:supported-report><ns0:report><ns3:calendar-multiget /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns3:calendar-query /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns0:expand-property /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns0:principal-property-search /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns0:sync-collection /></ns0:report></ns0:supported-report><ns0:supported-report><ns0:report><ns3:free-busy-query /></ns0:report></ns0:supported-report></ns0:supported-report-set><ns3:calendar-description /><ns3:supported-calendar-component-set><ns3:comp name="VEVENT" /><ns3:comp name="VTODO" /><ns3:comp name="VJOURNAL" /><ns3:comp name="VFREEBUSY" /><ns3:comp name="VAVAILABILITY" /></ns3:supported-calendar-component-set></ns0:prop></ns0:propstat><ns0:propstat><ns0:status>HTTP/1.1 404 Not Found</ns0:status><ns0:prop><ns2:calendar-color /><ns2:calendar-order /></ns0:prop></ns0:propstat></ns0:response>"#,
        "</ns0:multistatus>"
    );

    #[test]
    fn xandikos_home_set_listing() {
        let m = ms(XANDIKOS_HOME_DEPTH1);
        assert_eq!(m.responses.len(), 3);
        let home = &m.responses[0].props;
        assert!(home.is_collection && !home.is_calendar);
        // The home set itself announces sync-collection too; only calendars matter to callers.
        assert!(home.supports_sync_collection);

        let work = &m.responses[1];
        assert_eq!(work.href, "/alice/calendars/work/");
        assert!(work.props.is_calendar && work.props.supports_sync_collection);
        assert_eq!(work.props.displayname.as_deref(), Some("work"));
        assert_eq!(work.props.color.as_deref(), Some("#FF0000FF"));
        assert_eq!(work.props.order.as_deref(), Some("3"));
        assert_eq!(work.props.description.as_deref(), Some("d\nx"));
        assert_eq!(
            work.props.ctag.as_deref(),
            Some("59a32df8a16e2f99d8b6569b9e732b9d28dbfe59")
        );
        assert_eq!(work.props.sync_token, work.props.ctag);

        let default = &m.responses[2];
        // An empty description in a 200 propstat is an empty description, not a missing one.
        assert_eq!(default.props.description.as_deref(), Some(""));
        assert_eq!(
            default.props.components,
            ["VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY", "VAVAILABILITY"]
        );
        assert_eq!(default.missing, ["calendar-color", "calendar-order"]);
    }

    #[test]
    fn home_set_and_principal_answers() {
        let radicale = concat!(
            "<?xml version='1.0' encoding='utf-8'?>\n",
            r#"<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><response><href>/alice/</href><propstat><prop><C:calendar-home-set><href>/alice/</href></C:calendar-home-set><current-user-principal><href>/alice/</href></current-user-principal></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#
        );
        let props = &ms(radicale).responses[0].props;
        assert_eq!(props.calendar_home_set, ["/alice/"]);
        assert_eq!(props.current_user_principal.as_deref(), Some("/alice/"));
        assert!(props.addressbook_home_set.is_empty());

        let xandikos = r#"<ns0:multistatus xmlns:ns0="DAV:" xmlns:ns1="urn:ietf:params:xml:ns:carddav"><ns0:response><ns0:href>/alice/</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns1:addressbook-home-set><ns0:href>/alice/contacts/</ns0:href><ns0:href> /shared/contacts/ </ns0:href></ns1:addressbook-home-set><ns0:current-user-principal><ns0:href>/alice/</ns0:href></ns0:current-user-principal></ns0:prop></ns0:propstat></ns0:response></ns0:multistatus>"#;
        let props = &ms(xandikos).responses[0].props;
        assert_eq!(
            props.addressbook_home_set,
            ["/alice/contacts/", "/shared/contacts/"]
        );
        assert!(props.calendar_home_set.is_empty());

        // Not logged in: current-user-principal holds <unauthenticated/>, not an href.
        let anonymous = r#"<D:multistatus xmlns:D="DAV:"><D:response><D:href>/</D:href><D:propstat><D:prop><D:current-user-principal><D:unauthenticated/></D:current-user-principal></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"#;
        assert_eq!(
            ms(anonymous).responses[0].props.current_user_principal,
            None
        );
    }

    #[test]
    fn radicale_sync_collection() {
        let initial = concat!(
            "<?xml version='1.0' encoding='utf-8'?>\n",
            r#"<multistatus xmlns="DAV:"><sync-token>http://radicale.org/ns/sync/80326e2a9a6a7f0994ab509b9604ffb5c901d424a3422439f6f044965667eb73</sync-token><response><href>/alice/work/a.ics</href><propstat><prop><getetag>"b368a2b6ddfa26232fccc4696c03408d3cf66a3d6a31574c664384722d2bd679"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#
        );
        let m = ms(initial);
        assert_eq!(
            m.sync_token.as_deref(),
            Some(
                "http://radicale.org/ns/sync/80326e2a9a6a7f0994ab509b9604ffb5c901d424a3422439f6f044965667eb73"
            )
        );
        assert_eq!(m.responses.len(), 1);
        assert_eq!(
            m.responses[0].props.etag.as_deref(),
            Some("\"b368a2b6ddfa26232fccc4696c03408d3cf66a3d6a31574c664384722d2bd679\"")
        );

        // After deleting a.ics and creating b@x.ics: a deleted member is a 404 response.
        let changes = concat!(
            "<?xml version='1.0' encoding='utf-8'?>\n",
            r#"<multistatus xmlns="DAV:"><sync-token>http://radicale.org/ns/sync/f588784de1a33c78d84481f6c27657cc76797812845d69a6e414186ee00f3b5c</sync-token><response><href>/alice/work/a.ics</href><status>HTTP/1.1 404 Not Found</status></response><response><href>/alice/work/b%40x.ics</href><propstat><prop><getetag>"828850adb8e7f11202202ba32e7d167ff23b4fd89586c533c479f29eb7771845"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#
        );
        let m = ms(changes);
        assert!(!m.truncated);
        assert_eq!(m.responses[0].href, "/alice/work/a.ics");
        assert_eq!(m.responses[0].status, Some(404));
        assert_eq!(m.responses[0].props, Props::default());
        assert_eq!(m.responses[1].href, "/alice/work/b%40x.ics");
        assert_eq!(m.responses[1].status, None);
        assert!(m.responses[1].props.etag.is_some());
    }

    #[test]
    fn xandikos_sync_collection_token_after_responses() {
        let changes = r#"<ns0:multistatus xmlns:ns0="DAV:"><ns0:response><ns0:href>/alice/calendars/calendar/b@x.ics</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns0:getetag>"27ec0e55f737a3c7b2a38b7583df697e8f91691c"</ns0:getetag></ns0:prop></ns0:propstat></ns0:response><ns0:response><ns0:href>/alice/calendars/calendar/a.ics</ns0:href><ns0:status>HTTP/1.1 404 Not Found</ns0:status></ns0:response><ns0:sync-token>b9e32ccceefb9ad31c21ab669a56cfe0998187ba</ns0:sync-token></ns0:multistatus>"#;
        let m = ms(changes);
        assert_eq!(
            m.sync_token.as_deref(),
            Some("b9e32ccceefb9ad31c21ab669a56cfe0998187ba")
        );
        assert_eq!(m.responses.len(), 2);
        assert_eq!(m.responses[0].href, "/alice/calendars/calendar/b@x.ics");
        assert_eq!(
            m.responses[0].props.etag.as_deref(),
            Some("\"27ec0e55f737a3c7b2a38b7583df697e8f91691c\"")
        );
        assert_eq!(m.responses[1].status, Some(404));
        assert!(!m.truncated);
    }

    #[test]
    fn truncated_sync_collection() {
        // RFC 6578 §3.6: the request URI answered with 507, the rest of the changes follow
        // after another request with the new token.
        let body = r#"<?xml version="1.0" encoding="utf-8" ?>
<D:multistatus xmlns:D="DAV:">
  <D:response>
    <D:href>http://www.example.com/home/cyrusdaboo/calendar/1.ics</D:href>
    <D:propstat>
      <D:prop><D:getetag>W/"00001-abcd1"</D:getetag></D:prop>
      <D:status>HTTP/1.1 200 OK</D:status>
    </D:propstat>
  </D:response>
  <D:response>
    <D:href>http://www.example.com/home/cyrusdaboo/calendar/</D:href>
    <D:status>HTTP/1.1 507 Insufficient Storage</D:status>
  </D:response>
  <D:sync-token>
    http://example.com/ns/sync/1233
  </D:sync-token>
</D:multistatus>"#;
        let m = ms(body);
        assert!(m.truncated);
        assert_eq!(
            m.sync_token.as_deref(),
            Some("http://example.com/ns/sync/1233")
        );
        assert_eq!(
            m.responses[0].props.etag.as_deref(),
            Some("W/\"00001-abcd1\"")
        );
        assert_eq!(m.responses[1].status, Some(507));
        assert_eq!(
            m.responses[1].href,
            "http://www.example.com/home/cyrusdaboo/calendar/"
        );
    }

    const EVENT_CRLF: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n\
        BEGIN:VEVENT\r\nUID:a\r\nDTSTART:20240102T100000Z\r\n\
        DESCRIPTION:line1\\nline2 ]]> end\r\nDTSTAMP:20240101T000000Z\r\n\
        SUMMARY:Tom & Jerry <show> \"quoted\"\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn radicale_multiget_with_missing_hrefs() {
        // As sent: raw CRLF inside calendar-data, `&amp;`, `&lt;`, `&gt;` for the markup.
        let data = EVENT_CRLF
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let body = format!(
            "{}{}{}{}",
            "<?xml version='1.0' encoding='utf-8'?>\n",
            r#"<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><response><href>/alice/calendars/calendar/missing.ics</href><status>HTTP/1.1 404 Not Found</status></response><response><href>/alice/work/missing.ics</href><status>HTTP/1.1 404 Not Found</status></response><response><href>/alice/work/a.ics</href><propstat><prop><getetag>"b368a2b6ddfa26232fccc4696c03408d3cf66a3d6a31574c664384722d2bd679"</getetag><C:calendar-data>"#,
            data,
            r#"</C:calendar-data></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#
        );
        let m = ms(&body);
        assert_eq!(m.responses.len(), 3);
        assert_eq!(m.responses[0].status, Some(404));
        assert_eq!(m.responses[0].props.data, None);
        // A 404 for a member is not a truncated result.
        assert!(!m.truncated);
        let found = &m.responses[2];
        assert_eq!(found.href, "/alice/work/a.ics");
        assert_eq!(found.props.data.as_deref(), Some(EVENT_CRLF.as_bytes()));
        assert!(found.props.etag.is_some());
    }

    #[test]
    fn xandikos_multiget_card() {
        let body = "<ns0:multistatus xmlns:ns0=\"DAV:\" xmlns:ns1=\"urn:ietf:params:xml:ns:carddav\"><ns0:response><ns0:href>/alice/contacts/addressbook/c.vcf</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns0:getetag>\"d8e5632b1b083646fdd843f0b10f13b92e58a144\"</ns0:getetag><ns1:address-data>BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Ann &amp; Bob\r\nN:Bob;Ann;;;\r\nEND:VCARD\r\n</ns1:address-data></ns0:prop></ns0:propstat></ns0:response></ns0:multistatus>";
        let m = ms(body);
        assert_eq!(
            m.responses[0].props.data.as_deref(),
            Some(&b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Ann & Bob\r\nN:Bob;Ann;;;\r\nEND:VCARD\r\n"[..])
        );
    }

    #[test]
    fn calendar_data_with_char_refs_and_cdata() {
        let body = concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            "\n",
            r#"<d:multistatus xmlns:d="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav">"#,
            "\n <d:response>\n  <d:href>\n   /cal/%E2%82%AC.ics\n  </d:href>\n",
            "  <d:propstat>\n   <d:prop>\n",
            "    <d:getetag>&quot;x&amp;1&quot;</d:getetag>\n",
            "    <cal:calendar-data>BEGIN:VCALENDAR&#13;\nSUMMARY:Tom &amp; Jerry&#x0D;&#10;",
            "X-A:&lt;&gt;&apos;&#8364;&#13;\n",
            "<![CDATA[X-RAW:<b>&amp;</b>]]>&#13;\nEND:VCALENDAR&#13;\n</cal:calendar-data>\n",
            "   </d:prop>\n   <d:status>HTTP/1.1 200 OK</d:status>\n  </d:propstat>\n",
            " </d:response>\n",
            " <d:response><d:href/><d:status>HTTP/1.1 404 Not Found</d:status></d:response>\n",
            "</d:multistatus>\n"
        );
        let m = ms(body);
        assert_eq!(m.responses.len(), 2);
        let r = &m.responses[0];
        assert_eq!(r.href, "/cal/%E2%82%AC.ics");
        assert_eq!(r.props.etag.as_deref(), Some("\"x&1\""));
        assert_eq!(
            r.props.data.as_deref(),
            Some(
                "BEGIN:VCALENDAR\r\nSUMMARY:Tom & Jerry\r\nX-A:<>'€\r\nX-RAW:<b>&amp;</b>\r\nEND:VCALENDAR\r\n"
                    .as_bytes()
            )
        );
        assert_eq!(m.responses[1].href, "");
        assert_eq!(m.responses[1].status, Some(404));
    }

    #[test]
    fn several_hrefs_share_one_status() {
        let body = r#"<multistatus xmlns="DAV:"><response><href>/a.ics</href><href>/b.ics</href><status>HTTP/1.1 404 Not Found</status></response></multistatus>"#;
        let m = ms(body);
        let got: Vec<_> = m
            .responses
            .iter()
            .map(|r| (r.href.as_str(), r.status))
            .collect();
        assert_eq!(got, [("/a.ics", Some(404)), ("/b.ics", Some(404))]);
    }

    #[test]
    fn uppercase_prefix_weak_etags_and_foreign_namespaces() {
        let body = r#"<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:X="http://example.com/ns/" xmlns:C="urn:ietf:params:xml:ns:caldav">
 <D:response>
  <D:href>/dav/cal/item.ics</D:href>
  <D:propstat>
   <D:prop>
    <D:getetag> W/"42" </D:getetag>
    <X:getetag>"foreign"</X:getetag>
    <X:displayname>foreign</X:displayname>
    <D:resourcetype><X:calendar/></D:resourcetype>
    <D:getcontenttype>text/calendar; component=vevent</D:getcontenttype>
   </D:prop>
   <D:status>HTTP/1.1 200 OK</D:status>
  </D:propstat>
  <D:propstat>
   <D:prop><C:calendar-data/></D:prop>
   <D:status>HTTP/1.1 403 Forbidden</D:status>
  </D:propstat>
 </D:response>
</D:multistatus>"#;
        let m = ms(body);
        let r = &m.responses[0];
        assert_eq!(r.props.etag.as_deref(), Some("W/\"42\""));
        assert_eq!(r.props.displayname, None);
        assert!(!r.props.is_calendar && !r.props.is_collection);
        assert_eq!(
            r.props.content_type.as_deref(),
            Some("text/calendar; component=vevent")
        );
        assert_eq!(r.props.data, None);
        assert_eq!(r.missing, ["calendar-data"]);
    }

    #[test]
    fn default_namespace_and_bom() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend_from_slice(
            br#"<multistatus xmlns="DAV:"><response><href>/x/</href><propstat><prop><resourcetype><collection/></resourcetype></prop></propstat></response></multistatus>"#,
        );
        let m = parse_multistatus(&body);
        // A propstat without a status counts as successful.
        assert!(m.is_ok_and(|m| m.responses[0].props.is_collection));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status("HTTP/1.1 200 OK"), Some(200));
        assert_eq!(
            parse_status("  HTTP/1.0 507 Insufficient Storage "),
            Some(507)
        );
        assert_eq!(parse_status("404 Not Found"), Some(404));
        assert_eq!(parse_status("HTTP/1.1"), None);
        assert_eq!(parse_status("HTTP/1.1 abc"), None);
        assert_eq!(parse_status(""), None);
        assert_eq!(parse_status("HTTP/1.1 99999"), None);
    }

    #[test]
    fn error_conditions() {
        let name = |body: &[u8]| parse_error_condition(body).map(|c| c.name);
        let radicale = "<?xml version='1.0' encoding='utf-8'?>\n<error xmlns=\"DAV:\"><valid-sync-token /></error>";
        assert_eq!(
            name(radicale.as_bytes()).as_deref(),
            Some("valid-sync-token")
        );
        let xandikos = r#"<ns0:error xmlns:ns0="DAV:"><ns0:valid-sync-token /><ns0:responsedescription>Requested sync token http://bogus/sync/1 is invalid</ns0:responsedescription></ns0:error>"#;
        assert_eq!(
            parse_error_condition(xandikos.as_bytes()),
            Some(Condition {
                name: "valid-sync-token".into(),
                href: None
            })
        );
        let caldav = r#"<D:error xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <C:no-uid-conflict><D:href> /cal/other.ics </D:href></C:no-uid-conflict>
</D:error>"#;
        assert_eq!(
            parse_error_condition(caldav.as_bytes()),
            Some(Condition {
                name: "no-uid-conflict".into(),
                href: Some("/cal/other.ics".into())
            })
        );
        let carddav = r#"<error xmlns="DAV:" xmlns:R="urn:ietf:params:xml:ns:carddav"><R:no-uid-conflict><href>/book/x.vcf</href></R:no-uid-conflict></error>"#;
        assert_eq!(
            parse_error_condition(carddav.as_bytes()).and_then(|c| c.href),
            Some("/book/x.vcf".into())
        );
        assert_eq!(name(b"<error xmlns=\"DAV:\"/>"), None);
        assert_eq!(name(b""), None);
        assert_eq!(name(b"<html><body>403</body></html>"), None);
        assert_eq!(name(b"<error><valid-sync-token/></error>"), None);
        assert_eq!(name(br#"<multistatus xmlns="DAV:"/>"#), None);
    }

    #[test]
    fn query_by_uid_bodies() {
        let cal = query_by_uid(DavKind::CalDav, "VEVENT", "a<b");
        let root = parse_body(&cal, Ns::CalDav, "calendar-query");
        let filter = child(&root, Ns::CalDav, "filter");
        let vevent = child(
            child(filter, Ns::CalDav, "comp-filter"),
            Ns::CalDav,
            "comp-filter",
        );
        assert_eq!(vevent.attr("name"), Some("VEVENT"));
        let text = child(
            child(vevent, Ns::CalDav, "prop-filter"),
            Ns::CalDav,
            "text-match",
        );
        assert_eq!(text.text, "a<b");
        assert_eq!(text.attr("match-type"), Some("equals"));
        let card = query_by_uid(DavKind::CardDav, "", "k");
        let root = parse_body(&card, Ns::CardDav, "addressbook-query");
        let filter = child(&root, Ns::CardDav, "filter");
        let prop = child(filter, Ns::CardDav, "prop-filter");
        assert_eq!(prop.attr("name"), Some("UID"));
        assert_eq!(child(prop, Ns::CardDav, "text-match").text, "k");
    }

    #[test]
    fn failed_propstats_are_told_apart_from_missing_properties() {
        let m = ms(
            r#"<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
<response><href>/c/a.ics</href>
  <propstat><prop><getetag>"1"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat>
  <propstat><prop><C:calendar-data/></prop><status>HTTP/1.1 500 Internal Server Error</status></propstat>
</response>
<response><href>/c/b.ics</href>
  <propstat><prop><getetag/><C:calendar-data/></prop><status>HTTP/1.1 403 Forbidden</status></propstat>
</response>
<response><href>/c/c.ics</href>
  <propstat><prop><getetag>"3"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat>
  <propstat><prop><C:calendar-data/></prop><status>HTTP/1.1 404 Not Found</status></propstat>
</response>
</multistatus>"#,
        );
        assert_eq!(m.responses[0].failed_propstat, Some(500));
        assert_eq!(m.responses[0].props.etag.as_deref(), Some("\"1\""));
        assert_eq!(m.responses[0].props.data, None);
        assert_eq!(m.responses[1].failed_propstat, Some(403));
        assert_eq!(m.responses[1].props.etag, None);
        // A 404 propstat: the property is absent, nothing failed.
        assert_eq!(m.responses[2].failed_propstat, None);
        assert_eq!(m.responses[2].missing, ["calendar-data"]);
        assert!(!m.truncated);
    }

    #[test]
    fn listing_cut_short_by_the_server() {
        // RFC 5323 §5.2 / RFC 4918 §14.5: the request URI answered 507 with
        // number-of-matches-within-limits, the other responses are only part of the listing.
        let m = ms(r#"<D:multistatus xmlns:D="DAV:">
<D:response><D:href>/c/a.ics</D:href>
  <D:propstat><D:prop><D:getetag>"1"</D:getetag></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>
</D:response>
<D:response><D:href>/c/</D:href><D:status>HTTP/1.1 507 Insufficient Storage</D:status>
  <D:error><D:number-of-matches-within-limits/></D:error>
  <D:responsedescription>Only part of the results</D:responsedescription>
</D:response>
</D:multistatus>"#);
        assert!(m.truncated);
        assert_eq!(
            m.responses[1].error.as_deref(),
            Some("number-of-matches-within-limits")
        );
        // The error element alone says it, whatever the status line.
        let m = ms(r#"<multistatus xmlns="DAV:"><response><href>/c/</href>
<propstat><prop><getetag>"c"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat>
<error><number-of-matches-within-limits/></error></response></multistatus>"#);
        assert!(m.truncated);
    }

    // --- Broken answers ------------------------------------------------------------------

    fn err(body: &[u8]) -> XmlError {
        match parse_multistatus(body) {
            Ok(m) => panic!("parsed: {m:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn empty_bodies() {
        assert_eq!(err(b""), XmlError::Empty);
        assert_eq!(err(b" \r\n\t"), XmlError::Empty);
    }

    #[test]
    fn html_error_page() {
        let page = b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center>\n</body></html>";
        let e = err(page);
        assert!(matches!(&e, XmlError::Unexpected { found, .. } if found.contains("<html>")));
        assert_eq!(
            e.to_string(),
            "expected a DAV:multistatus document, found <html> at the root"
        );
    }

    #[test]
    fn plain_text_body() {
        let e = err(b"Access to the requested resource forbidden.");
        assert!(
            e.to_string()
                .contains("\"Access to the requested resource forbidden.\"")
        );
    }

    #[test]
    fn other_dav_document() {
        let e = err(b"<error xmlns=\"DAV:\"><valid-sync-token/></error>");
        assert!(e.to_string().contains("<DAV:error>"), "{e}");
        // Right local name, wrong namespace.
        let e = err(b"<multistatus><response/></multistatus>");
        assert!(e.to_string().contains("<multistatus>"), "{e}");
        // Only a declaration and a comment.
        let e = err(b"<?xml version=\"1.0\"?><!-- nothing -->");
        assert!(e.to_string().contains("no element"), "{e}");
    }

    #[test]
    fn truncated_body() {
        let full = RADICALE_HOME_DEPTH1.as_bytes();
        let cut = &full[..full.len() / 2];
        match err(cut) {
            XmlError::Truncated { offset, inside } => {
                assert_eq!(offset, cut.len() as u64);
                assert!(!inside.is_empty());
            }
            // Cutting inside a tag is reported by the reader as a syntax error.
            XmlError::Malformed { .. } => {}
            e => panic!("{e:?}"),
        }
        let e = err(b"<d:multistatus xmlns:d=\"DAV:\"><d:response><d:href>/a");
        assert_eq!(
            e,
            XmlError::Truncated {
                offset: 52,
                inside: "DAV:href".into()
            }
        );
        assert!(e.to_string().contains("byte 52"));
        // Every prefix of a real answer fails cleanly.
        for end in 0..full.len() {
            assert!(parse_multistatus(&full[..end]).is_err(), "prefix {end}");
        }
    }

    #[test]
    fn malformed_xml_reports_offset() {
        let body = b"<multistatus xmlns=\"DAV:\"><response></href></multistatus>";
        match err(body) {
            XmlError::Malformed { offset, message } => {
                assert!(offset > 0 && offset <= body.len() as u64, "{offset}");
                assert!(!message.is_empty());
            }
            e => panic!("{e:?}"),
        }
        assert!(matches!(
            err(b"<multistatus xmlns=\"DAV:\"><response>&bogus;</response></multistatus>"),
            XmlError::Malformed { message, .. } if message.contains("&bogus;")
        ));
        assert!(matches!(
            err(b"<multistatus xmlns=\"DAV:\"><a>&#0;</a></multistatus>"),
            XmlError::Malformed { .. }
        ));
        assert!(matches!(
            err(b"<multistatus xmlns=\"DAV:\"></multistatus><multistatus xmlns=\"DAV:\"/>"),
            XmlError::Malformed { .. }
        ));
        assert!(matches!(
            err(b"<multistatus xmlns=\"DAV:\"></multistatus>trailing"),
            XmlError::Malformed { .. }
        ));
        assert!(matches!(
            err(b"<multistatus xmlns=\"DAV:\" a=\"1\" a=\"2\"></multistatus>"),
            XmlError::Malformed { .. }
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let samples: [&[u8]; 8] = [
            b"\x00\x01\x02",
            b"<<<>>>",
            b"<multistatus xmlns=\"DAV:\"><<",
            b"<?xml",
            b"<![CDATA[x]]>",
            b"&amp;",
            b"<multistatus xmlns=\"DAV:\"><response><href>&#xFFFFFFFF;</href></response></multistatus>",
            b"<multistatus xmlns=\"DAV:\">\xFF</multistatus>",
        ];
        for sample in samples {
            assert!(parse_multistatus(sample).is_err(), "{sample:?}");
        }
        assert_eq!(
            err(b"<multistatus xmlns=\"DAV:\">\xFF</multistatus>"),
            XmlError::NotUtf8 { offset: 26 }
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut body = String::from("<multistatus xmlns=\"DAV:\">");
        body.push_str(&"<a>".repeat(10_000));
        body.push_str(&"</a>".repeat(10_000));
        body.push_str("</multistatus>");
        assert!(matches!(
            err(body.as_bytes()),
            XmlError::Malformed { message, .. } if message.contains("nested")
        ));
    }
}
