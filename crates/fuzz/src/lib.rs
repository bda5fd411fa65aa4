//! Fuzz entry points of every Relais parser, shared by two drivers:
//!
//! - `fuzz-smoke` (this crate's binary): a dependency-free, time-bounded mutation fuzzer run by
//!   the test command on every CI run. It mutates the seed corpora under `tests/fuzz-corpus/`
//!   and fails when any entry point panics, saving the input that did.
//! - `fuzz/` at the workspace root: libFuzzer targets (`cargo fuzz`) over the same entry points,
//!   for long coverage-guided campaigns.
//!
//! Every entry point takes arbitrary bytes and must never panic, hang or allocate without bound.

/// One fuzzable entry point.
pub struct Target {
    /// Name, also the corpus directory under `tests/fuzz-corpus/`.
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every entry point, by name.
pub const TARGETS: &[Target] = &[
    Target {
        name: "mail",
        run: relais_mssante::fuzz_entry,
    },
    Target {
        name: "zip",
        run: relais_xdm::fuzz_entry,
    },
    Target {
        name: "metadata",
        run: relais_xdm::fuzz_metadata,
    },
    Target {
        name: "cda",
        run: relais_cda::fuzz_entry,
    },
    Target {
        name: "hl7",
        run: relais_hl7::fuzz_entry,
    },
    Target {
        name: "xml",
        run: xml_entry,
    },
    Target {
        name: "schematron",
        run: relais_schematron::fuzz_compile,
    },
    Target {
        name: "check",
        run: relais_check::fuzz_entry,
    },
    Target {
        name: "config",
        run: config_entry,
    },
    Target {
        name: "mllp",
        run: mllp_entry,
    },
];

/// Run the entry point named `name` on `data` (used by the libFuzzer targets in `fuzz/`).
/// Panics on an unknown name, which is a programming error in a target file.
pub fn run(name: &str, data: &[u8]) {
    let target = TARGETS
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no fuzz target named {name}"));
    (target.run)(data);
}

/// The hardened XML parser on its own.
pub fn xml_entry(data: &[u8]) {
    if let Ok(text) = relais_core::xml::decode(data) {
        let _ = relais_core::xml::parse(&text, &relais_core::Limits::default());
    }
}

/// The configuration file parser (`relais.toml`) and its validation, as `relais config check`
/// runs them on an operator's file.
pub fn config_entry(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = relais_engine::config::Config::parse(text, "fuzz.toml")
    {
        let _ = config.problems();
    }
}

/// The MLLP frame decoder, fed in chunks as a TCP stream delivers them. The first byte sets the
/// frame limit (so that the limit paths are reached), the second the chunk size. Checks that no
/// decoded frame exceeds the limit or holds a framing byte, and that re-framing a decoded frame
/// decodes to the same payload.
pub fn mllp_entry(data: &[u8]) {
    use relais_hl7::mllp::{END, MllpCodec, START};
    use tokio_util::bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};
    let (limit, chunk, stream) = match data {
        [l, c, rest @ ..] => (usize::from(*l) * 8, usize::from(*c).max(1), rest),
        _ => return,
    };
    let mut codec = MllpCodec::with_max_frame(limit);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while let Ok(Some(frame)) = codec.decode(&mut buf) {
            frames.push(frame);
        }
    }
    while let Ok(Some(frame)) = codec.decode_eof(&mut buf) {
        frames.push(frame);
    }
    for frame in frames {
        assert!(frame.len() <= limit, "frame of {} > {limit}", frame.len());
        assert!(!frame.iter().any(|&b| b == START || b == END));
        let mut wire = BytesMut::new();
        codec
            .encode(&frame[..], &mut wire)
            .expect("a decoded frame re-encodes");
        let again = MllpCodec::with_max_frame(limit)
            .decode(&mut wire)
            .expect("re-framed payload decodes")
            .expect("one whole frame");
        assert_eq!(again, frame);
    }
}

/// A small deterministic PRNG (xorshift64*), so a failing run can be replayed from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
}

/// Tokens that matter to our formats, inserted by the mutator to reach deeper code.
const DICTIONARY: &[&[u8]] = &[
    b"<!DOCTYPE a [<!ENTITY x \"y\">]>",
    b"<ClinicalDocument xmlns=\"urn:hl7-org:v3\">",
    b"</ClinicalDocument>",
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"IHE_XDM/SUBSET01/METADATA.XML",
    b"../",
    b"MSH|^~\\&|",
    b"\rOBX|1|ED|",
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n",
    b"\r\n--b\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"1.2.250.1.213.1.4.8",
    b"\x0b",
    b"\x1c\r",
    b"\xff\xff\xff\xff",
];

/// Apply one to four random mutations to `input`, possibly splicing in `other`.
pub fn mutate(rng: &mut Rng, input: &[u8], other: &[u8], max_len: usize) -> Vec<u8> {
    let mut data = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(8) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next_u64() as u8;
            }
            2 if !data.is_empty() => {
                let start = rng.below(data.len());
                let len = rng.below((data.len() - start).min(64) + 1);
                data.drain(start..start + len);
            }
            3 => {
                let i = rng.below(data.len() + 1);
                let tok = DICTIONARY[rng.below(DICTIONARY.len())];
                data.splice(i..i, tok.iter().copied());
            }
            4 if !data.is_empty() => {
                let start = rng.below(data.len());
                let len = rng.below((data.len() - start).min(256) + 1);
                let chunk: Vec<u8> = data[start..start + len].to_vec();
                let at = rng.below(data.len() + 1);
                data.splice(at..at, chunk);
            }
            5 if !data.is_empty() => {
                let cut = rng.below(data.len());
                data.truncate(cut);
            }
            6 if !other.is_empty() => {
                let cut = rng.below(data.len() + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                let i = rng.below(data.len() + 1);
                let b = rng.next_u64() as u8;
                data.insert(i, b);
            }
        }
    }
    data.truncate(max_len);
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutate_is_deterministic_and_bounded() {
        let a = mutate(&mut Rng::new(7), b"hello world", b"other", 16);
        let b = mutate(&mut Rng::new(7), b"hello world", b"other", 16);
        assert_eq!(a, b);
        for seed in 0..200 {
            assert!(mutate(&mut Rng::new(seed), &[0u8; 32], b"x", 40).len() <= 40);
        }
    }

    #[test]
    fn targets_have_unique_names() {
        let mut names: Vec<_> = TARGETS.iter().map(|t| t.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), TARGETS.len());
    }
}
