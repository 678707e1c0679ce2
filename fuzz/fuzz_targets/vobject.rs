//! The content-line layer on arbitrary bytes: no function panics, a split item is
//! well-formed except for bytes that are not UTF-8.
#![no_main]

use davsync::vobject;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    let checked = vobject::check(bytes);
    let _ = vobject::uid(bytes);
    let _ = vobject::component_type(bytes);
    assert_eq!(vobject::normalized_hash(bytes).len(), 64);
    assert_eq!(vobject::legacy_hash(bytes).len(), 64);
    if let Ok(items) = vobject::split_calendar(bytes) {
        let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
        for item in &refs {
            // Lines are copied as bytes: a split item has no structural problem, but a line
            // that is not UTF-8 stays so, and the item is named unreadable on its own.
            let problem = vobject::check(item).err().map(|m| m.problem);
            assert!(
                matches!(problem, None | Some(vobject::Problem::NotUtf8)),
                "a split item is well-formed: {problem:?}"
            );
        }
        let _ = vobject::join_calendar(&refs);
    }
    if checked.is_ok() {
        let _ = vobject::join_calendar(&[bytes]);
    }
});
