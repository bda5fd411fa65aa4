//! Segment order and cardinality, checked against a small declarative grammar per profile.
//!
//! A grammar is a list of slots in message order. Each slot admits some segment names, each with
//! a cardinality; a slot may require that its first segment be a given one (an OBX group starts
//! with OBX). Segments advance through the slots; a segment belonging to an earlier slot is out of
//! order, unless it starts a new repetition of a repeatable group (ORU's ORDER_OBSERVATION).
//! This covers the ANS profiles, whose groups are all introduced by a distinct segment.

use crate::codes;
use crate::message::Message;
use relais_core::{Finding, Location};

/// Unbounded cardinality.
pub(crate) const MANY: u32 = u32::MAX;

/// One slot: the segments it admits as `(name, min, max)`, and the segment it must start with.
pub(crate) struct Slot {
    pub segs: &'static [(&'static str, u32, u32)],
    pub lead: Option<&'static str>,
}

/// A message grammar.
pub(crate) struct Grammar {
    pub slots: &'static [Slot],
    /// Slots `(first, last)` forming a group that may repeat; it restarts when a segment of slot
    /// `first` appears after it.
    pub repeat: Option<(usize, usize)>,
    /// Z-segments (local extensions, PAM-FR's ZBE/ZFA...) are accepted anywhere after the header.
    pub allow_z: bool,
    /// Label used in messages (`MDM_T02`).
    pub label: &'static str,
}

const fn s(segs: &'static [(&'static str, u32, u32)]) -> Slot {
    Slot { segs, lead: None }
}

const fn group(lead: &'static str, segs: &'static [(&'static str, u32, u32)]) -> Slot {
    Slot {
        segs,
        lead: Some(lead),
    }
}

/// MDM_T02 as profiled by ig-lps-mss and ig-trans-cda (v2.6).
pub(crate) const MDM: Grammar = Grammar {
    slots: &[
        s(&[("MSH", 1, 1)]),
        s(&[("SFT", 0, MANY)]),
        s(&[("UAC", 0, 1)]),
        s(&[("EVN", 1, 1)]),
        s(&[("PID", 1, 1)]),
        s(&[("PV1", 1, 1)]),
        s(&[("ORC", 1, 1)]),
        group("TQ1", &[("TQ1", 0, MANY), ("TQ2", 0, MANY)]),
        s(&[("OBR", 1, 1)]),
        s(&[("NTE", 0, MANY)]),
        s(&[("TXA", 1, 1)]),
        group(
            "OBX",
            &[("OBX", 1, MANY), ("PRT", 0, MANY), ("NTE", 0, MANY)],
        ),
    ],
    repeat: None,
    allow_z: false,
    label: "MDM_T02",
};

/// ORU_R01 v2.5 as profiled by ig-trans-cda (ORC required).
pub(crate) const ORU: Grammar = Grammar {
    slots: &[
        s(&[("MSH", 1, 1)]),
        s(&[("SFT", 0, MANY)]),
        s(&[("PID", 1, 1)]),
        s(&[("PD1", 0, 1)]),
        s(&[("NTE", 0, MANY)]),
        s(&[("NK1", 0, MANY)]),
        s(&[("PV1", 0, 1)]),
        s(&[("PV2", 0, 1)]),
        // ORDER_OBSERVATION, repeatable: slots 8..=12.
        s(&[("ORC", 1, 1)]),
        s(&[("OBR", 1, 1)]),
        s(&[("NTE", 0, MANY)]),
        group("TQ1", &[("TQ1", 0, MANY), ("TQ2", 0, MANY)]),
        group(
            "OBX",
            &[("OBX", 1, MANY), ("PRT", 0, MANY), ("NTE", 0, MANY)],
        ),
        s(&[("CTI", 0, MANY)]),
        s(&[("DSC", 0, 1)]),
    ],
    repeat: Some((8, 12)),
    allow_z: false,
    label: "ORU_R01",
};

/// ACK (v2.5/v2.6).
pub(crate) const ACK: Grammar = Grammar {
    slots: &[
        s(&[("MSH", 1, 1)]),
        s(&[("SFT", 0, MANY)]),
        s(&[("UAC", 0, 1)]),
        s(&[("MSA", 1, 1)]),
        s(&[("ERR", 0, MANY)]),
    ],
    repeat: None,
    allow_z: false,
    label: "ACK",
};

/// ZAM_Z01 (ig-trans-cda business acknowledgements).
pub(crate) const ZAM: Grammar = Grammar {
    slots: &[
        s(&[("MSH", 1, 1)]),
        s(&[("SFT", 0, MANY)]),
        s(&[("EVN", 0, 1)]),
        group("OBX", &[("OBX", 1, 2), ("NTE", 0, MANY)]),
        s(&[("ERR", 0, 1)]),
    ],
    repeat: None,
    allow_z: false,
    label: "ZAM_Z01",
};

/// Segments admitted after PV1 in ADT_A01/A03/A05 (IHE PAM, v2.5), in any order.
const ADT_TAIL: &[(&str, u32, u32)] = &[
    ("PV2", 0, 1),
    ("ROL", 0, MANY),
    ("DB1", 0, MANY),
    ("OBX", 0, MANY),
    ("AL1", 0, MANY),
    ("DG1", 0, MANY),
    ("DRG", 0, 1),
    ("PR1", 0, MANY),
    ("GT1", 0, MANY),
    ("IN1", 0, MANY),
    ("IN2", 0, MANY),
    ("IN3", 0, MANY),
    ("ACC", 0, 1),
    ("UB1", 0, 1),
    ("UB2", 0, 1),
    ("PDA", 0, 1),
    ("NTE", 0, MANY),
];

/// ADT_A01 / ADT_A03 / ADT_A05 (A01, A03, A04, A08, A28, A31).
pub(crate) const ADT_VISIT: Grammar = Grammar {
    slots: &[
        s(&[("MSH", 1, 1)]),
        s(&[("SFT", 0, MANY)]),
        s(&[("UAC", 0, 1)]),
        s(&[("EVN", 1, 1)]),
        s(&[("PID", 1, 1)]),
        s(&[("PD1", 0, 1)]),
        s(&[("ROL", 0, MANY)]),
        s(&[("NK1", 0, MANY)]),
        s(&[("PV1", 1, 1)]),
        s(ADT_TAIL),
    ],
    repeat: None,
    allow_z: true,
    label: "ADT",
};

/// ADT_A39 (A40, merge of patient identifiers).
pub(crate) const ADT_MERGE: Grammar = Grammar {
    slots: &[
        s(&[("MSH", 1, 1)]),
        s(&[("SFT", 0, MANY)]),
        s(&[("EVN", 1, 1)]),
        s(&[("PID", 1, 1)]),
        s(&[("PD1", 0, 1)]),
        s(&[("MRG", 1, 1)]),
        s(&[("PV1", 0, 1)]),
    ],
    repeat: Some((3, 6)),
    allow_z: true,
    label: "ADT_A39",
};

/// Check the message against a grammar.
pub(crate) fn check(msg: &Message, g: &Grammar, out: &mut Vec<Finding>) {
    let n_slots = g.slots.len();
    let mut counts: Vec<Vec<u32>> = g.slots.iter().map(|sl| vec![0; sl.segs.len()]).collect();
    let mut entered = vec![false; n_slots];
    let mut reported_missing: Vec<&str> = Vec::new();
    let mut cur = 0usize;
    let find = |name: &str, slot: usize| g.slots[slot].segs.iter().position(|(n, _, _)| *n == name);

    // `after`: when set, a segment found later in the message is not reported as missing (it
    // will be reported as out of order instead).
    let names: Vec<&str> = msg.segments().map(|s| s.name()).collect();
    let mut missing =
        |slot: usize, counts: &[u32], out: &mut Vec<Finding>, after: Option<usize>| {
            for (k, (name, min, _)) in g.slots[slot].segs.iter().enumerate() {
                let later = after.is_some_and(|pos| names[pos..].contains(name));
                if counts[k] < *min && !later && !reported_missing.contains(name) {
                    reported_missing.push(name);
                    out.push(
                        Finding::error(
                            codes::HL7_SEGMENT_MISSING,
                            format!(
                                "segment {name} is missing: the {} profile requires it",
                                g.label
                            ),
                        )
                        .at(Location::Hl7Field((*name).to_string())),
                    );
                }
            }
        };

    for seg in msg.segments() {
        let name = seg.name();
        let here = seg.location_prefix();
        // Stay in the current slot when it admits the segment.
        let (slot, k) = if let Some(k) = find(name, cur) {
            (cur, k)
        } else if let Some(j) = (cur + 1..n_slots).find(|&j| find(name, j).is_some()) {
            missing(cur, &counts[cur], out, Some(seg.index()));
            for (skipped, c) in counts.iter().enumerate().take(j).skip(cur + 1) {
                missing(skipped, c, out, Some(seg.index()));
            }
            cur = j;
            (j, find(name, j).unwrap_or(0))
        } else if let Some((first, last)) = g.repeat
            && cur > first
            && cur <= last
            && find(name, first).is_some()
        {
            // A new repetition of the repeatable group.
            for (slot, c) in counts.iter().enumerate().take(last + 1).skip(cur) {
                missing(slot, c, out, None);
            }
            for slot in first..=last {
                counts[slot].iter_mut().for_each(|c| *c = 0);
                entered[slot] = false;
            }
            cur = first;
            (first, find(name, first).unwrap_or(0))
        } else if (0..cur).any(|j| find(name, j).is_some()) {
            out.push(
                Finding::error(
                    codes::HL7_SEGMENT_ORDER,
                    format!(
                        "segment {here} is out of order: the {} profile places {name} before the segments that precede it here",
                        g.label
                    ),
                )
                .at(Location::Hl7Field(here)),
            );
            continue;
        } else {
            if !(g.allow_z && name.starts_with('Z')) {
                out.push(
                    Finding::warning(
                        codes::HL7_SEGMENT_UNEXPECTED,
                        format!("segment {name} is not part of the {} profile; receivers may ignore or reject it", g.label),
                    )
                    .at(Location::Hl7Field(here)),
                );
            }
            continue;
        };

        if !entered[slot] {
            entered[slot] = true;
            if let Some(lead) = g.slots[slot].lead
                && lead != name
            {
                out.push(
                    Finding::error(
                        codes::HL7_SEGMENT_ORDER,
                        format!("segment {here} must follow a {lead} segment of its group"),
                    )
                    .at(Location::Hl7Field(here.clone())),
                );
            }
        }
        counts[slot][k] += 1;
        let max = g.slots[slot].segs[k].2;
        if counts[slot][k] > max {
            out.push(
                Finding::error(
                    codes::HL7_SEGMENT_REPEATED,
                    format!("segment {here} repeats {name}, which the {} profile allows at most {max} time(s) here", g.label),
                )
                .at(Location::Hl7Field(here)),
            );
        }
    }
    for (slot, c) in counts.iter().enumerate().skip(cur) {
        missing(slot, c, out, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relais_core::Limits;

    fn run(g: &Grammar, segs: &[&str]) -> Vec<(String, String)> {
        let mut text = String::from("MSH|^~\\&|A|B|C|D|1||X^Y^Z|1|P|2.6");
        for s in segs {
            text.push('\r');
            text.push_str(s);
            text.push('|');
        }
        let msg = crate::parse(text.as_bytes(), &Limits::default()).unwrap();
        let mut out = Vec::new();
        check(&msg, g, &mut out);
        out.into_iter()
            .map(|f| (f.code.to_string(), f.location.to_string()))
            .collect()
    }

    #[test]
    fn mdm_in_order_is_clean() {
        let segs = [
            "EVN", "PID", "PV1", "ORC", "OBR", "TXA", "OBX", "PRT", "PRT", "OBX", "OBX", "NTE",
        ];
        assert!(run(&MDM, &segs).is_empty());
    }

    #[test]
    fn missing_order_repeated_unexpected() {
        let f = run(
            &MDM,
            &[
                "EVN", "PV1", "PID", "ORC", "OBR", "TXA", "TXA", "PRT", "OBX", "ZZZ",
            ],
        );
        let codes: Vec<&str> = f.iter().map(|(c, _)| c.as_str()).collect();
        assert!(
            f.contains(&("HL7-SEGMENT-ORDER".into(), "HL7 PID[1]".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&("HL7-SEGMENT-REPEATED".into(), "HL7 TXA[2]".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&("HL7-SEGMENT-ORDER".into(), "HL7 PRT[1]".into())),
            "{f:?}"
        );
        assert!(
            f.contains(&("HL7-SEGMENT-UNEXPECTED".into(), "HL7 ZZZ[1]".into())),
            "{f:?}"
        );
        assert_eq!(codes.len(), 4, "{f:?}");
    }

    #[test]
    fn missing_at_end() {
        let f = run(&MDM, &["EVN", "PID", "PV1", "ORC", "OBR"]);
        assert_eq!(
            f,
            vec![
                ("HL7-SEGMENT-MISSING".to_string(), "HL7 TXA".to_string()),
                ("HL7-SEGMENT-MISSING".to_string(), "HL7 OBX".to_string())
            ]
        );
    }

    #[test]
    fn oru_order_group_repeats() {
        assert!(
            run(
                &ORU,
                &[
                    "PID", "PV1", "ORC", "OBR", "OBX", "PRT", "ORC", "OBR", "OBX"
                ]
            )
            .is_empty()
        );
        let f = run(&ORU, &["PID", "ORC", "OBR", "OBX", "ORC", "OBX"]);
        assert_eq!(
            f,
            vec![("HL7-SEGMENT-MISSING".to_string(), "HL7 OBR".to_string())]
        );
    }

    #[test]
    fn adt_tail_accepts_z_segments() {
        assert!(run(&ADT_VISIT, &["EVN", "PID", "PV1", "ZBE", "PV2", "ZFA"]).is_empty());
        let f = run(&ADT_MERGE, &["EVN", "PID", "MRG", "PID", "MRG", "PV1"]);
        assert!(f.is_empty(), "{f:?}");
    }
}
