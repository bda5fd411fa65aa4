//! Structure pre-scan: bound the MIME tree before mail-parser builds it.
//!
//! mail-parser walks multiparts and attached messages iteratively (no recursion except three
//! levels for base64-encoded `message/rfc822`), so deep nesting cannot overflow its stack while
//! parsing. But it has no limit at all: every part, every header field and every nesting level is
//! kept in memory (a part costs ~100 bytes for 5 bytes of input, a header field ~130 bytes for 3),
//! dropping a deeply nested `Message` recurses, and each multipart whose boundary never appears
//! costs a scan to the end of the mail. So before handing the bytes to mail-parser we replay its
//! walk here, cheaply: its own header parser on each header block (so Content-Type and
//! Content-Transfer-Encoding are read exactly as it reads them), a SIMD substring search where it
//! seeks a boundary (its search finds the first `--boundary` after the current position, which is
//! what `memmem` returns), and no body decoding except for the rare encoded attached message. The
//! replay stops at the first limit crossed, so its own cost is bounded by the limits.

use crate::MailError;
use mail_parser::{GetHeader, HeaderName, HeaderValue, MessageParser, parsers::MessageStream};
use memchr::memmem;

/// Most header fields accepted in one mail (all parts and attached messages together).
pub const MAX_HEADER_FIELDS: usize = 10_000;
/// Largest header block accepted when the mail holds many `:` lines (see [`header_block`]).
pub const MAX_HEADER_BLOCK_BYTES: usize = 64 * 1024;
/// Most multiparts whose boundary never appears (each costs mail-parser a scan to the end).
pub const MAX_UNTERMINATED_MULTIPARTS: usize = 8;
/// Levels of base64/quoted-printable encoded attached messages mail-parser decodes and parses.
const MAX_NESTED_ENCODED: usize = 3;

/// What the pre-scan learnt about the mail.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// MIME parts mail-parser will create (containers included).
    pub parts: usize,
    /// Deepest nesting of multiparts / attached messages.
    pub depth: usize,
    /// Header fields in all header blocks.
    pub headers: usize,
}

/// Replays mail-parser's MIME walk over `raw`, refusing the mail when it crosses a limit.
pub fn scan(raw: &[u8], max_depth: u32, max_parts: u32) -> Result<Shape, MailError> {
    let mut scanner = Scanner {
        parser: MessageParser::default(),
        max_depth: max_depth as usize,
        max_parts: max_parts as usize,
        shape: Shape::default(),
        unterminated: 0,
    };
    let found = scanner.scan_buffer(raw, 0, MAX_NESTED_ENCODED)?;
    if !found {
        return Err(MailError::NotAMail);
    }
    Ok(scanner.shape)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A message (the mail itself or an attached one).
    Message,
    /// A `multipart/digest`, whose untyped children are messages.
    Digest,
    /// Any other multipart.
    Multipart,
}

struct State {
    kind: Kind,
    /// The delimiter searched for, `--` followed by the boundary.
    delimiter: Option<Vec<u8>>,
}

enum Class {
    Multipart { digest: bool },
    Message,
    Leaf,
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Encoding {
    None,
    Base64,
    QuotedPrintable,
}

struct Scanner {
    parser: MessageParser,
    max_depth: usize,
    max_parts: usize,
    shape: Shape,
    unterminated: usize,
}

impl Scanner {
    fn count_part(&mut self) -> Result<(), MailError> {
        self.shape.parts += 1;
        if self.shape.parts > self.max_parts {
            return Err(MailError::TooManyParts {
                limit: self.max_parts as u32,
            });
        }
        Ok(())
    }

    fn enter(&mut self, depth: usize) -> Result<(), MailError> {
        self.shape.depth = self.shape.depth.max(depth);
        if depth > self.max_depth {
            return Err(MailError::MimeTooDeep {
                limit: self.max_depth as u32,
            });
        }
        Ok(())
    }

    /// Walks one buffer (the mail, or a decoded attached message). Returns whether it had a
    /// header block at all (mail-parser returns `None` otherwise).
    fn scan_buffer(
        &mut self,
        raw: &[u8],
        base_depth: usize,
        encoded_budget: usize,
    ) -> Result<bool, MailError> {
        // When the whole buffer has few lines holding a ':', no header block can hold many
        // fields (each field ends a line and needs a ':' of its own): parse blocks in full.
        // Otherwise parse each block inside a window, so that one block cannot allocate much.
        let few_colons = colon_lines(raw, MAX_HEADER_FIELDS) <= MAX_HEADER_FIELDS;

        let mut pos = 0usize;
        let mut state = State {
            kind: Kind::Message,
            delimiter: None,
        };
        let mut stack: Vec<(State, bool)> = Vec::new();
        let mut parts_here = 0usize;
        let mut trailing_headers = false;

        'outer: loop {
            let block = self.header_block(raw, pos, few_colons)?;
            let Some(part) = block.parsed else {
                trailing_headers = block.had_fields;
                break;
            };
            pos = part.body_start;
            self.count_part()?;
            parts_here += 1;
            let encoding = part.encoding;
            let boundary = part.boundary;
            // An untyped part of a multipart/digest is a message (RFC 2046 5.1.5).
            let mut class = match part.class {
                None if state.kind == Kind::Digest => Class::Message,
                None => Class::Leaf,
                Some(class) => class,
            };

            if let Class::Multipart { digest } = class {
                match boundary {
                    Some(b) if !b.is_empty() => {
                        let delimiter = [b"--".as_slice(), &b].concat();
                        match find(raw, pos, &delimiter) {
                            Some(at) => {
                                pos = skip_crlf(raw, at + delimiter.len());
                                let parent = std::mem::replace(
                                    &mut state,
                                    State {
                                        kind: if digest { Kind::Digest } else { Kind::Multipart },
                                        delimiter: Some(delimiter),
                                    },
                                );
                                stack.push((parent, false));
                                self.enter(base_depth + stack.len())?;
                                continue 'outer;
                            }
                            None => {
                                self.unterminated += 1;
                                if self.unterminated > MAX_UNTERMINATED_MULTIPARTS {
                                    return Err(MailError::MimeMalformed {
                                        count: self.unterminated,
                                    });
                                }
                                class = Class::Leaf;
                            }
                        }
                    }
                    _ => class = Class::Leaf,
                }
            }

            if matches!(class, Class::Message) && encoding == Encoding::None {
                let inherited = state.delimiter.take();
                let parent = std::mem::replace(
                    &mut state,
                    State {
                        kind: Kind::Message,
                        delimiter: inherited,
                    },
                );
                stack.push((parent, true));
                self.enter(base_depth + stack.len())?;
                continue 'outer;
            }

            // A leaf. An encoded attached message is decoded and parsed by mail-parser too.
            if matches!(class, Class::Message) && encoded_budget > 0 {
                let boundary = state.delimiter.as_deref().map(|d| &d[2..]).unwrap_or(b"");
                let mut stream = stream_at(raw, pos);
                let (end, bytes) = match encoding {
                    Encoding::Base64 => stream.decode_base64_mime(boundary),
                    _ => stream.decode_quoted_printable_mime(boundary),
                };
                if end != usize::MAX {
                    let depth = base_depth + stack.len() + 1;
                    self.enter(depth)?;
                    self.scan_buffer(&bytes, depth, encoded_budget - 1)?;
                }
            }
            match state.delimiter.as_deref() {
                Some(delimiter) => match find(raw, pos, delimiter) {
                    Some(at) => pos = at + delimiter.len(),
                    None => {
                        pos = raw.len();
                        state.delimiter = None;
                    }
                },
                None => pos = raw.len(),
            }

            if state.delimiter.is_some() {
                loop {
                    if state.kind == Kind::Message {
                        match stack.pop() {
                            Some((mut parent, true)) => {
                                parent.delimiter = state.delimiter.take();
                                state = parent;
                            }
                            _ => break 'outer,
                        }
                    }
                    let (is_end, next) = multipart_end(raw, pos);
                    pos = next;
                    if !is_end {
                        break;
                    }
                    if let Some((parent, _)) = stack.pop() {
                        state = parent;
                        if let Some(delimiter) = state.delimiter.as_deref()
                            && let Some(at) = find(raw, pos, delimiter)
                        {
                            pos = at + delimiter.len();
                            continue;
                        }
                    }
                    break 'outer;
                }
            } else if pos >= raw.len() {
                break 'outer;
            }
        }

        if parts_here == 0 && trailing_headers {
            // mail-parser keeps a mail made of headers only (no blank line) as one part.
            self.count_part()?;
            parts_here = 1;
        }
        Ok(parts_here > 0)
    }

    /// Parses the header block at `pos` with mail-parser's own header parser.
    fn header_block(
        &mut self,
        raw: &[u8],
        pos: usize,
        few_colons: bool,
    ) -> Result<Block, MailError> {
        let end = if few_colons {
            raw.len()
        } else {
            raw.len().min(pos.saturating_add(MAX_HEADER_BLOCK_BYTES))
        };
        let window = &raw[..end];
        let mut stream = stream_at(window, pos);
        let mut headers = Vec::new();
        let complete = stream.parse_headers(&self.parser, &mut headers);
        if !complete && end < raw.len() {
            return Err(MailError::HeaderTooLarge {
                limit: MAX_HEADER_BLOCK_BYTES,
            });
        }
        self.shape.headers += headers.len();
        if self.shape.headers > MAX_HEADER_FIELDS {
            return Err(MailError::TooManyHeaders {
                limit: MAX_HEADER_FIELDS,
            });
        }
        if !complete {
            return Ok(Block {
                parsed: None,
                had_fields: !headers.is_empty(),
            });
        }
        let content_type = headers
            .header_value(&HeaderName::ContentType)
            .and_then(|v| v.as_content_type());
        let class = content_type.map(|ct| match ct.ctype() {
            "multipart" => Class::Multipart {
                digest: ct.subtype() == Some("digest"),
            },
            "message" if matches!(ct.subtype(), Some("rfc822") | Some("global")) => Class::Message,
            _ => Class::Leaf,
        });
        let boundary = content_type
            .and_then(|ct| ct.attribute("boundary"))
            .map(|b| b.as_bytes().to_vec());
        let encoding = match headers.header_value(&HeaderName::ContentTransferEncoding) {
            Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("base64") => Encoding::Base64,
            Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("quoted-printable") => {
                Encoding::QuotedPrintable
            }
            _ => Encoding::None,
        };
        Ok(Block {
            parsed: Some(PartHead {
                body_start: stream.offset(),
                class,
                encoding,
                boundary,
            }),
            had_fields: true,
        })
    }
}

/// One header block, as mail-parser reads it.
struct Block {
    /// `None` when the buffer ended inside the block.
    parsed: Option<PartHead>,
    /// Whether the block held at least one field.
    had_fields: bool,
}

/// What the walk needs from a complete header block.
struct PartHead {
    body_start: usize,
    /// `None` when the part has no Content-Type.
    class: Option<Class>,
    encoding: Encoding,
    boundary: Option<Vec<u8>>,
}

/// A mail-parser stream over `data`, positioned at `pos`.
fn stream_at(data: &[u8], pos: usize) -> MessageStream<'_> {
    let mut stream = MessageStream::new(data);
    stream.skip_bytes(pos.min(data.len()));
    stream
}

/// First occurrence of `needle` at or after `pos`, as mail-parser's byte loop finds it.
fn find(raw: &[u8], pos: usize, needle: &[u8]) -> Option<usize> {
    let hay = raw.get(pos..)?;
    memmem::find(hay, needle).map(|i| pos + i)
}

/// mail-parser's `skip_crlf`: skips spaces, tabs, CRs and at most one LF.
fn skip_crlf(raw: &[u8], pos: usize) -> usize {
    let mut stream = stream_at(raw, pos);
    stream.skip_crlf();
    stream.offset()
}

/// mail-parser's `is_multipart_end` at `pos`: whether `--` closes the multipart, and where
/// the stream stands afterwards.
fn multipart_end(raw: &[u8], pos: usize) -> (bool, usize) {
    let mut stream = stream_at(raw, pos);
    let end = stream.is_multipart_end();
    (end, stream.offset())
}

/// Lines of `raw` holding at least one `:`, counted up to `cap + 1`.
fn colon_lines(raw: &[u8], cap: usize) -> usize {
    let mut count = 0;
    let mut from = 0;
    while let Some(i) = memchr::memchr(b':', &raw[from..]) {
        count += 1;
        if count > cap {
            break;
        }
        let colon = from + i;
        match memchr::memchr(b'\n', &raw[colon..]) {
            Some(nl) => from = colon + nl + 1,
            None => break,
        }
        if from >= raw.len() {
            break;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_lines_counts_lines_not_colons() {
        assert_eq!(colon_lines(b"a: b: c\nd\ne:f\n", 100), 2);
        assert_eq!(colon_lines(b"", 100), 0);
        assert_eq!(colon_lines(b"::::\n::::\n::::", 1), 2);
    }
}
