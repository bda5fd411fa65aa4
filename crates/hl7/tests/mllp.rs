//! MLLP codec: round trips, split reads, garbage, oversize frames, and an ACK exchange over an
//! in-memory connection.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use proptest::prelude::*;
use relais_core::Limits;
use relais_hl7::mllp::{MllpCodec, MllpError, frame};
use relais_hl7::{AckCode, build_ack, encode_for_wire};
use tokio_util::bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

fn cr_text(name: &str) -> Vec<u8> {
    String::from_utf8(example(name))
        .unwrap()
        .trim_end()
        .replace('\n', "\r")
        .into_bytes()
}

/// Feed `wire` to a decoder in chunks of the given sizes (cycled), then signal EOF.
fn decode_chunked(
    codec: &mut MllpCodec,
    wire: &[u8],
    sizes: &[usize],
) -> Result<Vec<Bytes>, MllpError> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < wire.len() {
        let n = sizes[k % sizes.len()].max(1).min(wire.len() - pos);
        k += 1;
        buf.extend_from_slice(&wire[pos..pos + n]);
        pos += n;
        while let Some(f) = codec.decode(&mut buf)? {
            out.push(f);
        }
    }
    while let Some(f) = codec.decode_eof(&mut buf)? {
        out.push(f);
    }
    Ok(out)
}

#[test]
fn round_trip_of_every_example() {
    let mut codec = MllpCodec::new(&Limits::default());
    let mut wire = BytesMut::new();
    let payloads: Vec<Vec<u8>> = example_names().iter().map(|n| cr_text(n)).collect();
    for p in &payloads {
        codec.encode(&p[..], &mut wire).unwrap();
    }
    assert_eq!(wire[0], 0x0B);
    assert!(wire.ends_with(&[0x1C, 0x0D]));
    let frames = decode_chunked(&mut codec, &wire, &[usize::MAX]).unwrap();
    assert_eq!(frames.len(), payloads.len());
    for (f, p) in frames.iter().zip(&payloads) {
        assert_eq!(&f[..], &p[..]);
        // A framed message parses directly, framing included.
        parse(&frame(p).unwrap());
    }
    assert_eq!(codec.frames_decoded(), payloads.len() as u64);
    assert_eq!(codec.garbage_bytes(), 0);
}

#[test]
fn split_reads_byte_by_byte_and_garbage_between_frames() {
    let a = cr_text(ACK);
    let b = cr_text(RPLC);
    let mut wire = b"noise before".to_vec();
    wire.extend(frame(&a).unwrap());
    wire.extend(b"\r\n\r\n");
    wire.extend(frame(&b).unwrap());
    wire.extend(b"xyz");
    let mut codec = MllpCodec::new(&Limits::default());
    let frames = decode_chunked(&mut codec, &wire, &[1, 7, 3, 1000]).unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(&frames[0][..], &a[..]);
    assert_eq!(&frames[1][..], &b[..]);
    assert_eq!(codec.garbage_bytes(), (12 + 4 + 3) as u64);
}

#[test]
fn lenient_end_and_restarted_frames() {
    // 0x1C without the final CR, then a frame abandoned by a new 0x0B, then a good frame.
    let mut wire = vec![0x0B];
    wire.extend(b"MSH|^~\\&|A");
    wire.push(0x1C);
    wire.extend([0x0B]);
    wire.extend(b"MSH|^~\\&|partial");
    wire.extend(frame(b"MSH|^~\\&|B").unwrap());
    let mut codec = MllpCodec::with_max_frame(1000);
    let frames = decode_chunked(&mut codec, &wire, &[2]).unwrap();
    assert_eq!(
        frames,
        vec![
            Bytes::from_static(b"MSH|^~\\&|A"),
            Bytes::from_static(b"MSH|^~\\&|B")
        ]
    );
    assert_eq!(
        codec.garbage_bytes(),
        1 + 16,
        "the abandoned frame counts as garbage"
    );

    // A lone 0x1C as the very last byte still ends the frame at EOF.
    let mut codec = MllpCodec::with_max_frame(1000);
    let frames = decode_chunked(&mut codec, b"\x0bMSH|^~\\&|C\x1c", &[usize::MAX]).unwrap();
    assert_eq!(frames, vec![Bytes::from_static(b"MSH|^~\\&|C")]);
}

#[test]
fn oversize_frames_refused() {
    // With the end marker in view.
    let mut codec = MllpCodec::with_max_frame(100);
    let wire = frame(&[b'A'; 101]).unwrap();
    let err = decode_chunked(&mut codec, &wire, &[usize::MAX]).unwrap_err();
    assert!(matches!(err, MllpError::FrameTooLarge { limit: 100 }));
    assert_eq!(err.code(), "MLLP-FRAME-TOO-LARGE");

    // Streaming without an end: refused as soon as the limit is passed, buffer released.
    let mut codec = MllpCodec::with_max_frame(1000);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0x0B]);
    let mut refused = false;
    for _ in 0..100 {
        buf.extend_from_slice(&[b'A'; 64]);
        match codec.decode(&mut buf) {
            Ok(None) => assert!(buf.len() <= 1001 + 64),
            Err(e) => {
                assert_eq!(e.code(), "MLLP-FRAME-TOO-LARGE");
                assert!(buf.is_empty());
                refused = true;
                break;
            }
            Ok(Some(_)) => panic!("no frame expected"),
        }
    }
    assert!(refused);

    // Exactly at the limit is fine.
    let mut codec = MllpCodec::with_max_frame(100);
    assert_eq!(
        decode_chunked(&mut codec, &frame(&[b'A'; 100]).unwrap(), &[9])
            .unwrap()
            .len(),
        1
    );

    // The encoder refuses too.
    let mut dst = BytesMut::new();
    assert!(matches!(
        MllpCodec::with_max_frame(10).encode(&[b'A'; 11][..], &mut dst),
        Err(MllpError::FrameTooLarge { .. })
    ));
}

#[test]
fn incomplete_frame_at_eof_and_bad_payloads() {
    let mut codec = MllpCodec::with_max_frame(1000);
    let err = decode_chunked(&mut codec, b"\x0bMSH|^~\\&|cut", &[4]).unwrap_err();
    assert!(matches!(err, MllpError::IncompleteFrame { buffered: 13 }));
    assert_eq!(err.code(), "MLLP-INCOMPLETE-FRAME");

    let err = frame(b"MSH\x0b|").unwrap_err();
    assert!(matches!(err, MllpError::PayloadInvalid { offset: 3 }));
    assert_eq!(err.to_finding().code, "MLLP-PAYLOAD-INVALID");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Any payloads (without framing bytes), any garbage between frames (without 0x0B), any chunking:
    /// the frames come back intact and the garbage is counted exactly.
    #[test]
    fn frames_survive_any_chunking(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no framing byte", |b| *b != 0x0B && *b != 0x1C), 0..300), 1..6),
        garbage in proptest::collection::vec(proptest::collection::vec(any::<u8>().prop_filter("no start byte", |b| *b != 0x0B), 0..20), 6),
        sizes in proptest::collection::vec(1usize..64, 1..8),
    ) {
        let mut wire = Vec::new();
        let mut expected_garbage = 0u64;
        for (p, g) in payloads.iter().zip(&garbage) {
            wire.extend(g);
            expected_garbage += g.len() as u64;
            wire.extend(frame(p).unwrap());
        }
        let mut codec = MllpCodec::with_max_frame(1000);
        let frames = decode_chunked(&mut codec, &wire, &sizes).unwrap();
        prop_assert_eq!(frames.len(), payloads.len());
        for (f, p) in frames.iter().zip(&payloads) {
            prop_assert_eq!(&f[..], &p[..]);
        }
        prop_assert_eq!(codec.garbage_bytes(), expected_garbage);
    }

    #[test]
    fn decoder_never_panics(data in proptest::collection::vec(any::<u8>(), 0..500), sizes in proptest::collection::vec(1usize..50, 1..5)) {
        let mut codec = MllpCodec::with_max_frame(64);
        let _ = decode_chunked(&mut codec, &data, &sizes);
    }
}

/// A sender and a receiver over an in-memory duplex: the receiver parses, validates and answers
/// with the ACK; the sender matches MSA-2 with its control id.
#[tokio::test(flavor = "current_thread")]
async fn message_and_ack_over_a_connection() {
    let (client, server) = tokio::io::duplex(256); // small pipe: forces split reads and writes
    let (server_read, server_write) = tokio::io::split(server);
    let (client_read, client_write) = tokio::io::split(client);
    let limits = Limits::default();

    let receiver = tokio::spawn({
        let limits = limits.clone();
        async move {
            let mut frames = FramedRead::new(server_read, MllpCodec::new(&limits));
            let mut out = FramedWrite::new(server_write, MllpCodec::new(&limits));
            let mut received = Vec::new();
            while let Some(frame) = frames.next().await {
                let frame = frame.expect("frame");
                let msg = relais_hl7::parse(&frame, &limits).expect("parses");
                let code = if relais_core::finding::all_valid(&relais_hl7::validate_profile(&msg)) {
                    AckCode::AA
                } else {
                    AckCode::AE
                };
                received.push(msg.control_id());
                let ack = build_ack(&msg, code, None);
                out.send(encode_for_wire(&ack)).await.expect("send ack");
            }
            received
        }
    });

    let mut out = FramedWrite::new(client_write, MllpCodec::new(&limits));
    let mut acks = FramedRead::new(client_read, MllpCodec::new(&limits));
    for name in [RPLC, ORU] {
        let payload = cr_text(name);
        let control = parse(&payload).control_id();
        out.send(Bytes::from(payload)).await.expect("send");
        let ack = acks.next().await.expect("an ack").expect("a frame");
        let ack = relais_hl7::parse(&ack, &limits).expect("ack parses");
        let msa = ack.segment("MSA", 1).expect("MSA");
        assert_eq!(msa.value(2), Some(control));
        // The replacement MDM is valid; the ORU example has a truncated mail body.
        let expected = if name == RPLC { "AA" } else { "AE" };
        assert_eq!(msa.value(1).as_deref(), Some(expected), "{name}");
    }
    // Shut the write side down (dropping it is not enough: the read half keeps the stream open).
    SinkExt::<Bytes>::close(&mut out).await.expect("close");
    drop(acks);
    let received = receiver.await.expect("receiver");
    assert_eq!(received.len(), 2);
}
