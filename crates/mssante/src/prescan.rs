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
//!
//! The replay counts every part mail-parser creates, including those it later drops (when an
//! attached message directly holds another attached message, mail-parser closes only one level
//! at the next boundary and loses the inner ones), so its counts are upper bounds of what
//! mail-parser allocates: a property test over generated and mutated MIME trees checks that it
//! never counts less, and counts exactly on trees without that pattern.

use crate::MailError;
use mail_parser::{GetHeader, HeaderName, HeaderValue, MessageParser, parsers::MessageStream};
use memchr::memmem;

/// Most header fields accepted in one mail (all parts and attached messages together).
pub const MAX_HEADER_FIELDS: usize = 10_000;
/// Largest header block accepted when the mail holds more lines with a `:` than
/// [`MAX_HEADER_FIELDS`] (below that, no block can hold many fields and blocks are not bounded).
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
                                        kind: if digest {
                                            Kind::Digest
                                        } else {
                                            Kind::Multipart
                                        },
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
    use mail_parser::{Message, PartType};
    use proptest::prelude::*;

    /// Parts mail-parser built (attached messages included) and the deepest nesting of a part,
    /// counted as `parse_mail` counts it.
    fn built(message: &Message<'_>, depth: usize) -> (usize, usize) {
        let mut parts = message.parts.len();
        let mut deepest = depth;
        let mut stack = vec![(0usize, depth)];
        let mut seen = vec![false; message.parts.len()];
        while let Some((id, d)) = stack.pop() {
            let Some(part) = message.parts.get(id) else {
                continue;
            };
            if std::mem::replace(&mut seen[id], true) {
                continue;
            }
            deepest = deepest.max(d);
            match &part.body {
                PartType::Multipart(children) => {
                    stack.extend(children.iter().map(|&c| (c as usize, d + 1)))
                }
                PartType::Message(m) => {
                    let (p, dd) = built(m, d + 1);
                    parts += p;
                    deepest = deepest.max(dd);
                }
                _ => {}
            }
        }
        (parts, deepest)
    }

    /// Parts mail-parser builds; `Err` when mail-parser itself panics (see `parse_guarded`).
    fn parser_parts(raw: &[u8]) -> Result<Option<(usize, usize)>, MailError> {
        crate::parse::parse_guarded(raw).map(|m| m.map(|m| built(&m, 0)))
    }

    #[derive(Debug, Clone)]
    enum Node {
        Leaf {
            typed: bool,
            encoding: u8,
            body: String,
        },
        Multi {
            boundary: usize,
            digest: bool,
            children: Vec<Node>,
        },
        Msg {
            encoded: bool,
            child: Box<Node>,
        },
    }

    // Boundaries that are prefixes of one another, to exercise mail-parser's substring search.
    const BOUNDARIES: &[&str] = &["a", "ab", "b", "a-b"];
    const SNIPPETS: &[&str] = &[
        "--a",
        "--ab--",
        "--b\r\n",
        "\r\n\r\n",
        "\r\n",
        "-",
        "Content-Type: multipart/mixed; boundary=a\r\n",
        "Content-Type: message/rfc822\r\n\r\n",
        "Content-Type: multipart/digest; boundary=ab\r\n\r\n--ab\r\n\r\n",
        "Content-Transfer-Encoding: base64\r\n",
        " ",
        "\x0c",
    ];

    fn node() -> impl Strategy<Value = Node> {
        let leaf =
            (any::<bool>(), 0u8..3, "[a-z=\\- \r\n]{0,20}").prop_map(|(typed, encoding, body)| {
                Node::Leaf {
                    typed,
                    encoding,
                    body,
                }
            });
        leaf.prop_recursive(5, 40, 4, |inner| {
            prop_oneof![
                (
                    0..BOUNDARIES.len(),
                    any::<bool>(),
                    prop::collection::vec(inner.clone(), 0..4)
                )
                    .prop_map(|(boundary, digest, children)| Node::Multi {
                        boundary,
                        digest,
                        children
                    }),
                (any::<bool>(), inner).prop_map(|(encoded, child)| Node::Msg {
                    encoded,
                    child: Box::new(child)
                }),
            ]
        })
    }

    /// An 8bit attached message whose body is itself an attached message: mail-parser pops one
    /// level only when the enclosing boundary comes, and drops the parts of the others.
    fn message_in_message(node: &Node) -> bool {
        match node {
            Node::Leaf { .. } => false,
            Node::Multi { children, .. } => children.iter().any(message_in_message),
            Node::Msg {
                encoded: false,
                child,
            } if matches!(**child, Node::Msg { .. }) => true,
            Node::Msg { child, .. } => message_in_message(child),
        }
    }

    fn base64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
            out.push(A[(n >> 18) as usize & 63] as char);
            out.push(A[(n >> 12) as usize & 63] as char);
            out.push(if chunk.len() > 1 {
                A[(n >> 6) as usize & 63] as char
            } else {
                '='
            });
            out.push(if chunk.len() > 2 {
                A[n as usize & 63] as char
            } else {
                '='
            });
        }
        out
    }

    fn render(node: &Node, out: &mut String) {
        match node {
            Node::Leaf {
                typed,
                encoding,
                body,
            } => {
                if *typed {
                    out.push_str("Content-Type: application/octet-stream\r\n");
                }
                match encoding {
                    1 => out.push_str("Content-Transfer-Encoding: base64\r\n\r\n"),
                    2 => out.push_str("Content-Transfer-Encoding: quoted-printable\r\n\r\n"),
                    _ => out.push_str("\r\n"),
                }
                out.push_str(body);
            }
            Node::Multi {
                boundary,
                digest,
                children,
            } => {
                let b = BOUNDARIES[*boundary];
                let sub = if *digest { "digest" } else { "mixed" };
                out.push_str(&format!(
                    "Content-Type: multipart/{sub}; boundary=\"{b}\"\r\n\r\npreamble\r\n"
                ));
                for child in children {
                    out.push_str(&format!("--{b}\r\n"));
                    render(child, out);
                    out.push_str("\r\n");
                }
                out.push_str(&format!("--{b}--\r\nepilogue"));
            }
            Node::Msg { encoded, child } => {
                out.push_str("Content-Type: message/rfc822\r\n");
                let mut inner = String::from("Subject: x\r\n");
                render(child, &mut inner);
                if *encoded {
                    out.push_str("Content-Transfer-Encoding: base64\r\n\r\n");
                    out.push_str(&base64(inner.as_bytes()));
                } else {
                    out.push_str("\r\n");
                    out.push_str(&inner);
                }
            }
        }
    }

    fn mutate(mut raw: Vec<u8>, edits: &[(f64, usize, u8)]) -> Vec<u8> {
        for &(at, what, len) in edits {
            let pos = ((raw.len() as f64) * at) as usize;
            let pos = pos.min(raw.len());
            if what < SNIPPETS.len() {
                raw.splice(pos..pos, SNIPPETS[what].bytes());
            } else {
                let end = (pos + len as usize % 8).min(raw.len());
                raw.drain(pos..end);
            }
        }
        raw
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The pre-scan never under-counts what mail-parser builds (parts, nesting), on
        /// well-formed and mutated structures alike, so its limits bound the parser; on
        /// unmutated structures it counts exactly.
        #[test]
        fn prescan_bounds_what_mail_parser_builds(
            root in node(),
            edits in prop::collection::vec((0.0f64..1.0, 0usize..SNIPPETS.len() + 4, any::<u8>()), 0..6),
        ) {
            let mut text = String::from("From: a@b.fr\r\n");
            render(&root, &mut text);
            let raw = mutate(text.into_bytes(), &edits);
            let Ok(built) = parser_parts(&raw) else {
                // mail-parser's own assertion fired: parse_mail refuses such mails.
                return Ok(());
            };
            let shown = String::from_utf8_lossy(&raw);
            match scan(&raw, 100_000, 1_000_000) {
                Ok(shape) => {
                    let (parts, depth) = built.expect("the pre-scan found headers");
                    prop_assert!(shape.parts >= parts, "{} < {parts}: {shown:?}", shape.parts);
                    prop_assert!(shape.depth >= depth, "{} < {depth}: {shown:?}", shape.depth);
                    if edits.is_empty() && !message_in_message(&root) {
                        prop_assert_eq!(shape.parts, parts, "{:?}", shown);
                    }
                }
                Err(MailError::NotAMail) => prop_assert_eq!(None, built),
                Err(MailError::MimeMalformed { .. }) => {}
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }
    }

    #[test]
    fn colon_lines_counts_lines_not_colons() {
        assert_eq!(colon_lines(b"a: b: c\nd\ne:f\n", 100), 2);
        assert_eq!(colon_lines(b"", 100), 0);
        assert_eq!(colon_lines(b"::::\n::::\n::::", 1), 2);
    }
}
