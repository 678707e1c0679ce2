//! The `[storage.<name>]` section of `type = "singlefile"`.

use std::path::PathBuf;

use crate::config::{ConfigError, Section};

/// Keys of a singlefile section besides the common storage keys.
pub const KEYS: &[&str] = &["path"];

/// A `[storage.<name>]` table of type `singlefile`: one `.ics` or `.vcf` file, or with a `%s`
/// in the file name one file per collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinglefileConfig {
    /// The file (or the pattern with one `%s`): expanded and resolved like a vdir path.
    pub path: PathBuf,
}

impl SinglefileConfig {
    /// Whether the file is an address book (`.vcf`), which has no component types to filter.
    pub fn holds_contacts(&self) -> bool {
        self.path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("vcf"))
    }
}

/// Parses a `type = "singlefile"` section (the common keys are parsed by the caller). A `%s`
/// may appear once, in the file name.
pub fn parse_config(section: &Section<'_, '_>) -> Result<SinglefileConfig, ConfigError> {
    section.check_keys(&[KEYS])?;
    let value = section.required("path")?;
    let path = section.path(value, "path")?;
    let text = path.to_string_lossy();
    let placeholders = text.matches("%s").count();
    let in_name = path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().contains("%s"));
    if placeholders > 1 || (placeholders == 1 && !in_name) {
        return Err(section.invalid(
            value,
            "path",
            format!("{text:?}: %s may appear once, in the file name (e.g. \"~/calendars/%s.ics\")"),
        ));
    }
    Ok(SinglefileConfig { path })
}
