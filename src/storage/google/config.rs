//! The `[storage.<name>]` section of `type = "google_calendar"` and `type = "google_contacts"`.

use std::path::PathBuf;

use crate::config::{ConfigError, Secret, Section};
use crate::http::HttpOptions;
use crate::storage::dav::config::Dialect;
use crate::storage::dav::{DavConfig, DavKind};

/// Keys of a Google section besides the common storage keys, the HTTP keys in [`HTTP_KEYS`]
/// and the DAV keys (`batch_size`, `concurrency`).
pub const KEYS: &[&str] = &[
    "client_id",
    "client_secret",
    "token_file",
    "authorize_url",
    "token_url",
];

/// The HTTP options a Google storage accepts: authentication is OAuth2, so no `username`,
/// `password` nor `auth`.
pub const HTTP_KEYS: &[&str] = &[
    "url",
    "verify",
    "fingerprint",
    "client_cert",
    "timeout",
    "user_agent",
    "max_response_size",
];

/// Google's authorization endpoint.
pub const DEFAULT_AUTHORIZE_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// Google's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's CalDAV root.
pub const DEFAULT_CALENDAR_URL: &str = "https://apidata.googleusercontent.com/caldav/v2/";
/// Google's CardDAV principals.
pub const DEFAULT_CONTACTS_URL: &str = "https://www.googleapis.com/carddav/v1/principals/";
/// The scope CalDAV needs.
pub const CALENDAR_SCOPE: &str = "https://www.googleapis.com/auth/calendar";
/// The scope CardDAV needs.
pub const CONTACTS_SCOPE: &str = "https://www.googleapis.com/auth/carddav";

/// A `[storage.<name>]` table of type `google_calendar` or `google_contacts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleConfig {
    /// The storage's name, for "run davsync auth <name>" messages.
    pub name: String,
    /// The OAuth2 client id.
    pub client_id: String,
    /// The OAuth2 client secret (a literal, `{ cmd = [...] }` or `{ env = "VAR" }`).
    pub client_secret: Option<Secret>,
    /// Where the tokens are kept (default `<status_path>/<name>.token`).
    pub token_file: PathBuf,
    /// The authorization endpoint.
    pub authorize_url: String,
    /// The token endpoint.
    pub token_url: String,
    /// The DAV storage behind it (CalDAV for calendars, CardDAV for contacts).
    pub dav: DavConfig,
}

impl GoogleConfig {
    /// The OAuth2 scope this storage asks for.
    pub fn scope(&self) -> &'static str {
        match self.dav.kind {
            DavKind::CalDav => CALENDAR_SCOPE,
            DavKind::CardDav => CONTACTS_SCOPE,
        }
    }
}

/// Parses a `type = "google_calendar"`/`"google_contacts"` section (the common keys are parsed
/// by the caller).
pub fn parse_config(section: &Section<'_, '_>, kind: DavKind) -> Result<GoogleConfig, ConfigError> {
    section.check_keys(&[KEYS, HTTP_KEYS, crate::storage::dav::config::KEYS])?;
    let client_id_value = section.required("client_id")?;
    let client_id = section.string(client_id_value, "client_id")?;
    if client_id.trim().is_empty() {
        return Err(section.invalid(client_id_value, "client_id", "must not be empty"));
    }
    let client_secret = section.secret("client_secret")?;
    let token_file = match section.get("token_file") {
        Some(v) => section.path(v, "token_file")?,
        None => section
            .status_path()
            .join(format!("{}.token", section.storage_name())),
    };
    let endpoint = |name: &str, default: &str| -> Result<String, ConfigError> {
        match section.optional_string(name)? {
            None => Ok(default.to_owned()),
            Some((v, url)) => {
                crate::http::options::check_url(url)
                    .map_err(|msg| section.invalid(v, name, msg))?;
                Ok(url.to_owned())
            }
        }
    };
    let authorize_url = endpoint("authorize_url", DEFAULT_AUTHORIZE_URL)?;
    let token_url = endpoint("token_url", DEFAULT_TOKEN_URL)?;
    let default_url = match kind {
        DavKind::CalDav => DEFAULT_CALENDAR_URL,
        DavKind::CardDav => DEFAULT_CONTACTS_URL,
    };
    let http = HttpOptions::parse_with_default_url(section, default_url)?;
    // Google's CalDAV/CardDAV is the DAV storage speaking Google's dialect.
    let dav = DavConfig {
        dialect: Dialect::Google,
        ..crate::storage::dav::config::parse_rest(section, kind, http)?
    };
    Ok(GoogleConfig {
        name: section.storage_name().to_owned(),
        client_id: client_id.to_owned(),
        client_secret,
        token_file,
        authorize_url,
        token_url,
        dav,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use crate::storage::StorageKind;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn google(text: &str) -> Result<GoogleConfig, String> {
        let config = parse(
            &format!("status_path = \"/st\"\n[storage.g]\n{text}"),
            Path::new("/c/config.toml"),
            &BTreeMap::<String, String>::new(),
        )
        .map_err(|e| e.to_string())?;
        match &config.storages["g"].kind {
            StorageKind::Google(g) => Ok(g.clone()),
            other => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn defaults() {
        let g = google("type = \"google_calendar\"\nclient_id = \"x.apps\"\n").unwrap();
        assert_eq!(g.token_file, Path::new("/st/g.token"));
        assert_eq!(g.dav.http.url, DEFAULT_CALENDAR_URL);
        assert_eq!(g.authorize_url, DEFAULT_AUTHORIZE_URL);
        assert_eq!(g.token_url, DEFAULT_TOKEN_URL);
        assert_eq!(g.scope(), CALENDAR_SCOPE);
        assert_eq!(g.client_secret, None);
        let c = google(
            "type = \"google_contacts\"\nclient_id = \"x\"\nclient_secret = { env = \"S\" }\n\
             token_file = \"tok/g.json\"\ntoken_url = \"http://127.0.0.1:9/token\"\n",
        )
        .unwrap();
        assert_eq!(c.dav.http.url, DEFAULT_CONTACTS_URL);
        assert_eq!(c.dav.kind, DavKind::CardDav);
        assert_eq!(c.token_file, Path::new("/c/tok/g.json"));
        assert_eq!(c.token_url, "http://127.0.0.1:9/token");
        assert_eq!(c.client_secret, Some(Secret::Env("S".into())));
    }

    #[test]
    fn errors() {
        let e = google("type = \"google_calendar\"\n").unwrap_err();
        assert!(e.contains("client_id"), "{e}");
        let e = google("type = \"google_calendar\"\nclient_id = \"x\"\npassword = \"p\"\n")
            .unwrap_err();
        assert!(e.contains("password: unknown key"), "{e}");
        let e = google("type = \"google_calendar\"\nclient_id = \"x\"\ntoken_url = \"ftp://x\"\n")
            .unwrap_err();
        assert!(e.contains("token_url"), "{e}");
    }
}
