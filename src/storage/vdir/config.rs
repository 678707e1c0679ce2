//! The `[storage.<name>]` section of `type = "vdir"`.

use std::path::PathBuf;

use crate::config::{ConfigError, Section};

/// Keys of a vdir section besides the common storage keys.
pub const KEYS: &[&str] = &["path", "fileext", "post_hook", "pre_deletion_hook"];

/// A `[storage.<name>]` table of type `vdir`: a directory of collections, one file per item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VdirConfig {
    /// The directory: `~` and `$VAR`/`${VAR}` expanded, relative paths resolved against the
    /// config file's directory, lexically normalized (no `.`/`..` components).
    pub path: PathBuf,
    /// Extension of item files, including the leading dot (`".ics"`, `".vcf"`).
    pub fileext: String,
    /// `post_hook = ["cmd", ...]`: run with the item's path after davsync wrote an item; empty:
    /// no hook.
    pub post_hook: Vec<String>,
    /// `pre_deletion_hook = ["cmd", ...]`: run with the item's path before davsync deletes an
    /// item; empty: no hook.
    pub pre_deletion_hook: Vec<String>,
}

impl VdirConfig {
    /// Whether the items are contacts (`.vcf`), which have no component types to filter.
    pub fn holds_contacts(&self) -> bool {
        self.fileext.eq_ignore_ascii_case(".vcf")
    }
}

/// Parses a `type = "vdir"` section (the common keys are parsed by the caller).
pub fn parse_config(section: &Section<'_, '_>) -> Result<VdirConfig, ConfigError> {
    section.check_keys(&[KEYS])?;
    let path = section.path(section.required("path")?, "path")?;
    let fileext_value = section.required("fileext")?;
    let fileext = section.string(fileext_value, "fileext")?;
    if !fileext.starts_with('.') || fileext.contains('/') {
        return Err(section.invalid(
            fileext_value,
            "fileext",
            format!(
                "invalid file extension {fileext:?}: it must start with '.' and contain no '/' \
                 (e.g. \".ics\", \".vcf\")"
            ),
        ));
    }
    Ok(VdirConfig {
        path,
        fileext: fileext.to_string(),
        post_hook: section.command("post_hook")?,
        pre_deletion_hook: section.command("pre_deletion_hook")?,
    })
}
