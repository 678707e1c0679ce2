//! The `[storage.<name>]` section of `type = "caldav"` and `type = "carddav"`.

use crate::config::{ConfigError, Section};
pub use crate::filter::ComponentLimit;
use crate::http::{HttpOptions, options};

/// Keys of a DAV section besides the common storage keys and the HTTP options.
pub const KEYS: &[&str] = &["batch_size", "concurrency"];

/// Which protocol a DAV storage speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DavKind {
    /// CalDAV (RFC 4791): calendars, `.ics` items.
    CalDav,
    /// CardDAV (RFC 6352): address books, `.vcf` items.
    CardDav,
}

/// Whose flavour of CalDAV/CardDAV a server speaks: what it refuses that the RFCs allow. Not a
/// config key: the storage type decides (`caldav`/`carddav` are [`Dialect::Standard`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dialect {
    /// RFC 4791 and RFC 6352 as written.
    #[default]
    Standard,
    /// Google Calendar and Google Contacts: no MKCALENDAR or MKCOL (calendars are made in the
    /// web interface), no `If-None-Match: *` on PUT (existence is checked first), calendars
    /// hold events only (VTODO and VJOURNAL are refused), rate limits answered with 403.
    Google,
}

impl Dialect {
    /// The name of the collection at `href`, by which a pair matches collections: its last
    /// path segment, except for a Google calendar, whose address is
    /// `/caldav/v2/<calendar-id>/events/`, so that every calendar's last segment is `events`:
    /// there the calendar id is the name.
    pub fn collection_name(self, href: &str) -> String {
        let last = super::href::last_segment(href);
        if self != Dialect::Google || last != "events" {
            return last;
        }
        let trimmed = href.trim_end_matches('/');
        let parent = trimmed.strip_suffix("events").unwrap_or(trimmed);
        match super::href::last_segment(parent) {
            id if id.is_empty() => last,
            id => id,
        }
    }
}

/// A `[storage.<name>]` table of type `caldav` or `carddav`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DavConfig {
    /// CalDAV or CardDAV.
    pub kind: DavKind,
    /// Where and how to connect; `url` is a service root, a home set, or one collection.
    pub http: HttpOptions,
    /// Hrefs per multiget request (default 50).
    pub batch_size: usize,
    /// Requests in flight at once (default 4).
    pub concurrency: usize,
    /// The server's flavour of the protocol.
    pub dialect: Dialect,
}

impl DavConfig {
    /// The component types the server can hold, where its dialect limits them: a Google
    /// calendar holds events only.
    pub fn component_limit(&self) -> Option<ComponentLimit> {
        match (self.dialect, self.kind) {
            (Dialect::Google, DavKind::CalDav) => Some(ComponentLimit {
                types: &["VEVENT"],
                holder: "Google Calendar",
            }),
            _ => None,
        }
    }
}

/// Default of `batch_size`, and its allowed range.
const DEFAULT_BATCH_SIZE: usize = 50;
const BATCH_SIZE_RANGE: (i128, i128) = (1, 1000);

/// Default of `concurrency`, and its allowed range.
const DEFAULT_CONCURRENCY: usize = 4;
const CONCURRENCY_RANGE: (i128, i128) = (1, 32);

/// Parses a `type = "caldav"`/`"carddav"` section (the common keys are parsed by the caller).
pub fn parse_config(section: &Section<'_, '_>, kind: DavKind) -> Result<DavConfig, ConfigError> {
    section.check_keys(&[options::KEYS, KEYS])?;
    let http = HttpOptions::parse(section)?;
    parse_rest(section, kind, http)
}

/// The DAV keys besides the HTTP options (`batch_size`, `concurrency`), for a type built on
/// the DAV storage whose `http` options are already parsed (a Google account).
pub fn parse_rest(
    section: &Section<'_, '_>,
    kind: DavKind,
    http: HttpOptions,
) -> Result<DavConfig, ConfigError> {
    let (min, max) = BATCH_SIZE_RANGE;
    let batch_size = section
        .integer_in("batch_size", min, max)?
        .map_or(DEFAULT_BATCH_SIZE, |n| {
            usize::try_from(n).unwrap_or(DEFAULT_BATCH_SIZE)
        });
    let (min, max) = CONCURRENCY_RANGE;
    let concurrency = section
        .integer_in("concurrency", min, max)?
        .map_or(DEFAULT_CONCURRENCY, |n| {
            usize::try_from(n).unwrap_or(DEFAULT_CONCURRENCY)
        });
    Ok(DavConfig {
        kind,
        http,
        batch_size,
        concurrency,
        dialect: Dialect::Standard,
    })
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn a_google_calendar_is_named_by_its_calendar_id() {
        let cases = [
            (
                Dialect::Google,
                "/caldav/v2/alice%40gmail.com/events/",
                "alice@gmail.com",
            ),
            (
                Dialect::Google,
                "https://apidata.googleusercontent.com/caldav/v2/abc%40group.calendar.google.com/events",
                "abc@group.calendar.google.com",
            ),
            (
                Dialect::Google,
                "/carddav/v1/principals/alice%40gmail.com/lists/default/",
                "default",
            ),
            (Dialect::Google, "/events/", "events"),
            (Dialect::Standard, "/alice/calendars/events/", "events"),
            (Dialect::Standard, "/alice/calendars/work/", "work"),
        ];
        for (dialect, href, name) in cases {
            assert_eq!(dialect.collection_name(href), name, "{dialect:?} {href}");
        }
    }
}
