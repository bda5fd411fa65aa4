//! Property tests: no input makes the reader panic, and limits always hold.

mod common;

use common::*;
use proptest::prelude::*;
use relais_core::Limits;
use relais_mssante::{MailError, fuzz_entry, parse_mail, sniff_is_mail};
use std::sync::OnceLock;

fn valid_mail() -> &'static [u8] {
    static MAIL: OnceLock<Vec<u8>> = OnceLock::new();
    MAIL.get_or_init(mssante_mail)
}

/// Fragments that steer mutations towards MIME structure rather than noise.
const SNIPPETS: &[&[u8]] = &[
    b"\r\n",
    b"\r\n\r\n",
    b"--",
    b"=",
    b"==",
    b"Content-Type: multipart/mixed; boundary=\"z\"\r\n\r\n--z\r\n",
    b"Content-Type: message/rfc822\r\n\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"=?utf-8?B?w6k=?=",
    b"\xff\xfe\x00",
    b"X-MSS-INS: ?\r\n",
];

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Delete(usize, usize),
    Insert(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Flip(p, b)),
        (any::<usize>(), 0usize..64).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), 0..SNIPPETS.len()).prop_map(|(p, s)| Edit::Insert(p, s)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(raw: &mut Vec<u8>, edit: &Edit) {
    let at = |p: usize, len: usize| if len == 0 { 0 } else { p % (len + 1) };
    match *edit {
        Edit::Flip(p, b) => {
            if !raw.is_empty() {
                let i = p % raw.len();
                raw[i] ^= b;
            }
        }
        Edit::Delete(p, n) => {
            let i = at(p, raw.len());
            let end = (i + n).min(raw.len());
            raw.drain(i..end);
        }
        Edit::Insert(p, s) => {
            let i = at(p, raw.len());
            raw.splice(i..i, SNIPPETS[s].iter().copied());
        }
        Edit::Truncate(p) => {
            let i = at(p, raw.len());
            raw.truncate(i);
        }
    }
}

fn check_limits(raw: &[u8], limits: &Limits) {
    match parse_mail(raw, limits) {
        Ok(mail) => {
            for a in &mail.attachments {
                assert!(!a.part.is_empty());
            }
        }
        Err(e) => {
            // Every refusal carries one of the catalogued codes.
            assert!(relais_mssante::codes::ALL.contains(&e.code()));
            if let MailError::TooLarge { size, limit } = e {
                assert!(size > limit);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        fuzz_entry(&bytes);
        let _ = sniff_is_mail(&bytes);
    }

    #[test]
    fn random_bodies_behind_real_headers_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let mut raw = b"From: a@cha.mssante.fr\r\nContent-Type: multipart/mixed; boundary=\"z\"\r\n\r\n".to_vec();
        raw.extend_from_slice(&bytes);
        check_limits(&raw, &Limits::default());
    }

    #[test]
    fn mutations_of_a_valid_mail_never_panic(edits in prop::collection::vec(edit(), 1..12)) {
        let mut raw = valid_mail().to_vec();
        for e in &edits {
            apply(&mut raw, e);
        }
        fuzz_entry(&raw);
        check_limits(&raw, &Limits { max_mime_parts: 4, max_mime_depth: 1, ..Limits::default() });
    }
}
