//! The multistatus and `DAV:error` parsers on arbitrary bytes: they never panic.
#![no_main]

use davsync::storage::dav::xml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let _ = xml::parse_multistatus(bytes);
    let _ = xml::parse_error_condition(bytes);
});
