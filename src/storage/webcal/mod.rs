//! The webcal storage: one calendar feed (an `.ics` file over HTTP or HTTPS, `webcal://` being
//! HTTPS), read-only.
//!
//! The feed is one collection. Each run sends one conditional GET (`If-None-Match` /
//! `If-Modified-Since` from the validators remembered in the collection's state): a 304 means
//! nothing changed and nothing else is asked. A 200 is read once, split into items by UID, and
//! the listing carries every item's content, so nothing is fetched twice.
//!
//! An item's version is a hash that ignores what feeds rewrite on every export without any
//! change of meaning (DTSTAMP, LAST-MODIFIED, SEQUENCE and the other volatile properties of
//! [`vobject::normalized_hash`]), so a re-stamped feed writes nothing locally. An item without
//! UID is named by that hash too.

use std::sync::{Arc, Mutex, MutexGuard};

pub mod config;

pub use config::{WebcalConfig, parse_config};

use crate::config::{Env, MetadataKey};
use crate::http::{self, Clients, DavRequest, DavResponse, HttpClient};
use crate::storage::{
    ChangeSet, Changes, CollectionInfo, Fetched, ItemError, ListEntry, Storage, StorageError,
    Written, item_file_name,
};
use crate::vobject;

/// Opens a feed: resolves its secrets (before any network I/O) and takes its client from
/// `clients`.
pub fn open(
    config: &WebcalConfig,
    env: &dyn Env,
    clients: &Clients,
) -> Result<WebcalStorage, StorageError> {
    let credentials = http::credentials(&config.http, env)
        .map_err(|e| StorageError::Other(format!("{}: {e}", config.http.url)))?;
    // One request per run: one connection is enough.
    let client = clients
        .get(&config.http, 1, credentials)
        .map_err(|e| StorageError::Other(e.to_string()))?;
    Ok(WebcalStorage::new(&config.http.url, client))
}

/// The address the feed is fetched from: `webcal://` is `https://`, anything else is kept.
pub fn feed_url(url: &str) -> String {
    match url.get(..9) {
        Some(scheme) if scheme.eq_ignore_ascii_case("webcal://") => {
            format!("https://{}", &url[9..])
        }
        _ => url.to_owned(),
    }
}

/// A read-only calendar feed.
#[derive(Debug)]
pub struct WebcalStorage {
    /// The feed's `http(s)://` address (after [`feed_url`]).
    url: String,
    client: Arc<HttpClient>,
    /// The feed as read in this run; it is read at most once.
    feed: Mutex<Option<Arc<Feed>>>,
    /// The feed's calendar properties, from this run's answer or, after a 304, from the state
    /// remembered with the validators.
    properties: Mutex<Option<Properties>>,
}

/// A feed split into items.
#[derive(Debug, Default)]
struct Feed {
    /// One entry per item, with its content.
    entries: Vec<ListEntry>,
    properties: Properties,
}

/// The calendar properties a feed may carry, as collection metadata.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Properties {
    /// `X-WR-CALNAME`.
    displayname: Option<String>,
    /// `X-APPLE-CALENDAR-COLOR`, when it is a plain `#RRGGBB` or `#RRGGBBAA`.
    color: Option<String>,
}

/// What is remembered between runs: the answer's validators, and the calendar properties
/// (a 304 does not repeat them).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct State {
    etag: Option<String>,
    last_modified: Option<String>,
    properties: Properties,
}

impl State {
    const FIELDS: [&'static str; 4] = ["etag", "last-modified", "displayname", "color"];

    /// One `name value` line per field set; header values hold no line breaks.
    fn encode(&self) -> String {
        let values = [
            &self.etag,
            &self.last_modified,
            &self.properties.displayname,
            &self.properties.color,
        ];
        Self::FIELDS
            .iter()
            .zip(values)
            .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name} {v}\n")))
            .collect()
    }

    fn decode(text: &str) -> State {
        let mut state = State::default();
        for line in text.lines() {
            let (name, value) = line.split_once(' ').unwrap_or((line, ""));
            let value = Some(value.to_owned());
            match name {
                "etag" => state.etag = value,
                "last-modified" => state.last_modified = value,
                "displayname" => state.properties.displayname = value,
                "color" => state.properties.color = value,
                _ => {}
            }
        }
        state
    }
}

impl WebcalStorage {
    /// A storage reading the feed at `url` (`webcal://` taken as `https://`) through `client`.
    pub fn new(url: &str, client: Arc<HttpClient>) -> WebcalStorage {
        WebcalStorage {
            url: feed_url(url),
            client,
            feed: Mutex::new(None),
            properties: Mutex::new(None),
        }
    }

    fn check(&self, collection: &CollectionInfo) -> Result<(), StorageError> {
        match collection.id == self.url {
            true => Ok(()),
            false => Err(StorageError::NoSuchCollection {
                id: collection.id.clone(),
            }),
        }
    }

    /// The refusal every write gets.
    fn refuse(&self, href: &str) -> ItemError {
        ItemError::Refused {
            href: href.to_owned(),
            status: None,
            reason: format!("{} is a webcal feed, which is read-only", self.url),
        }
    }

    /// Sends the GET, conditional on `known`'s validators.
    fn get(&self, known: Option<&State>) -> Result<DavResponse, StorageError> {
        let mut request =
            DavRequest::new("GET", self.url.clone()).header("Accept", "text/calendar");
        if let Some(etag) = known.and_then(|s| s.etag.as_ref()) {
            request = request.header("If-None-Match", etag.clone());
        }
        if let Some(date) = known.and_then(|s| s.last_modified.as_ref()) {
            request = request.header("If-Modified-Since", date.clone());
        }
        self.client
            .send(&request)
            .map_err(|e| match e.is_temporary() {
                true => StorageError::Unreachable(e.to_string()),
                false => StorageError::Other(e.to_string()),
            })
    }

    /// Reads a 200 answer into a feed and remembers it for the rest of the run.
    fn take(&self, response: &DavResponse) -> Result<Arc<Feed>, StorageError> {
        if response.status != 200 {
            let message = format!(
                "GET {}: HTTP {}: the feed was not read, nothing of it is synced",
                self.url, response.status
            );
            return Err(match response.status {
                429 | 500..=599 => StorageError::Unreachable(message),
                _ => StorageError::Other(message),
            });
        }
        let feed = parse_feed(&response.body).map_err(|e| {
            StorageError::Other(format!(
                "GET {} (HTTP {}): not a whole calendar, nothing of it is synced: {e}",
                self.url, response.status
            ))
        })?;
        let feed = Arc::new(feed);
        *lock(&self.properties) = Some(feed.properties.clone());
        *lock(&self.feed) = Some(Arc::clone(&feed));
        Ok(feed)
    }

    /// The feed of this run, read now if no listing read it yet.
    fn feed(&self) -> Result<Arc<Feed>, StorageError> {
        if let Some(feed) = lock(&self.feed).as_ref() {
            return Ok(Arc::clone(feed));
        }
        let response = self.get(None)?;
        self.take(&response)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Splits a feed into entries named by UID (or, without one, by version) and versioned by
/// [`feed_version`].
fn parse_feed(body: &[u8]) -> Result<Feed, vobject::Malformed> {
    let items = vobject::split_calendar(body)?;
    let mut feed = Feed {
        properties: calendar_properties(body),
        ..Feed::default()
    };
    let mut seen = std::collections::HashSet::new();
    for bytes in items {
        let version = feed_version(&bytes);
        let name = match vobject::uid(&bytes) {
            Some(uid) => item_file_name(&uid, ".ics"),
            None => item_file_name(&format!("sha256:{version}"), ".ics"),
        };
        // The same item without UID twice in one feed is one item.
        if seen.insert(name.clone()) {
            feed.entries.push(ListEntry {
                href: name,
                etag: format!("\"{version}\""),
                content: Some(bytes),
            });
        }
    }
    Ok(feed)
}

/// The content lines of `bytes`, unfolded, without their line ends.
fn logical_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for physical in bytes.split(|&b| b == b'\n') {
        let physical = physical.strip_suffix(b"\r").unwrap_or(physical);
        match (physical.first(), lines.last_mut()) {
            (Some(b' ' | b'\t'), Some(last)) => last.extend_from_slice(&physical[1..]),
            _ => lines.push(physical.to_vec()),
        }
    }
    lines
}

/// A content line's property name, without group prefix, and its value.
fn name_and_value(line: &[u8]) -> (&[u8], &[u8]) {
    let end = line
        .iter()
        .position(|&b| b == b':' || b == b';')
        .unwrap_or(line.len());
    let name = &line[..end];
    let name = match name.iter().rposition(|&b| b == b'.') {
        Some(dot) => &name[dot + 1..],
        None => name,
    };
    let value = line
        .iter()
        .position(|&b| b == b':')
        .map_or(&[][..], |colon| &line[colon + 1..]);
    (name, value)
}

/// An item's version in a feed: its normalized hash with SEQUENCE left out as well, since feeds
/// bump it on export without changing anything else (the normalized hash itself already leaves
/// out DTSTAMP, LAST-MODIFIED and the other volatile properties).
fn feed_version(item: &[u8]) -> String {
    let mut kept = Vec::with_capacity(item.len());
    for line in logical_lines(item) {
        if !name_and_value(&line).0.eq_ignore_ascii_case(b"SEQUENCE") {
            kept.extend_from_slice(&line);
            kept.extend_from_slice(b"\r\n");
        }
    }
    vobject::normalized_hash(&kept)
}

/// `X-WR-CALNAME` and a plain `X-APPLE-CALENDAR-COLOR` of the (first) VCALENDAR.
fn calendar_properties(body: &[u8]) -> Properties {
    let mut properties = Properties::default();
    let mut depth = 0usize;
    for line in logical_lines(body) {
        let (name, value) = name_and_value(&line);
        if name.eq_ignore_ascii_case(b"BEGIN") {
            depth += 1;
        } else if name.eq_ignore_ascii_case(b"END") {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                break;
            }
        } else if depth == 1 {
            let value = String::from_utf8_lossy(value).trim().to_owned();
            if name.eq_ignore_ascii_case(b"X-WR-CALNAME") && !value.is_empty() {
                properties.displayname = Some(unescape(&value));
            } else if name.eq_ignore_ascii_case(b"X-APPLE-CALENDAR-COLOR") && is_plain_color(&value)
            {
                properties.color = Some(value);
            }
        }
    }
    properties
}

/// `#RRGGBB` or `#RRGGBBAA`.
fn is_plain_color(value: &str) -> bool {
    value
        .strip_prefix('#')
        .is_some_and(|hex| matches!(hex.len(), 6 | 8) && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An iCalendar TEXT value as plain text (RFC 5545 §3.3.11); a line break becomes a space.
fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (c, c == '\\') {
            (_, true) => match chars.next() {
                Some('n' | 'N') => out.push(' '),
                Some(other) => out.push(other),
                None => {}
            },
            (c, false) => out.push(c),
        }
    }
    out
}

impl Storage for WebcalStorage {
    fn list_collections(&self) -> Result<Vec<CollectionInfo>, StorageError> {
        Ok(vec![self.root_collection()])
    }

    fn root_collection(&self) -> CollectionInfo {
        CollectionInfo {
            name: String::new(),
            id: self.url.clone(),
        }
    }

    fn create_collection(&self, name: &str) -> Result<CollectionInfo, StorageError> {
        Err(StorageError::Other(format!(
            "{}: a webcal feed is one read-only calendar; no collection {name:?} can be created \
             there",
            self.url
        )))
    }

    fn list(&self, collection: &CollectionInfo) -> Result<Vec<ListEntry>, StorageError> {
        self.check(collection)?;
        Ok(self.feed()?.entries.clone())
    }

    fn list_changes(
        &self,
        collection: &CollectionInfo,
        since: Option<&str>,
        _fetch_all: bool,
    ) -> Result<ChangeSet, StorageError> {
        self.check(collection)?;
        let known = since.map(State::decode);
        let response = self.get(known.as_ref())?;
        if response.status == 304
            && let Some(known) = known
        {
            *lock(&self.properties) = Some(known.properties);
            return Ok(ChangeSet {
                changes: Changes::Unchanged,
                state: since.map(str::to_owned),
                unreadable: Vec::new(),
            });
        }
        let feed = self.take(&response)?;
        let state = State {
            etag: response.header("etag").map(str::to_owned),
            last_modified: response.header("last-modified").map(str::to_owned),
            properties: feed.properties.clone(),
        };
        let validated = state.etag.is_some() || state.last_modified.is_some();
        Ok(ChangeSet {
            changes: Changes::Full(feed.entries.clone()),
            state: validated.then(|| state.encode()),
            // A malformed feed is refused whole, so no item of a feed read is unreadable.
            unreadable: Vec::new(),
        })
    }

    fn metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
    ) -> Result<Option<String>, StorageError> {
        self.check(collection)?;
        let known = lock(&self.properties).clone();
        let properties = match known {
            Some(properties) => properties,
            None => self.feed()?.properties.clone(),
        };
        Ok(match key {
            MetadataKey::DisplayName => properties.displayname,
            MetadataKey::Color => properties.color,
            _ => None,
        })
    }

    fn set_metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
        _value: Option<&str>,
    ) -> Result<(), StorageError> {
        Err(StorageError::Other(format!(
            "{}: a webcal feed is read-only; its {key:?} is not changed",
            collection.id
        )))
    }

    fn get_many(
        &self,
        collection: &CollectionInfo,
        hrefs: &[&str],
    ) -> Vec<(String, Result<Fetched, ItemError>)> {
        let feed = self.check(collection).and_then(|()| self.feed());
        hrefs
            .iter()
            .map(|&href| {
                let found = match &feed {
                    Ok(feed) => feed
                        .entries
                        .iter()
                        .find(|e| e.href == href)
                        .map(|e| Fetched {
                            bytes: e.content.clone().unwrap_or_default(),
                            etag: e.etag.clone(),
                        })
                        .ok_or_else(|| ItemError::NotFound {
                            href: href.to_owned(),
                        }),
                    Err(e) => Err(ItemError::Transport {
                        href: href.to_owned(),
                        reason: e.to_string(),
                    }),
                };
                (href.to_owned(), found)
            })
            .collect()
    }

    fn create(
        &self,
        _collection: &CollectionInfo,
        name_hint: &str,
        _bytes: &[u8],
    ) -> Result<Written, ItemError> {
        Err(self.refuse(name_hint))
    }

    fn update(
        &self,
        _collection: &CollectionInfo,
        href: &str,
        _expected_etag: &str,
        _bytes: &[u8],
    ) -> Result<Written, ItemError> {
        Err(self.refuse(href))
    }

    fn delete(
        &self,
        _collection: &CollectionInfo,
        href: &str,
        _expected_etag: &str,
    ) -> Result<(), ItemError> {
        Err(self.refuse(href))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FEED: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//feed//EN\r\n\
        X-WR-CALNAME:Holidays\\, public\r\nX-APPLE-CALENDAR-COLOR:#FF8800\r\n\
        BEGIN:VEVENT\r\nUID:a@feed\r\nDTSTAMP:20260101T000000Z\r\nSEQUENCE:3\r\n\
        DTSTART;VALUE=DATE:20261225\r\nSUMMARY:Christmas\r\nEND:VEVENT\r\n\
        BEGIN:VEVENT\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260101\r\n\
        SUMMARY:New year\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    fn entries(feed: &str) -> Vec<(String, String)> {
        let feed = parse_feed(feed.as_bytes()).expect("parses");
        feed.entries.into_iter().map(|e| (e.href, e.etag)).collect()
    }

    #[test]
    fn webcal_scheme_is_https() {
        assert_eq!(feed_url("webcal://x.org/a.ics"), "https://x.org/a.ics");
        assert_eq!(feed_url("WEBCAL://x.org/a.ics"), "https://x.org/a.ics");
        assert_eq!(feed_url("http://x.org/a.ics"), "http://x.org/a.ics");
    }

    #[test]
    fn items_are_named_by_uid_or_by_version() {
        let listed = entries(FEED);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].0, "a@feed.ics");
        assert_eq!(listed[1].0.len(), 36, "{listed:?}");
        assert!(listed[1].0.ends_with(".ics"));
    }

    #[test]
    fn restamping_and_sequence_bumps_keep_every_version() {
        let restamped = FEED
            .replace("DTSTAMP:20260101T000000Z", "DTSTAMP:20261205T101010Z")
            .replace("SEQUENCE:3", "SEQUENCE:4")
            .replace(
                "SUMMARY:New year\r\n",
                "SUMMARY:New year\r\nLAST-MODIFIED:20261205T101010Z\r\nSEQUENCE:1\r\n",
            );
        assert_eq!(entries(FEED), entries(&restamped));
        let edited = FEED.replace("SUMMARY:Christmas", "SUMMARY:Xmas");
        let (before, after) = (entries(FEED), entries(&edited));
        assert_eq!(before[0].0, after[0].0);
        assert_ne!(before[0].1, after[0].1);
        assert_eq!(before[1], after[1]);
    }

    #[test]
    fn the_version_is_not_the_stored_hash() {
        // Other storages keep their normalized hash: only the feed's version ignores SEQUENCE.
        let item = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:u\r\nSEQUENCE:2\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let bumped = item.replace("SEQUENCE:2", "SEQUENCE:3");
        assert_ne!(
            vobject::normalized_hash(item.as_bytes()),
            vobject::normalized_hash(bumped.as_bytes())
        );
        assert_eq!(
            feed_version(item.as_bytes()),
            feed_version(bumped.as_bytes())
        );
    }

    #[test]
    fn the_same_item_without_uid_twice_is_one_item() {
        let event = "BEGIN:VEVENT\r\nDTSTART:20260101T100000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\n";
        let feed = format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{event}{event}END:VCALENDAR\r\n");
        assert_eq!(entries(&feed).len(), 1);
    }

    #[test]
    fn calendar_properties_become_metadata() {
        let properties = calendar_properties(FEED.as_bytes());
        assert_eq!(properties.displayname.as_deref(), Some("Holidays, public"));
        assert_eq!(properties.color.as_deref(), Some("#FF8800"));
        let odd = FEED.replace("#FF8800", "orange");
        assert_eq!(calendar_properties(odd.as_bytes()).color, None);
        // An X-WR-CALNAME inside an event is not the calendar's.
        let inner =
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nX-WR-CALNAME:no\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        assert_eq!(calendar_properties(inner.as_bytes()).displayname, None);
    }

    #[test]
    fn state_round_trips() {
        let state = State {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Sat, 05 Dec 2026 10:00:00 GMT".into()),
            properties: Properties {
                displayname: Some("Holidays, public".into()),
                color: None,
            },
        };
        assert_eq!(State::decode(&state.encode()), state);
        assert_eq!(State::decode(""), State::default());
    }

    #[test]
    fn a_truncated_feed_is_an_error() {
        let cut = &FEED[..FEED.len() - 30];
        assert!(parse_feed(cut.as_bytes()).is_err());
        assert!(parse_feed(b"<html>oops</html>").is_err());
    }
}
