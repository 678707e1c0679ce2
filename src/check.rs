//! `davsync check`: what each storage looks like from here, as data. Opens a storage (secrets
//! resolved, never kept in the report), asks it only what can be read without writing
//! (discovery, listings, the listing method a collection will use) and turns each failure into
//! a [`Finding`] with the fix to try. Nothing is written: no status database, no token file
//! (a Google token that would need a refresh is reported and the storage not contacted).

use std::path::Path;
use std::time::SystemTime;

use crate::config::{Env, StorageConfig};
use crate::http::probe::{TlsSession, probe};
use crate::http::{AuthScheme, HttpOptions, TlsVerify};
use crate::model::is_weak_etag;
use crate::storage::dav::DavKind;
use crate::storage::{
    self, Changes, CollectionInfo, ListEntry, ListingPlan, Place, Shared, Storage, StorageKind,
};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Worth knowing; nothing is wrong (a vdir the first sync creates).
    Note,
    /// Something is wrong: `davsync check` exits 1.
    Problem,
}

/// One thing `check` found, with the fix to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// What was found.
    pub what: String,
    /// What to try, when there is something to try.
    pub fix: Option<String>,
}

/// What `check` learned about one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionCheck {
    /// The collection's name (empty for a storage that is one collection).
    pub name: String,
    /// Its address (path or URL).
    pub id: String,
    /// How many items it lists; `None` when the listing failed.
    pub items: Option<usize>,
    /// How many listed items cannot be read.
    pub unreadable: usize,
    /// The listing method it will use and why (DAV only).
    pub listing: Option<ListingPlan>,
}

/// The TLS side of an `https://` storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsCheck {
    /// How the certificate is checked (`verify`).
    pub verify: String,
    /// The pinned SHA-256 fingerprint, if any.
    pub pinned: Option<String>,
    /// What a TLS handshake of its own showed (protocol version, certificate subject,
    /// expiry and fingerprint), or why it failed.
    pub session: Result<TlsSession, String>,
}

/// What `check` learned about one storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageCheck {
    /// The storage's name in the config.
    pub name: String,
    /// Its type, as the config names it (`caldav`, `vdir`, ...).
    pub type_name: &'static str,
    /// Its path or URL (or token file for a Google account).
    pub location: String,
    /// Where DAV discovery ended (the home set), when it ran.
    pub home_set: Option<String>,
    /// The authentication used (scheme and user name, never the secret).
    pub auth: Option<String>,
    /// TLS details of an `https://` storage.
    pub tls: Option<TlsCheck>,
    /// The collections looked at.
    pub collections: Vec<CollectionCheck>,
    /// What went wrong or is worth knowing.
    pub findings: Vec<Finding>,
    /// How this server departs from what davsync assumes first, and what davsync does about
    /// it (weak ETags, a Google account's limits); nothing to fix.
    pub quirks: Vec<String>,
}

impl StorageCheck {
    /// Whether anything found is a [`Severity::Problem`].
    pub fn has_problems(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Problem)
    }
}

/// What the caller knows about how a storage is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// Some pair using it has a `collections` setting: look at every collection it holds,
    /// not only the storage itself as one collection.
    pub all_collections: bool,
    /// Some pair using it has synced before (its status database exists): a missing vdir is
    /// then a problem (an unmounted disk?), not something the first sync creates.
    pub synced_before: bool,
}

/// The type name of a storage kind, as `type = "..."` spells it.
pub fn type_name(kind: &StorageKind) -> &'static str {
    match kind {
        StorageKind::Vdir(_) => "vdir",
        StorageKind::Singlefile(_) => "singlefile",
        StorageKind::Webcal(_) => "webcal",
        StorageKind::Dav(dav) => match dav.kind {
            DavKind::CalDav => "caldav",
            DavKind::CardDav => "carddav",
        },
        StorageKind::Google(google) => match google.dav.kind {
            DavKind::CalDav => "google_calendar",
            DavKind::CardDav => "google_contacts",
        },
    }
}

/// Checks one storage: opens it, runs discovery, lists the collections, and reports.
pub fn check_storage(
    name: &str,
    config: &StorageConfig,
    env: &dyn Env,
    shared: &Shared,
    usage: Usage,
    now: SystemTime,
) -> StorageCheck {
    let mut report = StorageCheck {
        name: name.to_owned(),
        type_name: type_name(&config.kind),
        location: match config.kind.place() {
            Place::Path(path) | Place::Account(path) => path.display().to_string(),
            Place::Url(url) => url.to_owned(),
        },
        home_set: None,
        auth: None,
        tls: None,
        collections: Vec::new(),
        findings: Vec::new(),
        quirks: Vec::new(),
    };
    if let StorageKind::Google(google) = &config.kind {
        report.quirks.extend(google_quirks(google.dav.kind));
    }
    if let Some(http) = config.kind.http() {
        report.auth = Some(auth_text(&config.kind, http));
        report.tls = tls_check(http);
        if let Some(warning) = http.tls_warning() {
            report.findings.push(Finding {
                severity: Severity::Note,
                what: warning,
                // Over plain HTTP the message itself says what to change.
                fix: http.uses_tls().then(|| {
                    "set verify = \"ca.pem\" (the CA that signed the server's certificate) or \
                     fingerprint = \"sha256:...\" instead"
                        .to_owned()
                }),
            });
        }
    }
    if !local_place_ready(&config.kind, usage, &mut report)
        || !google_token_ready(&config.kind, name, now, &mut report)
    {
        return report;
    }
    let storage = match storage::open(config, env, shared) {
        Ok(storage) => storage,
        Err(e) => {
            report.findings.push(problem(&e.to_string(), config));
            return report;
        }
    };
    let collections = if usage.all_collections || matches!(config.kind, StorageKind::Dav(_)) {
        match storage.list_collections() {
            Ok(found) => {
                report.home_set = storage.discovery_hint();
                if usage.all_collections {
                    found
                } else {
                    vec![storage.root_collection()]
                }
            }
            Err(e) => {
                let finding = tls_problem(&e.to_string(), config, report.tls.as_ref());
                report.findings.push(finding);
                return report;
            }
        }
    } else {
        vec![storage.root_collection()]
    };
    if collections.is_empty() {
        report.findings.push(Finding {
            severity: Severity::Note,
            what: "no collections found".to_owned(),
            fix: Some("the first sync creates those of the other side (collections = \"from a\"/\"from b\"/\"all\")".to_owned()),
        });
    }
    for collection in collections {
        let checked = check_collection(storage.as_ref(), &collection, config, &mut report);
        report.collections.push(checked);
    }
    report
}

fn check_collection(
    storage: &dyn Storage,
    collection: &CollectionInfo,
    config: &StorageConfig,
    report: &mut StorageCheck,
) -> CollectionCheck {
    let mut checked = CollectionCheck {
        name: collection.name.clone(),
        id: collection.id.clone(),
        items: None,
        unreadable: 0,
        listing: None,
    };
    match storage.listing_plan(collection) {
        Ok(plan) => checked.listing = plan,
        Err(e) => report.findings.push(problem(&e.to_string(), config)),
    }
    match storage.list_changes(collection, None, false) {
        Ok(set) => {
            let entries = match &set.changes {
                Changes::Full(entries) => Some(entries.as_slice()),
                Changes::Delta { changed, .. } => Some(changed.as_slice()),
                Changes::Unchanged => None,
            };
            checked.items = entries.map(<[_]>::len);
            // A vdir's weak tags are files written in the last seconds, not a quirk.
            if config.kind.http().is_some() {
                report
                    .quirks
                    .extend(entries.and_then(|e| weak_etag_quirk(&collection.id, e)));
            }
            checked.unreadable = set.unreadable.len();
            if let Some(first) = set.unreadable.first() {
                report.findings.push(Finding {
                    severity: Severity::Problem,
                    what: format!(
                        "{} item(s) in {} cannot be read, the first: {}",
                        set.unreadable.len(),
                        collection.id,
                        first.reason
                    ),
                    fix: Some("repair or remove the item; sync skips it until then".to_owned()),
                });
            }
        }
        Err(e) => {
            let finding = tls_problem(&e.to_string(), config, report.tls.as_ref());
            report.findings.push(finding);
        }
    }
    checked
}

/// The quirk of a collection whose server tags items with weak ETags (`W/...`), if any do:
/// such a tag never proves an item unchanged, so every sync fetches those items to compare
/// their content.
fn weak_etag_quirk(collection: &str, entries: &[ListEntry]) -> Option<String> {
    let weak = entries.iter().filter(|e| is_weak_etag(&e.etag)).count();
    (weak > 0).then(|| {
        format!(
            "{weak} of {} items in {collection} have weak ETags (W/...), which never prove an \
             item unchanged: each sync fetches them to compare content",
            entries.len()
        )
    })
}

/// What a Google account does differently from a CalDAV/CardDAV server, and what davsync does
/// about it (see `storage::dav::Dialect::Google`).
fn google_quirks(kind: DavKind) -> Vec<String> {
    let mut quirks = vec![
        "Google answers If-None-Match: * with an error: a new item is checked with a GET \
         before it is written"
            .to_owned(),
    ];
    if kind == DavKind::CalDav {
        quirks.push(
            "Google calendars hold events only (VEVENT): tasks and journals stay on the other \
             side, never sent and never deleted; no calendar can be created (MKCALENDAR)"
                .to_owned(),
        );
    }
    quirks
}

/// A local storage's path: `false` (stop here) when it does not exist.
fn local_place_ready(kind: &StorageKind, usage: Usage, report: &mut StorageCheck) -> bool {
    let path: &Path = match kind {
        StorageKind::Vdir(vdir) => &vdir.path,
        StorageKind::Singlefile(file) => &file.path,
        _ => return true,
    };
    // A singlefile path with `%s` names one file per collection: its directory must exist.
    let probe = if path.to_string_lossy().contains("%s") {
        path.parent().unwrap_or(path)
    } else {
        path
    };
    match probe.try_exists() {
        Ok(true) => true,
        Ok(false) if usage.synced_before => {
            report.findings.push(Finding {
                severity: Severity::Problem,
                what: format!(
                    "{} is missing, though the pair synced before",
                    probe.display()
                ),
                fix: Some(
                    "is the disk holding it mounted? sync refuses to take it for empty".to_owned(),
                ),
            });
            false
        }
        Ok(false) => {
            report.findings.push(Finding {
                severity: Severity::Note,
                what: format!("{} does not exist yet", probe.display()),
                fix: Some("created by the first sync".to_owned()),
            });
            false
        }
        Err(e) => {
            report.findings.push(Finding {
                severity: Severity::Problem,
                what: format!("{}: {e}", probe.display()),
                fix: Some("check the path and its permissions".to_owned()),
            });
            false
        }
    }
}

/// A Google storage's token file: `false` (stop here) when it is missing or its access token
/// would have to be refreshed, which writes the file.
fn google_token_ready(
    kind: &StorageKind,
    name: &str,
    now: SystemTime,
    report: &mut StorageCheck,
) -> bool {
    let StorageKind::Google(google) = kind else {
        return true;
    };
    match crate::oauth::file::load_tokens(&google.token_file) {
        Err(e) => {
            report.findings.push(Finding {
                severity: Severity::Problem,
                what: e.to_string(),
                fix: Some(format!("run `davsync auth {name}`")),
            });
            false
        }
        Ok(tokens) if tokens.needs_refresh(now) => {
            report.findings.push(Finding {
                severity: Severity::Note,
                what: "the access token has expired; refreshing it would write the token file, \
                       so check did not contact Google"
                    .to_owned(),
                fix: Some(format!(
                    "the next `davsync sync` refreshes it; then run check again (or `davsync auth {name}`)"
                )),
            });
            false
        }
        Ok(_) => true,
    }
}

fn auth_text(kind: &StorageKind, http: &HttpOptions) -> String {
    let mut text = if let StorageKind::Google(google) = kind {
        format!("oauth (token file {})", google.token_file.display())
    } else {
        match (http.auth, &http.username, &http.password) {
            (AuthScheme::Bearer, _, Some(_)) => "bearer (token from password)".to_owned(),
            (AuthScheme::Basic, Some(user), _) => format!("basic as {user}"),
            (AuthScheme::Digest, Some(user), _) => format!("digest as {user}"),
            (_, None, _) => "none".to_owned(),
            (AuthScheme::Bearer, Some(user), None) => format!("bearer as {user}, no token"),
        }
    };
    if let Some(cert) = &http.client_cert {
        text.push_str(&format!(", client certificate {}", cert.display()));
    }
    text
}

fn tls_check(http: &HttpOptions) -> Option<TlsCheck> {
    if !http.uses_tls() {
        return None;
    }
    Some(TlsCheck {
        verify: match &http.verify {
            TlsVerify::System => "the system's trusted roots".to_owned(),
            TlsVerify::CaFile(path) => format!("CA file {}", path.display()),
            TlsVerify::Off => "not checked (verify = false)".to_owned(),
        },
        pinned: http.fingerprint.as_ref().map(|f| format!("sha256:{f}")),
        session: probe(&http.url, http.timeout),
    })
}

/// A failure as a problem, with the fix its message points to.
fn problem(message: &str, config: &StorageConfig) -> Finding {
    Finding {
        severity: Severity::Problem,
        what: message.to_owned(),
        fix: fix_for(message, config),
    }
}

/// A problem found after the TLS handshake: a certificate fix names the fingerprint the
/// handshake saw.
fn tls_problem(message: &str, config: &StorageConfig, tls: Option<&TlsCheck>) -> Finding {
    let mut finding = problem(message, config);
    if let (Some(fix), Some(Ok(session))) = (&mut finding.fix, tls.map(|t| &t.session))
        && fix.starts_with("set verify")
    {
        fix.push_str(&format!(
            "; the server showed sha256:{} (pin it only if that is your server's certificate)",
            session.fingerprint
        ));
    }
    finding
}

/// The fix to try for a failure, recognized by its message (the HTTP layer keeps the causes'
/// texts, not their types).
pub fn fix_for(message: &str, config: &StorageConfig) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let url = config.kind.http().map_or("", |h| h.url.as_str());
    let fix = if lower.contains("http 401") || lower.contains("authorize again") {
        if matches!(config.kind, StorageKind::Google(_)) {
            "run `davsync auth` for this storage".to_owned()
        } else {
            "check username/password (and auth = \"basic\"/\"digest\"/\"bearer\")".to_owned()
        }
    } else if lower.contains("http 403") {
        "check the account's permissions and the url".to_owned()
    } else if lower.contains("http 404") {
        "check the url".to_owned()
    } else if lower.contains("connection refused") {
        format!("is the server running at {url}?")
    } else if lower.contains("not the pinned one") {
        "the server's certificate is not the pinned one: check fingerprint (did the certificate \
         change?)"
            .to_owned()
    } else if lower.contains("certificate") || lower.contains("unknownissuer") {
        "set verify = \"ca.pem\" (the CA that signed the server's certificate) or \
         fingerprint = \"sha256:...\" to pin it"
            .to_owned()
    } else if lower.contains("could not resolve")
        || lower.contains("dns")
        || lower.contains("lookup")
    {
        "check the host name in url".to_owned()
    } else if lower.contains("timed out") || lower.contains("timeout") {
        "is the server reachable? a slow one needs a larger timeout".to_owned()
    } else if lower.contains("plain http") {
        "the port may speak plain HTTP: try http:// in url".to_owned()
    } else if lower.contains("password") && lower.contains("command") {
        "check the password command".to_owned()
    } else {
        return None;
    };
    Some(fix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(href: &str, etag: &str) -> ListEntry {
        ListEntry {
            href: href.to_owned(),
            etag: etag.to_owned(),
            content: None,
        }
    }

    #[test]
    fn weak_etags_are_a_quirk_counted_per_collection() {
        let entries = [entry("a.ics", "W/\"1\""), entry("b.ics", "\"2\"")];
        assert_eq!(
            weak_etag_quirk("https://dav.example/cal/", &entries).as_deref(),
            Some(
                "1 of 2 items in https://dav.example/cal/ have weak ETags (W/...), which never \
                 prove an item unchanged: each sync fetches them to compare content"
            )
        );
        assert_eq!(weak_etag_quirk("c", &entries[1..]), None);
        assert_eq!(weak_etag_quirk("c", &[]), None);
    }

    #[test]
    fn a_google_calendar_has_more_quirks_than_google_contacts() {
        let calendar = google_quirks(DavKind::CalDav);
        let contacts = google_quirks(DavKind::CardDav);
        assert_eq!(calendar.len(), 2);
        assert_eq!(contacts.len(), 1);
        assert!(calendar[1].contains("events only"), "{calendar:?}");
        assert!(contacts[0].contains("If-None-Match"), "{contacts:?}");
    }
}
