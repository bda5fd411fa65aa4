//! AdtListener over real TCP: the ANS PAM-FR examples (admission A01, sortie A03) and variants
//! built from them (A08 update, A40 merge, broken messages) are sent with relais-hl7's MLLP codec;
//! the test checks the PatientEvent handed over and the ACK received.

use futures_util::{SinkExt, StreamExt};
use relais_core::Limits;
use relais_dpi::{AdtListener, AdtListenerConfig, PatientEvent, codes};
use relais_hl7::mllp::MllpCodec;
use relais_hl7::{Message, validate_profile};
use relais_testsupport::ans_file;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

struct Running {
    address: String,
    rx: mpsc::Receiver<PatientEvent>,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

async fn start(capacity: usize, config: AdtListenerConfig) -> Running {
    let (tx, rx) = mpsc::channel(capacity);
    let listener = AdtListener::bind("127.0.0.1:0", config, tx).await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = tokio::spawn(listener.serve(async {
        let _ = stopped.await;
    }));
    Running {
        address,
        rx,
        stop: Some(stop),
        served,
    }
}

fn quick() -> AdtListenerConfig {
    AdtListenerConfig {
        handover_timeout: Duration::from_millis(300),
        ..AdtListenerConfig::default()
    }
}

async fn connect(address: &str) -> Framed<TcpStream, MllpCodec> {
    Framed::new(
        TcpStream::connect(address).await.unwrap(),
        MllpCodec::new(&Limits::default()),
    )
}

/// Send one payload and read the ACK.
async fn exchange(conn: &mut Framed<TcpStream, MllpCodec>, payload: &[u8]) -> Message {
    conn.send(payload.to_vec()).await.unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(10), conn.next())
        .await
        .expect("an ACK in time")
        .unwrap()
        .unwrap();
    relais_hl7::parse(&frame, &Limits::default()).expect("the ACK parses")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(ans_file(&format!("hl7v2-examples/{name}"))).unwrap()
}

fn msa(ack: &Message) -> (String, String) {
    let m = ack.segment("MSA", 1).expect("MSA");
    (
        m.value(1).unwrap_or_default(),
        m.value(2).unwrap_or_default(),
    )
}

/// ERR-3.1 and ERR-5.1 of the ACK.
fn err_codes(ack: &Message) -> (Option<String>, Option<String>) {
    let e = ack.segment("ERR", 1).expect("an ERR segment");
    (e.component_value(3, 1), e.component_value(5, 1))
}

#[tokio::test]
async fn the_ans_admission_is_handed_over_with_its_ins_and_traits_and_acknowledged() {
    let mut run = start(8, quick()).await;
    let mut conn = connect(&run.address).await;
    let ack = exchange(&mut conn, example("admission.er7").as_bytes()).await;
    assert_eq!(msa(&ack), ("AA".into(), "3975".into()));
    assert_eq!(ack.message_type().code, "ACK");
    assert_eq!(ack.message_type().trigger, "A01");
    assert_eq!(
        ack.msh().value(3).as_deref(),
        Some("DPI"),
        "sender and receiver swapped"
    );
    assert_eq!(ack.msh().value(5).as_deref(), Some("GAM"));
    let findings: Vec<_> = validate_profile(&ack)
        .into_iter()
        .filter(|f| f.is_error())
        .collect();
    assert!(findings.is_empty(), "{findings:#?}");

    let event = run
        .rx
        .try_recv()
        .expect("the event was handed over before the AA");
    assert_eq!(event.trigger, "A01");
    assert_eq!(event.control_id, "3975");
    assert_eq!(event.sending_application, "GAM");
    assert_eq!(event.updates.len(), 1);
    let u = &event.updates[0];
    assert_eq!(u.ipp.as_deref(), Some("000003"));
    assert_eq!(u.ipp_authority.as_deref(), Some("000897406"));
    assert_eq!(u.ins.as_deref(), Some("279035121518989"));
    assert_eq!(u.ins_oid.as_deref(), Some("1.2.250.1.213.1.4.10"));
    assert_eq!(u.birth_family.as_deref(), Some("PAT-TROIS"));
    assert_eq!(u.given_birth_first.as_deref(), Some("DOMINIQUE"));
    assert_eq!(u.birth_given_names.as_deref(), Some("DOMINIQUE"));
    assert_eq!(u.birth_date.as_deref(), Some("19790328"));
    assert_eq!(u.sex.as_deref(), Some("F"));
    assert_eq!(u.birthplace_insee.as_deref(), Some("63220"));
    assert_eq!(u.identity_status.as_deref(), Some("VALI"));
    assert_eq!(u.merged_ipp, None);
    assert_eq!(
        u.qualified_ins(),
        Some(("279035121518989", "1.2.250.1.213.1.4.10"))
    );

    let debug = format!("{event:?}");
    for secret in [
        "PAT-TROIS",
        "DOMINIQUE",
        "279035121518989",
        "19790328",
        "63220",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked in {debug}");
    }

    // The ANS discharge (A03) on the same connection.
    let ack = exchange(&mut conn, example("sortie.er7").as_bytes()).await;
    assert_eq!(msa(&ack), ("AA".into(), "3995".into()));
    let event = run.rx.try_recv().unwrap();
    assert_eq!(event.trigger, "A03");
    assert_eq!(event.updates[0].ins.as_deref(), Some("279035121518989"));

    run.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), run.served)
        .await
        .expect("serve stops")
        .unwrap();
    // Shut down: the idle connection is closed and no new one is accepted.
    let end = tokio::time::timeout(Duration::from_secs(5), conn.next())
        .await
        .expect("closed in time");
    assert!(end.is_none(), "the connection is closed at shutdown");
    assert!(
        TcpStream::connect(&run.address).await.is_err(),
        "nothing listens any more"
    );
}

#[tokio::test]
async fn an_update_and_a_merge_built_from_the_example() {
    let mut run = start(8, quick()).await;
    let mut conn = connect(&run.address).await;
    let admission = example("admission.er7");

    // A08: the identity server corrects the birth first names.
    let a08 = admission
        .replace("ADT^A01^ADT_A01|3975", "ADT^A08^ADT_A01|4001")
        .replace(
            "PAT-TROIS^DOMINIQUE^DOMINIQUE^^^^L",
            "PAT-TROIS^DOMINIQUE^DOMINIQUE MARIE^^^^L~MARTIN^DOMI^^^^^D",
        );
    let ack = exchange(&mut conn, a08.as_bytes()).await;
    assert_eq!(msa(&ack), ("AA".into(), "4001".into()));
    let event = run.rx.try_recv().unwrap();
    assert_eq!(event.trigger, "A08");
    let u = &event.updates[0];
    assert_eq!(u.birth_given_names_list(), ["DOMINIQUE", "MARIE"]);
    assert_eq!(
        u.birth_family.as_deref(),
        Some("PAT-TROIS"),
        "the birth name (L), not the used one (D)"
    );

    // A40: IPP 000099 is merged into 000003.
    let a40 = "MSH|^~\\&|GAM|CHU-X|DPI|CHU-X|20240306120000||ADT^A40^ADT_A39|4002|D|2.5^FRA^2.11|||||FRA|UNICODE UTF-8|FR||2.11^IHE_FRANCE-2.11-PAM\r\
        EVN||20240306120000\r\
        PID|1||000003^^^CHU-X&000897406&N^PI~279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS||PAT-TROIS^DOMINIQUE^DOMINIQUE^^^^L||19790328|F||||||||||||||||||||||||VALI\r\
        MRG|000099^^^CHU-X&000897406&N^PI";
    let ack = exchange(&mut conn, a40.as_bytes()).await;
    assert_eq!(msa(&ack), ("AA".into(), "4002".into()));
    let event = run.rx.try_recv().unwrap();
    assert_eq!(event.trigger, "A40");
    assert_eq!(event.updates[0].ipp.as_deref(), Some("000003"));
    assert_eq!(event.updates[0].merged_ipp.as_deref(), Some("000099"));
    assert_eq!(event.updates[0].identity_status.as_deref(), Some("VALI"));

    // A40 without MRG: refused, nothing handed over.
    let no_mrg = a40
        .replace("\rMRG|000099^^^CHU-X&000897406&N^PI", "")
        .replace("|4002|", "|4003|");
    let ack = exchange(&mut conn, no_mrg.as_bytes()).await;
    assert_eq!(msa(&ack), ("AE".into(), "4003".into()));
    assert_eq!(err_codes(&ack).0.as_deref(), Some("101"));
    assert!(run.rx.try_recv().is_err());
}

#[tokio::test]
async fn broken_messages_are_answered_ae_and_not_handed_over() {
    let mut run = start(8, quick()).await;
    let mut conn = connect(&run.address).await;
    let admission = example("admission.er7");

    // Unparseable: not HL7 at all, then an MSH followed by an unreadable segment.
    let ack = exchange(&mut conn, b"hello, this is not HL7").await;
    assert_eq!(msa(&ack).0, "AE");
    assert_eq!(err_codes(&ack).0.as_deref(), Some("199"));
    let broken = admission.replace("EVN||", "evn||");
    let ack = exchange(&mut conn, broken.as_bytes()).await;
    assert_eq!(
        msa(&ack),
        ("AE".into(), "3975".into()),
        "MSA-2 read from the raw MSH"
    );
    assert_eq!(ack.message_type().trigger, "A01");
    let text = ack
        .segment("ERR", 1)
        .unwrap()
        .component_value(3, 2)
        .unwrap();
    assert!(text.starts_with(codes::ADT_UNPARSEABLE.as_str()), "{text}");

    // No PID-3.
    let no_pid3 = admission.replace(
        "PID|1||000003^^^CHU-X&000897406&N^PI~279035121518989^^^ASIP-SANTE-INS-NIR&1.2.250.1.213.1.4.10&ISO^INS^^20101207|",
        "PID|1|||",
    );
    assert_ne!(no_pid3, admission);
    let ack = exchange(&mut conn, no_pid3.as_bytes()).await;
    assert_eq!(msa(&ack), ("AE".into(), "3975".into()));
    let (err3, err5) = err_codes(&ack);
    assert_eq!(err3.as_deref(), Some("101"));
    assert_eq!(err5, None, "a table 0357 code goes to ERR-3 alone");
    assert!(
        ack.segment("ERR", 1)
            .unwrap()
            .component_value(3, 2)
            .unwrap()
            .contains("PID-3 is empty")
    );

    // A malformed INS (wrong key), without leaking it.
    let bad_ins = admission.replace("279035121518989", "279035121518988");
    let ack = exchange(&mut conn, bad_ins.as_bytes()).await;
    assert_eq!(err_codes(&ack).0.as_deref(), Some("102"));
    assert!(!ack.text().contains("279035121518988"));

    // An event Relais does not take.
    let a02 = admission.replace("ADT^A01^ADT_A01", "ADT^A02^ADT_A02");
    let ack = exchange(&mut conn, a02.as_bytes()).await;
    assert_eq!(err_codes(&ack).0.as_deref(), Some("201"));

    assert!(run.rx.try_recv().is_err(), "nothing was handed over");

    // The connection still works.
    let ack = exchange(&mut conn, admission.as_bytes()).await;
    assert_eq!(msa(&ack).0, "AA");
    assert!(run.rx.try_recv().is_ok());
}

#[tokio::test]
async fn a_full_or_closed_consumer_gets_ar() {
    let run = start(1, quick()).await;
    let mut conn = connect(&run.address).await;
    let admission = example("admission.er7");
    assert_eq!(
        msa(&exchange(&mut conn, admission.as_bytes()).await).0,
        "AA"
    );
    // The channel holds one event nobody reads: the next one waits, then AR.
    let started = std::time::Instant::now();
    let ack = exchange(&mut conn, admission.replace("|3975|", "|3976|").as_bytes()).await;
    assert_eq!(msa(&ack), ("AR".into(), "3976".into()));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "waited for room first"
    );
    let (err3, err5) = err_codes(&ack);
    assert_eq!(
        (err3.as_deref(), err5.as_deref()),
        (Some("207"), Some(codes::ADT_HANDOVER.as_str()))
    );

    let Running { rx, .. } = run;
    drop(rx);
    let ack = exchange(&mut conn, admission.replace("|3975|", "|3977|").as_bytes()).await;
    assert_eq!(msa(&ack), ("AR".into(), "3977".into()));
}

#[tokio::test]
async fn the_configured_ipp_authority_selects_the_ipp() {
    let config = AdtListenerConfig {
        ipp_authority: Some("OTHER-DOMAIN".into()),
        ..quick()
    };
    let mut run = start(8, config).await;
    let mut conn = connect(&run.address).await;
    let admission = example("admission.er7");
    // Only the INS identifies the patient for this listener: still accepted, without IPP.
    let ack = exchange(&mut conn, admission.as_bytes()).await;
    assert_eq!(msa(&ack).0, "AA");
    let u = run.rx.try_recv().unwrap().updates.remove(0);
    assert_eq!(u.ipp, None);
    assert_eq!(u.ins.as_deref(), Some("279035121518989"));
    let two = admission.replace(
        "000003^^^CHU-X&000897406&N^PI~",
        "000003^^^CHU-X&000897406&N^PI~777^^^OTHER-DOMAIN&1.2.3.4&ISO^PI~",
    );
    exchange(&mut conn, two.as_bytes()).await;
    let u = run.rx.try_recv().unwrap().updates.remove(0);
    assert_eq!(
        (u.ipp.as_deref(), u.ipp_authority.as_deref()),
        (Some("777"), Some("1.2.3.4"))
    );
}

#[test]
fn mutated_admissions_never_panic() {
    // Every byte of the example replaced by each delimiter or a control character: the
    // extraction gives an event or a refusal, never a panic.
    let admission = example("admission.er7").into_bytes();
    let mut outcomes = (0usize, 0usize);
    for pos in 0..admission.len() {
        for b in [b'|', b'^', b'~', b'\\', b'&', b'\r', 0u8, 0xFF] {
            let mut m = admission.clone();
            m[pos] = b;
            if let Ok(msg) = relais_hl7::parse(&m, &Limits::default()) {
                match relais_dpi::extract_event(&msg, None) {
                    Ok(_) => outcomes.0 += 1,
                    Err(e) => {
                        outcomes.1 += 1;
                        assert!(!e.message.contains("279035121518989"), "{}", e.message);
                    }
                }
            }
            let _ = relais_dpi::fallback_ack(&m, relais_hl7::AckCode::AE, "199", "x");
        }
    }
    assert!(outcomes.0 > 0 && outcomes.1 > 0, "{outcomes:?}");
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection_and_the_listener_goes_on() {
    let config = AdtListenerConfig {
        limits: Limits {
            max_hl7_bytes: 2048,
            ..Limits::default()
        },
        ..quick()
    };
    let mut run = start(8, config).await;
    let mut conn = connect(&run.address).await;
    conn.send(vec![b'A'; 10_000]).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), conn.next())
        .await
        .expect("closed in time");
    assert!(
        next.is_none() || next.unwrap().is_err(),
        "no answer to an oversized frame"
    );
    let mut conn = connect(&run.address).await;
    let ack = exchange(&mut conn, example("admission.er7").as_bytes()).await;
    assert_eq!(msa(&ack).0, "AA");
    assert!(run.rx.try_recv().is_ok());
}
