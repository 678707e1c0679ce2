//! The config loader on arbitrary text: it never panics, and every error about the file's
//! content names a line.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use davsync::config::{self, ConfigError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let env: BTreeMap<String, String> = [("HOME".to_owned(), "/home/u".to_owned())].into();
    if let Err(e @ ConfigError::Invalid { line: None, .. }) =
        config::parse(text, Path::new("/etc/davsync/config.toml"), &env)
    {
        panic!("config error without a line: {e}");
    }
});
