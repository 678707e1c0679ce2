//! [`DavStorage`]: the [`Storage`] trait over CalDAV or CardDAV.
//!
//! Requests are built by [`super::xml`] and [`DavRequest`], sent by [`HttpClient`], and their
//! answers parsed by [`super::xml`]; this file decides which requests to send. Cheapest first:
//! a collection whose sync token or ctag (read in the one home-set PROPFIND) has not moved
//! needs no request at all; otherwise RFC 6578 sync-collection returns only the changes, and
//! only servers without it get a full listing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;

use super::config::Dialect;
use super::href;
use super::xml::{self, Multistatus, Props};
use crate::config::{DavConfig, DavKind, MetadataKey};
use crate::filter::{CivilDate, ItemFilter, Window};
use crate::http::{DavRequest, DavResponse, HttpClient, HttpError};
use crate::item::Item;
use crate::model::UnreadableItem;
use crate::storage::{
    ChangeSet, Changes, CollectionInfo, Fetched, ItemError, ListEntry, ListingMethod, ListingPlan,
    Storage, StorageError, Written, item_file_name,
};

/// How many names a create tries before giving up (the UID, then hashed variants).
const CREATE_ATTEMPTS: u32 = 10;

/// Batch size used after a server failed a whole multiget, before falling back to single GETs.
const SMALL_BATCH: usize = 10;

/// What the home-set PROPFIND said about one collection.
#[derive(Debug, Clone, Default)]
struct CollectionState {
    ctag: Option<String>,
    supports_sync: bool,
    displayname: Option<String>,
    color: Option<String>,
    description: Option<String>,
    order: Option<String>,
    /// The token and ctag were read and not yet used to list: a storage that lives on (and
    /// lists again later) must not take an old token for the current one.
    unused: bool,
}

impl CollectionState {
    fn property(&mut self, key: MetadataKey) -> &mut Option<String> {
        match key {
            MetadataKey::DisplayName => &mut self.displayname,
            MetadataKey::Color => &mut self.color,
            MetadataKey::Description => &mut self.description,
            MetadataKey::Order => &mut self.order,
        }
    }
}

/// What a collection's state string remembers between runs: the ctag seen (cheap to ask for:
/// equal means nothing changed, no request needed) and the sync token to ask for changes since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Remembered {
    ctag: Option<String>,
    token: Option<String>,
}

impl Remembered {
    /// Reads `ctag<newline>token` (either may be empty). A state without a newline is taken for
    /// a bare sync token.
    fn parse(text: &str) -> Remembered {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        match text.split_once('\n') {
            Some((ctag, token)) => Remembered {
                ctag: non_empty(ctag),
                token: non_empty(token),
            },
            None => Remembered {
                ctag: None,
                token: non_empty(text),
            },
        }
    }
}

impl std::fmt::Display for Remembered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (ctag, token) = (self.ctag.as_deref(), self.token.as_deref());
        write!(f, "{}\n{}", ctag.unwrap_or(""), token.unwrap_or(""))
    }
}

/// What a sync-collection answer says about one member.
enum Word {
    /// New or changed: its ETag, and its content if the answer has it.
    Changed(String, Option<Vec<u8>>),
    /// Gone (404 or 410).
    Removed,
    /// Listed, but without an ETag or with a failure status: there, yet not readable.
    Unreadable(String),
}

/// The outcome of a sync-collection REPORT (with its continuations).
struct SyncReport {
    changed: Vec<ListEntry>,
    removed: Vec<String>,
    unreadable: Vec<UnreadableItem>,
    token: Option<String>,
}

/// The items a listing (PROPFIND or calendar-query) names.
#[derive(Default)]
struct ItemListing {
    entries: Vec<ListEntry>,
    /// Listed without an ETag: there, yet not readable this run.
    unreadable: Vec<UnreadableItem>,
}

/// A CalDAV or CardDAV server as a storage.
#[derive(Debug)]
pub struct DavStorage {
    kind: DavKind,
    dialect: Dialect,
    url: String,
    http: Arc<HttpClient>,
    /// The component types to list (empty for all).
    item_types: Vec<String>,
    /// The only component types the server holds, if it is limited (a Google calendar).
    holds: Option<&'static [&'static str]>,
    batch_size: usize,
    concurrency: usize,
    home: Mutex<Option<String>>,
    states: Mutex<HashMap<String, CollectionState>>,
    /// What [`Storage::identity`] returns: kind, configured URL and user name.
    identity: String,
}

fn http_error(e: HttpError) -> StorageError {
    match e.is_temporary() {
        true => StorageError::Unreachable(e.to_string()),
        false => StorageError::Other(e.to_string()),
    }
}

/// A collection-level failure for an unexpected HTTP status, with a hint for the statuses users
/// most often meet.
fn status_error(request: &DavRequest, response: &DavResponse) -> StorageError {
    let hint = match response.status {
        401 => " (authentication failed: check username and password)",
        403 => " (forbidden: check the account's permissions and the URL)",
        404 => " (not found: check the URL)",
        _ => "",
    };
    let message = format!(
        "{} {}: HTTP {}{hint}",
        request.method, request.url, response.status
    );
    // A server error or a rate limit still there after the retries: the server's, for now.
    match response.status {
        429 | 500..=599 => StorageError::Unreachable(message),
        _ => StorageError::Other(message),
    }
}

fn parse(request: &DavRequest, response: &DavResponse) -> Result<Multistatus, StorageError> {
    xml::parse_multistatus(&response.body).map_err(|e| {
        StorageError::Other(format!(
            "{} {}: unusable answer (HTTP {}): {e}",
            request.method, request.url, response.status
        ))
    })
}

impl DavStorage {
    /// A storage for `config` letting through what `filter` lets through, with an HTTP client
    /// already set up (perhaps shared with other storages, see [`crate::http::Clients`]).
    pub fn new(config: &DavConfig, filter: &ItemFilter, http: Arc<HttpClient>) -> DavStorage {
        DavStorage {
            kind: config.kind,
            dialect: config.dialect,
            url: with_slash(&config.http.url),
            http,
            // A server that holds only the types the filter lets through lists everything,
            // which keeps sync-collection (a calendar-query would be needed to filter).
            item_types: match config.component_limit() {
                Some(limit) if limit_within(limit.types, &filter.item_types) => Vec::new(),
                _ => filter.item_types.clone(),
            },
            holds: config.component_limit().map(|limit| limit.types),
            batch_size: config.batch_size.max(1),
            concurrency: config.concurrency.max(1),
            home: Mutex::new(None),
            states: Mutex::new(HashMap::new()),
            identity: format!(
                "{:?} {} {}",
                config.kind,
                config.http.url,
                config.http.username.as_deref().unwrap_or("")
            ),
        }
    }

    /// The same storage, known as `account`'s besides its URL and user name (an OAuth2
    /// account has no user name, and several share one URL), so a discovery hint remembered
    /// for one account is never tried for another.
    pub fn for_account(mut self, account: &str) -> DavStorage {
        self.identity = format!("{} {account}", self.identity);
        self
    }

    fn extension(&self) -> &'static str {
        match self.kind {
            DavKind::CalDav => ".ics",
            DavKind::CardDav => ".vcf",
        }
    }

    fn content_type(&self) -> &'static str {
        match self.kind {
            DavKind::CalDav => "text/calendar; charset=utf-8",
            DavKind::CardDav => "text/vcard; charset=utf-8",
        }
    }

    /// Sends a request whose answer must be a multistatus.
    fn multistatus(&self, request: &DavRequest) -> Result<Multistatus, StorageError> {
        let response = self.http.send(request).map_err(http_error)?;
        if response.status != 207 {
            return Err(status_error(request, &response));
        }
        parse(request, &response)
    }

    fn propfind(&self, url: &str, depth: &'static str, body: String) -> DavRequest {
        DavRequest::new("PROPFIND", url)
            .header("Depth", depth)
            .xml(body)
    }

    /// Finds the home set: the remembered one, else the given URL's home-set property, else
    /// its principal's, else the same via `/.well-known/`, else the URL itself.
    fn home(&self) -> Result<String, StorageError> {
        if let Some(home) = self.lock_home().clone() {
            return Ok(home);
        }
        tracing::trace!("{}: discovering the home set", self.url);
        let well_known = href::join(
            &self.url,
            match self.kind {
                DavKind::CalDav => "/.well-known/caldav",
                DavKind::CardDav => "/.well-known/carddav",
            },
        );
        let mut found = None;
        for start in [self.url.clone(), well_known] {
            if let Some(home) = self.home_from(&start)? {
                found = Some(home);
                break;
            }
        }
        let home = found.unwrap_or_else(|| {
            tracing::trace!(
                "{}: no home set found there nor at the well-known address: the url is the home set",
                self.url
            );
            self.url.clone()
        });
        *self.lock_home() = Some(home.clone());
        Ok(home)
    }

    fn lock_home(&self) -> std::sync::MutexGuard<'_, Option<String>> {
        self.home
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_states(&self) -> std::sync::MutexGuard<'_, HashMap<String, CollectionState>> {
        self.states
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One step of discovery at `url`: its home set, directly or through its principal.
    fn home_from(&self, url: &str) -> Result<Option<String>, StorageError> {
        let mut at = url.to_owned();
        // At most two hops: URL → principal → home set.
        for _ in 0..2 {
            let request = self
                .propfind(&at, "0", xml::propfind_home_sets())
                .shareable();
            let response = self.http.send(&request).map_err(http_error)?;
            // Relative hrefs in the answer are relative to the URL that answered.
            at.clone_from(&response.url);
            match response.status {
                207 => {}
                401 => return Err(status_error(&request, &response)),
                // Not a DAV resource here (a well-known URL the server lacks): try elsewhere.
                _ => return Ok(None),
            }
            let status = parse(&request, &response)?;
            let Some(first) = status.responses.first() else {
                return Ok(None);
            };
            let homes = match self.kind {
                DavKind::CalDav => &first.props.calendar_home_set,
                DavKind::CardDav => &first.props.addressbook_home_set,
            };
            if let Some(home) = homes.first() {
                let home = with_slash(&href::join(&at, home));
                tracing::trace!("{at}: home set {home}");
                return Ok(Some(home));
            }
            match &first.props.current_user_principal {
                Some(principal) => {
                    let principal = href::join(&at, principal);
                    tracing::trace!("{at}: principal {principal}");
                    at = principal;
                }
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    fn remember(&self, id: &str, props: &Props) {
        self.lock_states().insert(
            id.to_owned(),
            CollectionState {
                ctag: props.ctag.clone(),
                supports_sync: props.supports_sync_collection,
                // An empty display name is no display name.
                displayname: props.displayname.clone().filter(|v| !v.is_empty()),
                color: props.color.clone(),
                description: props.description.clone().filter(|v| !v.is_empty()),
                order: props.order.clone(),
                unused: true,
            },
        );
    }

    fn is_own_kind(&self, props: &Props) -> bool {
        match self.kind {
            DavKind::CalDav => props.is_calendar,
            DavKind::CardDav => props.is_addressbook,
        }
    }

    /// The state of a collection as discovery (or an earlier call) read it, else read now.
    fn state(&self, collection: &CollectionInfo) -> Result<CollectionState, StorageError> {
        if let Some(state) = self.lock_states().get(&collection.id) {
            return Ok(state.clone());
        }
        let request = self.propfind(&collection.id, "0", xml::propfind_collections());
        let status = self.multistatus(&request)?;
        let props = status
            .responses
            .iter()
            .find(|r| href::same_href(&href::join(&collection.id, &r.href), &collection.id))
            .map(|r| r.props.clone())
            .unwrap_or_default();
        self.remember(&collection.id, &props);
        Ok(self
            .lock_states()
            .get(&collection.id)
            .cloned()
            .unwrap_or_default())
    }

    /// Turns the item responses of a listing into entries, leaving out the collection itself.
    /// A member listed without an ETag is unreadable, not absent; a listing the server says it
    /// cut short (RFC 5323 `number-of-matches-within-limits`, a 507 for the collection) is
    /// refused, since what it leaves out would look deleted.
    fn entries(
        &self,
        collection: &CollectionInfo,
        request: &DavRequest,
        status: &Multistatus,
    ) -> Result<ItemListing, StorageError> {
        if status.truncated {
            return Err(StorageError::Other(format!(
                "{} {}: the server cut the listing short (HTTP 507, too many matches); \
                 nothing synced rather than taking part of the collection for all of it",
                request.method, request.url
            )));
        }
        let mut listing = ItemListing::default();
        for r in &status.responses {
            let url = href::join(&collection.id, &r.href);
            if r.props.is_collection || href::same_href(&url, &collection.id) {
                continue;
            }
            let href = href::canonical_path(&r.href);
            match (&r.props.etag, r.status) {
                (_, Some(404 | 410)) => {}
                (Some(etag), _) => listing.entries.push(ListEntry {
                    href,
                    etag: etag.clone(),
                    content: None,
                }),
                (None, _) => listing.unreadable.push(UnreadableItem {
                    reason: format!("{url}: {}", missing_etag(r)),
                    href,
                    unidentified: false,
                }),
            }
        }
        Ok(listing)
    }

    /// The items of a collection: one PROPFIND, or a calendar-query per component type for a
    /// storage restricted to some.
    fn listing(&self, collection: &CollectionInfo) -> Result<ItemListing, StorageError> {
        let requests: Vec<DavRequest> =
            if self.kind == DavKind::CalDav && !self.item_types.is_empty() {
                self.item_types
                    .iter()
                    .map(|component| {
                        DavRequest::new("REPORT", &collection.id)
                            .header("Depth", "1")
                            .xml(xml::calendar_query_etags(component))
                    })
                    .collect()
            } else {
                vec![self.propfind(&collection.id, "1", xml::propfind_etags())]
            };
        let mut listing = ItemListing::default();
        for request in &requests {
            let part = self.entries(collection, request, &self.multistatus(request)?)?;
            listing.entries.extend(part.entries);
            listing.unreadable.extend(part.unreadable);
        }
        Ok(listing)
    }

    /// [`Self::sync_collection`], asking for the items' content when `content` is set. A
    /// server that fails that larger answer (a timeout, a 5xx, a body it cut short) is asked
    /// again for ETags only, at once and not after retries (a server timing out on a large
    /// answer would do so each time); the content is then fetched by multigets in batches.
    fn sync_collection_with(
        &self,
        collection: &CollectionInfo,
        token: Option<&str>,
        content: bool,
    ) -> Result<Option<SyncReport>, StorageError> {
        if content && let Ok(report) = self.sync_collection(collection, token, Some(self.kind)) {
            return Ok(report);
        }
        self.sync_collection(collection, token, None)
    }

    /// RFC 6578 sync-collection from `token` (None: from the start), following truncated
    /// results, with the item data of `content`'s kind if given. `Ok(None)` when the server
    /// rejects the token, or truncates without moving it: such a partial answer cannot be
    /// continued, and taking it for the whole would lose the rest for good (the ctag
    /// remembered with it says "unchanged" on the next run).
    fn sync_collection(
        &self,
        collection: &CollectionInfo,
        token: Option<&str>,
        content: Option<DavKind>,
    ) -> Result<Option<SyncReport>, StorageError> {
        // The latest word per href over all continuation pages: its ETag and content if
        // given, or None for removed.
        let mut seen: HashMap<String, Word> = HashMap::new();
        let mut token = token.map(str::to_owned);
        // A server that keeps truncating without moving its token would loop forever.
        for _ in 0..1000 {
            // RFC 6578 §3.2: the sync-collection REPORT is sent with Depth 0.
            let mut request = DavRequest::new("REPORT", &collection.id)
                .header("Depth", "0")
                .xml(xml::sync_collection(token.as_deref(), content));
            if content.is_some() {
                request = request.without_retries();
            }
            let response = self.http.send(&request).map_err(http_error)?;
            if matches!(response.status, 403 | 409 | 412) && token.is_some() {
                return Ok(None);
            }
            // Anything but a 207 or an authentication failure: the server cannot do this
            // sync-collection (a token it lost, a report it breaks on). Fall back rather than
            // leave the collection blocked; with content asked for, the caller asks once more
            // without.
            if response.status >= 400 && response.status != 401 && content.is_none() {
                return Ok(None);
            }
            if response.status != 207 {
                return Err(status_error(&request, &response));
            }
            let status = parse(&request, &response)?;
            for r in status.responses {
                let own = href::same_href(&href::join(&collection.id, &r.href), &collection.id);
                if own || r.props.is_collection {
                    continue;
                }
                let word = match (&r.props.etag, r.status) {
                    (_, Some(404 | 410)) => Word::Removed,
                    // An item over the cap is fetched alone, and refused there by name.
                    (Some(etag), _) => {
                        Word::Changed(etag.clone(), r.props.data.clone().filter(|d| within_cap(d)))
                    }
                    (None, _) => Word::Unreadable(format!(
                        "{}: {}",
                        href::join(&collection.id, &r.href),
                        missing_etag(&r)
                    )),
                };
                seen.insert(href::canonical_path(&r.href), word);
            }
            let moved = status.sync_token != token;
            if status.truncated && !moved {
                return Ok(None);
            }
            token = status.sync_token.clone().or(token);
            if !status.truncated {
                let mut report = SyncReport {
                    changed: Vec::new(),
                    removed: Vec::new(),
                    unreadable: Vec::new(),
                    token,
                };
                for (href, word) in seen {
                    match word {
                        Word::Changed(etag, content) => report.changed.push(ListEntry {
                            href,
                            etag,
                            content,
                        }),
                        Word::Removed => report.removed.push(href),
                        Word::Unreadable(reason) => {
                            report.unreadable.push(UnreadableItem {
                                href,
                                reason,
                                unidentified: false,
                            });
                        }
                    }
                }
                return Ok(Some(report));
            }
        }
        Err(StorageError::Other(format!(
            "REPORT {}: the server kept truncating the sync-collection result",
            collection.id
        )))
    }

    /// One multiget; `Ok(None)` when the server failed it as a whole, `Err` when it did not
    /// answer at all.
    fn multiget(
        &self,
        collection: &CollectionInfo,
        hrefs: &[&str],
    ) -> Result<Option<FetchResults>, HttpError> {
        let request = DavRequest::new("REPORT", &collection.id)
            .header("Depth", "1")
            .xml(xml::multiget(self.kind, hrefs));
        let response = match self.http.send(&request) {
            Ok(response) => response,
            Err(e @ (HttpError::Unreachable { .. } | HttpError::TlsRefused { .. })) => {
                return Err(e);
            }
            Err(_) => return Ok(None),
        };
        if response.status != 207 {
            return Ok(None);
        }
        let Ok(status) = xml::parse_multistatus(&response.body) else {
            return Ok(None);
        };
        // Keyed once: matching each wanted href by a scan made large batches quadratic.
        let by_path: HashMap<href::PathKey, &xml::Response> = status
            .responses
            .iter()
            .map(|r| (href::path_key(&r.href), r))
            .collect();
        let results = hrefs
            .iter()
            .map(|&wanted| {
                let found = by_path.get(&href::path_key(wanted));
                let result = match found {
                    Some(r) => match (r.status, &r.props.data, &r.props.etag) {
                        // Only a 404 or 410 says the item is gone.
                        (Some(404 | 410), _, _) => Err(ItemError::NotFound {
                            href: wanted.to_owned(),
                        }),
                        (_, Some(data), Some(etag)) => Ok(Fetched {
                            bytes: data.clone(),
                            etag: etag.clone(),
                        }),
                        // A failed propstat, or data or ETag left out: there, yet unreadable.
                        _ => Err(ItemError::Transport {
                            href: wanted.to_owned(),
                            reason: self.unreadable_in_multiget(r),
                        }),
                    },
                    // Omitted: gone since listing, or a server that leaves items out. Taking
                    // it as gone would delete a known item on the other side, and a new one
                    // would never be fetched once the sync token moved on: ask for it alone.
                    None => self.get_one(collection, wanted),
                };
                (wanted.to_owned(), result)
            })
            .collect();
        Ok(Some(results))
    }

    /// Why a multiget response that is not a 404 gives no usable item.
    fn unreadable_in_multiget(&self, r: &xml::Response) -> String {
        let data = match self.kind {
            DavKind::CalDav => "calendar-data",
            DavKind::CardDav => "address-data",
        };
        match (r.failed_propstat, r.status) {
            (Some(status), _) | (None, Some(status)) => {
                format!("the multiget answered HTTP {status} for it")
            }
            (None, None) if r.props.etag.is_none() => "the multiget answer has no ETag".into(),
            (None, None) => format!("the multiget answer has no {data}"),
        }
    }

    fn get_one(&self, collection: &CollectionInfo, href: &str) -> Result<Fetched, ItemError> {
        let request = DavRequest::new("GET", href::join(&collection.id, href));
        let response = self.http.send(&request).map_err(|e| ItemError::Transport {
            href: href.to_owned(),
            reason: e.to_string(),
        })?;
        match response.status {
            200 => Ok(Fetched {
                etag: response.header("etag").unwrap_or_default().to_owned(),
                bytes: response.body,
            }),
            404 | 410 => Err(ItemError::NotFound {
                href: href.to_owned(),
            }),
            status => Err(refused(href, status, &response.body)),
        }
    }

    /// Fetches a batch: one multiget, or after a whole-batch failure smaller ones, then GETs.
    fn fetch_batch(
        &self,
        collection: &CollectionInfo,
        hrefs: &[&str],
    ) -> Vec<(String, Result<Fetched, ItemError>)> {
        match self.multiget(collection, hrefs) {
            Ok(Some(results)) => return results,
            Ok(None) => {}
            // No answer at all: smaller requests would get none either, each after retries.
            Err(e) => {
                return hrefs
                    .iter()
                    .map(|&h| {
                        let error = ItemError::Transport {
                            href: h.to_owned(),
                            reason: e.to_string(),
                        };
                        (h.to_owned(), Err(error))
                    })
                    .collect();
            }
        }
        if hrefs.len() > SMALL_BATCH {
            return hrefs
                .chunks(SMALL_BATCH)
                .flat_map(|chunk| self.fetch_batch(collection, chunk))
                .collect();
        }
        hrefs
            .iter()
            .map(|&h| (h.to_owned(), self.get_one(collection, h)))
            .collect()
    }

    /// The ETag to record after a write. An answer without one is followed by a GET: when
    /// what the server holds is what was sent, its ETag; otherwise (another client wrote in
    /// between, or the GET failed) no tag at all, so the next run lists a different one,
    /// fetches the item and compares.
    fn etag_after_write(&self, url: &str, response: &DavResponse, bytes: &[u8]) -> String {
        if let Some(etag) = response.header("etag") {
            return etag.to_owned();
        }
        match self.held_at(url, bytes) {
            Held::Ours(etag) => etag,
            Held::OtherUid | Held::Uncertain => String::new(),
        }
    }

    /// What the server holds at `url`, compared with `bytes`: after a write answered without
    /// an ETag, or a create refused with 412 (the name is taken, or a retried PUT of ours
    /// already went through).
    fn held_at(&self, url: &str, bytes: &[u8]) -> Held {
        let request = DavRequest::new("GET", url);
        let Ok(response) = self.http.send(&request) else {
            return Held::Uncertain;
        };
        if response.status != 200 {
            return Held::Uncertain;
        }
        let etag = response.header("etag").unwrap_or_default().to_owned();
        let (Ok(ours), Ok(theirs)) = (Item::parse(bytes.to_vec()), Item::parse(response.body))
        else {
            return Held::Uncertain;
        };
        if ours.hash() == theirs.hash() {
            Held::Ours(etag)
        } else if ours.uid().is_some() && theirs.uid().is_some() && ours.uid() != theirs.uid() {
            Held::OtherUid
        } else {
            Held::Uncertain
        }
    }

    /// A server's refusal of a UID another item already holds (CalDAV and CardDAV
    /// `no-uid-conflict`), naming that item: as the server named it, else as a query for the
    /// UID finds it.
    fn uid_conflict(
        &self,
        collection: &CollectionInfo,
        href: &str,
        response: &DavResponse,
        bytes: &[u8],
    ) -> Option<ItemError> {
        let condition = xml::parse_error_condition(&response.body)?;
        if !condition.name.contains("uid-conflict") {
            return None;
        }
        let holder = condition
            .href
            .or_else(|| self.uid_holder(collection, bytes))
            .map_or_else(
                || "another item holds this UID".to_owned(),
                |h| format!("{} already holds this UID", href::canonical_path(&h)),
            );
        Some(ItemError::Refused {
            href: href.to_owned(),
            status: Some(response.status),
            reason: format!("{}: {holder}", condition.name),
        })
    }

    /// The href of the item in `collection` with the UID of `bytes`, if a query finds one.
    fn uid_holder(&self, collection: &CollectionInfo, bytes: &[u8]) -> Option<String> {
        let item = Item::parse(bytes.to_vec()).ok()?;
        let body = xml::query_by_uid(self.kind, item.component().unwrap_or("VEVENT"), item.uid()?);
        let request = DavRequest::new("REPORT", &collection.id)
            .header("Depth", "1")
            .xml(body);
        let status = self.multistatus(&request).ok()?;
        status
            .responses
            .into_iter()
            .find(|r| r.props.etag.is_some())
            .map(|r| r.href)
    }

    /// A create on a server that refuses `If-None-Match: *` (Google): PUT without a condition
    /// only when a GET of `url` finds nothing there. `None` when something is there: the
    /// caller takes it as the 412 a conditional PUT would have had, and looks at what it is
    /// (ours from a lost answer, another UID, or doubt).
    ///
    /// The race this leaves: another client creating the same href between the GET and the
    /// PUT is overwritten. Hrefs davsync creates are named after the item's UID, so that
    /// client wrote an item with the same UID, most likely the same event, in the same fraction
    /// of a second; its version is replaced by ours, as Google itself resolves two writers of
    /// one event (last write wins), and the next run lists the result like any other edit.
    /// Nothing is duplicated and nothing deleted.
    fn create_unconditionally(
        &self,
        url: &str,
        bytes: &[u8],
    ) -> Result<Option<DavResponse>, ItemError> {
        let check = DavRequest::new("GET", url);
        let found = self.http.send(&check).map_err(|e| ItemError::Transport {
            href: url.to_owned(),
            reason: e.to_string(),
        })?;
        match found.status {
            404 | 410 => self.put(url, None, bytes).map(Some),
            200..=299 => Ok(None),
            status => Err(refused(url, status, &found.body)),
        }
    }

    fn put(
        &self,
        url: &str,
        condition: Option<(&'static str, String)>,
        bytes: &[u8],
    ) -> Result<DavResponse, ItemError> {
        let mut request = DavRequest::new("PUT", url).header("Content-Type", self.content_type());
        if let Some((name, value)) = condition {
            request = request.header(name, value);
        }
        request.body = bytes.to_vec();
        self.http.send(&request).map_err(|e| ItemError::Transport {
            href: url.to_owned(),
            reason: e.to_string(),
        })
    }
}

/// What a GET shows at an href, compared with the item davsync meant to write there.
enum Held {
    /// The same item (by normalized hash), with the ETag the GET gave.
    Ours(String),
    /// An item with another UID: the name is taken by something else.
    OtherUid,
    /// The GET failed, or the item has our UID but other content (perhaps re-serialized by
    /// the server, perhaps edited by another client): the next run decides.
    Uncertain,
}

/// The answer a conditional create would have had where the name is taken.
fn precondition_failed(url: &str) -> DavResponse {
    DavResponse {
        status: 412,
        headers: reqwest::header::HeaderMap::new(),
        body: Vec::new(),
        url: url.to_owned(),
    }
}

/// Whether every type in `wanted` (empty for all) is one of `limit`'s, case aside: then a
/// storage holding only `limit`'s types has nothing to filter out.
fn limit_within(limit: &[&str], wanted: &[String]) -> bool {
    wanted.is_empty()
        || limit
            .iter()
            .all(|t| wanted.iter().any(|w| w.eq_ignore_ascii_case(t)))
}

/// What fetching some hrefs gave, per href.
type FetchResults = Vec<(String, Result<Fetched, ItemError>)>;

/// Whether an item's content is within [`super::MAX_ITEM_SIZE`].
fn within_cap(bytes: &[u8]) -> bool {
    bytes.len() <= super::MAX_ITEM_SIZE
}

/// A fetched item, or an error naming it when it is over [`super::MAX_ITEM_SIZE`]: such an
/// item is unreadable (left alone on both sides), never taken in.
fn capped(href: &str, item: Fetched) -> Result<Fetched, ItemError> {
    if within_cap(&item.bytes) {
        return Ok(item);
    }
    Err(ItemError::Transport {
        href: href.to_owned(),
        reason: format!(
            "the item is larger than {} MiB, the limit for one item",
            super::MAX_ITEM_SIZE >> 20
        ),
    })
}

/// A per-item refusal with the server's reason: the `DAV:error` precondition it names, else
/// the first line of its answer.
fn refused(href: &str, status: u16, body: &[u8]) -> ItemError {
    let reason = match xml::parse_error_condition(body) {
        Some(condition) => condition.name,
        None => {
            let text = String::from_utf8_lossy(body);
            let first_line = text.lines().map(str::trim).find(|l| !l.is_empty());
            first_line.unwrap_or("").chars().take(200).collect()
        }
    };
    ItemError::Refused {
        href: href.to_owned(),
        status: Some(status),
        reason,
    }
}

/// Why a listed member is unreadable: no ETag, and perhaps the status the server gave it.
fn missing_etag(r: &xml::Response) -> String {
    match r.status.or(r.failed_propstat) {
        Some(status) => format!("listed with HTTP {status} and no ETag"),
        None => "listed without an ETag".into(),
    }
}

/// The multistatus, unless it says the requested resource itself does not exist (Xandikos
/// answers a PROPFIND on a missing path with 207 and a 404 response for that path).
fn found(request: &DavRequest, status: Multistatus) -> Result<Multistatus, StorageError> {
    let missing = status.responses.iter().any(|r| {
        matches!(r.status, Some(404 | 410))
            && href::same_href(&href::join(&request.url, &r.href), &request.url)
    });
    if missing {
        return Err(StorageError::Other(format!(
            "{} {}: HTTP 404 (not found: check the URL)",
            request.method, request.url
        )));
    }
    Ok(status)
}

fn with_slash(url: &str) -> String {
    if url.ends_with('/') {
        url.to_owned()
    } else {
        format!("{url}/")
    }
}

impl Storage for DavStorage {
    fn list_collections(&self) -> Result<Vec<CollectionInfo>, StorageError> {
        let home = self.home()?;
        let request = self
            .propfind(&home, "1", xml::propfind_collections())
            .shareable();
        let status = match self
            .multistatus(&request)
            .and_then(|status| found(&request, status))
        {
            Ok(status) => status,
            Err(e) => {
                // A remembered home set may have moved: forget it and discover once more.
                let hinted = self.lock_home().take().is_some();
                if !hinted {
                    return Err(e);
                }
                tracing::trace!("{home}: the remembered home set failed ({e}): discovering again");
                let home = self.home()?;
                let request = self
                    .propfind(&home, "1", xml::propfind_collections())
                    .shareable();
                found(&request, self.multistatus(&request)?)?
            }
        };
        let home = self.home()?;
        let mut collections = Vec::new();
        for r in &status.responses {
            if !self.is_own_kind(&r.props) {
                continue;
            }
            let id = with_slash(&href::join(&home, &r.href));
            tracing::trace!(
                "{home}: collection {id} (ctag {}, sync-collection {})",
                r.props.ctag.as_deref().unwrap_or("none"),
                if r.props.supports_sync_collection {
                    "offered"
                } else {
                    "not offered"
                }
            );
            self.remember(&id, &r.props);
            collections.push(CollectionInfo {
                name: self.dialect.collection_name(&r.href),
                id,
            });
        }
        collections.sort_by(|x, y| x.name.cmp(&y.name));
        Ok(collections)
    }

    fn root_collection(&self) -> CollectionInfo {
        CollectionInfo {
            name: String::new(),
            id: self.url.clone(),
        }
    }

    fn create_collection(&self, name: &str) -> Result<CollectionInfo, StorageError> {
        if self.dialect == Dialect::Google {
            // Google answers MKCALENDAR and MKCOL with 403 whatever the account may do.
            let how = match self.kind {
                // A calendar made in the web interface gets an id of Google's choosing
                // (`...@group.calendar.google.com`), and the id is its name here: making one
                // called `name` does not make it match.
                DavKind::CalDav => format!(
                    "Google cannot create calendars over CalDAV; create a calendar for {name:?} \
                     in Google Calendar's web interface (calendar.google.com, \"Other \
                     calendars\" > \"+\" > \"Create new calendar\"), then pair this collection \
                     with its calendar id in the pair's collections (`davsync discover` lists \
                     the ids), e.g. {{ name = {name:?}, a = {name:?}, b = \"<calendar id>\" }} \
                     where Google is b"
                ),
                DavKind::CardDav => "Google Contacts has one address book per account and \
                                     cannot create another over CardDAV; pair this collection \
                                     with it (collections in the pair)"
                    .to_owned(),
            };
            return Err(StorageError::CannotCreate {
                name: name.to_owned(),
                how,
            });
        }
        let home = self.home()?;
        let id = format!("{home}{}/", href::encode_segment(name));
        let components: Vec<&str> = self.item_types.iter().map(String::as_str).collect();
        let mut attempts = Vec::new();
        if self.kind == DavKind::CalDav {
            attempts.push(
                DavRequest::new("MKCALENDAR", &id).xml(xml::mkcalendar(Some(name), &components)),
            );
        }
        attempts
            .push(DavRequest::new("MKCOL", &id).xml(xml::mkcol_extended(self.kind, Some(name))));
        let mut last = None;
        for request in &attempts {
            let response = self.http.send(request).map_err(http_error)?;
            if response.is_success() {
                return Ok(CollectionInfo {
                    name: name.to_owned(),
                    id,
                });
            }
            last = Some(status_error(request, &response));
        }
        Err(last.unwrap_or_else(|| StorageError::Other(format!("{id}: cannot create"))))
    }

    fn list(&self, collection: &CollectionInfo) -> Result<Vec<ListEntry>, StorageError> {
        let listing = self.listing(collection)?;
        // This form has no room for unreadable members: refuse rather than leave them out.
        if let Some(unreadable) = listing.unreadable.first() {
            return Err(StorageError::Other(unreadable.reason.clone()));
        }
        Ok(listing.entries)
    }

    fn list_changes(
        &self,
        collection: &CollectionInfo,
        since: Option<&str>,
        fetch_all: bool,
    ) -> Result<ChangeSet, StorageError> {
        let mut state = self.state(collection)?;
        if !state.unused {
            self.lock_states().remove(&collection.id);
            state = self.state(collection)?;
        }
        if let Some(cached) = self.lock_states().get_mut(&collection.id) {
            cached.unused = false;
        }
        let since = since.map(Remembered::parse).unwrap_or_default();
        let id = &collection.id;
        if let (Some(now), Some(then)) = (&state.ctag, &since.ctag)
            && now == then
        {
            tracing::trace!("{id}: listing: none, the ctag did not move since the last run");
            return Ok(ChangeSet {
                changes: Changes::Unchanged,
                state: Some(since.to_string()),
                unreadable: Vec::new(),
            });
        }
        let remember = |token: Option<String>| {
            Some(
                Remembered {
                    ctag: state.ctag.clone(),
                    token,
                }
                .to_string(),
            )
        };
        // sync-collection cannot filter by component type; a restricted storage lists with
        // calendar-query instead.
        if state.supports_sync && self.item_types.is_empty() {
            // What changed since a token from a clean run is new to the caller (a side it
            // wrote to keeps no token), so it will fetch all of it: ask for the content.
            if let Some(token) = &since.token
                && let Some(report) = self.sync_collection_with(collection, Some(token), true)?
            {
                tracing::trace!(
                    "{id}: listing: sync-collection from the last run's token ({} changed, {} removed)",
                    report.changed.len(),
                    report.removed.len()
                );
                return Ok(ChangeSet {
                    changes: Changes::Delta {
                        changed: report.changed,
                        removed: report.removed,
                    },
                    state: remember(report.token),
                    unreadable: report.unreadable,
                });
            }
            if let Some(report) = self.sync_collection_with(collection, None, fetch_all)? {
                tracing::trace!(
                    "{id}: listing: sync-collection from the start{} ({} items)",
                    if since.token.is_some() {
                        ", the last run's token refused"
                    } else {
                        ""
                    },
                    report.changed.len()
                );
                return Ok(ChangeSet {
                    changes: Changes::Full(report.changed),
                    state: remember(report.token),
                    unreadable: report.unreadable,
                });
            }
        }
        let listing = self.listing(collection)?;
        tracing::trace!(
            "{id}: listing: full ({}; {} items)",
            match (state.supports_sync, self.item_types.is_empty()) {
                (false, _) => "the server offers no sync-collection",
                (true, false) => "sync-collection cannot filter by item_types",
                (true, true) => "sync-collection failed",
            },
            listing.entries.len()
        );
        Ok(ChangeSet {
            changes: Changes::Full(listing.entries),
            state: remember(None),
            unreadable: listing.unreadable,
        })
    }

    fn listing_plan(
        &self,
        collection: &CollectionInfo,
    ) -> Result<Option<ListingPlan>, StorageError> {
        let state = self.state(collection)?;
        let (method, why) = match (state.supports_sync, self.item_types.is_empty(), &state.ctag) {
            (true, true, _) => (
                ListingMethod::SyncCollection,
                "the server lists sync-collection in supported-report-set".to_owned(),
            ),
            (true, false, Some(_)) => (
                ListingMethod::Ctag,
                "sync-collection cannot filter by item_types; a calendar-query lists the \
                 collection when its ctag moved"
                    .to_owned(),
            ),
            (true, false, None) => (
                ListingMethod::Full,
                "sync-collection cannot filter by item_types and the server gives no ctag"
                    .to_owned(),
            ),
            (false, _, Some(_)) => (
                ListingMethod::Ctag,
                "no sync-collection in supported-report-set; the collection is listed when its \
                 ctag (getctag) moved"
                    .to_owned(),
            ),
            (false, _, None) => (
                ListingMethod::Full,
                "neither sync-collection nor a ctag (getctag) offered by the server".to_owned(),
            ),
        };
        Ok(Some(ListingPlan { method, why }))
    }

    fn list_in_window(
        &self,
        collection: &CollectionInfo,
        window: Window,
        content: bool,
    ) -> Option<Vec<ListEntry>> {
        if self.kind != DavKind::CalDav || window.is_open() {
            return None;
        }
        // The server judges instances in their own time zones, davsync reads local times as
        // UTC with a day's margin: a day more on each side keeps everything davsync would
        // call in scope inside the server's answer.
        let stamp = |day: i64| {
            let date = CivilDate::from_days_since_epoch(day);
            format!("{:04}{:02}{:02}T000000Z", date.year, date.month, date.day)
        };
        let start = window.start.map(|day| stamp(day - 1));
        let end = window.end.map(|day| stamp(day + 2));
        // One query per type the server may hold: asking a Google calendar for tasks would
        // only cost a request (or an error that gives up the window).
        let components: Vec<&str> = match (self.item_types.is_empty(), self.holds) {
            (false, _) => self.item_types.iter().map(String::as_str).collect(),
            (true, Some(holds)) => holds.to_vec(),
            (true, None) => vec!["VEVENT", "VTODO", "VJOURNAL"],
        };
        let mut entries = Vec::new();
        for component in components {
            let request = DavRequest::new("REPORT", &collection.id)
                .header("Depth", "1")
                .xml(xml::calendar_query_time_range(
                    component,
                    start.as_deref(),
                    end.as_deref(),
                    content,
                ));
            // Any doubt (an error, a cut-short answer, a member without ETag) and the caller
            // lists and fetches as if there were no window.
            let status = self.multistatus(&request).ok()?;
            if status.truncated {
                return None;
            }
            for r in status.responses {
                let url = href::join(&collection.id, &r.href);
                let gone = matches!(r.status, Some(404 | 410));
                if gone || r.props.is_collection || href::same_href(&url, &collection.id) {
                    continue;
                }
                entries.push(ListEntry {
                    href: href::canonical_path(&r.href),
                    etag: r.props.etag?,
                    content: r.props.data.filter(|d| within_cap(d)),
                });
            }
        }
        Some(entries)
    }

    fn identity(&self) -> String {
        self.identity.clone()
    }

    fn discovery_hint(&self) -> Option<String> {
        self.lock_home().clone()
    }

    fn use_discovery_hint(&self, hint: &str) {
        *self.lock_home() = Some(hint.to_owned());
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }

    fn metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
    ) -> Result<Option<String>, StorageError> {
        Ok(self.state(collection)?.property(key).clone())
    }

    fn set_metadata(
        &self,
        collection: &CollectionInfo,
        key: MetadataKey,
        value: Option<&str>,
    ) -> Result<(), StorageError> {
        let body = match value {
            Some(value) => xml::proppatch(self.kind, &[(key, value)], &[]),
            None => xml::proppatch(self.kind, &[], &[key]),
        };
        let request = DavRequest::new("PROPPATCH", &collection.id).xml(body);
        let status = self.multistatus(&request)?;
        let refused = status.responses.iter().any(|r| !r.missing.is_empty());
        if refused {
            return Err(StorageError::Other(format!(
                "PROPPATCH {}: the server refused to set {}",
                collection.id,
                key.file_name()
            )));
        }
        if let Some(state) = self.lock_states().get_mut(&collection.id) {
            *state.property(key) = value.map(str::to_owned);
        }
        Ok(())
    }

    fn get_many(
        &self,
        collection: &CollectionInfo,
        hrefs: &[&str],
    ) -> Vec<(String, Result<Fetched, ItemError>)> {
        let batches: Vec<&[&str]> = hrefs.chunks(self.batch_size).collect();
        let next = Mutex::new(batches.into_iter().enumerate());
        let results = Mutex::new(Vec::new());
        thread::scope(|scope| {
            for _ in 0..self.concurrency {
                scope.spawn(|| {
                    loop {
                        let batch = next.lock().map(|mut it| it.next()).unwrap_or(None);
                        let Some((index, batch)) = batch else { break };
                        let fetched = self.fetch_batch(collection, batch);
                        if let Ok(mut all) = results.lock() {
                            all.push((index, fetched));
                        }
                    }
                });
            }
        });
        let mut batches = results.into_inner().unwrap_or_default();
        batches.sort_by_key(|(index, _)| *index);
        batches
            .into_iter()
            .flat_map(|(_, fetched)| fetched)
            .map(|(href, result)| {
                let result = result.and_then(|item| capped(&href, item));
                (href, result)
            })
            .collect()
    }

    fn create(
        &self,
        collection: &CollectionInfo,
        name_hint: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        for attempt in 0..CREATE_ATTEMPTS {
            let hint = match attempt {
                0 => name_hint.to_owned(),
                n => format!("{name_hint}\0{n}"),
            };
            let name = item_file_name(&hint, self.extension());
            let url = format!("{}{}", collection.id, href::encode_segment(&name));
            let response = match self.dialect {
                Dialect::Standard => self.put(&url, Some(("If-None-Match", "*".into())), bytes)?,
                Dialect::Google => match self.create_unconditionally(&url, bytes)? {
                    Some(response) => response,
                    None => precondition_failed(&url),
                },
            };
            // Another name will not help when the server refuses the UID itself.
            if let Some(conflict) = self.uid_conflict(collection, &url, &response, bytes) {
                return Err(conflict);
            }
            let written = |etag| Written {
                href: href::canonical_path(&url),
                etag,
            };
            match response.status {
                200..=299 => return Ok(written(self.etag_after_write(&url, &response, bytes))),
                // Either the name is taken, or a retried PUT of ours already went through.
                // Only an item with another UID there makes another name safe: anything
                // else could be ours (re-serialized by the server) and would be duplicated.
                412 => match self.held_at(&url, bytes) {
                    Held::Ours(etag) => return Ok(written(etag)),
                    Held::OtherUid => {}
                    Held::Uncertain => {
                        return Err(ItemError::Changed {
                            href: href::canonical_path(&url),
                        });
                    }
                },
                status => return Err(refused(&url, status, &response.body)),
            }
        }
        Err(ItemError::Refused {
            href: name_hint.to_owned(),
            status: None,
            reason: "no free name for the item".into(),
        })
    }

    fn update(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
        bytes: &[u8],
    ) -> Result<Written, ItemError> {
        let url = href::join(&collection.id, href);
        let response = self.put(&url, Some(("If-Match", expected_etag.to_owned())), bytes)?;
        if let Some(conflict) = self.uid_conflict(collection, href, &response, bytes) {
            return Err(conflict);
        }
        match response.status {
            200..=299 => Ok(Written {
                href: href.to_owned(),
                etag: self.etag_after_write(&url, &response, bytes),
            }),
            412 => match self.held_at(&url, bytes) {
                Held::Ours(etag) => Ok(Written {
                    href: href.to_owned(),
                    etag,
                }),
                Held::OtherUid | Held::Uncertain => Err(ItemError::Changed {
                    href: href.to_owned(),
                }),
            },
            404 | 410 => Err(ItemError::Changed {
                href: href.to_owned(),
            }),
            status => Err(refused(href, status, &response.body)),
        }
    }

    fn delete(
        &self,
        collection: &CollectionInfo,
        href: &str,
        expected_etag: &str,
    ) -> Result<(), ItemError> {
        let url = href::join(&collection.id, href);
        let request = DavRequest::new("DELETE", &url).header("If-Match", expected_etag);
        let response = self.http.send(&request).map_err(|e| ItemError::Transport {
            href: href.to_owned(),
            reason: e.to_string(),
        })?;
        match response.status {
            200..=299 => Ok(()),
            404 | 410 => Err(ItemError::NotFound {
                href: href.to_owned(),
            }),
            412 => Err(ItemError::Changed {
                href: href.to_owned(),
            }),
            status => Err(refused(href, status, &response.body)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Remembered;

    #[test]
    fn remembered_state_round_trips() {
        let both = Remembered {
            ctag: Some("\"ctag-1\"".into()),
            token: Some("http://radicale.org/ns/sync/abc".into()),
        };
        assert_eq!(Remembered::parse(&both.to_string()), both);
        let token_only = Remembered {
            ctag: None,
            token: Some("abc".into()),
        };
        assert_eq!(Remembered::parse(&token_only.to_string()), token_only);
        // A bare token (no newline) is a token.
        assert_eq!(Remembered::parse("abc"), token_only);
    }
}
