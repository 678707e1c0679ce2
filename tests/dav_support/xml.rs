//! Reading the servers' XML answers in tests: a string scan for elements by local name and
//! their character data as text. Enough for Radicale's and Xandikos' multistatus answers.

/// The text content of every element with local name `name` (any namespace prefix) in `xml`,
/// in order; enough for the multistatus answers of the two servers (no nesting of `name`).
pub fn elements<'a>(xml: &'a str, name: &str) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = xml[from..].find('<') {
        let start = from + offset;
        from = start + 1;
        let rest = &xml[start + 1..];
        if rest.starts_with(['/', '?', '!']) {
            continue;
        }
        let qname_end = rest
            .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let qname = &rest[..qname_end];
        if qname.rsplit(':').next() != Some(name) {
            continue;
        }
        let Some(gt) = rest.find('>') else { break };
        if rest[..gt].ends_with('/') {
            found.push("");
            continue;
        }
        let inner_start = start + 1 + gt + 1;
        let close = format!("</{qname}>");
        let Some(len) = xml[inner_start..].find(&close) else {
            break;
        };
        found.push(&xml[inner_start..inner_start + len]);
        from = inner_start + len + close.len();
    }
    found
}

/// XML character data as text: CDATA sections opened, the usual entities and character
/// references resolved.
pub fn xml_text(raw: &str) -> String {
    let raw = raw.trim();
    if let Some(cdata) = raw
        .strip_prefix("<![CDATA[")
        .and_then(|r| r.strip_suffix("]]>"))
    {
        return cdata.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let Some(semi) = rest[amp..].find(';') else {
            out.push_str(&rest[amp..]);
            return out;
        };
        let entity = &rest[amp + 1..amp + semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&rest[amp..amp + semi + 1]),
        }
        rest = &rest[amp + semi + 1..];
    }
    out.push_str(rest);
    out
}
