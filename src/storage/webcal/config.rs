//! The `[storage.<name>]` section of `type = "webcal"`.

use crate::config::{ConfigError, Section};
use crate::http::{HttpOptions, options};

/// A `[storage.<name>]` table of type `webcal`: one read-only calendar feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebcalConfig {
    /// Where and how to connect; `url` is the feed, `webcal://` already taken as `https://`.
    pub http: HttpOptions,
}

/// Parses a `type = "webcal"` section (the common keys are parsed by the caller): the HTTP
/// keys of CalDAV, nothing else.
pub fn parse_config(section: &Section<'_, '_>) -> Result<WebcalConfig, ConfigError> {
    section.check_keys(&[options::KEYS])?;
    Ok(WebcalConfig {
        http: HttpOptions::parse_with_url(section, super::feed_url)?,
    })
}
