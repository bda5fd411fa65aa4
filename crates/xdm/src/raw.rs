//! A hand-written ZIP writer for hostile and non-conformant archives.
//!
//! Tests (here and in other crates) and fuzz corpora need archives a well-behaved ZIP library
//! refuses to produce: `../` names, headers that lie about sizes, the encryption flag without
//! encryption, unknown compression methods, pre-built deflate bombs. [`RawZip`] writes exactly
//! what it is told: local headers, central directory, end record (no ZIP64: sizes and counts
//! saturate at the 32/16-bit maxima). Use [`crate::PackageBuilder`] for real packages.

use flate2::write::DeflateEncoder;
use flate2::{Compress, Compression, FlushCompress};
use std::io::Write;

/// General purpose flag: the entry is encrypted.
pub const FLAG_ENCRYPTED: u16 = 1;
/// General purpose flag: the name is UTF-8.
pub const FLAG_UTF8: u16 = 1 << 11;
/// Compression method: stored.
pub const METHOD_STORED: u16 = 0;
/// Compression method: deflate.
pub const METHOD_DEFLATE: u16 = 8;

/// One entry exactly as it will be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    /// The name bytes, written unchanged.
    pub name: Vec<u8>,
    /// The bytes written after the local header (compressed when `method` is deflate).
    pub data: Vec<u8>,
    /// Compression method number.
    pub method: u16,
    /// CRC-32 written in the headers.
    pub crc32: u32,
    /// Uncompressed size written in the headers.
    pub uncompressed_size: u64,
    /// General purpose flags.
    pub flags: u16,
    /// External attributes (Unix mode in the high 16 bits).
    pub external_attributes: u32,
}

impl RawEntry {
    /// A stored entry with correct CRC and sizes.
    pub fn stored(name: impl AsRef<[u8]>, data: impl Into<Vec<u8>>) -> Self {
        let data = data.into();
        RawEntry {
            name: name.as_ref().to_vec(),
            crc32: crc32fast::hash(&data),
            uncompressed_size: data.len() as u64,
            data,
            method: METHOD_STORED,
            flags: FLAG_UTF8,
            external_attributes: 0o100644 << 16,
        }
    }

    /// A deflated entry with correct CRC and sizes.
    pub fn deflated(name: impl AsRef<[u8]>, data: &[u8]) -> Self {
        let mut entry = RawEntry::stored(name, Vec::new());
        entry.crc32 = crc32fast::hash(data);
        entry.uncompressed_size = data.len() as u64;
        entry.data = deflate(data);
        entry.method = METHOD_DEFLATE;
        entry
    }

    /// A deflated entry from an already compressed raw deflate stream, with the size and CRC to
    /// declare (for bombs built without holding the inflated bytes).
    pub fn precompressed(
        name: impl AsRef<[u8]>,
        deflate_stream: Vec<u8>,
        uncompressed_size: u64,
        crc32: u32,
    ) -> Self {
        let mut entry = RawEntry::stored(name, deflate_stream);
        entry.method = METHOD_DEFLATE;
        entry.uncompressed_size = uncompressed_size;
        entry.crc32 = crc32;
        entry
    }

    /// A directory entry (the name should end with `/`).
    pub fn directory(name: impl AsRef<[u8]>) -> Self {
        let mut entry = RawEntry::stored(name, Vec::new());
        entry.external_attributes = (0o040755 << 16) | 0x10;
        entry
    }

    /// Declare another uncompressed size than the real one (a lying header).
    pub fn declare_size(mut self, size: u64) -> Self {
        self.uncompressed_size = size;
        self
    }

    /// Set the encryption flag (the data stays in clear).
    pub fn encrypted(mut self) -> Self {
        self.flags |= FLAG_ENCRYPTED;
        self
    }

    /// Write another compression method number (the data is left as is).
    pub fn with_method(mut self, method: u16) -> Self {
        self.method = method;
        self
    }
}

/// Raw deflate (no zlib header) of `data`, best compression.
pub fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = DeflateEncoder::new(Vec::new(), Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// A raw deflate stream that inflates to `size` zero bytes, and the CRC-32 of those bytes,
/// built without ever holding them: one MiB of zeros is compressed once with a full flush (so
/// the block depends on nothing before it) and the block is repeated. The classic ZIP bomb
/// payload: 1 GiB costs about 1 MB.
pub fn deflated_zeros(size: u64) -> (Vec<u8>, u32) {
    const CHUNK: u64 = 1 << 20;
    let zeros = vec![0u8; CHUNK as usize];
    let block = |n: usize| -> Vec<u8> {
        let mut c = Compress::new(Compression::best(), false);
        let mut out = Vec::with_capacity(n / 256 + 1024);
        let mut consumed = 0usize;
        loop {
            let before = c.total_in();
            if c.compress_vec(&zeros[consumed..n], &mut out, FlushCompress::Full)
                .is_err()
            {
                break;
            }
            consumed += (c.total_in() - before) as usize;
            if consumed >= n && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity().max(1024));
        }
        out
    };
    let mut hasher = crc32fast::Hasher::new();
    let full = block(CHUNK as usize);
    let mut stream = Vec::with_capacity(full.len() * (size / CHUNK) as usize + 64);
    for _ in 0..size / CHUNK {
        stream.extend_from_slice(&full);
        hasher.update(&zeros);
    }
    let rest = (size % CHUNK) as usize;
    if rest > 0 {
        stream.extend_from_slice(&block(rest));
        hasher.update(&zeros[..rest]);
    }
    // A final, empty block closes the stream.
    let mut last = Compress::new(Compression::best(), false);
    let mut tail = Vec::with_capacity(64);
    let _ = last.compress_vec(&[], &mut tail, FlushCompress::Finish);
    stream.extend_from_slice(&tail);
    (stream, hasher.finalize())
}

/// A ZIP archive assembled entry by entry, written verbatim.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawZip {
    /// The entries, in archive order.
    pub entries: Vec<RawEntry>,
}

impl RawZip {
    /// An empty archive.
    pub fn new() -> Self {
        RawZip::default()
    }

    /// Files as [`crate::PackageBuilder::files`] lists them (deflated; `/`-ended names become
    /// directories).
    pub fn from_files(files: &[(String, Vec<u8>)]) -> Self {
        let mut z = RawZip::new();
        for (name, data) in files {
            if name.ends_with('/') {
                z.push(RawEntry::directory(name));
            } else {
                z.push(RawEntry::deflated(name, data));
            }
        }
        z
    }

    /// Append an entry.
    pub fn push(&mut self, entry: RawEntry) -> &mut Self {
        self.entries.push(entry);
        self
    }

    /// The archive bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let sat32 = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        let sat16 = |v: usize| u16::try_from(v).unwrap_or(u16::MAX);
        const DOS_DATE_1980_01_01: u16 = (1 << 5) | 1;
        let mut out = Vec::new();
        let mut central = Vec::new();
        for e in &self.entries {
            let offset = sat32(out.len() as u64);
            // Local file header.
            out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            out.extend_from_slice(&20u16.to_le_bytes());
            out.extend_from_slice(&e.flags.to_le_bytes());
            out.extend_from_slice(&e.method.to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&DOS_DATE_1980_01_01.to_le_bytes());
            out.extend_from_slice(&e.crc32.to_le_bytes());
            out.extend_from_slice(&sat32(e.data.len() as u64).to_le_bytes());
            out.extend_from_slice(&sat32(e.uncompressed_size).to_le_bytes());
            out.extend_from_slice(&sat16(e.name.len()).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&e.name);
            out.extend_from_slice(&e.data);
            // Central directory header.
            central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes()); // made by: Unix, 2.0
            central.extend_from_slice(&20u16.to_le_bytes());
            central.extend_from_slice(&e.flags.to_le_bytes());
            central.extend_from_slice(&e.method.to_le_bytes());
            central.extend_from_slice(&0u16.to_le_bytes());
            central.extend_from_slice(&DOS_DATE_1980_01_01.to_le_bytes());
            central.extend_from_slice(&e.crc32.to_le_bytes());
            central.extend_from_slice(&sat32(e.data.len() as u64).to_le_bytes());
            central.extend_from_slice(&sat32(e.uncompressed_size).to_le_bytes());
            central.extend_from_slice(&sat16(e.name.len()).to_le_bytes());
            central.extend_from_slice(&0u16.to_le_bytes()); // extra
            central.extend_from_slice(&0u16.to_le_bytes()); // comment
            central.extend_from_slice(&0u16.to_le_bytes()); // disk
            central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            central.extend_from_slice(&e.external_attributes.to_le_bytes());
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(&e.name);
        }
        let cd_offset = sat32(out.len() as u64);
        let cd_size = sat32(central.len() as u64);
        out.extend_from_slice(&central);
        let count = sat16(self.entries.len());
        out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&cd_size.to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn deflated_zeros_inflates_to_the_size_and_crc() {
        for size in [0u64, 5, (1 << 20) + 7, 3 << 20] {
            let (stream, crc) = deflated_zeros(size);
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(&stream[..])
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out.len() as u64, size);
            assert!(out.iter().all(|&b| b == 0));
            assert_eq!(crc, crc32fast::hash(&out));
        }
    }
}
