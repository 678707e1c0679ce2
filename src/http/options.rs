//! The connection options every network storage type carries (CalDAV, CardDAV, webcal):
//! where to connect, how to authenticate, how to check TLS, limits.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{ConfigError, Secret, Section};

/// HTTP authentication scheme of a network storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AuthScheme {
    /// HTTP Basic (the default when a username is given).
    #[default]
    Basic,
    /// HTTP Digest.
    Digest,
    /// `Authorization: Bearer <token>`; the token comes from `password`.
    Bearer,
}

/// How the server's TLS certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum TlsVerify {
    /// `verify = true` or absent: the system's trusted roots.
    #[default]
    System,
    /// `verify = false`: no check at all (warned about on every run).
    Off,
    /// `verify = "path/ca.pem"`: this CA bundle (PEM) instead of the system roots.
    CaFile(PathBuf),
}

/// The HTTP keys of a network storage section; [`crate::http::Clients`] builds a client from
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// The address (`http://` or `https://`).
    pub url: String,
    /// User name for authentication.
    pub username: Option<String>,
    /// Password (or bearer token).
    pub password: Option<Secret>,
    /// Authentication scheme.
    pub auth: AuthScheme,
    /// TLS certificate checking.
    pub verify: TlsVerify,
    /// `fingerprint = "sha256:AB:CD:..."`: pin the server certificate's SHA-256 fingerprint
    /// (lower-case hex without separators here).
    pub fingerprint: Option<String>,
    /// Client certificate and key (one PEM file).
    pub client_cert: Option<PathBuf>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// `User-Agent` header; default `davsync/<version>`.
    pub user_agent: Option<String>,
    /// Largest response body accepted, in bytes, after decompression (default 256 MiB).
    pub max_response_size: u64,
}

/// The keys of [`HttpOptions`] in a storage section.
pub const KEYS: &[&str] = &[
    "url",
    "username",
    "password",
    "auth",
    "verify",
    "fingerprint",
    "client_cert",
    "timeout",
    "user_agent",
    "max_response_size",
];

/// Default of `timeout`, in seconds.
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Default of `max_response_size`, in MiB.
const DEFAULT_MAX_RESPONSE_MIB: u64 = 256;

impl HttpOptions {
    /// Parses the HTTP keys of a network storage's section (the caller checks for unknown
    /// keys, with [`KEYS`] among the allowed ones).
    pub fn parse(section: &Section<'_, '_>) -> Result<HttpOptions, ConfigError> {
        HttpOptions::parse_with_url(section, str::to_owned)
    }

    /// [`HttpOptions::parse`], with `url` first rewritten by `url_of` (a webcal feed's
    /// `webcal://` is `https://`); the result must be an `http://` or `https://` URL.
    pub fn parse_with_url(
        section: &Section<'_, '_>,
        url_of: fn(&str) -> String,
    ) -> Result<HttpOptions, ConfigError> {
        let url_value = section.required("url")?;
        let url = url_of(section.string(url_value, "url")?);
        check_url(&url).map_err(|msg| section.invalid(url_value, "url", msg))?;
        HttpOptions::parse_rest(section, url)
    }

    /// [`HttpOptions::parse`] for a storage type whose `url` may be left out (a cloud
    /// account's well-known address): `default_url` then.
    pub fn parse_with_default_url(
        section: &Section<'_, '_>,
        default_url: &str,
    ) -> Result<HttpOptions, ConfigError> {
        match section.get("url") {
            Some(_) => HttpOptions::parse(section),
            None => HttpOptions::parse_rest(section, default_url.to_owned()),
        }
    }

    /// The keys besides `url`.
    fn parse_rest(section: &Section<'_, '_>, url: String) -> Result<HttpOptions, ConfigError> {
        let username = match section.optional_string("username")? {
            None => None,
            Some((v, "")) => {
                return Err(section.invalid(
                    v,
                    "username",
                    "must not be empty (omit \"username\" for no authentication)",
                ));
            }
            Some((_, name)) => Some(name.to_string()),
        };
        let password = section.secret("password")?;
        let auth = match section.optional_string("auth")? {
            None | Some((_, "basic")) => AuthScheme::Basic,
            Some((_, "digest")) => AuthScheme::Digest,
            Some((_, "bearer")) => AuthScheme::Bearer,
            Some((v, other)) => {
                return Err(section.invalid(
                    v,
                    "auth",
                    format!(
                        "unknown value {other:?} (expected \"basic\", \"digest\" or \"bearer\")"
                    ),
                ));
            }
        };
        match (auth, section.get("auth"), section.get("password")) {
            (AuthScheme::Bearer, Some(auth_value), None) => {
                return Err(section.invalid(
                    auth_value,
                    "auth",
                    "auth = \"bearer\" needs the token in \"password\"",
                ));
            }
            (AuthScheme::Basic | AuthScheme::Digest, _, Some(password_value))
                if username.is_none() =>
            {
                return Err(section.invalid(
                    password_value,
                    "password",
                    "a password needs a \"username\" (for a bearer token, set auth = \"bearer\")",
                ));
            }
            _ => {}
        }

        let verify = match section.get("verify") {
            None => TlsVerify::System,
            Some(v) => match v.get_ref() {
                toml::de::DeValue::Boolean(true) => TlsVerify::System,
                toml::de::DeValue::Boolean(false) => TlsVerify::Off,
                toml::de::DeValue::String(_) => TlsVerify::CaFile(section.path(v, "verify")?),
                _ => {
                    return Err(section.wrong_type(
                        v,
                        "verify",
                        "true, false or the path of a CA file",
                    ));
                }
            },
        };
        let fingerprint = match section.optional_string("fingerprint")? {
            None => None,
            Some((v, raw)) => Some(parse_fingerprint(raw).ok_or_else(|| {
                section.invalid(
                    v,
                    "fingerprint",
                    format!(
                        "invalid fingerprint {raw:?}: expected \"sha256:\" and 32 bytes in hex \
                         (64 hex digits, optionally as colon-separated pairs)"
                    ),
                )
            })?),
        };
        let client_cert = section
            .get("client_cert")
            .map(|v| section.path(v, "client_cert"))
            .transpose()?;
        let timeout = section
            .integer_in("timeout", 1, u64::MAX.into())?
            .map_or(Duration::from_secs(DEFAULT_TIMEOUT_SECS), |secs| {
                Duration::from_secs(u64::try_from(secs).unwrap_or(u64::MAX))
            });
        let user_agent = match section.optional_string("user_agent")? {
            None => None,
            Some((v, agent)) => {
                if agent.is_empty() || agent.chars().any(char::is_control) {
                    return Err(section.invalid(
                        v,
                        "user_agent",
                        "must be non-empty and contain no control characters",
                    ));
                }
                Some(agent.to_string())
            }
        };
        let max_response_size = section
            .integer_in("max_response_size", 1, 1 << 20)?
            .map_or(DEFAULT_MAX_RESPONSE_MIB, |mib| {
                u64::try_from(mib).unwrap_or(DEFAULT_MAX_RESPONSE_MIB)
            })
            << 20;
        Ok(HttpOptions {
            url,
            username,
            password,
            auth,
            verify,
            fingerprint,
            client_cert,
            timeout,
            user_agent,
            max_response_size,
        })
    }
}

impl HttpOptions {
    /// Whether the `url` is `https://`: the TLS keys only matter then.
    pub fn uses_tls(&self) -> bool {
        self.url
            .get(..8)
            .is_some_and(|head| head.eq_ignore_ascii_case("https://"))
    }

    /// The warning the TLS keys call for, printed on every run: certificates not checked
    /// (`verify = false`), or TLS keys on an `http://` url, where they do nothing.
    pub fn tls_warning(&self) -> Option<String> {
        if self.uses_tls() {
            return (self.verify == TlsVerify::Off).then(|| {
                "TLS certificates are not checked (verify = false); anyone on the network path \
                 can read and change what is synced"
                    .to_owned()
            });
        }
        let set: Vec<&str> = [
            match self.verify {
                TlsVerify::System => ("verify", false),
                TlsVerify::Off => ("verify = false", true),
                TlsVerify::CaFile(_) => ("verify", true),
            },
            ("fingerprint", self.fingerprint.is_some()),
            ("client_cert", self.client_cert.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        (!set.is_empty()).then(|| {
            format!(
                "{} {} nothing: the url is http://, so TLS is not in use and nothing is \
                 encrypted (use https:// for TLS)",
                set.join(", "),
                if set.len() == 1 { "does" } else { "do" }
            )
        })
    }
}

/// Checks a DAV storage's `url`; the error text is the message for [`ConfigError::Invalid`].
/// Messages never repeat the URL (it might hold a password).
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let scheme_ok = ["http://", "https://"].iter().any(|prefix| {
        url.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    });
    if !scheme_ok {
        return Err("the URL must start with http:// or https://".to_string());
    }
    let authority = url.split_once("://").map_or("", |(_, rest)| {
        rest.split(['/', '?', '#']).next().unwrap_or("")
    });
    if authority.is_empty() {
        return Err("invalid URL: no host".to_string());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("invalid URL: no host".to_string());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "the URL must not contain a user name or password; use \"username\" and \
             \"password\""
                .to_string(),
        );
    }
    Ok(())
}

/// `sha256:AB:CD:...` or `sha256:abcd...` (prefix case-insensitive) as 64 lower-case hex
/// digits; `None` when malformed.
fn parse_fingerprint(raw: &str) -> Option<String> {
    const PREFIX: &str = "sha256:";
    let head = raw.get(..PREFIX.len())?;
    if !head.eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let hex = &raw[PREFIX.len()..];
    let digits: String = if hex.contains(':') {
        let groups: Vec<&str> = hex.split(':').collect();
        if groups.len() != 32 || groups.iter().any(|g| g.len() != 2) {
            return None;
        }
        groups.concat()
    } else {
        hex.to_string()
    };
    (digits.len() == 64 && digits.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| digits.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        let hex = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            parse_fingerprint(&format!("sha256:{hex}")),
            Some(hex.clone())
        );
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{colons}")),
            Some(hex.clone())
        );
        assert_eq!(parse_fingerprint(&hex), None);
        assert_eq!(parse_fingerprint(&format!("sha1:{hex}")), None);
        assert_eq!(parse_fingerprint(&format!("sha256:{hex}ab")), None);
        assert_eq!(parse_fingerprint(&format!("sha256:{colons}:")), None);
        assert_eq!(
            parse_fingerprint(&format!("sha256:{}", "abc:".repeat(16))),
            None
        );
        assert_eq!(parse_fingerprint("sha256"), None);
        assert_eq!(parse_fingerprint("sha256é:"), None);
    }
}
