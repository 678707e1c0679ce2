//! Byte-level content-line layer for iCalendar (RFC 5545) and vCard (2.1, 3.0, 4.0).
//!
//! Items are never re-serialized: a sync must hand every byte of an item to the other side
//! unchanged, so this module only reads bytes and computes facts about them (structure, UID,
//! a normalized hash). The only bytes it produces come from [`split_calendar`] and
//! [`join_calendar`], which copy original lines verbatim, line ends included.
//!
//! Everything is built on one private iterator over *logical* lines (`Lines`): it unfolds
//! continuation lines, joins vCard 2.1 quoted-printable soft line breaks, skips blank lines and
//! splits each line into name, parameters and value, borrowing from the input whenever the line
//! was not folded. Input is `&[u8]`, not `&str`, because real-world files are not always UTF-8
//! and must still get an identity and a hash.

use std::borrow::Cow;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// A structural problem, with the 1-based physical line number where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct Malformed {
    /// 1-based physical line number (a CRLF, a lone LF or a lone CR ends a line).
    pub line: usize,
    /// What is wrong there.
    pub problem: Problem,
}

/// The kinds of structural problems [`check`], [`split_calendar`] and [`join_calendar`] report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The input holds no content line at all (empty, or only blank lines and a BOM).
    #[error("no content")]
    Empty,
    /// The first content line is not `BEGIN:VCALENDAR` or `BEGIN:VCARD`.
    #[error("expected BEGIN:VCALENDAR or BEGIN:VCARD")]
    NoBegin,
    /// The input is not valid UTF-8; the line is the one holding the first invalid byte.
    #[error("not valid UTF-8")]
    NotUtf8,
    /// The input ended while the named component was still open.
    #[error("BEGIN:{0} is never ended")]
    MissingEnd(String),
    /// An `END` names another component than the innermost open one.
    #[error("expected END:{expected}, found END:{found}")]
    UnexpectedEnd {
        /// The innermost open component.
        expected: String,
        /// The component the `END` line names.
        found: String,
    },
    /// Something other than blank lines follows the `END` of the object.
    #[error("content after the end of the object")]
    ContentAfterEnd,
    /// A logical line is not `NAME[;PARAMS]:VALUE`.
    #[error("not a content line")]
    NotAContentLine,
    /// A `BEGIN` or `END` line has an empty value.
    #[error("BEGIN or END without a component name")]
    NoComponentName,
    /// [`split_calendar`] or [`join_calendar`] was given something other than VCALENDARs.
    #[error("not an iCalendar object")]
    NotCalendar,
}

/// Properties that servers and clients rewrite without any change of meaning; the hash leaves
/// them out so that such rewrites do not look like edits.
const VOLATILE: [&[u8]; 7] = [
    b"PRODID",
    b"DTSTAMP",
    b"LAST-MODIFIED",
    b"REV",
    b"CREATED",
    b"METHOD",
    b"X-WR-CALNAME",
];

/// Where the physical line starting at `from` ends: (end of its content, start of the next line).
///
/// A line ends at LF, CRLF or a lone CR. A run of CRs before an LF (`\r\r\n`, written by tools
/// that translate `\n` to `\r\n` in text that already had `\r\n`) counts as one line end: taking it
/// for two would turn every following fold into the continuation of an empty line.
fn line_end(bytes: &[u8], from: usize) -> (usize, usize) {
    let rest = bytes.get(from..).unwrap_or_default();
    // memchr scans a word at a time: this search was a third of parsing an item.
    let Some(i) = memchr::memchr2(b'\r', b'\n', rest) else {
        return (bytes.len(), bytes.len());
    };
    let end = from + i;
    let crs = rest[i..].iter().take_while(|&&b| b == b'\r').count();
    if rest.get(i + crs) == Some(&b'\n') {
        (end, end + crs + 1)
    } else {
        (end, end + 1)
    }
}

/// The 1-based physical line holding byte `offset`.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    let mut line = 1;
    let mut pos = 0;
    while pos < bytes.len() {
        let (_, next) = line_end(bytes, pos);
        if next > offset {
            break;
        }
        pos = next;
        line += 1;
    }
    line
}

/// One logical (unfolded) content line.
struct Line<'a> {
    /// 1-based physical line where it starts.
    line: usize,
    /// Byte range in the input, line end and folds included, for verbatim copies.
    start: usize,
    end: usize,
    /// The unfolded text without line end; borrowed unless the line was folded.
    text: Cow<'a, [u8]>,
    /// End of the name: the first `;` or `:` (or the whole text).
    name_end: usize,
    /// The first `:` outside double quotes, which starts the value.
    colon: Option<usize>,
}

/// What a line means for the component tree.
enum Kind<'l> {
    Begin(&'l [u8]),
    End(&'l [u8]),
    Prop,
}

impl<'a> Line<'a> {
    fn parse(line: usize, start: usize, end: usize, text: Cow<'a, [u8]>) -> Self {
        let name_end = text
            .iter()
            .position(|&b| b == b';' || b == b':')
            .unwrap_or(text.len());
        // Only parameters can be quoted; a quoted parameter value may contain ':'.
        let mut quoted = false;
        let colon = text[name_end..]
            .iter()
            .position(|&b| {
                if b == b'"' {
                    quoted = !quoted;
                }
                b == b':' && !quoted
            })
            .map(|i| name_end + i);
        Line {
            line,
            start,
            end,
            text,
            name_end,
            colon,
        }
    }

    fn name(&self) -> &[u8] {
        &self.text[..self.name_end]
    }

    fn is(&self, name: &[u8]) -> bool {
        self.name().eq_ignore_ascii_case(name)
    }

    /// The parameters including their leading `;`, empty when there are none.
    fn params(&self) -> &[u8] {
        &self.text[self.name_end..self.colon.unwrap_or(self.name_end)]
    }

    /// The value trimmed of surrounding whitespace; `None` when there is no `:`.
    fn value(&self) -> Option<&[u8]> {
        self.colon.map(|c| self.text[c + 1..].trim_ascii())
    }

    fn kind(&self) -> Kind<'_> {
        match self.value() {
            Some(v) if self.is(b"BEGIN") => Kind::Begin(v),
            Some(v) if self.is(b"END") => Kind::End(v),
            _ => Kind::Prop,
        }
    }

    /// vCard 2.1 (and vCalendar 1.0) mark quoted-printable values with `ENCODING=QUOTED-PRINTABLE`
    /// or a bare `QUOTED-PRINTABLE` parameter.
    fn is_quoted_printable(&self) -> bool {
        params(self.params()).any(|(k, v)| {
            let qp = b"QUOTED-PRINTABLE";
            (k.eq_ignore_ascii_case(b"ENCODING") && v.eq_ignore_ascii_case(qp))
                || (v.is_empty() && k.eq_ignore_ascii_case(qp))
        })
    }
}

/// The parameters of `params` (as returned by [`Line::params`]) as raw slices, each without its
/// leading `;`. `;` inside quotes does not split.
fn raw_params(params: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = params.strip_prefix(b";").unwrap_or(params);
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut quoted = false;
        let len = rest
            .iter()
            .position(|&b| {
                if b == b'"' {
                    quoted = !quoted;
                }
                b == b';' && !quoted
            })
            .unwrap_or(rest.len());
        let param = &rest[..len];
        rest = rest.get(len + 1..).unwrap_or_default();
        Some(param)
    })
}

/// One raw parameter as (name, value), the name trimmed, the value without surrounding double
/// quotes.
fn split_param(param: &[u8]) -> (&[u8], &[u8]) {
    let (k, v) = match param.iter().position(|&b| b == b'=') {
        Some(eq) => (&param[..eq], &param[eq + 1..]),
        None => (param, &b""[..]),
    };
    let v = v
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(v);
    (k.trim_ascii(), v)
}

/// The parameters of `params` (as returned by [`Line::params`]) as (name, value) pairs, values
/// without their surrounding double quotes. `;` inside quotes does not split.
fn params(params: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    raw_params(params).map(split_param)
}

/// Iterator over the logical lines of an input, skipping a leading BOM and blank lines.
struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Physical line number of the line starting at `pos`.
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let pos = if bytes.starts_with(b"\xEF\xBB\xBF") {
            3
        } else {
            0
        };
        Lines {
            bytes,
            pos,
            line: 1,
        }
    }
}

/// Removes folds (line end plus one space or tab) and quoted-printable soft breaks (`=` plus
/// line end) from `raw`, which spans several physical lines.
fn unfold(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut pos = 0;
    while pos < raw.len() {
        let (end, next) = line_end(raw, pos);
        out.extend_from_slice(&raw[pos..end]);
        pos = next;
        // Every line end inside `raw` was joined by the iterator: a fold when the next line starts
        // with whitespace, else a quoted-printable soft break (possibly before an empty line).
        if end < next {
            if matches!(raw.get(next), Some(b' ' | b'\t')) {
                pos += 1;
            } else if out.last() == Some(&b'=') {
                out.pop();
            }
        }
    }
    out
}

impl<'a> Iterator for Lines<'a> {
    type Item = Line<'a>;

    fn next(&mut self) -> Option<Line<'a>> {
        let bytes = self.bytes;
        while self.pos < bytes.len() {
            let (start, line) = (self.pos, self.line);
            let (mut end, mut next) = line_end(bytes, start);
            self.line += 1;
            let mut joined = false;
            loop {
                while next < bytes.len() && (bytes[next] == b' ' || bytes[next] == b'\t') {
                    (end, next) = line_end(bytes, next);
                    self.line += 1;
                    joined = true;
                }
                // A quoted-printable value ending in '=' continues on the next physical line,
                // folded or not. Parsing the parameters is only worth it when the line ends in '='.
                if end > start && bytes[end - 1] == b'=' && next < bytes.len() {
                    let text = if joined {
                        Cow::Owned(unfold(&bytes[start..end]))
                    } else {
                        Cow::Borrowed(&bytes[start..end])
                    };
                    if Line::parse(line, start, end, text).is_quoted_printable() {
                        (end, next) = line_end(bytes, next);
                        self.line += 1;
                        joined = true;
                        continue;
                    }
                }
                break;
            }
            self.pos = next;
            let text = if joined {
                Cow::Owned(unfold(&bytes[start..end]))
            } else {
                Cow::Borrowed(&bytes[start..end])
            };
            if !text.trim_ascii().is_empty() {
                return Some(Line::parse(line, start, next, text));
            }
        }
        None
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Property and component names per RFC 5545 / RFC 6350 (IANA and X- names, vCard groups),
/// plus `_`, which some producers use.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Which top-level components [`structure`] admits.
#[derive(Clone, Copy, PartialEq)]
enum Roots {
    /// Exactly one VCALENDAR or VCARD: [`check`].
    One,
    /// Exactly one VCALENDAR: the items of [`join_calendar`].
    OneCalendar,
    /// One or more VCALENDARs, a concatenated stream: [`split_calendar`].
    Calendars,
}

/// Walks the component tree and reports the first structural problem.
fn structure(bytes: &[u8], admit: Roots) -> Result<(), Malformed> {
    let calendars_only = admit != Roots::One;
    let fail = |line, problem| Err(Malformed { line, problem });
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut roots = 0;
    let mut last = 1;
    for l in Lines::new(bytes) {
        last = l.line;
        if stack.is_empty() {
            match l.kind() {
                Kind::Begin(name) if roots == 0 || admit == Roots::Calendars => {
                    let cal = name.eq_ignore_ascii_case(b"VCALENDAR");
                    if calendars_only && name.eq_ignore_ascii_case(b"VCARD") {
                        return fail(l.line, Problem::NotCalendar);
                    }
                    if !cal && !name.eq_ignore_ascii_case(b"VCARD") {
                        return fail(l.line, Problem::NoBegin);
                    }
                    stack.push(name.to_vec());
                    roots += 1;
                }
                _ if roots > 0 => return fail(l.line, Problem::ContentAfterEnd),
                _ => return fail(l.line, Problem::NoBegin),
            }
            continue;
        }
        if l.colon.is_none() || !valid_name(l.name()) {
            return fail(l.line, Problem::NotAContentLine);
        }
        match l.kind() {
            Kind::Begin(b"") | Kind::End(b"") => return fail(l.line, Problem::NoComponentName),
            Kind::Begin(name) => stack.push(name.to_vec()),
            Kind::End(name) => match stack.pop() {
                Some(open) if open.eq_ignore_ascii_case(name) => {}
                open => {
                    let expected = lossy(&open.unwrap_or_default());
                    let found = lossy(name);
                    return fail(l.line, Problem::UnexpectedEnd { expected, found });
                }
            },
            Kind::Prop => {}
        }
    }
    match stack.pop() {
        _ if roots == 0 => fail(1, Problem::Empty),
        Some(open) => fail(last, Problem::MissingEnd(lossy(&open))),
        None => Ok(()),
    }
}

/// Checks that the bytes are one well-formed object: optional UTF-8 BOM, first content line
/// `BEGIN:VCALENDAR` or `BEGIN:VCARD`, every `BEGIN` matched by its `END` (names compared
/// case-insensitively), nothing but blank lines after the last `END`, valid UTF-8 (reporting the
/// line of the first invalid byte), and every logical line a name followed by `:` (parameters may
/// contain quoted `:`). Blank lines inside the object are tolerated. When the input has several
/// problems, the one on the earliest line is reported.
pub fn check(bytes: &[u8]) -> Result<(), Malformed> {
    let utf8 = std::str::from_utf8(bytes).err().map(|e| Malformed {
        line: line_of(bytes, e.valid_up_to()),
        problem: Problem::NotUtf8,
    });
    match (structure(bytes, Roots::One), utf8) {
        (Err(s), Some(u)) if s.line < u.line => Err(s),
        (_, Some(u)) => Err(u),
        (s, None) => s,
    }
}

/// The item's UID, unfolded: for iCalendar the UID of the first direct child component of
/// VCALENDAR other than VTIMEZONE (never a VALARM's UID); for vCard the UID property of the
/// VCARD. The value is taken after the first unquoted `:` and trimmed of whitespace; `None` when
/// that component has no UID or an empty one. Works on any bytes: a non-UTF-8 UID is converted
/// lossily. Components other than VCALENDAR at the top are treated like a VCARD.
pub fn uid(bytes: &[u8]) -> Option<String> {
    main_property(bytes, "UID")
}

/// The value of property `name` of the item's main component, found as [`uid`] finds the UID
/// (the first non-VTIMEZONE child of VCALENDAR, or a VCARD; never a nested VALARM's), unfolded
/// and trimmed; `None` when absent or empty.
pub fn main_property(bytes: &[u8], name: &str) -> Option<String> {
    let mut depth = 0usize;
    let mut calendar = false;
    // Inside the first non-VTIMEZONE child of a VCALENDAR, the only place the UID may come from.
    let mut target = false;
    for l in Lines::new(bytes) {
        match l.kind() {
            Kind::Begin(name) => {
                depth += 1;
                if depth == 1 {
                    calendar = name.eq_ignore_ascii_case(b"VCALENDAR");
                } else if depth == 2 && calendar && !name.eq_ignore_ascii_case(b"VTIMEZONE") {
                    target = true;
                }
            }
            Kind::End(_) => {
                // The component that would have held the property ended without it.
                if (target && depth == 2) || (!calendar && depth == 1) {
                    return None;
                }
                depth = depth.saturating_sub(1);
            }
            Kind::Prop
                if l.is(name.as_bytes())
                    && ((target && depth == 2) || (!calendar && depth == 1)) =>
            {
                return l.value().filter(|v| !v.is_empty()).map(lossy);
            }
            Kind::Prop => {}
        }
    }
    None
}

/// The item with `uid` as its UID: in every component that carries an item's UID (each direct
/// child of VCALENDAR but VTIMEZONE, so a master and its overrides alike; or a VCARD) the UID
/// lines are dropped and `UID:<uid>` is added just before the component's END line, in the
/// file's line-ending style. Every other byte is kept as it was. `uid` must need no escaping
/// (no line breaks).
pub fn with_uid(bytes: &[u8], uid: &str) -> Vec<u8> {
    let eol: &[u8] = match bytes.windows(2).any(|w| w == b"\r\n") {
        true => b"\r\n",
        false => b"\n",
    };
    let mut out = Vec::with_capacity(bytes.len() + uid.len() + 6);
    let mut copied = 0;
    let mut depth = 0usize;
    let mut calendar = false;
    // Whether the component now open at the UID's depth carries an item's UID.
    let mut carries = false;
    let uid_depth = |calendar: bool| if calendar { 2 } else { 1 };
    for l in Lines::new(bytes) {
        match l.kind() {
            Kind::Begin(name) => {
                depth += 1;
                if depth == 1 {
                    calendar = name.eq_ignore_ascii_case(b"VCALENDAR");
                }
                if depth == uid_depth(calendar) {
                    carries = !(calendar && name.eq_ignore_ascii_case(b"VTIMEZONE"));
                }
            }
            Kind::End(_) => {
                if carries && depth == uid_depth(calendar) {
                    out.extend_from_slice(&bytes[copied..l.start]);
                    out.extend_from_slice(b"UID:");
                    out.extend_from_slice(uid.as_bytes());
                    out.extend_from_slice(eol);
                    copied = l.start;
                    carries = false;
                }
                depth = depth.saturating_sub(1);
            }
            Kind::Prop if carries && depth == uid_depth(calendar) && l.is(b"UID") => {
                out.extend_from_slice(&bytes[copied..l.start]);
                copied = l.end;
            }
            Kind::Prop => {}
        }
    }
    out.extend_from_slice(&bytes[copied..]);
    out
}

/// The item's main component type, upper-cased: the first direct child of VCALENDAR other
/// than VTIMEZONE (`VEVENT`, `VTODO`, `VJOURNAL`, ...), or the top-level component otherwise
/// (`VCARD`). Used to honour a storage's `item_types`.
pub fn component_type(bytes: &[u8]) -> Option<String> {
    let mut depth = 0usize;
    for l in Lines::new(bytes) {
        match l.kind() {
            Kind::Begin(name) => {
                depth += 1;
                let main = match depth {
                    1 => !name.eq_ignore_ascii_case(b"VCALENDAR"),
                    2 => !name.eq_ignore_ascii_case(b"VTIMEZONE"),
                    _ => false,
                };
                if main {
                    return Some(lossy(name).to_ascii_uppercase());
                }
            }
            Kind::End(_) => depth = depth.saturating_sub(1),
            Kind::Prop => {}
        }
    }
    None
}

/// One property of a [`Component`]: upper-cased name, parameters as (upper-cased name, value
/// without quotes), and the value, all unfolded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Property {
    /// The name, such as `DTSTART`.
    pub name: String,
    /// The parameters, such as `("TZID", "Europe/Berlin")`.
    pub params: Vec<(String, String)>,
    /// The value, trimmed.
    pub value: String,
}

impl Property {
    /// The value of the parameter `name` (upper-case), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A direct child of the VCALENDAR (`VEVENT`, `VTODO`, `VTIMEZONE`, ...) with its own properties,
/// those of nested components (`VALARM`) left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The upper-cased component name.
    pub name: String,
    /// Its properties in order.
    pub properties: Vec<Property>,
}

impl Component {
    /// The first property named `name` (upper-case).
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }
}

/// The components directly inside the VCALENDAR of an iCalendar object (empty for anything
/// else), for reading dates (see `crate::filter`), with only the properties named in `wanted`
/// (upper-case): the others are skipped before anything is copied or unfolded.
pub fn calendar_components(bytes: &[u8], wanted: &[&str]) -> Vec<Component> {
    let mut components = Vec::new();
    let mut depth = 0usize;
    let mut in_calendar = false;
    for l in Lines::new(bytes) {
        match l.kind() {
            Kind::Begin(name) => {
                depth += 1;
                match depth {
                    1 => in_calendar = name.eq_ignore_ascii_case(b"VCALENDAR"),
                    2 if in_calendar => components.push(Component {
                        name: lossy(name).to_ascii_uppercase(),
                        properties: Vec::new(),
                    }),
                    _ => {}
                }
            }
            Kind::End(_) => depth = depth.saturating_sub(1),
            Kind::Prop if depth == 2 && in_calendar => {
                if !wanted.iter().any(|name| l.is(name.as_bytes())) {
                    continue;
                }
                if let (Some(component), Some(value)) = (components.last_mut(), l.value()) {
                    component.properties.push(Property {
                        name: lossy(l.name()).to_ascii_uppercase(),
                        params: params(l.params())
                            .map(|(k, v)| (lossy(k).to_ascii_uppercase(), lossy(v)))
                            .collect(),
                        value: lossy(value),
                    });
                }
            }
            Kind::Prop => {}
        }
    }
    components
}

/// Which normal form [`hash_with`] computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Definition {
    /// The normal form of davsync before default values were recognized. Status databases
    /// written then hold hashes of this form; [`legacy_hash`] lets the engine tell whether such
    /// a hash was computed from content that is still the same.
    Legacy,
    /// The normal form with defaults, before `EMAIL;TYPE=INTERNET` was recognized as the vCard
    /// 3.0 default: status databases written then hold hashes of this form ([`defaults_hash`]).
    Defaults,
    /// Today's normal form: [`Definition::Legacy`] plus the treatment of defaults and parameters
    /// described at [`normalized_hash`].
    Current,
}

/// One open component while hashing.
struct Frame<'a> {
    /// Upper-cased component name; empty for the virtual root around the whole input.
    name: Vec<u8>,
    /// Inside a VCARD: parameter and value-type defaults are those of RFC 6350, not RFC 5545.
    vcard: bool,
    props: Vec<Line<'a>>,
    children: Vec<[u8; 32]>,
}

/// The property name without a vCard group prefix (`item1.EMAIL` is `EMAIL`).
fn bare_name(name: &[u8]) -> &[u8] {
    name.rsplit(|&b| b == b'.').next().unwrap_or(name)
}

/// Default value type of each iCalendar property (the "Value Type" paragraph of each property
/// in RFC 5545 §3.7 and §3.8): a `VALUE=` parameter naming it says nothing.
const ICAL_VALUE_TYPES: [(&[u8], &[&[u8]]); 10] = [
    (
        b"DATE-TIME",
        &[
            b"DTSTART",
            b"DTEND",
            b"DUE",
            b"RECURRENCE-ID",
            b"EXDATE",
            b"RDATE",
            b"COMPLETED",
            b"CREATED",
            b"DTSTAMP",
            b"LAST-MODIFIED",
        ],
    ),
    (b"DURATION", &[b"DURATION", b"TRIGGER"]),
    (b"URI", &[b"ATTACH", b"URL", b"TZURL"]),
    (b"CAL-ADDRESS", &[b"ATTENDEE", b"ORGANIZER"]),
    (
        b"TEXT",
        &[
            b"CALSCALE",
            b"METHOD",
            b"PRODID",
            b"VERSION",
            b"CATEGORIES",
            b"CLASS",
            b"COMMENT",
            b"DESCRIPTION",
            b"LOCATION",
            b"RESOURCES",
            b"STATUS",
            b"SUMMARY",
            b"TRANSP",
            b"TZID",
            b"TZNAME",
            b"CONTACT",
            b"RELATED-TO",
            b"UID",
            b"ACTION",
            b"REQUEST-STATUS",
        ],
    ),
    (b"FLOAT", &[b"GEO"]),
    (
        b"INTEGER",
        &[b"PERCENT-COMPLETE", b"PRIORITY", b"SEQUENCE", b"REPEAT"],
    ),
    (b"PERIOD", &[b"FREEBUSY"]),
    (b"UTC-OFFSET", &[b"TZOFFSETFROM", b"TZOFFSETTO"]),
    (b"RECUR", &[b"RRULE", b"EXRULE"]),
];

/// Default value type of the vCard properties whose default is the same in vCard 3.0 (RFC 2426)
/// and 4.0 (RFC 6350 §6); the others (`TEL`, `UID`, `BDAY`, `REV`, `PHOTO`, ...) differ between
/// versions and keep their `VALUE=` parameter.
const VCARD_VALUE_TYPES: [(&[u8], &[&[u8]]); 2] = [
    (
        b"TEXT",
        &[
            b"FN",
            b"N",
            b"NICKNAME",
            b"NOTE",
            b"TITLE",
            b"ROLE",
            b"ORG",
            b"CATEGORIES",
            b"ADR",
            b"EMAIL",
        ],
    ),
    (b"URI", &[b"URL"]),
];

/// The components a default property belongs to, its name and its default value.
type DefaultProperty = (&'static [&'static [u8]], &'static [u8], &'static [u8]);

/// Properties whose absence means the given value, with the components they belong to.
const DEFAULT_PROPERTIES: [DefaultProperty; 6] = [
    // RFC 5545 §3.8.1.3: "Default is PUBLIC".
    (&[b"VEVENT", b"VTODO", b"VJOURNAL"], b"CLASS", b"PUBLIC"),
    // RFC 5545 §3.8.2.7: "Default value is OPAQUE" (TRANSP is a VEVENT property only).
    (&[b"VEVENT"], b"TRANSP", b"OPAQUE"),
    // RFC 5545 §3.8.7.4: "When a calendar component is created, its sequence number is 0".
    (&[b"VEVENT", b"VTODO", b"VJOURNAL"], b"SEQUENCE", b"0"),
    // RFC 5545 §3.8.6.2: `repeat = "REPEAT" repparam ":" integer ; Default is "0", zero`.
    (&[b"VALARM"], b"REPEAT", b"0"),
    // RFC 5545 §3.7.1: "The Gregorian calendar scale is assumed if this property is not
    // specified in the iCalendar object".
    (&[b"VCALENDAR"], b"CALSCALE", b"GREGORIAN"),
    // RFC 6350 §6.1.4: "If this property is absent, "individual" MUST be assumed as default".
    (&[b"VCARD"], b"KIND", b"INDIVIDUAL"),
];

/// Parameters with enumerated values, which RFC 5545 §3.2 and RFC 6350 §5 compare
/// case-insensitively; the values of all others (`CN`, `TZID`, `ALTREP`, ...) keep their case.
const ENUMERATED_PARAMS: [&[u8]; 12] = [
    b"VALUE",
    b"CUTYPE",
    b"ROLE",
    b"PARTSTAT",
    b"RSVP",
    b"ENCODING",
    b"FBTYPE",
    b"RELTYPE",
    b"RELATED",
    b"RANGE",
    b"TYPE",
    b"CALSCALE",
];

/// Where a property stands, which decides what its defaults are.
#[derive(Clone, Copy)]
struct Context<'c> {
    /// Upper-cased name of the component holding the property.
    component: &'c [u8],
    /// Inside a VCARD.
    vcard: bool,
    /// The property name without group.
    property: &'c [u8],
    /// The normal form being computed.
    definition: Definition,
}

impl Context<'_> {
    /// The property's default value type, for the properties listed in [`ICAL_VALUE_TYPES`] and
    /// [`VCARD_VALUE_TYPES`].
    fn default_value_type(self) -> Option<&'static [u8]> {
        let table: &[(&[u8], &[&[u8]])] = if self.vcard {
            &VCARD_VALUE_TYPES
        } else {
            &ICAL_VALUE_TYPES
        };
        table
            .iter()
            .find(|(_, props)| props.iter().any(|p| self.property.eq_ignore_ascii_case(p)))
            .map(|&(value_type, _)| value_type)
    }

    /// Whether the parameter `name=value` states what its absence would mean.
    fn is_default_param(self, name: &[u8], value: &[u8]) -> bool {
        let is = |n: &[u8], v: &[u8]| name.eq_ignore_ascii_case(n) && value.eq_ignore_ascii_case(v);
        if name.eq_ignore_ascii_case(b"VALUE") {
            // RFC 5545 §3.2.20, RFC 6350 §5.2: VALUE only needs to be given for another type
            // than the property's default.
            return self
                .default_value_type()
                .is_some_and(|t| value.eq_ignore_ascii_case(t));
        }
        if self.vcard {
            // RFC 6350 §5.8: "gregorian" is "the default when the parameter is absent". RFC 2426
            // §3.3.2: "The default email type is "internet"" (Google writes it on every EMAIL
            // it stores; vCard 4.0 has no such type, so there it says nothing either).
            let internet = self.definition == Definition::Current
                && self.property.eq_ignore_ascii_case(b"EMAIL")
                && is(b"TYPE", b"INTERNET");
            return is(b"CALSCALE", b"GREGORIAN") || internet;
        }
        let scheduled = [&b"VEVENT"[..], b"VTODO", b"VJOURNAL"].contains(&self.component);
        // RFC 5545 §3.2.3, §3.2.7, §3.2.9, §3.2.14, §3.2.15, §3.2.16, §3.2.17 in this order;
        // PARTSTAT (§3.2.12) has NEEDS-ACTION as default only in VEVENT, VTODO and VJOURNAL.
        is(b"CUTYPE", b"INDIVIDUAL")
            || is(b"ENCODING", b"8BIT")
            || is(b"FBTYPE", b"BUSY")
            || is(b"RELATED", b"START")
            || is(b"RELTYPE", b"PARENT")
            || is(b"ROLE", b"REQ-PARTICIPANT")
            || is(b"RSVP", b"FALSE")
            || (scheduled && is(b"PARTSTAT", b"NEEDS-ACTION"))
    }

    /// Whether the parameter `name` holds a set, written as a comma list or repeated
    /// (RFC 2426 §4, RFC 6350 §5.6: `TYPE=WORK,VOICE` is `TYPE=WORK;TYPE=VOICE`, and Radicale
    /// writes the first for the second): a vCard's `TYPE`.
    fn splits_list(self, name: &[u8]) -> bool {
        self.vcard && self.definition == Definition::Current && name.eq_ignore_ascii_case(b"TYPE")
    }

    /// Whether the property line says only what its absence would say: a default value and
    /// nothing but default parameters.
    fn is_default_property(self, l: &Line<'_>) -> bool {
        DEFAULT_PROPERTIES
            .iter()
            .any(|&(components, property, value)| {
                self.property.eq_ignore_ascii_case(property)
                    && components.contains(&self.component)
                    && l.value().is_some_and(|v| v.eq_ignore_ascii_case(value))
            })
            && params(l.params()).all(|(k, v)| self.is_default_param(k, v))
    }
}

fn is_enumerated(name: &[u8]) -> bool {
    ENUMERATED_PARAMS
        .iter()
        .any(|p| name.eq_ignore_ascii_case(p))
}

/// The parameters of `l` as a set in normal form, each `;NAME=value`: defaults left out, names
/// upper-cased, quotes removed, enumerated values upper-cased, sorted. Borrowed when the line
/// already has that form, which is the usual case (`TZID=...`), so most lines allocate nothing.
fn normal_params<'l>(l: &'l Line<'_>, context: Context<'_>) -> Cow<'l, [u8]> {
    let raw = l.params();
    let mut previous: Option<(&[u8], &[u8])> = None;
    let already_normal = raw_params(raw).all(|param| {
        let (k, v) = split_param(param);
        // Another length than `k=v` means: no `=`, quotes, or blanks around the name.
        let off_normal = param.len() != k.len() + 1 + v.len()
            || v.contains(&b'"')
            || k.iter().any(u8::is_ascii_lowercase)
            || (is_enumerated(k) && v.iter().any(u8::is_ascii_lowercase))
            || context.is_default_param(k, v)
            || (context.splits_list(k) && v.contains(&b','))
            || previous.is_some_and(|p| p >= (k, v));
        previous = Some((k, v));
        !off_normal
    });
    if already_normal {
        return Cow::Borrowed(raw);
    }
    let mut set: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    for (k, v) in params(raw) {
        let unquoted: Vec<u8> = v.iter().copied().filter(|&b| b != b'"').collect();
        let values: Vec<&[u8]> = match context.splits_list(k) {
            true => unquoted.split(|&b| b == b',').collect(),
            false => vec![&unquoted[..]],
        };
        for value in values {
            if context.is_default_param(k, value) {
                continue;
            }
            let mut value = value.to_vec();
            if is_enumerated(k) {
                value.make_ascii_uppercase();
            }
            set.push((k.to_ascii_uppercase(), value));
        }
    }
    set.sort_unstable();
    if context.definition == Definition::Current {
        set.dedup();
    }
    let mut out = Vec::with_capacity(raw.len());
    for (k, v) in &set {
        out.push(b';');
        out.extend_from_slice(k);
        out.push(b'=');
        out.extend_from_slice(v);
    }
    Cow::Owned(out)
}

/// The normalized form of a property line after its name. Recurrence rules have their
/// `;`-separated parts sorted and upper-cased, since servers reorder them (Xandikos writes
/// `BYDAY` before `BYMONTH`). With [`Definition::Current`] the parameters are those of
/// [`normal_params`]; with [`Definition::Legacy`] they stay as they are.
fn normal_rest<'l>(l: &'l Line<'_>, context: Context<'_>, definition: Definition) -> Cow<'l, [u8]> {
    let rest = &l.text[l.name_end..];
    let Some(colon) = l.colon else {
        return Cow::Borrowed(rest);
    };
    let recur = l.is(b"RRULE") || l.is(b"EXRULE");
    let params = match definition {
        Definition::Current | Definition::Defaults => normal_params(l, context),
        Definition::Legacy => Cow::Borrowed(l.params()),
    };
    if !recur && matches!(params, Cow::Borrowed(_)) {
        return Cow::Borrowed(rest);
    }
    let mut out = params.into_owned();
    out.push(b':');
    if recur {
        let value = l.text[colon + 1..].trim_ascii();
        let mut parts: Vec<Vec<u8>> = value
            .split(|&b| b == b';')
            .filter(|p| !p.is_empty())
            .map(<[u8]>::to_ascii_uppercase)
            .collect();
        parts.sort_unstable();
        out.extend_from_slice(&parts.join(&b';'));
    } else {
        out.extend_from_slice(&l.text[colon + 1..]);
    }
    Cow::Owned(out)
}

impl Frame<'_> {
    /// A digest of the component that is independent of property and subcomponent order. Every
    /// part is length- or count-prefixed so that different trees cannot feed the same bytes.
    fn digest(self, definition: Definition) -> [u8; 32] {
        let mut props: Vec<(Vec<u8>, Cow<'_, [u8]>)> = self
            .props
            .iter()
            .map(|p| {
                let context = Context {
                    component: &self.name,
                    vcard: self.vcard,
                    property: bare_name(p.name()),
                    definition,
                };
                let rest = normal_rest(p, context, definition);
                (p.name().to_ascii_uppercase(), rest)
            })
            .collect();
        props.sort_unstable();
        let mut children = self.children;
        children.sort_unstable();
        let mut h = Sha256::new();
        h.update((self.name.len() as u64).to_le_bytes());
        h.update(&self.name);
        h.update((props.len() as u64).to_le_bytes());
        for (name, rest) in &props {
            h.update(((name.len() + rest.len()) as u64).to_le_bytes());
            h.update(name);
            h.update(rest);
        }
        h.update((children.len() as u64).to_le_bytes());
        for c in &children {
            h.update(c);
        }
        h.finalize().into()
    }
}

/// Lowercase hex SHA-256 of a normalized form of the item.
///
/// Two copies hash the same when they differ only in: CRLF vs LF vs lone CR line ends, line
/// folding, a UTF-8 BOM, blank lines, case of property and component names, order of properties
/// within a component, order of sibling components, vCard 2.1 quoted-printable soft line breaks,
/// the order of the parts of a recurrence rule, and the volatile properties PRODID, DTSTAMP,
/// LAST-MODIFIED, REV, CREATED, METHOD and X-WR-CALNAME, which are left out wherever they occur.
///
/// Servers also store what an item means in other words, so the hash does not see those either:
/// a property carrying its default value (`CLASS:PUBLIC`, `TRANSP:OPAQUE` and `SEQUENCE:0` in a
/// VEVENT, see `DEFAULT_PROPERTIES`), a parameter carrying its default (`VALUE=` the property's
/// default type, `ROLE=REQ-PARTICIPANT`, `RSVP=FALSE`, `CUTYPE=INDIVIDUAL`, `TYPE=INTERNET` on
/// a vCard's `EMAIL`, ...), the order of
/// parameters, the case of parameter names, quotes around parameter values, and the case of
/// enumerated parameter values (`PARTSTAT=accepted`). Any other difference (a value, the case of
/// a `CN` or `TZID`) changes the hash. Works on any bytes, malformed or not: stray lines outside
/// components are hashed as properties of a virtual root, and unclosed components are closed at
/// the end.
pub fn normalized_hash(bytes: &[u8]) -> String {
    hash_with(bytes, Definition::Current)
}

/// The hash davsync computed before it recognized default values and parameter sets (the
/// normal form of [`normalized_hash`] without its second paragraph). Only for recognizing
/// hashes recorded in an existing status database.
pub fn legacy_hash(bytes: &[u8]) -> String {
    hash_with(bytes, Definition::Legacy)
}

/// The hash davsync computed after it recognized default values and before it recognized
/// `EMAIL;TYPE=INTERNET` as one. Only for recognizing hashes recorded in an existing status
/// database.
pub fn defaults_hash(bytes: &[u8]) -> String {
    hash_with(bytes, Definition::Defaults)
}

fn hash_with(bytes: &[u8], definition: Definition) -> String {
    let root = Frame {
        name: Vec::new(),
        vcard: false,
        props: Vec::new(),
        children: Vec::new(),
    };
    let mut stack = vec![root];
    for l in Lines::new(bytes) {
        match l.kind() {
            Kind::Begin(name) => {
                let name = name.to_ascii_uppercase();
                let vcard = name == b"VCARD" || stack.last().is_some_and(|f| f.vcard);
                stack.push(Frame {
                    name,
                    vcard,
                    props: Vec::new(),
                    children: Vec::new(),
                });
            }
            // An END closes the innermost component whatever it names: the hash must not fail.
            Kind::End(_) => close(&mut stack, definition),
            Kind::Prop => {
                let bare = bare_name(l.name());
                if VOLATILE.iter().any(|v| bare.eq_ignore_ascii_case(v)) {
                    continue;
                }
                let Some(top) = stack.last_mut() else {
                    continue;
                };
                let context = Context {
                    component: &top.name,
                    vcard: top.vcard,
                    property: bare,
                    definition,
                };
                if definition != Definition::Legacy && context.is_default_property(&l) {
                    continue;
                }
                top.props.push(l);
            }
        }
    }
    while stack.len() > 1 {
        close(&mut stack, definition);
    }
    let digest = stack
        .pop()
        .map(|root| root.digest(definition))
        .unwrap_or_default();
    hex(&digest)
}

/// Lower-case hexadecimal of `bytes` (for hashes and names derived from them).
pub fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Pops the innermost component into its parent's children; never pops the virtual root.
fn close(stack: &mut Vec<Frame<'_>>, definition: Definition) {
    if stack.len() > 1
        && let Some(frame) = stack.pop()
        && let Some(parent) = stack.last_mut()
    {
        parent.children.push(frame.digest(definition));
    }
}

/// One VCALENDAR of a stream: its `BEGIN`/`END` lines and its own properties, verbatim.
struct Calendar<'a> {
    begin: &'a [u8],
    end: &'a [u8],
    header: Vec<&'a [u8]>,
}

/// A direct child of a VCALENDAR, verbatim from its `BEGIN` to its `END` line.
struct Child {
    calendar: usize,
    /// Byte range of the child in the input.
    start: usize,
    end: usize,
    uid: Option<Vec<u8>>,
    /// For a VTIMEZONE its TZID (possibly empty), else `None`.
    tzid: Option<Vec<u8>>,
    /// TZIDs referenced by `TZID=` parameters anywhere inside, in order of first use.
    refs: Vec<Vec<u8>>,
}

/// Cuts a validated VCALENDAR stream into calendars and their direct children.
fn calendar_parts(bytes: &[u8]) -> (Vec<Calendar<'_>>, Vec<Child>) {
    let (mut cals, mut children) = (Vec::<Calendar>::new(), Vec::<Child>::new());
    let mut depth = 0usize;
    for l in Lines::new(bytes) {
        let raw = &bytes[l.start..l.end];
        match (depth, l.kind(), cals.last_mut(), children.last_mut()) {
            (0, _, _, _) => {
                let header = Vec::new();
                cals.push(Calendar {
                    begin: raw,
                    end: b"",
                    header,
                });
                depth = 1;
            }
            (1, Kind::Prop, Some(cal), _) => cal.header.push(raw),
            (1, Kind::End(_), Some(cal), _) => {
                cal.end = raw;
                depth = 0;
            }
            (1, Kind::Begin(name), _, _) => {
                let timezone = name.eq_ignore_ascii_case(b"VTIMEZONE");
                children.push(Child {
                    calendar: cals.len().saturating_sub(1),
                    start: l.start,
                    end: l.end,
                    uid: None,
                    tzid: timezone.then(Vec::new),
                    refs: Vec::new(),
                });
                depth = 2;
            }
            (_, kind, _, Some(child)) => {
                match kind {
                    Kind::Begin(_) => depth += 1,
                    Kind::End(_) => depth -= 1,
                    Kind::Prop => {
                        let value = l.value().unwrap_or_default();
                        if depth == 2 && l.is(b"UID") && child.uid.is_none() && !value.is_empty() {
                            child.uid = Some(value.to_vec());
                        }
                        if depth == 2
                            && l.is(b"TZID")
                            && let Some(tz) = child.tzid.as_mut()
                        {
                            *tz = value.to_vec();
                        }
                        for (k, v) in params(l.params()) {
                            if k.eq_ignore_ascii_case(b"TZID") && !child.refs.iter().any(|r| r == v)
                            {
                                child.refs.push(v.to_vec());
                            }
                        }
                    }
                }
                child.end = l.end;
            }
            // Unreachable on validated input; ignoring keeps this total.
            _ => {}
        }
    }
    (cals, children)
}

/// Splits an iCalendar stream (one VCALENDAR holding many components, possibly several
/// VCALENDARs concatenated) into one VCALENDAR per UID.
///
/// Each item holds the `BEGIN:VCALENDAR` line and all VCALENDAR-level properties (VERSION,
/// PRODID, ...) of the calendar where its UID first appears, the VTIMEZONEs whose TZID its
/// components reference through a `TZID=` parameter (in order of first reference, so that
/// splitting is independent of where the time zones stood), then the master and all overrides
/// (RECURRENCE-ID) in input order, and the `END:VCALENDAR` line. Components without UID each
/// become their own item; VTIMEZONEs are never items of their own, so a calendar of only time
/// zones gives no items. Lines are copied byte-for-byte, original line ends included; blank
/// lines between components are dropped. Items come in order of first appearance.
pub fn split_calendar(bytes: &[u8]) -> Result<Vec<Vec<u8>>, Malformed> {
    structure(bytes, Roots::Calendars)?;
    let (cals, children) = calendar_parts(bytes);
    // The first definition of a TZID wins, as in join_calendar.
    let mut zones: HashMap<&[u8], &Child> = HashMap::new();
    for c in &children {
        if let Some(tz) = &c.tzid {
            zones.entry(tz).or_insert(c);
        }
    }
    let mut groups: Vec<Vec<&Child>> = Vec::new();
    let mut by_uid: HashMap<&[u8], usize> = HashMap::new();
    for c in children.iter().filter(|c| c.tzid.is_none()) {
        match c.uid.as_deref().and_then(|u| by_uid.get(u)) {
            Some(&i) => groups[i].push(c),
            None => {
                if let Some(u) = &c.uid {
                    by_uid.insert(u, groups.len());
                }
                groups.push(vec![c]);
            }
        }
    }
    let mut items = Vec::with_capacity(groups.len());
    for group in groups {
        let Some(cal) = group.first().and_then(|c| cals.get(c.calendar)) else {
            continue;
        };
        let (out, _) = wrap_in_calendar(
            bytes,
            cal,
            group.iter().flat_map(|c| &c.refs),
            |tz| zones.get(tz).map(|z| z.start..z.end),
            group.iter().map(|c| c.start..c.end),
        );
        items.push(out);
    }
    Ok(items)
}

/// One item as a VCALENDAR of its own: `cal`'s `BEGIN` line and properties, each VTIMEZONE
/// the components reference (`refs`, located by `zone`) once in order of first reference, the
/// components (`parts`, byte ranges of `bytes`), and `cal`'s `END` line, or `END:VCALENDAR`
/// for a calendar cut short. Also returns the TZIDs whose VTIMEZONE it copied.
fn wrap_in_calendar<'r>(
    bytes: &[u8],
    cal: &Calendar<'_>,
    refs: impl Iterator<Item = &'r Vec<u8>>,
    zone: impl Fn(&[u8]) -> Option<std::ops::Range<usize>>,
    parts: impl Iterator<Item = std::ops::Range<usize>>,
) -> (Vec<u8>, Vec<&'r [u8]>) {
    let mut out = cal.begin.to_vec();
    cal.header.iter().for_each(|h| out.extend_from_slice(h));
    let mut used: Vec<&[u8]> = Vec::new();
    for tz in refs {
        if let Some(range) = zone(tz)
            && !used.contains(&tz.as_slice())
        {
            used.push(tz);
            out.extend_from_slice(&bytes[range]);
        }
    }
    parts.for_each(|range| out.extend_from_slice(&bytes[range]));
    match cal.end.is_empty() {
        true => out.extend_from_slice(b"END:VCALENDAR\r\n"),
        false => out.extend_from_slice(cal.end),
    }
    (out, used)
}

/// Joins several single-object VCALENDAR items into one VCALENDAR, copying lines verbatim: the
/// `BEGIN`/`END` lines and VCALENDAR-level properties of the first item, then each VTIMEZONE once
/// (the first definition of each TZID), then all other components in item order. The inverse of
/// [`split_calendar`] up to order. An error's line number refers to the offending item; joining
/// no items is [`Problem::Empty`].
pub fn join_calendar(items: &[&[u8]]) -> Result<Vec<u8>, Malformed> {
    let mut zones: Vec<&[u8]> = Vec::new();
    let mut zone_ids: Vec<&[u8]> = Vec::new();
    let mut others: Vec<&[u8]> = Vec::new();
    let mut parts = Vec::with_capacity(items.len());
    for &item in items {
        structure(item, Roots::OneCalendar)?;
        let (cals, children) = calendar_parts(item);
        parts.push((item, cals, children));
    }
    for (item, _, children) in &parts {
        for c in children {
            let raw = &item[c.start..c.end];
            match &c.tzid {
                Some(tz) if zone_ids.contains(&tz.as_slice()) => {}
                Some(tz) => {
                    zone_ids.push(tz);
                    zones.push(raw);
                }
                None => others.push(raw),
            }
        }
    }
    let Some(first) = parts.first().and_then(|(_, cals, _)| cals.first()) else {
        return Err(Malformed {
            line: 1,
            problem: Problem::Empty,
        });
    };
    let mut out = first.begin.to_vec();
    first.header.iter().for_each(|h| out.extend_from_slice(h));
    zones
        .iter()
        .chain(&others)
        .for_each(|c| out.extend_from_slice(c));
    out.extend_from_slice(first.end);
    Ok(out)
}

/// One item of a whole `.ics` or `.vcf` file as [`split_file`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileItem {
    /// 1-based physical line where the item's first component begins.
    pub line: usize,
    /// The UID, unfolded and converted lossily; also found for a malformed item when it has one,
    /// so that the item keeps its identity while it cannot be read.
    pub uid: Option<String>,
    /// The byte ranges of the file that are this item's own components, in file order: a VCARD,
    /// or a master and its overrides, or stray lines. Shared VTIMEZONEs and VCALENDAR-level
    /// properties are not part of them.
    pub ranges: Vec<std::ops::Range<usize>>,
    /// The item as one standalone object (for a calendar item: the `BEGIN:VCALENDAR` line and
    /// properties of its calendar, the VTIMEZONEs it references, its components, the `END`
    /// line; all copied byte for byte), or the first problem found in it, with a line number of
    /// the file.
    pub content: Result<Vec<u8>, Malformed>,
}

/// A whole `.ics` or `.vcf` file cut into items by [`split_file`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SplitFile {
    /// The items, in order of first appearance; malformed ones included.
    pub items: Vec<FileItem>,
    /// Every VTIMEZONE of the file: its TZID (possibly empty) and byte range.
    pub timezones: Vec<(Vec<u8>, std::ops::Range<usize>)>,
    /// Where the `END` line of the last VCALENDAR starts: the place for new components. `None`
    /// when the file holds no terminated VCALENDAR.
    pub calendar_end: Option<usize>,
}

/// Components that only ever stand directly inside a VCALENDAR: meeting one of them inside
/// another component means that component was never ended.
const CALENDAR_CHILDREN: [&[u8]; 6] = [
    b"VEVENT",
    b"VTODO",
    b"VJOURNAL",
    b"VFREEBUSY",
    b"VTIMEZONE",
    b"VCALENDAR",
];

/// A component being cut out by [`split_file`]: a direct child of a VCALENDAR, a VCARD, or a
/// run of stray lines outside any object.
struct Piece {
    /// Index of the VCALENDAR holding it; `None` for a VCARD or stray lines.
    calendar: Option<usize>,
    line: usize,
    last_line: usize,
    start: usize,
    end: usize,
    /// Open components, innermost last; empty for stray lines.
    open: Vec<Vec<u8>>,
    uid: Option<Vec<u8>>,
    /// For a VTIMEZONE its TZID (possibly empty), else `None`.
    tzid: Option<Vec<u8>>,
    /// TZIDs referenced by `TZID=` parameters anywhere inside, in order of first use.
    refs: Vec<Vec<u8>>,
    problem: Option<Malformed>,
}

impl Piece {
    fn new(calendar: Option<usize>, l: &Line<'_>, open: Vec<Vec<u8>>) -> Self {
        let tzid = open
            .first()
            .filter(|name| name.eq_ignore_ascii_case(b"VTIMEZONE"))
            .map(|_| Vec::new());
        Piece {
            calendar,
            line: l.line,
            last_line: l.line,
            start: l.start,
            end: l.end,
            open,
            uid: None,
            tzid,
            refs: Vec::new(),
            problem: None,
        }
    }

    fn fail(&mut self, line: usize, problem: Problem) {
        if self.problem.is_none() {
            self.problem = Some(Malformed { line, problem });
        }
    }

    fn take(&mut self, l: &Line<'_>) {
        self.end = l.end;
        self.last_line = l.line;
    }

    /// Marks a component that was never ended; it ends before the line being looked at.
    fn unterminated(&mut self) {
        let open = self.open.last().map(|n| lossy(n)).unwrap_or_default();
        self.fail(self.last_line, Problem::MissingEnd(open));
        self.open.clear();
    }

    /// Adds a line inside the component; returns `true` once the component is complete.
    fn add(&mut self, l: &Line<'_>) -> bool {
        self.take(l);
        if l.colon.is_none() || !valid_name(l.name()) {
            self.fail(l.line, Problem::NotAContentLine);
            return false;
        }
        match l.kind() {
            Kind::Begin(b"") | Kind::End(b"") => self.fail(l.line, Problem::NoComponentName),
            Kind::Begin(name) => self.open.push(name.to_vec()),
            Kind::End(name) => {
                let innermost = self.open.last().map(Vec::as_slice).unwrap_or_default();
                if !innermost.eq_ignore_ascii_case(name) {
                    let expected = lossy(innermost);
                    self.fail(
                        l.line,
                        Problem::UnexpectedEnd {
                            expected,
                            found: lossy(name),
                        },
                    );
                    // Close up to the component it names, if open; else the line is ignored.
                    match self.open.iter().rposition(|o| o.eq_ignore_ascii_case(name)) {
                        Some(i) => self.open.truncate(i + 1),
                        None => return false,
                    }
                }
                self.open.pop();
                return self.open.is_empty();
            }
            Kind::Prop => {
                let value = l.value().unwrap_or_default();
                if self.open.len() == 1 && l.is(b"UID") && self.uid.is_none() && !value.is_empty() {
                    self.uid = Some(value.to_vec());
                }
                if self.open.len() == 1
                    && l.is(b"TZID")
                    && let Some(tz) = self.tzid.as_mut()
                {
                    *tz = value.to_vec();
                }
                for (k, v) in params(l.params()) {
                    if k.eq_ignore_ascii_case(b"TZID") && !self.refs.iter().any(|r| r == v) {
                        self.refs.push(v.to_vec());
                    }
                }
            }
        }
        false
    }

    /// Checks the component's bytes are UTF-8, naming the line of the first invalid byte.
    fn finish(mut self, bytes: &[u8]) -> Self {
        let raw = &bytes[self.start..self.end];
        if let Err(e) = std::str::from_utf8(raw) {
            let line = self.line + line_of(raw, e.valid_up_to()) - 1;
            if self.problem.as_ref().is_none_or(|p| p.line > line) {
                self.problem = Some(Malformed {
                    line,
                    problem: Problem::NotUtf8,
                });
            }
        }
        self
    }
}

/// Cuts a whole `.ics` file (one or several VCALENDARs holding events, todos, journals and
/// VTIMEZONEs) or `.vcf` file (a sequence of VCARDs) into items, tolerating damage, in time
/// linear in the file's size.
///
/// Calendar components are grouped by UID across the file (a master and its RECURRENCE-ID
/// overrides are one item; a component without UID is an item of its own); each VCARD is an
/// item. An item's [`FileItem::content`] is built as [`split_calendar`] builds its items. A
/// component that is not well formed (a line that is not a content line, an `END` that does not
/// match, a component never ended, bytes that are not UTF-8) makes its item malformed, named by
/// line, without affecting the others; so do lines outside any object. Nothing is dropped:
/// every byte of the file that is not a blank line between components belongs to an item's
/// ranges, a VTIMEZONE, or a VCALENDAR's own lines, so a writer that replaces only some items'
/// ranges keeps everything else as it was.
pub fn split_file(bytes: &[u8]) -> SplitFile {
    let mut cals: Vec<Calendar<'_>> = Vec::new();
    let mut pieces: Vec<Piece> = Vec::new();
    let mut current: Option<Piece> = None;
    let mut in_calendar = false;
    let mut calendar_end = None;
    let mut stray: Option<Piece> = None;
    let mut lines = Lines::new(bytes).peekable();
    while let Some(l) = lines.next() {
        if let Some(piece) = current.as_mut() {
            let restart = match l.kind() {
                Kind::Begin(name) => CALENDAR_CHILDREN
                    .iter()
                    .chain([&&b"VCARD"[..]])
                    .any(|c| c.eq_ignore_ascii_case(name)),
                Kind::End(name) => {
                    name.eq_ignore_ascii_case(b"VCALENDAR")
                        && !piece.open.iter().any(|o| o.eq_ignore_ascii_case(name))
                }
                Kind::Prop => false,
            };
            if !restart {
                if piece.add(&l) {
                    pieces.extend(current.take().map(|p| p.finish(bytes)));
                }
                continue;
            }
            // A component that only stands at the top (or the calendar's END) inside this one:
            // this one was never ended; the line is looked at again outside it.
            piece.unterminated();
            pieces.extend(current.take().map(|p| p.finish(bytes)));
        }
        let raw = &bytes[l.start..l.end];
        let content_line = l.colon.is_some() && valid_name(l.name());
        if in_calendar && content_line {
            match l.kind() {
                Kind::Begin(name) if name.eq_ignore_ascii_case(b"VCALENDAR") => {
                    // The previous VCALENDAR was never ended; its items get a synthesized END.
                    in_calendar = false;
                }
                Kind::Begin(name) if !name.is_empty() => {
                    current = Some(Piece::new(Some(cals.len() - 1), &l, vec![name.to_vec()]));
                    continue;
                }
                Kind::End(_) => {
                    if let Some(cal) = cals.last_mut() {
                        cal.end = raw;
                    }
                    calendar_end = Some(l.start);
                    in_calendar = false;
                    continue;
                }
                _ => {
                    if let Some(cal) = cals.last_mut() {
                        cal.header.push(raw);
                    }
                    continue;
                }
            }
        }
        if content_line && !in_calendar {
            match l.kind() {
                Kind::Begin(name) if name.eq_ignore_ascii_case(b"VCALENDAR") => {
                    pieces.extend(stray.take());
                    cals.push(Calendar {
                        begin: raw,
                        end: b"",
                        header: Vec::new(),
                    });
                    in_calendar = true;
                    continue;
                }
                Kind::Begin(name) if !name.is_empty() => {
                    pieces.extend(stray.take());
                    let mut piece = Piece::new(None, &l, vec![name.to_vec()]);
                    if !name.eq_ignore_ascii_case(b"VCARD") {
                        piece.fail(l.line, Problem::NoBegin);
                    }
                    current = Some(piece);
                    continue;
                }
                _ => {}
            }
        }
        // A line outside any object, or one that is no content line in a VCALENDAR's own
        // lines: kept as stray lines, an item that is never readable.
        let problem = if content_line || !in_calendar {
            if cals.is_empty() && pieces.is_empty() {
                Problem::NoBegin
            } else {
                Problem::ContentAfterEnd
            }
        } else {
            Problem::NotAContentLine
        };
        match stray.as_mut() {
            Some(s) => s.take(&l),
            None => {
                let mut s = Piece::new(None, &l, Vec::new());
                s.fail(l.line, problem);
                stray = Some(s);
            }
        }
        // Stray lines end where an object could begin again.
        if lines
            .peek()
            .is_none_or(|next| matches!(next.kind(), Kind::Begin(_)) || in_calendar)
        {
            pieces.extend(stray.take());
        }
    }
    if let Some(mut piece) = current.take() {
        piece.unterminated();
        pieces.push(piece.finish(bytes));
    }
    pieces.extend(stray.take());
    assemble(bytes, &cals, pieces, calendar_end)
}

/// Groups the pieces of [`split_file`] into items and builds each item's content.
fn assemble(
    bytes: &[u8],
    cals: &[Calendar<'_>],
    pieces: Vec<Piece>,
    calendar_end: Option<usize>,
) -> SplitFile {
    let mut zones: HashMap<&[u8], &Piece> = HashMap::new();
    let mut timezones = Vec::new();
    for p in &pieces {
        if let Some(tz) = &p.tzid {
            // The first definition of a TZID wins, as in join_calendar.
            zones.entry(tz).or_insert(p);
            timezones.push((tz.clone(), p.start..p.end));
        }
    }
    let utf8_calendars: Vec<bool> = cals
        .iter()
        .map(|c| {
            [c.begin, c.end]
                .iter()
                .chain(&c.header)
                .all(|l| std::str::from_utf8(l).is_ok())
        })
        .collect();
    let mut groups: Vec<Vec<&Piece>> = Vec::new();
    let mut by_uid: HashMap<&[u8], usize> = HashMap::new();
    for p in pieces.iter().filter(|p| p.tzid.is_none()) {
        let grouped = p.calendar.is_some().then_some(()).and(p.uid.as_deref());
        match grouped.and_then(|u| by_uid.get(u)) {
            Some(&i) => groups[i].push(p),
            None => {
                if let Some(u) = grouped {
                    by_uid.insert(u, groups.len());
                }
                groups.push(vec![p]);
            }
        }
    }
    let items = groups
        .into_iter()
        .filter_map(|group| {
            let first = *group.first()?;
            let problem = group
                .iter()
                .filter_map(|p| p.problem.clone())
                .min_by_key(|m| m.line);
            let content = match (problem, first.calendar.and_then(|c| cals.get(c))) {
                (Some(problem), _) => Err(problem),
                (None, None) => Ok(bytes[first.start..first.end].to_vec()),
                (None, Some(cal)) => {
                    let (out, used) = wrap_in_calendar(
                        bytes,
                        cal,
                        group.iter().flat_map(|p| &p.refs),
                        |tz| zones.get(tz).map(|z| z.start..z.end),
                        group.iter().map(|p| p.start..p.end),
                    );
                    // A broken VTIMEZONE it uses, or a VCALENDAR line that is not UTF-8 (named
                    // at the item's first line), makes the item malformed too.
                    match used
                        .iter()
                        .filter_map(|tz| zones.get(tz)?.problem.clone())
                        .next()
                    {
                        Some(problem) => Err(problem),
                        None if !utf8_calendars[first.calendar.unwrap_or_default()] => {
                            Err(Malformed {
                                line: first.line,
                                problem: Problem::NotUtf8,
                            })
                        }
                        None => Ok(out),
                    }
                }
            };
            Some(FileItem {
                line: first.line,
                uid: first.uid.as_deref().map(lossy),
                ranges: group.iter().map(|p| p.start..p.end).collect(),
                content,
            })
        })
        .collect();
    SplitFile {
        items,
        timezones,
        calendar_end,
    }
}

/// The value of a VCALENDAR-level property (such as `X-WR-CALNAME`) of the first VCALENDAR,
/// unfolded and converted lossily; `None` when absent or when the bytes hold no VCALENDAR.
pub fn calendar_property(bytes: &[u8], name: &[u8]) -> Option<String> {
    let mut depth = 0usize;
    for l in Lines::new(bytes) {
        match l.kind() {
            Kind::Begin(component)
                if depth == 0 && !component.eq_ignore_ascii_case(b"VCALENDAR") =>
            {
                return None;
            }
            Kind::Begin(_) => depth += 1,
            Kind::End(_) if depth == 1 => return None,
            Kind::End(_) => depth = depth.saturating_sub(1),
            Kind::Prop if depth == 1 && l.is(name) => return l.value().map(lossy),
            Kind::Prop => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn recurrence_rule_part_order_is_not_a_change() {
        let ics = |rule: &str| {
            format!(
                "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:r\r\nRRULE:{rule}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
            )
        };
        let ours = super::normalized_hash(ics("FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU").as_bytes());
        let xandikos = super::normalized_hash(ics("FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10").as_bytes());
        let other = super::normalized_hash(ics("FREQ=YEARLY;BYDAY=-1SU;BYMONTH=11").as_bytes());
        assert_eq!(ours, xandikos);
        assert_ne!(ours, other);
    }

    #[test]
    fn component_type_skips_timezones() {
        let ics = b"BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\nEND:VTIMEZONE\r\n\
BEGIN:VTODO\r\nUID:1\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
        assert_eq!(super::component_type(ics).as_deref(), Some("VTODO"));
        let vcf = b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:x\r\nEND:VCARD\r\n";
        assert_eq!(super::component_type(vcf).as_deref(), Some("VCARD"));
        assert_eq!(super::component_type(b"nothing"), None);
    }

    use super::*;

    #[test]
    fn with_uid_sets_the_uid_of_every_item_component_and_keeps_the_rest() {
        let event = b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\n\
            END:VTIMEZONE\r\nBEGIN:VEVENT\r\nUID:old-\r\n part\r\nSUMMARY:a\r\nBEGIN:VALARM\r\n\
            UID:alarm\r\nEND:VALARM\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nRECURRENCE-ID:1\r\n\
            END:VEVENT\r\nEND:VCALENDAR\r\n";
        let fixed = with_uid(event, "new");
        assert_eq!(
            String::from_utf8(fixed.clone()).unwrap(),
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:X\r\n\
             END:VTIMEZONE\r\nBEGIN:VEVENT\r\nSUMMARY:a\r\nBEGIN:VALARM\r\n\
             UID:alarm\r\nEND:VALARM\r\nUID:new\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\n\
             RECURRENCE-ID:1\r\nUID:new\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
        assert_eq!(uid(&fixed).as_deref(), Some("new"));
        check(&fixed).unwrap();
        let card = b"BEGIN:VCARD\nVERSION:4.0\nFN:A\nEND:VCARD\n";
        assert_eq!(
            with_uid(card, "c1"),
            b"BEGIN:VCARD\nVERSION:4.0\nFN:A\nUID:c1\nEND:VCARD\n"
        );
        assert_eq!(
            main_property(b"BEGIN:VCARD\nREV:2026-01-02T03:04:05Z\nEND:VCARD\n", "rev").as_deref(),
            Some("2026-01-02T03:04:05Z")
        );
    }

    fn err(bytes: &str) -> Option<(usize, Problem)> {
        check(bytes.as_bytes()).err().map(|m| (m.line, m.problem))
    }

    #[test]
    fn check_problems() {
        let s = String::from;
        let cases: &[(&str, Option<(usize, Problem)>)] = &[
            ("BEGIN:VCARD\r\nFN:x\r\nEND:VCARD\r\n", None),
            ("\u{feff}begin:vcard\nfn:x\nend:VCARD\n\n\r\n", None),
            ("BEGIN:VCARD\rFN:x\r\rEND:VCARD\r", None),
            ("BEGIN:VCARD\nX;P=\"a:b;c\":v\n\nEND:VCARD", None),
            ("BEGIN:VCARD\nitem1.X-AB_C:v\nEND:VCARD", None),
            ("", Some((1, Problem::Empty))),
            ("\u{feff}\r\n\r\n", Some((1, Problem::Empty))),
            ("VERSION:2.0\r\n", Some((1, Problem::NoBegin))),
            ("\nBEGIN:VEVENT\nEND:VEVENT\n", Some((2, Problem::NoBegin))),
            (
                "BEGIN:VCARD\nFN:x\n",
                Some((2, Problem::MissingEnd(s("VCARD")))),
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nEND:VCALENDAR\n",
                Some((
                    4,
                    Problem::UnexpectedEnd {
                        expected: s("VEVENT"),
                        found: s("VCALENDAR"),
                    },
                )),
            ),
            (
                "BEGIN:VCARD\nEND:VCARD\nFN:x\n",
                Some((3, Problem::ContentAfterEnd)),
            ),
            (
                "BEGIN:VCARD\nEND:VCARD\nBEGIN:VCARD\nEND:VCARD\n",
                Some((3, Problem::ContentAfterEnd)),
            ),
            (
                "BEGIN:VCARD\nFN:a\n b\nno colon\nEND:VCARD",
                Some((4, Problem::NotAContentLine)),
            ),
            (
                "BEGIN:VCARD\nX;P=\"a:b\"\nEND:VCARD",
                Some((2, Problem::NotAContentLine)),
            ),
            (
                "BEGIN:VCARD\n:value\nEND:VCARD",
                Some((2, Problem::NotAContentLine)),
            ),
            (
                "BEGIN:VCARD\nF N:x\nEND:VCARD",
                Some((2, Problem::NotAContentLine)),
            ),
            (
                "BEGIN:VCALENDAR\nBEGIN: \nEND:\nEND:VCALENDAR",
                Some((2, Problem::NoComponentName)),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&err(input), want, "{input:?}");
        }
        let bad = b"BEGIN:VCARD\r\nN:a\r\n b\r\nFN:\xff\r\nEND:VCARD\r\n";
        let got = check(bad).map_err(|m| (m.line, m.problem));
        assert_eq!(got, Err((4, Problem::NotUtf8)));
        // The earlier problem wins: here the structure breaks before the bad byte.
        let both = b"BEGIN:VCARD\r\nEND:VCARD\r\nX:\xff\r\n";
        assert_eq!(check(both).map_err(|m| m.line), Err(3));
        let msg = Malformed {
            line: 7,
            problem: Problem::MissingEnd(s("VEVENT")),
        };
        assert_eq!(msg.to_string(), "line 7: BEGIN:VEVENT is never ended");
    }

    const TZ: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nUID:tz-uid\r\nEND:VTIMEZONE\r\n";

    #[test]
    fn uid_extraction() {
        let cal = |body: &str| format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}END:VCALENDAR\r\n");
        let cases: Vec<(String, Option<&str>)> = vec![
            (
                cal("BEGIN:VEVENT\r\nUID:abc\r\nEND:VEVENT\r\n"),
                Some("abc"),
            ),
            (
                cal("BEGIN:VEVENT\r\nUID:ab\r\n c\r\n\td\r\nEND:VEVENT\r\n"),
                Some("abcd"),
            ),
            (
                cal("BEGIN:VEVENT\r\nuid;X=\"a:b\": x:y \r\nEND:VEVENT\r\n"),
                Some("x:y"),
            ),
            (
                cal(
                    "BEGIN:VEVENT\r\nBEGIN:VALARM\r\nUID:alarm\r\nEND:VALARM\r\nUID:ev\r\nEND:VEVENT\r\n",
                ),
                Some("ev"),
            ),
            (
                cal("BEGIN:VEVENT\r\nBEGIN:VALARM\r\nUID:alarm\r\nEND:VALARM\r\nEND:VEVENT\r\n"),
                None,
            ),
            (
                cal(&format!("{TZ}BEGIN:VTODO\r\nUID:todo\r\nEND:VTODO\r\n")),
                Some("todo"),
            ),
            (
                cal(&format!(
                    "{TZ}BEGIN:VTODO\r\nEND:VTODO\r\nBEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n"
                )),
                None,
            ),
            (cal(TZ), None),
            (cal("BEGIN:VEVENT\r\nUID:  \r\nEND:VEVENT\r\n"), None),
            (cal("UID:calendar-level\r\n"), None),
            (
                "BEGIN:VCARD\nVERSION:4.0\nUID:urn:uuid:1\nEND:VCARD\n".into(),
                Some("urn:uuid:1"),
            ),
            (
                "BEGIN:VCARD\nFN:x\nEND:VCARD\nBEGIN:VCARD\nUID:2\nEND:VCARD\n".into(),
                None,
            ),
            (
                "\u{feff}BEGIN:VCARD\rUID:cr\rEND:VCARD\r".into(),
                Some("cr"),
            ),
            (String::new(), None),
        ];
        for (input, want) in &cases {
            assert_eq!(uid(input.as_bytes()).as_deref(), *want, "{input:?}");
        }
        let latin1 = b"BEGIN:VCARD\r\nUID:caf\xe9\r\nEND:VCARD\r\n";
        assert_eq!(uid(latin1).as_deref(), Some("caf\u{fffd}"));
    }

    const BASE: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//A//B//EN\r\n\
        BEGIN:VEVENT\r\nUID:e1\r\nDTSTAMP:20240101T000000Z\r\nSUMMARY;LANGUAGE=en:A rather long summary that is surely longer than forty octets\r\n\
        DTSTART;TZID=Europe/Berlin:20240102T100000\r\n\
        BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n\
        BEGIN:VALARM\r\nACTION:AUDIO\r\nTRIGGER:-PT10M\r\nEND:VALARM\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    /// Folds every line at `width` octets (ASCII input only).
    fn refold(s: &str, width: usize) -> String {
        let mut out = String::new();
        for line in s.split("\r\n").filter(|l| !l.is_empty()) {
            let (mut rest, mut w) = (line, width);
            while rest.len() > w {
                out.push_str(&rest[..w]);
                out.push_str("\r\n ");
                rest = &rest[w..];
                w = width - 1;
            }
            out.push_str(rest);
            out.push_str("\r\n");
        }
        out
    }

    #[test]
    fn hash_invariances() {
        let h = normalized_hash(BASE.as_bytes());
        assert_eq!(h.len(), 64);
        assert!(
            h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        let same = [
            BASE.replace("\r\n", "\n"),
            BASE.replace("\r\n", "\r"),
            BASE.replacen("\r\n", "\n", 3),
            refold(BASE, 10),
            refold(BASE, 75).replace("\r\n ", "\r\n\t"),
            format!("\u{feff}{BASE}\r\n\r\n\n"),
            BASE.replace("BEGIN:VEVENT", "begin:vevent")
                .replace("END:VEVENT", "End:VEvent")
                .replace("SUMMARY;", "summary;")
                .replace("UID:", "Uid:"),
            BASE.replace(
                "UID:e1\r\nDTSTAMP:20240101T000000Z\r\n",
                "DTSTAMP:20240101T000000Z\r\nUID:e1\r\n",
            ),
            BASE.replace("LANGUAGE=en", "language=en"),
            BASE.replace("LANGUAGE=en", "LANGUAGE=\"en\""),
            BASE.replace("DTSTAMP:20240101T000000Z", "DTSTAMP:20250505T050505Z")
                .replace(
                    "PRODID:-//A//B//EN\r\n",
                    "METHOD:PUBLISH\r\nX-WR-CALNAME:Work\r\n",
                )
                .replace(
                    "UID:e1\r\n",
                    "UID:e1\r\nLAST-MODIFIED:20240101T000000Z\r\nCREATED:20230101T000000Z\r\n",
                ),
            BASE.replace("DISPLAY\r\nTRIGGER:-PT5M", "@")
                .replace("AUDIO\r\nTRIGGER:-PT10M", "DISPLAY\r\nTRIGGER:-PT5M")
                .replace('@', "AUDIO\r\nTRIGGER:-PT10M"),
        ];
        for (i, s) in same.iter().enumerate() {
            assert_eq!(normalized_hash(s.as_bytes()), h, "variant {i}: {s:?}");
        }
        let differ = [
            BASE.replace("UID:e1", "UID:e2"),
            BASE.replace("LANGUAGE=en", "LANGUAGE=de"),
            BASE.replace("LANGUAGE=en", "LANGUAGE=EN"),
            BASE.replace("LANGUAGE=en:", "LANGUAGE=en;X=1:"),
            BASE.replace("forty octets", "forty octets "),
            BASE.replace("forty octets", "Forty octets"),
            BASE.replace("VERSION:2.0\r\n", ""),
            BASE.replace(
                "TRIGGER:-PT5M\r\nEND:VALARM\r\n",
                "END:VALARM\r\nTRIGGER:-PT5M\r\n",
            ),
            BASE.replace(
                "BEGIN:VALARM\r\nACTION:DISPLAY",
                "BEGIN:VALARMX\r\nACTION:DISPLAY",
            ),
            BASE.replace(
                "\r\nBEGIN:VALARM\r\nACTION:AUDIO\r\nTRIGGER:-PT10M\r\nEND:VALARM",
                "",
            ),
        ];
        for (i, s) in differ.iter().enumerate() {
            assert_ne!(normalized_hash(s.as_bytes()), h, "variant {i}: {s:?}");
        }
        // Sorting must not make different multisets collide.
        let a = "BEGIN:VCARD\nA:1\nA:1\nB:2\nEND:VCARD\n";
        let b = "BEGIN:VCARD\nA:1\nB:2\nB:2\nEND:VCARD\n";
        assert_ne!(normalized_hash(a.as_bytes()), normalized_hash(b.as_bytes()));
        // Malformed and non-UTF-8 input still hashes.
        assert_eq!(normalized_hash(b"\xff\xfe garbage").len(), 64);
        assert_eq!(normalized_hash(b"END:X\nEND:Y\nBEGIN:Z").len(), 64);
    }

    /// A VEVENT with one property or parameter per line that the defaults tests vary.
    const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:d1\r\n\
        DTSTART;TZID=Europe/Berlin:20240102T100000\r\nSUMMARY:Plan\r\n\
        ATTENDEE;CN=\"Doe, Jane\";PARTSTAT=ACCEPTED:mailto:jane@example.org\r\n\
        RELATED-TO:parent-uid\r\nFREEBUSY:20240101T100000Z/PT1H\r\n\
        BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n\
        END:VEVENT\r\nEND:VCALENDAR\r\n";

    /// `EVENT` with `line` added to the VEVENT (or, for a `BEGIN:VALARM` prefix, to the alarm).
    fn event_with(line: &str) -> String {
        EVENT.replace("SUMMARY:Plan\r\n", &format!("SUMMARY:Plan\r\n{line}\r\n"))
    }

    fn same_hash(a: &str, b: &str) -> bool {
        normalized_hash(a.as_bytes()) == normalized_hash(b.as_bytes())
    }

    #[test]
    fn default_properties_are_absent() {
        let cases = [
            // RFC 5545 §3.8.1.3: CLASS "Default is PUBLIC"; enumerated values are case-insensitive.
            "CLASS:PUBLIC",
            "class:public",
            "CLASS;VALUE=TEXT:PUBLIC",
            // RFC 5545 §3.8.2.7: TRANSP "Default value is OPAQUE".
            "TRANSP:OPAQUE",
            // RFC 5545 §3.8.7.4: "When a calendar component is created, its sequence number is 0".
            "SEQUENCE:0",
        ];
        for line in cases {
            assert!(same_hash(&event_with(line), EVENT), "{line}");
        }
        // RFC 5545 §3.8.6.2: REPEAT "Default is "0", zero" in a VALARM.
        let alarm = EVENT.replace("TRIGGER:-PT5M\r\n", "TRIGGER:-PT5M\r\nREPEAT:0\r\n");
        assert!(same_hash(&alarm, EVENT));
        // RFC 5545 §3.7.1: the Gregorian scale "is assumed if this property is not specified".
        let scale = EVENT.replace("VERSION:2.0\r\n", "VERSION:2.0\r\nCALSCALE:GREGORIAN\r\n");
        assert!(same_hash(&scale, EVENT));
        // RFC 6350 §6.1.4: KIND "individual" MUST be assumed when absent.
        let card = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c\r\nFN:Jane\r\nEND:VCARD\r\n";
        let kind = card.replace("FN:Jane", "FN:Jane\r\nKIND:individual");
        assert!(same_hash(&kind, card));
    }

    #[test]
    fn default_parameters_are_absent() {
        let attendee = "ATTENDEE;CN=\"Doe, Jane\";PARTSTAT=ACCEPTED:";
        let with_param = |param: &str| {
            EVENT.replace(
                attendee,
                &format!("ATTENDEE;CN=\"Doe, Jane\";PARTSTAT=ACCEPTED;{param}:"),
            )
        };
        let cases = [
            // RFC 5545 §3.2.3: CUTYPE "Default is INDIVIDUAL".
            "CUTYPE=INDIVIDUAL",
            // RFC 5545 §3.2.7: "The default encoding is "8BIT"".
            "ENCODING=8BIT",
            // RFC 5545 §3.2.16: ROLE "Default is REQ-PARTICIPANT".
            "ROLE=REQ-PARTICIPANT",
            "role=req-participant",
            // RFC 5545 §3.2.17: RSVP "Default is FALSE".
            "RSVP=FALSE",
            // RFC 5545 §3.8.4.1 (Value Type: CAL-ADDRESS) with §3.2.20.
            "VALUE=CAL-ADDRESS",
        ];
        for param in cases {
            assert!(same_hash(&with_param(param), EVENT), "{param}");
        }
        let replaced = [
            // RFC 5545 §3.8.2.4: DTSTART "The default value type is DATE-TIME".
            ("DTSTART;TZID=", "DTSTART;VALUE=DATE-TIME;TZID="),
            // RFC 5545 §3.8.4.5: RELATED-TO with §3.2.15 RELTYPE "Default is PARENT".
            ("RELATED-TO:", "RELATED-TO;RELTYPE=PARENT:"),
            // RFC 5545 §3.8.2.6: FREEBUSY with §3.2.9 FBTYPE "Default is BUSY".
            ("FREEBUSY:", "FREEBUSY;FBTYPE=BUSY:"),
            // RFC 5545 §3.8.6.3: TRIGGER's default type is DURATION; §3.2.14 RELATED "Default is
            // START".
            ("TRIGGER:", "TRIGGER;VALUE=DURATION;RELATED=START:"),
            // RFC 5545 §3.8.1.12: SUMMARY is TEXT.
            ("SUMMARY:", "SUMMARY;VALUE=TEXT:"),
        ];
        for (from, to) in replaced {
            assert!(same_hash(&EVENT.replace(from, to), EVENT), "{to}");
        }
        // RFC 5545 §3.2.12: PARTSTAT "Default is NEEDS-ACTION" in VEVENT, VTODO and VJOURNAL...
        let needs = |s: &str| s.replace("PARTSTAT=ACCEPTED", "PARTSTAT=NEEDS-ACTION");
        let absent = |s: &str| s.replace(";PARTSTAT=ACCEPTED", "");
        assert!(same_hash(&needs(EVENT), &absent(EVENT)));
        let todo = EVENT.replace("VEVENT", "VTODO");
        assert!(same_hash(&needs(&todo), &absent(&todo)));
        // ...but not in a VALARM, whose attendees are e-mail recipients.
        let alarm = EVENT.replace(
            "TRIGGER:-PT5M\r\n",
            "TRIGGER:-PT5M\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:a@example.org\r\n",
        );
        let alarm_absent = alarm.replace(";PARTSTAT=NEEDS-ACTION", "");
        assert!(!same_hash(&alarm, &alarm_absent));
        // RFC 6350 §5.2 (TEXT is the default of FN, §6.2.1) and §5.8 (CALSCALE "gregorian" is the
        // default) in a vCard.
        let card =
            "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:c\r\nFN:Jane\r\nBDAY:19700101\r\nEND:VCARD\r\n";
        let explicit = card
            .replace("FN:", "FN;VALUE=text:")
            .replace("BDAY:", "BDAY;CALSCALE=gregorian:");
        assert!(same_hash(&explicit, card));
        // A value type that is not the property's default is meaningful: DATE for DTSTART, and
        // in a vCard TEXT for a TEL, whose default differs between vCard 3.0 and 4.0.
        assert!(!same_hash(
            &EVENT.replace("DTSTART;", "DTSTART;VALUE=DATE;"),
            EVENT
        ));
        let tel = card.replace("FN:Jane", "FN:Jane\r\nTEL:+1");
        assert!(!same_hash(&tel.replace("TEL:", "TEL;VALUE=text:"), &tel));
        // ENCODING=8BIT is an iCalendar default; vCard 2.1 defaults to 7BIT.
        let note = card.replace("FN:Jane", "FN:Jane\r\nNOTE:x");
        assert!(!same_hash(
            &note.replace("NOTE:", "NOTE;ENCODING=8BIT:"),
            &note
        ));
    }

    #[test]
    fn server_reserialization_hashes_equal() {
        // What a server storing the item might hand back: defaults added, parameters
        // reordered, re-quoted, names and enumerated values re-cased, lines refolded with LF.
        let client = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Client//EN\r\n\
            BEGIN:VEVENT\r\nUID:s1\r\nDTSTAMP:20240101T000000Z\r\n\
            DTSTART;TZID=Europe/Berlin:20240102T100000\r\nSUMMARY:Meeting\r\n\
            ORGANIZER;CN=Boss:mailto:boss@example.org\r\n\
            ATTENDEE;CN=\"Doe, Jane\";PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:jane@example.org\r\n\
            ATTENDEE;CN=Ann:mailto:ann@example.org\r\n\
            END:VEVENT\r\nEND:VCALENDAR\r\n";
        let server = "BEGIN:VCALENDAR\nPRODID:-//Server//EN\nVERSION:2.0\nCALSCALE:GREGORIAN\n\
            BEGIN:VEVENT\nUID:s1\nDTSTAMP:20250505T050505Z\nSEQUENCE:0\nCLASS:PUBLIC\n\
            TRANSP:OPAQUE\nDTSTART;VALUE=DATE-TIME;TZID=Europe/Berlin:20240102T100000\n\
            SUMMARY:Meeting\nORGANIZER;CN=\"Boss\":mailto:boss@example.org\n\
            ATTENDEE;rsvp=true;partstat=accepted;ROLE=REQ-PARTICIPANT;CUTYPE=INDIVIDUAL;\n \
            CN=\"Doe, Jane\":mailto:jane@example.org\n\
            ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FA\n \
            LSE;CN=Ann:mailto:ann@example.org\n\
            END:VEVENT\nEND:VCALENDAR\n";
        assert!(same_hash(client, server));
        // A real change still differs, also when it is made to a defaulted property or parameter.
        let changes = [
            ("CLASS:PUBLIC", "CLASS:PRIVATE"),
            ("TRANSP:OPAQUE", "TRANSP:TRANSPARENT"),
            ("SEQUENCE:0", "SEQUENCE:1"),
            ("ROLE=REQ-PARTICIPANT;CUTYPE", "ROLE=CHAIR;CUTYPE"),
            ("PARTSTAT=NEEDS-ACTION", "PARTSTAT=DECLINED"),
            ("RSVP=FA\n LSE", "RSVP=TR\n UE"),
            ("CUTYPE=INDIVIDUAL;ROLE", "CUTYPE=ROOM;ROLE"),
            ("CN=\"Boss\"", "CN=\"boss\""),
            ("VALUE=DATE-TIME", "VALUE=DATE"),
        ];
        for (from, to) in changes {
            assert!(server.contains(from), "{from}");
            assert!(!same_hash(client, &server.replacen(from, to, 1)), "{to}");
        }
    }

    #[test]
    fn email_type_internet_is_the_vcard_default() {
        // Google adds TYPE=INTERNET to every EMAIL it stores (RFC 2426 §3.3.2: the default).
        let card = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Ann\r\n\
            EMAIL;TYPE=HOME:ann@example.org\r\nEND:VCARD\r\n";
        let google = card.replace("EMAIL;TYPE=HOME", "EMAIL;TYPE=INTERNET;TYPE=HOME");
        assert!(same_hash(card, &google));
        assert!(same_hash(
            card,
            &google.replace("TYPE=INTERNET", "type=internet")
        ));
        // A set of types, written as a list or repeated (Radicale writes the list).
        let merged = card.replace("EMAIL;TYPE=HOME", "EMAIL;TYPE=INTERNET,HOME");
        assert!(same_hash(card, &merged));
        let two = card.replace("EMAIL;TYPE=HOME", "EMAIL;TYPE=HOME;TYPE=PREF");
        assert!(same_hash(
            &two,
            &two.replace("TYPE=HOME;TYPE=PREF", "TYPE=\"pref,home\"")
        ));
        assert!(!same_hash(&two, card));
        // Not a default elsewhere, and not another type.
        assert!(!same_hash(
            card,
            &card.replace("EMAIL;TYPE=HOME", "EMAIL;TYPE=WORK")
        ));
        let tel = card.replace("EMAIL;TYPE=HOME", "TEL;TYPE=HOME");
        assert!(!same_hash(&tel, &tel.replace("TEL;", "TEL;TYPE=INTERNET;")));
        // The definition before this one, which status databases may hold, still tells them
        // apart, and otherwise agrees with today's.
        let (before, now) = (
            defaults_hash(google.as_bytes()),
            normalized_hash(google.as_bytes()),
        );
        assert_ne!(before, now);
        assert_eq!(
            defaults_hash(card.as_bytes()),
            normalized_hash(card.as_bytes())
        );
    }

    #[test]
    fn legacy_hash_is_the_previous_definition() {
        // Pinned from the normalized hash of davsync before defaults were recognized: status
        // databases hold such hashes, and the engine recognizes unchanged content by them.
        let item = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:pin\r\nSUMMARY:Pinned\r\n\
            ATTENDEE;RSVP=TRUE;CN=\"Ann\":mailto:ann@example.org\r\n\
            DTSTART;TZID=Europe/Berlin:20240102T100000\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let pinned = "77fd64edf81dc2b3d12bc005a780ea8eff7f49f0fbb3c215471a0e80dd7e5e89";
        assert_eq!(legacy_hash(item.as_bytes()), pinned);
        assert_ne!(normalized_hash(item.as_bytes()), pinned);
    }

    #[test]
    fn hash_quoted_printable() {
        let one = "BEGIN:VCARD\r\nVERSION:2.1\r\nNOTE;ENCODING=QUOTED-PRINTABLE:abc=0D=0Adef\r\nEND:VCARD\r\n";
        let soft = "BEGIN:VCARD\r\nVERSION:2.1\r\nNOTE;ENCODING=QUOTED-PRINTABLE:abc=\r\n=0D=0A=\r\ndef\r\nEND:VCARD\r\n";
        let bare = "BEGIN:VCARD\nVERSION:2.1\nNOTE;QUOTED-PRINTABLE:abc=\n=0D=0Adef\nEND:VCARD\n";
        let h = normalized_hash(one.as_bytes());
        assert_eq!(normalized_hash(soft.as_bytes()), h);
        assert_eq!(normalized_hash(soft.replace("\r\n", "\n").as_bytes()), h);
        assert_eq!(
            normalized_hash(bare.replace("NOTE;", "NOTE;ENCODING=").as_bytes()),
            h
        );
        assert_ne!(normalized_hash(bare.as_bytes()), h);
        assert_eq!(check(soft.as_bytes()), Ok(()));
        assert_eq!(check(bare.as_bytes()), Ok(()));
        // Without the QP parameter a trailing '=' is just a character (base64 padding).
        let b64 = "BEGIN:VCARD\nPHOTO;ENCODING=b:AAA=\nEND:VCARD\n";
        assert_eq!(check(b64.as_bytes()), Ok(()));
    }

    fn stream() -> String {
        let tz = |id: &str| {
            format!(
                "BEGIN:VTIMEZONE\r\nTZID:{id}\r\nBEGIN:STANDARD\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
            )
        };
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n{}{}{}\
             BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Zone/B:20240101T100000\r\nRRULE:FREQ=DAILY\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20240101T100000Z\r\nEND:VEVENT\r\n\
             \r\n\
             BEGIN:VEVENT\nUID:a\nRECURRENCE-ID;TZID=\"Zone/B\":20240102T100000\nDTEND;TZID=Zone/A:20240102T110000\nEND:VEVENT\n\
             BEGIN:VTODO\r\nSUMMARY:no uid\r\nEND:VTODO\r\n\
             BEGIN:VJOURNAL\r\nSUMMARY:no uid either\r\nEND:VJOURNAL\r\n\
             X-WR-CALNAME:late\r\nEND:VCALENDAR\r\n\
             BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:second\r\n\
             BEGIN:VEVENT\r\nUID:b\r\nRECURRENCE-ID:20240102T100000Z\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:c\r\nDTSTART;TZID=Zone/C:20240101T100000\r\nEND:VEVENT\r\n\
             END:VCALENDAR\r\n",
            tz("Zone/A"),
            tz("Zone/B"),
            tz("Zone/C"),
        )
    }

    #[test]
    fn split_groups_by_uid_and_picks_time_zones() {
        let input = stream();
        let items = split_calendar(input.as_bytes()).expect("splits");
        let texts: Vec<String> = items
            .iter()
            .map(|i| String::from_utf8_lossy(i).into_owned())
            .collect();
        assert_eq!(texts.len(), 5, "{texts:#?}");
        for t in &texts {
            assert_eq!(check(t.as_bytes()), Ok(()), "{t}");
            assert!(
                t.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:"),
                "{t}"
            );
            assert!(t.ends_with("END:VCALENDAR\r\n"), "{t}");
        }
        let a = &texts[0];
        assert_eq!(uid(a.as_bytes()).as_deref(), Some("a"));
        assert_eq!(a.matches("UID:a").count(), 2);
        // First referenced zone first; Zone/C is not referenced; the LF lines stay LF.
        let (b_at, a_at) = (a.find("TZID:Zone/B"), a.find("TZID:Zone/A"));
        assert!(b_at.is_some() && a_at.is_some() && b_at < a_at, "{a}");
        assert!(!a.contains("Zone/C"));
        assert!(a.contains("\nUID:a\nRECURRENCE-ID"));
        assert!(a.contains("X-WR-CALNAME:late\r\n"));
        let b = &texts[1];
        assert_eq!(b.matches("UID:b").count(), 2);
        assert!(!b.contains("VTIMEZONE") && b.contains("PRODID:x"));
        assert!(texts[2].contains("BEGIN:VTODO") && !texts[2].contains("VJOURNAL"));
        assert!(texts[3].contains("BEGIN:VJOURNAL") && uid(texts[3].as_bytes()).is_none());
        assert!(texts[4].contains("PRODID:second") && texts[4].contains("TZID:Zone/C"));
    }

    fn texts(items: &[Vec<u8>]) -> Vec<String> {
        items
            .iter()
            .map(|i| String::from_utf8_lossy(i).into_owned())
            .collect()
    }

    #[test]
    fn split_join_round_trip() {
        // One source calendar: split, join, split gives the very same items.
        let full = stream();
        let one = &full[..full.rfind("BEGIN:VCALENDAR").unwrap_or(0)];
        let items = split_calendar(one.as_bytes()).expect("splits");
        let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        let joined = join_calendar(&refs).expect("joins");
        assert_eq!(check(&joined), Ok(()));
        assert_eq!(
            texts(&split_calendar(&joined).expect("splits again")),
            texts(&items)
        );
        // Each time zone once, before the other components.
        let text = String::from_utf8_lossy(&joined);
        assert_eq!(text.matches("TZID:Zone/B\r\n").count(), 1);
        assert!(text.find("BEGIN:VTIMEZONE") < text.find("BEGIN:VEVENT"));
        // Several calendars and any item order: the same items up to order, except that the
        // joined calendar has the header of its first item.
        let items = split_calendar(full.as_bytes()).expect("splits");
        let mut refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        refs.reverse();
        let again = split_calendar(&join_calendar(&refs).expect("joins")).expect("splits");
        let norm = |items: &[Vec<u8>]| {
            let mut t = texts(items);
            for i in &mut t {
                *i = i
                    .replace("PRODID:x", "PRODID:second")
                    .replace("X-WR-CALNAME:late\r\n", "");
            }
            t.sort();
            t
        };
        assert_eq!(norm(&again), norm(&items));
    }

    #[test]
    fn split_keeps_a_non_utf8_item_apart() {
        // Found by the `vobject` fuzz target: the stream splits, and only the item holding the
        // bad bytes fails its check, on its own line, so the other one still syncs.
        let stream = b"BEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:abc\nSUMMARY:target\n\
            END:VEVENT\nBEGIN:VEVENT\nUID:xyz\nDESCRIPTION:contains\xff\xff abc in text\n\
            END:VEVENT\nEND:VCALENDAR\n";
        let items = split_calendar(stream).expect("splits");
        assert_eq!(items.len(), 2);
        assert_eq!(check(&items[0]), Ok(()));
        let bad = check(&items[1]).map_err(|m| (m.line, m.problem));
        assert_eq!(bad, Err((5, Problem::NotUtf8)));
    }

    fn problem<T>(r: Result<T, Malformed>) -> Option<Problem> {
        r.err().map(|m| m.problem)
    }

    #[test]
    fn split_join_errors() {
        let card = b"BEGIN:VCARD\r\nFN:x\r\nEND:VCARD\r\n";
        assert_eq!(problem(split_calendar(card)), Some(Problem::NotCalendar));
        assert_eq!(problem(join_calendar(&[card])), Some(Problem::NotCalendar));
        assert_eq!(problem(join_calendar(&[])), Some(Problem::Empty));
        assert_eq!(problem(split_calendar(b"")), Some(Problem::Empty));
        let two = "BEGIN:VCALENDAR\nEND:VCALENDAR\nBEGIN:VCALENDAR\nEND:VCALENDAR\n";
        assert_eq!(split_calendar(two.as_bytes()), Ok(Vec::new()));
        assert_eq!(
            problem(join_calendar(&[two.as_bytes()])),
            Some(Problem::ContentAfterEnd)
        );
        let open = b"BEGIN:VCALENDAR\nBEGIN:VEVENT\nEND:VCALENDAR\n";
        assert!(matches!(
            problem(split_calendar(open)),
            Some(Problem::UnexpectedEnd { .. })
        ));
    }
    #[test]
    fn split_file_groups_by_uid_and_keeps_lines() {
        let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTIMEZONE\r\nTZID:Z\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Z:20260101T100000\r\nEND:VEVENT\r\n\r\n\
BEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n\
BEGIN:VEVENT\r\nUID:a\r\nRECURRENCE-ID:20260102T100000Z\r\nEND:VEVENT\r\n\
BEGIN:VJOURNAL\r\nSUMMARY:no uid\r\nEND:VJOURNAL\r\nEND:VCALENDAR\r\n";
        let split = split_file(ics.as_bytes());
        let lines: Vec<_> = split
            .items
            .iter()
            .map(|i| (i.line, i.uid.clone()))
            .collect();
        assert_eq!(
            lines,
            [(6, Some("a".into())), (11, Some("t".into())), (18, None)]
        );
        let whole = split_calendar(ics.as_bytes()).expect("valid");
        let contents: Vec<_> = split
            .items
            .iter()
            .map(|i| i.content.clone().expect("ok"))
            .collect();
        assert_eq!(contents, whole);
        assert_eq!(split.items[0].ranges.len(), 2);
        assert_eq!(split.timezones.len(), 1);
        assert_eq!(split.calendar_end, ics.rfind("END:VCALENDAR"));
    }

    #[test]
    fn split_file_names_malformed_items_and_reads_the_rest() {
        let ics = b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nno colon here\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:b\r\nSUMMARY:never ended\r\n\
BEGIN:VEVENT\r\nUID:c\r\nSUMMARY:\xff\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:d\r\nEND:VTODO\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:e\r\nEND:VEVENT\r\nEND:VCALENDAR\r\ntrailing junk\r\n";
        let split = split_file(ics);
        let got: Vec<_> = split
            .items
            .iter()
            .map(|i| {
                (
                    i.uid.clone().unwrap_or_default(),
                    i.content.as_ref().err().map(|m| m.line),
                )
            })
            .collect();
        let want = [
            ("a", Some(4)),
            ("b", Some(8)),
            ("c", Some(11)),
            ("d", Some(15)),
            ("e", None),
            ("", Some(21)),
        ];
        let want: Vec<_> = want.iter().map(|(u, l)| (u.to_string(), *l)).collect();
        assert_eq!(got, want);
        // Every item's ranges together with the calendar's own lines cover the file.
        let covered: usize = split
            .items
            .iter()
            .flat_map(|i| &i.ranges)
            .map(|r| r.len())
            .sum();
        let own = "BEGIN:VCALENDAR\r\n".len() + "END:VCALENDAR\r\n".len();
        assert_eq!(covered + own, ics.len());
    }

    #[test]
    fn split_file_cuts_vcards_and_never_groups_them() {
        let vcf = b"BEGIN:VCARD\nUID:x\nFN:a\nEND:VCARD\nBEGIN:VCARD\nUID:x\nFN:b\nEND:VCARD\n\
BEGIN:VCARD\nFN:broken\nBEGIN:VCARD\nFN:c\nEND:VCARD\n";
        let split = split_file(vcf);
        let lines: Vec<_> = split
            .items
            .iter()
            .map(|i| (i.line, i.content.is_ok()))
            .collect();
        assert_eq!(lines, [(1, true), (5, true), (9, false), (11, true)]);
        assert_eq!(split.items[1].content.as_deref().ok(), Some(&vcf[33..66]));
        assert_eq!(split.calendar_end, None);
    }
    #[test]
    fn split_file_items_using_a_broken_timezone_or_header_are_malformed() {
        let ics = b"BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Z\r\nbroken\r\nEND:VTIMEZONE\r\n\
BEGIN:VEVENT\r\nUID:a\r\nDTSTART;TZID=Z:20260101T100000\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:b\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let split = split_file(ics);
        let lines: Vec<_> = split
            .items
            .iter()
            .map(|i| i.content.as_ref().err().map(|m| m.line))
            .collect();
        assert_eq!(lines, [Some(4), None]);
        let header = b"BEGIN:VCALENDAR\r\nX-WR-CALNAME:\xff\r\nBEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let item = &split_file(header).items[0];
        assert_eq!(
            item.content.as_ref().err().map(|m| (m.line, &m.problem)),
            Some((3, &Problem::NotUtf8))
        );
    }
}
