//! MLLP round-trips per second: Relais's DPI client (`relais_dpi::MllpClient`, one connection kept
//! open, original acknowledgement mode) builds an MDM^T02 for the sample discharge letter
//! (`relais_dpi::build_mdm`, the CDA in base64 in OBX 1) and waits for its ACK, one message
//! at a time, on loopback. Two real listeners:
//! - a minimal ACK server of this bench on relais-hl7 (parses every message, answers AA with
//!   `build_ack`): the client's own capacity; the goal (>= 2,000/s) is judged on it;
//! - the DPI test peer `tests/peers/dpi_peer.py` (hl7apy, strict MDM_T02 v2.6 parsing, a record
//!   line per message): a DPI that really reads the message, slower than the client.

use crate::summary::{median, record};
use relais_dpi::{
    AckOutcome, ClientConfig, Endpoints, MailFacts, MdmEvent, MdmInput, MetaFlags, MllpClient,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

/// Starts the in-bench ACK server on a free loopback port; its threads end with the process.
fn start_ack_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the ACK server");
    let address = listener.local_addr().expect("address").to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    address
}

/// Answers every MLLP frame of one connection with an AA (AE when it is not HL7).
fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let limits = relais_core::Limits::default();
    let mut buf: Vec<u8> = Vec::with_capacity(256 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // A whole frame: 0x0B payload 0x1C 0x0D.
        while let Some(end) = buf.windows(2).position(|w| w == [0x1C, 0x0D]) {
            let start = buf[..end]
                .iter()
                .position(|&b| b == 0x0B)
                .map_or(0, |s| s + 1);
            let answer = match relais_hl7::parse(&buf[start..end], &limits) {
                Ok(msg) => relais_hl7::build_ack(&msg, relais_hl7::AckCode::AA, None),
                Err(_) => return,
            };
            buf.drain(..end + 2);
            let framed = relais_hl7::mllp::frame(&relais_hl7::encode_for_wire(&answer))
                .expect("frame the ACK");
            if stream.write_all(&framed).is_err() {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Round-trips per second against `address`, median of `rounds` rounds of `count` messages.
fn round_trips(address: &str, rounds: usize, count: usize) -> Result<f64, String> {
    let root = relais_testsupport::workspace_root();
    let cda = std::fs::read(root.join("samples/documents/ldl-ses-n1.xml"))
        .map_err(|e| format!("samples/documents/ldl-ses-n1.xml: {e}"))?;
    let doc = relais_cda::read(&cda, &relais_core::Limits::default())
        .map_err(|e| format!("the sample CDA: {e}"))?;
    let endpoints = Endpoints {
        sending_application: "RELAIS".into(),
        sending_facility: "CH-DEMO".into(),
        receiving_application: "DPI".into(),
        receiving_facility: "CH-DEMO".into(),
        processing_id: "P".into(),
    };
    let mail = MailFacts {
        message_id: "bench-mllp@ch-demo.mssante.fr".into(),
        subject: "Lettre de liaison".into(),
        body_text: "Lettre de liaison.".into(),
        sender: "expediteur@ch-demo.mssante.fr".into(),
        recipients: vec!["dpi@ch-demo.mssante.fr".into()],
        ..MailFacts::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut client = MllpClient::new(ClientConfig::new(address));
        let mut rates = Vec::new();
        let mut seq = 0usize;
        for round in 0..=rounds {
            let t = Instant::now();
            for _ in 0..count {
                seq += 1;
                let control_id = format!("BENCH{seq}");
                let timestamp = relais_dpi::hl7_timestamp_now();
                let message = relais_dpi::build_mdm(&MdmInput {
                    event: MdmEvent::New,
                    cda: &cda,
                    header: &doc.header,
                    mail: &mail,
                    endpoints: &endpoints,
                    meta: MetaFlags::default(),
                    control_id: &control_id,
                    timestamp: &timestamp,
                })
                .map_err(|e| e.to_string())?;
                match client.send(&message).await {
                    Ok(AckOutcome::Accepted) => {}
                    other => return Err(format!("message {seq} was not accepted: {other:?}")),
                }
            }
            // Round 0 warms up (connection, caches) and is not counted.
            if round > 0 {
                rates.push(count as f64 / t.elapsed().as_secs_f64());
            }
        }
        if client.connections_opened() != 1 {
            return Err(format!(
                "the client opened {} connections instead of keeping one",
                client.connections_opened()
            ));
        }
        Ok(median(rates))
    })
}

pub fn suite(rounds: usize, count: usize) {
    println!("# relais-bench mllp");
    let cda_len = std::fs::metadata(
        relais_testsupport::workspace_root().join("samples/documents/ldl-ses-n1.xml"),
    )
    .map(|m| m.len())
    .unwrap_or(0);
    println!(
        "MDM^T02 with the sample discharge letter ({cda_len} bytes of CDA, base64 in OBX 1) built and sent one at a time on one \
         kept-open connection, ACK awaited; {count} messages per round, {rounds} rounds, median reported"
    );
    let address = start_ack_server();
    match round_trips(&address, rounds, count) {
        Ok(r) => {
            println!(
                "relais MLLP client -> relais-hl7 ACK server (bench, loopback): {r:.0} round-trips/s (goal >= 2,000/s)"
            );
            record(
                "MLLP round-trips, MDM^T02 + ACK AA, loopback, to a minimal relais-hl7 ACK server",
                format!("**{r:.0}/s**"),
                ">= 2,000/s",
                Some(r >= 2000.0),
            );
        }
        Err(e) => println!("MLLP to the bench ACK server: NOT MEASURED ({e})"),
    }
    let peer = relais_testsupport::dpi_peer::DpiPeer::start(&[]);
    let n = (count / 40).max(20);
    match round_trips(&peer.address(), rounds, n) {
        Ok(r) => {
            println!(
                "relais MLLP client -> tests/peers/dpi_peer.py (hl7apy, Python): {r:.0} round-trips/s (the peer's limit)"
            );
            record(
                "MLLP round-trips, same, to the hl7apy DPI test peer (Python)",
                format!("{r:.0}/s (bound by the peer)"),
                "–",
                None,
            );
        }
        Err(e) => println!("MLLP to the DPI test peer: NOT MEASURED ({e})"),
    }
}
