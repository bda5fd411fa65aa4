//! MLLP (Minimal Lower Layer Protocol) framing as a tokio-util codec.
//!
//! A frame is `0x0B <payload> 0x1C 0x0D`. The decoder skips (and counts) bytes found between
//! frames, restarts on a new `0x0B` inside an unfinished frame (the peer gave up on it), accepts
//! a lone `0x1C` as the end when the next byte is not `0x0D`, refuses frames above the limit
//! without buffering them, and reports a frame cut by the end of the connection.

use crate::codes;
use relais_core::{Finding, Limits, RuleCode};
use tokio_util::bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Start of block.
pub const START: u8 = 0x0B;
/// End of block.
pub const END: u8 = 0x1C;
/// Carriage return closing the frame.
pub const CR: u8 = 0x0D;

/// Why an MLLP connection failed.
#[derive(Debug, thiserror::Error)]
pub enum MllpError {
    #[error("MLLP frame exceeds {limit} bytes (max_hl7_bytes); the connection should be closed")]
    FrameTooLarge { limit: usize },
    #[error("the connection ended in the middle of an MLLP frame ({buffered} bytes received)")]
    IncompleteFrame { buffered: usize },
    #[error("the payload to send contains an MLLP framing byte (0x0B or 0x1C) at offset {offset}")]
    PayloadInvalid { offset: usize },
    #[error("I/O error on the MLLP connection: {0}")]
    Io(#[from] std::io::Error),
}

impl MllpError {
    /// The stable rule code of this error.
    pub fn code(&self) -> RuleCode {
        match self {
            MllpError::FrameTooLarge { .. } => codes::MLLP_FRAME_TOO_LARGE,
            MllpError::IncompleteFrame { .. } => codes::MLLP_INCOMPLETE_FRAME,
            MllpError::PayloadInvalid { .. } => codes::MLLP_PAYLOAD_INVALID,
            MllpError::Io(_) => codes::MLLP_IO,
        }
    }

    /// This error as a finding.
    pub fn to_finding(&self) -> Finding {
        Finding::error(self.code(), self.to_string())
    }
}

/// The MLLP codec: decodes frames into payloads, encodes payloads into frames.
#[derive(Debug, Clone)]
pub struct MllpCodec {
    max_frame: usize,
    /// In a frame: how far the buffer has been searched for the end marker.
    scanned: usize,
    garbage: u64,
    frames: u64,
}

impl MllpCodec {
    /// A codec whose largest payload is `limits.max_hl7_bytes`.
    pub fn new(limits: &Limits) -> Self {
        Self::with_max_frame(usize::try_from(limits.max_hl7_bytes).unwrap_or(usize::MAX))
    }

    /// A codec with an explicit largest payload.
    pub fn with_max_frame(max_frame: usize) -> Self {
        MllpCodec {
            max_frame,
            scanned: 0,
            garbage: 0,
            frames: 0,
        }
    }

    /// Bytes received outside any frame and skipped so far.
    pub fn garbage_bytes(&self) -> u64 {
        self.garbage
    }

    /// Frames decoded so far.
    pub fn frames_decoded(&self) -> u64 {
        self.frames
    }

    /// Drop everything before the next start byte; true when the buffer now starts with one.
    fn skip_to_start(&mut self, buf: &mut BytesMut) -> bool {
        match buf.iter().position(|&b| b == START) {
            Some(0) => true,
            Some(p) => {
                self.garbage += p as u64;
                let _ = buf.split_to(p);
                true
            }
            None => {
                self.garbage += buf.len() as u64;
                buf.clear();
                false
            }
        }
    }
}

impl Decoder for MllpCodec {
    type Item = Bytes;
    type Error = MllpError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        loop {
            if self.scanned == 0 {
                if !self.skip_to_start(buf) {
                    return Ok(None);
                }
                self.scanned = 1;
            }
            // Search only what has not been searched yet.
            let from = self.scanned;
            let found = buf[from..]
                .iter()
                .position(|&b| b == END || b == START)
                .map(|p| p + from);
            match found {
                None => {
                    self.scanned = buf.len();
                    if buf.len() - 1 > self.max_frame {
                        // Refuse without buffering further: drop what we hold.
                        buf.clear();
                        self.scanned = 0;
                        return Err(MllpError::FrameTooLarge {
                            limit: self.max_frame,
                        });
                    }
                    return Ok(None);
                }
                Some(p) if buf[p] == START => {
                    // A new frame starts before this one ended: the partial frame is garbage.
                    self.garbage += p as u64;
                    let _ = buf.split_to(p);
                    self.scanned = 0;
                    continue;
                }
                Some(p) => {
                    if p - 1 > self.max_frame {
                        let _ = buf.split_to(p + 1);
                        self.scanned = 0;
                        return Err(MllpError::FrameTooLarge {
                            limit: self.max_frame,
                        });
                    }
                    let trailer = match buf.get(p + 1) {
                        None => {
                            // Wait for the byte after 0x1C.
                            self.scanned = p;
                            return Ok(None);
                        }
                        Some(&CR) => 2,
                        Some(_) => 1,
                    };
                    let mut frame = buf.split_to(p + trailer);
                    frame.truncate(p);
                    let _ = frame.split_to(1);
                    self.scanned = 0;
                    self.frames += 1;
                    return Ok(Some(frame.freeze()));
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, MllpError> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        if self.scanned > 0 && !buf.is_empty() {
            // A frame was started: 0x0B without 0x1C, or 0x1C as the very last byte.
            if buf.last() == Some(&END) {
                let mut frame = buf.split_to(buf.len());
                frame.truncate(frame.len() - 1);
                let _ = frame.split_to(1);
                self.scanned = 0;
                self.frames += 1;
                return Ok(Some(frame.freeze()));
            }
            let buffered = buf.len();
            buf.clear();
            self.scanned = 0;
            return Err(MllpError::IncompleteFrame { buffered });
        }
        self.garbage += buf.len() as u64;
        buf.clear();
        Ok(None)
    }
}

impl MllpCodec {
    fn encode_bytes(&mut self, payload: &[u8], dst: &mut BytesMut) -> Result<(), MllpError> {
        if payload.len() > self.max_frame {
            return Err(MllpError::FrameTooLarge {
                limit: self.max_frame,
            });
        }
        if let Some(offset) = payload.iter().position(|&b| b == START || b == END) {
            return Err(MllpError::PayloadInvalid { offset });
        }
        dst.reserve(payload.len() + 3);
        dst.put_u8(START);
        dst.put_slice(payload);
        dst.put_u8(END);
        dst.put_u8(CR);
        Ok(())
    }
}

impl Encoder<&[u8]> for MllpCodec {
    type Error = MllpError;
    fn encode(&mut self, item: &[u8], dst: &mut BytesMut) -> Result<(), MllpError> {
        self.encode_bytes(item, dst)
    }
}

impl Encoder<Bytes> for MllpCodec {
    type Error = MllpError;
    fn encode(&mut self, item: Bytes, dst: &mut BytesMut) -> Result<(), MllpError> {
        self.encode_bytes(&item, dst)
    }
}

impl Encoder<Vec<u8>> for MllpCodec {
    type Error = MllpError;
    fn encode(&mut self, item: Vec<u8>, dst: &mut BytesMut) -> Result<(), MllpError> {
        self.encode_bytes(&item, dst)
    }
}

/// Frame one payload (convenience for callers without a codec at hand).
pub fn frame(payload: &[u8]) -> Result<Vec<u8>, MllpError> {
    let mut dst = BytesMut::new();
    MllpCodec::with_max_frame(usize::MAX).encode_bytes(payload, &mut dst)?;
    Ok(dst.to_vec())
}
