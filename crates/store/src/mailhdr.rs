//! A cheap, bounded read of the Message-ID header, for dedup at ingest time.
//!
//! The full MIME parse happens later in the pipeline (relais-mssante); the journal only needs
//! the Message-ID to recognise a mail delivered twice, before anything else looks at it.

/// How much of a mail is scanned for its header section.
const HEADER_SCAN_LIMIT: usize = 256 * 1024;
/// Longest Message-ID kept (RFC 5322 line limit).
const MAX_ID_LEN: usize = 998;

/// The Message-ID of a raw mail without angle brackets, or `None` when the header section (first
/// 256 KiB) has no usable one. Folded headers are unfolded; the first Message-ID header wins;
/// a value that is not ASCII, is empty, or exceeds 998 bytes counts as absent.
pub fn message_id_of(raw: &[u8]) -> Option<String> {
    let head = &raw[..raw.len().min(HEADER_SCAN_LIMIT)];
    let mut lines = head.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None; // end of the header section
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        if !name.eq_ignore_ascii_case(b"message-id") {
            continue;
        }
        let mut value = line[colon + 1..].to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                let next = next.strip_suffix(b"\r").unwrap_or(next);
                value.extend_from_slice(next);
                lines.next();
            } else {
                break;
            }
            if value.len() > MAX_ID_LEN + 64 {
                return None;
            }
        }
        return clean_id(&value);
    }
    None
}

fn clean_id(value: &[u8]) -> Option<String> {
    let value = trim(value);
    let inner = match value.iter().position(|&b| b == b'<') {
        Some(open) => {
            let rest = &value[open + 1..];
            let close = rest.iter().position(|&b| b == b'>')?;
            trim(&rest[..close])
        }
        None => value,
    };
    if inner.is_empty() || inner.len() > MAX_ID_LEN || !inner.iter().all(|&b| b.is_ascii_graphic())
    {
        return None;
    }
    String::from_utf8(inner.to_vec()).ok()
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::message_id_of;

    #[test]
    fn reads_plain_folded_and_case_insensitive() {
        let m = b"From: a@b\r\nMessage-ID: <abc@host.example>\r\n\r\nbody";
        assert_eq!(message_id_of(m).as_deref(), Some("abc@host.example"));
        let m = b"Subject: x\nmessage-id:\n  <folded@host>\n\nbody";
        assert_eq!(message_id_of(m).as_deref(), Some("folded@host"));
        let m = b"MESSAGE-ID:   bare@host  \n\n";
        assert_eq!(message_id_of(m).as_deref(), Some("bare@host"));
    }

    #[test]
    fn stops_at_body_and_rejects_garbage() {
        assert_eq!(message_id_of(b"From: a\r\n\r\nMessage-ID: <x@y>\r\n"), None);
        assert_eq!(message_id_of(b"Message-ID: <>\r\n\r\n"), None);
        assert_eq!(message_id_of(b"Message-ID: <unclosed@x\r\n\r\n"), None);
        assert_eq!(message_id_of("Message-ID: <é@x>\r\n\r\n".as_bytes()), None);
        assert_eq!(message_id_of(b""), None);
        assert_eq!(message_id_of(b"\xff\xfe:\x00\n"), None);
        let long = format!("Message-ID: <{}@x>\r\n\r\n", "a".repeat(2000));
        assert_eq!(message_id_of(long.as_bytes()), None);
        // Endless folding is bounded.
        let mut fold = b"Message-ID: <a".to_vec();
        for _ in 0..10_000 {
            fold.extend_from_slice(b"\r\n a");
        }
        assert_eq!(message_id_of(&fold), None);
    }

    #[test]
    fn first_header_wins() {
        let m = b"Message-ID: <one@x>\nMessage-ID: <two@x>\n\n";
        assert_eq!(message_id_of(m).as_deref(), Some("one@x"));
    }
}
