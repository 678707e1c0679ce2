//! Runs the vobject layer over real-world files: the small corpus in `fixtures/corpus/` always,
//! and the shared corpus (`<manifest>/../shared/corpus`, or `$DAVSYNC_SHARED_CORPUS`) when it is
//! there. Under `CI=true` a missing shared corpus fails instead of being skipped.
//!
//! Per file: nothing panics; a UID line where `uid()` must look yields `Some`; the hash does not
//! change under CRLF→LF, LF→CRLF and refolding at 40 octets. All failures are reported together.

use std::path::{Path, PathBuf};

use davsync::vobject;

/// Physical lines: LF, CR*LF or a lone CR ends a line, as in the library.
fn physical_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                lines.push(&bytes[start..i]);
                i += 1;
                start = i;
            }
            b'\r' => {
                let crs = bytes[i..].iter().take_while(|&&b| b == b'\r').count();
                lines.push(&bytes[start..i]);
                i += if bytes.get(i + crs) == Some(&b'\n') {
                    crs + 1
                } else {
                    1
                };
                start = i;
            }
            _ => i += 1,
        }
    }
    if start < bytes.len() {
        lines.push(&bytes[start..]);
    }
    lines
}

/// Logical lines: a physical line starting with space or tab continues the previous one.
fn logical_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for line in physical_lines(bytes) {
        match (line.first(), out.last_mut()) {
            (Some(b' ' | b'\t'), Some(last)) => last.extend_from_slice(&line[1..]),
            _ => out.push(line.to_vec()),
        }
    }
    out.retain(|l| !l.trim_ascii().is_empty());
    out
}

/// Whether a UID line sits where `uid()` looks: directly in the first non-VTIMEZONE child of the
/// first VCALENDAR, or directly in a top-level VCARD (or other top-level component).
fn expects_uid(bytes: &[u8]) -> bool {
    let mut depth = 0usize;
    let (mut calendar, mut target) = (false, false);
    for line in logical_lines(bytes) {
        let upper = line.to_ascii_uppercase();
        let value = |prefix: &[u8]| upper.strip_prefix(prefix).map(|v| v.trim_ascii().to_vec());
        if let Some(name) = value(b"BEGIN:") {
            depth += 1;
            if depth == 1 {
                calendar = name == b"VCALENDAR";
            } else if depth == 2 && calendar && name != b"VTIMEZONE" {
                target = true;
            }
        } else if upper.starts_with(b"END:") {
            if (target && depth == 2) || (!calendar && depth == 1) {
                return false;
            }
            depth = depth.saturating_sub(1);
        } else if (upper.starts_with(b"UID:") || upper.starts_with(b"UID;"))
            && ((target && depth == 2) || (!calendar && depth == 1))
        {
            let colon = line.iter().position(|&b| b == b':').unwrap_or(line.len());
            return !line[colon..]
                .get(1..)
                .unwrap_or_default()
                .trim_ascii()
                .is_empty();
        }
    }
    false
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 16);
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Refolds every logical line at `width` octets without splitting a UTF-8 sequence; `None` for
/// files where that is not meaningful (not UTF-8, quoted-printable soft breaks).
fn refold(bytes: &[u8], width: usize) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.to_ascii_uppercase().contains("QUOTED-PRINTABLE") {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 2);
    for line in logical_lines(bytes) {
        let line = String::from_utf8(line).ok()?;
        let (mut rest, mut room) = (line.as_str(), width);
        while rest.len() > room {
            let mut cut = room;
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            out.extend_from_slice(&rest.as_bytes()[..cut]);
            out.extend_from_slice(b"\r\n ");
            rest = &rest[cut..];
            room = width - 1;
        }
        out.extend_from_slice(rest.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    Some(out)
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("ics" | "vcf")
        ) {
            out.push(path);
        }
    }
}

/// A split item is well-formed and holds only VTIMEZONEs that its components reference.
fn check_split_item(item: &[u8], name: &str, failures: &mut Vec<String>) {
    if let Err(e) = vobject::check(item) {
        failures.push(format!("{name}: split item is malformed: {e}"));
    }
    let lines = logical_lines(item);
    let mut in_zone = false;
    for line in &lines {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with(b"BEGIN:VTIMEZONE") {
            in_zone = true;
        } else if upper.starts_with(b"END:VTIMEZONE") {
            in_zone = false;
        } else if in_zone && upper.starts_with(b"TZID:") {
            let id = String::from_utf8_lossy(&line[5..]).trim().to_string();
            let used = lines.iter().any(|l| {
                let l = String::from_utf8_lossy(l);
                l.contains(&format!("TZID={id}")) || l.contains(&format!("TZID=\"{id}\""))
            });
            if !used {
                failures.push(format!(
                    "{name}: split item holds unreferenced VTIMEZONE {id}"
                ));
            }
        }
    }
}

/// Everything that is wrong with one file, as messages.
fn check_file(path: &Path, failures: &mut Vec<String>) {
    let name = path.display();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return failures.push(format!("{name}: cannot read: {e}")),
    };
    let checked = vobject::check(&bytes);
    let uid = vobject::uid(&bytes);
    let hash = vobject::normalized_hash(&bytes);
    if path.extension().is_some_and(|e| e == "ics") {
        let split = vobject::split_calendar(&bytes);
        if let (Ok(()), Ok(items)) = (&checked, &split) {
            for item in items {
                check_split_item(item, &name.to_string(), failures);
            }
            let refs: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
            if !refs.is_empty() {
                let again = vobject::join_calendar(&refs).map(|j| vobject::split_calendar(&j));
                if again != Ok(Ok(items.clone())) {
                    failures.push(format!("{name}: split(join(split(x))) != split(x)"));
                }
            }
        }
    }
    if uid.is_none() && expects_uid(&bytes) {
        failures.push(format!("{name}: has a UID line but uid() is None"));
    }
    let lf = replace(&bytes, b"\r\n", b"\n");
    let crlf = replace(&lf, b"\n", b"\r\n");
    let mut variants = vec![("CRLF->LF", lf), ("LF->CRLF", crlf)];
    if let Some(folded) = refold(&bytes, 40) {
        variants.push(("refolded at 40", folded));
    }
    for (what, copy) in variants {
        if vobject::normalized_hash(&copy) != hash {
            failures.push(format!("{name}: hash changes when {what}"));
        }
        if vobject::uid(&copy) != uid {
            failures.push(format!("{name}: uid changes when {what}"));
        }
    }
}

#[test]
fn corpus() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    files(&manifest.join("fixtures/corpus"), &mut paths);
    assert!(
        !paths.is_empty(),
        "fixtures/corpus holds no .ics/.vcf files"
    );
    let shared = std::env::var_os("DAVSYNC_SHARED_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest.join("../shared/corpus"));
    if shared.is_dir() {
        files(&shared, &mut paths);
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the shared corpus {} is missing",
            shared.display()
        );
    } else {
        println!("shared corpus {} not found, skipped", shared.display());
    }
    let mut failures = Vec::new();
    for path in &paths {
        check_file(path, &mut failures);
    }
    println!("checked {} files", paths.len());
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
