//! MllpClient against scripted misbehaving servers (in this process, on loopback): answers that
//! name another message, garbage, nothing to connect to, a connection the server closes under a
//! reused connection, framing bytes in the message.

use futures_util::{SinkExt, StreamExt};
use relais_core::Limits;
use relais_dpi::{AckOutcome, ClientConfig, DpiError, MllpClient, codes};
use relais_hl7::mllp::MllpCodec;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::codec::Framed;

fn message(control_id: &str) -> String {
    format!(
        "MSH|^~\\&|RELAIS|CHU|DPI|CHU|20240101||MDM^T02^MDM_T02|{control_id}|P|2.6|||||FRA|UNICODE UTF-8\rEVN||20240101"
    )
}

fn ack(code: &str, control_id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|DPI|CHU|RELAIS|CHU|20240101||ACK^T02^ACK|A|P|2.6\rMSA|{code}|{control_id}")
        .into_bytes()
}

/// What the scripted server does with the n-th frame (0-based, over all connections) it reads.
#[derive(Clone, Copy)]
enum Act {
    /// Answer AA for the control id received.
    Ack,
    /// Answer with a fixed payload.
    Raw(&'static [u8]),
    /// Close the connection without answering.
    Close,
}

/// A server following `script`; returns its address and the control ids it received.
async fn scripted(script: Vec<Act>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        let mut step = 0;
        while let Ok((stream, _)) = listener.accept().await {
            let mut framed = Framed::new(stream, MllpCodec::new(&Limits::default()));
            while let Some(Ok(frame)) = framed.next().await {
                let text = String::from_utf8_lossy(&frame).into_owned();
                let id = relais_dpi::control_id_of(&text).unwrap_or_default();
                seen2.lock().unwrap().push(id.clone());
                let act = script.get(step).copied().unwrap_or(Act::Ack);
                step += 1;
                match act {
                    Act::Ack => framed.send(ack("AA", &id)).await.unwrap(),
                    Act::Raw(bytes) => framed.send(bytes.to_vec()).await.unwrap(),
                    Act::Close => break,
                }
            }
        }
    });
    (address, seen)
}

fn client(address: &str) -> MllpClient {
    let mut c = ClientConfig::new(address);
    c.ack_timeout = Duration::from_secs(5);
    c.connect_timeout = Duration::from_secs(5);
    MllpClient::new(c)
}

#[tokio::test]
async fn an_ack_for_another_message_is_an_error_and_drops_the_connection() {
    let wrong: &'static [u8] =
        b"MSH|^~\\&|DPI|CHU|RELAIS|CHU|20240101||ACK^T02^ACK|A|P|2.6\rMSA|AA|OTHER-9";
    let (address, _) = scripted(vec![Act::Raw(wrong), Act::Ack]).await;
    let mut c = client(&address);
    let err = c.send(&message("C-1")).await.unwrap_err();
    match &err {
        DpiError::ControlIdMismatch { expected, got } => {
            assert_eq!((expected.as_str(), got.as_str()), ("C-1", "OTHER-9"))
        }
        other => panic!("{other}"),
    }
    assert_eq!(err.code(), codes::DPI_ACK_MISMATCH);
    assert!(!err.is_transient());
    assert!(!c.is_connected());
    assert_eq!(c.send(&message("C-2")).await.unwrap(), AckOutcome::Accepted);
    assert_eq!(c.connections_opened(), 2);
}

#[tokio::test]
async fn garbage_answers_are_protocol_errors() {
    let (address, _) = scripted(vec![
        Act::Raw(b"this is not HL7"),
        Act::Raw(b"MSH|^~\\&|DPI|CHU|RELAIS|CHU|20240101||ACK^T02^ACK|A|P|2.6\rMSA|ZZ|C-2"),
        Act::Raw(b"MSH|^~\\&|DPI|CHU|RELAIS|CHU|20240101||ADT^A01|A|P|2.5\rMSA|AA|C-3"),
    ])
    .await;
    let mut c = client(&address);
    for id in ["C-1", "C-2", "C-3"] {
        let err = c.send(&message(id)).await.unwrap_err();
        assert!(matches!(err, DpiError::Protocol { .. }), "{id}: {err}");
        assert_eq!(err.code(), codes::DPI_ACK_INVALID);
    }
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let mut c = client(&address);
    let err = c.send(&message("C-1")).await.unwrap_err();
    assert!(matches!(err, DpiError::Connect { .. }), "{err}");
    assert_eq!(err.code(), codes::DPI_CONNECT);
    assert!(err.not_sent() && err.is_transient());
    assert!(err.to_string().contains(&address), "{err}");
}

#[tokio::test]
async fn a_reused_connection_closed_before_the_answer_is_retried_once_with_the_same_control_id() {
    // Connection 1 answers the first message, then closes on the second without answering;
    // the client sends the second again on connection 2.
    let (address, seen) = scripted(vec![Act::Ack, Act::Close, Act::Ack]).await;
    let mut c = client(&address);
    assert_eq!(c.send(&message("C-1")).await.unwrap(), AckOutcome::Accepted);
    assert_eq!(c.send(&message("C-2")).await.unwrap(), AckOutcome::Accepted);
    assert_eq!(c.connections_opened(), 2);
    assert_eq!(*seen.lock().unwrap(), ["C-1", "C-2", "C-2"]);

    // On a fresh connection the same failure is reported, not retried.
    let (address, seen) = scripted(vec![Act::Close]).await;
    let mut c = client(&address);
    assert!(matches!(
        c.send(&message("C-9")).await.unwrap_err(),
        DpiError::Closed
    ));
    assert_eq!(*seen.lock().unwrap(), ["C-9"]);
}

#[tokio::test]
async fn unsendable_messages_are_refused_before_connecting() {
    let mut c = client("127.0.0.1:1");
    for bad in [
        String::from("PID|1"),
        message(""),
        format!("{}\x0b", message("C-1")),
    ] {
        let err = c.send(&bad).await.unwrap_err();
        assert!(matches!(err, DpiError::InvalidMessage { .. }), "{err}");
        assert_eq!(err.code(), codes::DPI_MESSAGE_INVALID);
    }
    let mut small = ClientConfig::new("127.0.0.1:1");
    small.limits.max_hl7_bytes = 10;
    let err = MllpClient::new(small)
        .send(&message("C-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, DpiError::InvalidMessage { .. }), "{err}");
    assert_eq!(c.connections_opened(), 0);
}
