//! The parsers' fast paths agree with the general ones: `Keys::from_parts` with `collect()`, the currency
//! lookup table with the ISO list, a compact processor record with its owned fields, the fast trim with
//! `str::trim`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use recon_core::{
    Currency, Keys, Kind, LedgerFields, LedgerRow, LedgerStatus, LedgerType, Location, Money, NewLedgerRow,
    NewRecord, Processor, ProcessorRecord, ProcessorStatus, RecordFields, TooLarge, MAX_RECORD_TEXT,
};

proptest! {
    /// The fast trim every field is read through leaves what `str::trim` leaves, whatever the ends hold
    /// (ASCII, control characters, Unicode white space such as NBSP and EM SPACE, other letters).
    #[test]
    fn the_fast_trim_equals_str_trim(s in "[ a\\t\\r\\n\\x0b\\x0c\\x00~\u{a0}\u{2003}\u{3000}\u{feff}é]{0,6}") {
        prop_assert_eq!(recon_core::model::trim(&s), s.trim());
    }

    #[test]
    fn keys_from_parts_equals_collect(parts in prop::collection::vec("[ a-c\\x00]{0,4}", 0..12)) {
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let collected: Keys = refs.iter().collect();
        prop_assert_eq!(Keys::from_parts(&refs), collected);
    }

    /// Packing keeps the keys as the plain rule says (trimmed; empty ones, ones holding NUL and repeats
    /// dropped; first occurrence order), past the eight keys whose places packing tracks too.
    #[test]
    fn packed_keys_follow_the_plain_rule(parts in prop::collection::vec("[ a-l\\x00]{0,3}", 0..24)) {
        let mut want: Vec<&str> = Vec::new();
        for p in &parts {
            let k = p.trim();
            if !k.is_empty() && !k.contains('\0') && !want.contains(&k) {
                want.push(k);
            }
        }
        let keys: Keys = parts.iter().collect();
        prop_assert_eq!(keys.iter().collect::<Vec<_>>(), want);
    }

    /// A record whose id is also one of its keys (a Stripe `txn_`, a Square payment id) keeps the id once
    /// and gives it back among the keys in its place, also repeated, and padded with spaces; the fields, the
    /// owned record and the serialised shape are as for any record (that the id is written once:
    /// `model::tests` in the crate).
    #[test]
    fn a_record_whose_id_is_a_key_gives_it_back_in_place(
        id in "[a-c]{1,3}",
        keys in prop::collection::vec("[ a-c\\x00]{0,3}", 0..5),
        places in prop::collection::vec((0usize..6, prop::bool::ANY), 1..3),
    ) {
        let mut parts: Vec<String> = keys.clone();
        for (at, padded) in &places {
            let k = if *padded { format!(" {id} ") } else { id.clone() };
            parts.insert((*at).min(parts.len()), k);
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let new = |keys: &[&str]| ProcessorRecord::new(NewRecord {
            id: &id,
            keys,
            reference: None,
            other_references: &[],
            kind: Kind::Charge,
            amount: Money::new(1, Currency::parse("USD").unwrap()),
            fee: None,
            net: None,
            status: ProcessorStatus::Succeeded,
            occurred_at: None,
            location: Location { object: 0, line: 1 },
        })
        .unwrap();
        let packed = new(&refs);
        let want: Keys = refs.iter().collect();
        prop_assert_eq!(packed.keys().iter().collect::<Vec<_>>(), want.iter().collect::<Vec<_>>());
        prop_assert_eq!(packed.keys(), want.list());
        prop_assert!(!packed.keys().is_empty());
        prop_assert_eq!(&packed.fields().keys, &want);
        let owned = ProcessorRecord::try_from(packed.fields()).unwrap();
        prop_assert_eq!(&owned, &packed);
        let back: ProcessorRecord = serde_json::from_value(serde_json::to_value(&packed).unwrap()).unwrap();
        prop_assert_eq!(&back, &packed);
    }

    /// A record packed from borrowed text (the parsers' path) reads back every field as given, equals the
    /// one packed from owned fields, and survives a JSON round trip.
    #[test]
    fn a_compact_record_keeps_every_field(
        id in "[a-z_\\x00-\\x02 ]{0,6}",
        keys in prop::collection::vec("[ a-c\\x00]{0,4}", 0..6),
        reference in prop::option::of("[ a-cé\\x00]{0,4}"),
        others in prop::collection::vec("[ a-c\\x00]{0,4}", 0..4),
        fee in prop::option::of(any::<i64>()),
        other_net in prop::option::of(any::<i64>()),
        derived in any::<bool>(),
        at in prop::option::of(any::<i64>()),
        minor in any::<i64>(),
        line in any::<u32>().prop_map(u64::from),
    ) {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        let location = Location { object: 3, line };
        let amount = Money::new(minor, Currency::parse("JPY").unwrap());
        // the net as processors report it (the gross less the fee) or any other figure
        let net = match (derived, fee) {
            (true, Some(f)) => minor.checked_sub(f).or(other_net),
            _ => other_net,
        };
        let packed = ProcessorRecord::new(NewRecord {
            id: &id,
            keys: &keys,
            reference: reference.as_deref(),
            other_references: &others,
            kind: Kind::Dispute,
            amount,
            fee,
            net,
            status: ProcessorStatus::Reversed,
            occurred_at: at,
            location,
        });
        // a net that is not the gross less the fee is refused, never kept beside figures it contradicts
        if let (Some(f), Some(n)) = (fee, net) {
            if minor.checked_sub(f) != Some(n) {
                prop_assert_eq!(packed.err(), Some(TooLarge::Net { gross: minor, fee: f, net: n }));
                return Ok(());
            }
        }
        let packed = packed.unwrap();
        let fields = RecordFields {
            id: id.as_str().into(),
            keys: keys.iter().collect(),
            reference: reference.as_deref().map(Into::into),
            other_references: others.iter().collect(),
            kind: Kind::Dispute,
            amount,
            fee,
            net,
            status: ProcessorStatus::Reversed,
            occurred_at: at,
            location,
        };
        prop_assert_eq!(packed.id(), id.as_str());
        prop_assert_eq!(packed.keys().iter().collect::<Vec<_>>(), fields.keys.iter().collect::<Vec<_>>());
        let got = packed.reference();
        prop_assert_eq!(got.as_deref(), reference.as_deref());
        prop_assert_eq!(
            packed.other_references().iter().collect::<Vec<_>>(),
            fields.other_references.iter().collect::<Vec<_>>()
        );
        prop_assert_eq!((packed.fee(), packed.net(), packed.occurred_at()), (fee, net, at));
        prop_assert_eq!((packed.kind, packed.status, packed.amount(), packed.location()), (Kind::Dispute, ProcessorStatus::Reversed, amount, location));
        prop_assert_eq!(&packed.fields(), &fields);
        let owned = ProcessorRecord::try_from(fields.clone()).unwrap();
        prop_assert_eq!(&owned, &packed);
        // the serialised shape is the owned fields' (carried records written by earlier versions still read)
        let json = serde_json::to_value(&packed).unwrap();
        prop_assert_eq!(&json, &serde_json::to_value(&fields).unwrap());
        let back: ProcessorRecord = serde_json::from_value(json).unwrap();
        prop_assert_eq!(back, packed);
    }
}

proptest! {
    /// A ledger row packed from borrowed text reads back every field as given, equals the one packed from
    /// owned fields, and survives a JSON round trip in the owned fields' shape.
    #[test]
    fn a_compact_ledger_row_keeps_every_field(
        // raw text, and the shapes that are kept packed (recon_core::packed): ids and numbered references
        id in "[a-zé_\\x00 -]{0,8}|L-[0-9]{1,21}|(txn_|ch_)?[A-Za-z0-9_]{0,40}",
        txn in prop::option::of("[ a-c_\\x00]{0,6}|(ch_|pi_|re_|dp_)?[A-Za-z0-9]{0,30}"),
        order in prop::option::of("[ a-c_\\x00]{0,6}|(ord_|#)?[0-9]{1,20}"),
        booked in prop::option::of(any::<i64>()),
        minor in any::<i64>(),
        line in any::<u32>().prop_map(u64::from),
    ) {
        let amount = Money::new(minor, Currency::parse("EUR").unwrap());
        let location = Location { object: 1, line };
        let packed = LedgerRow::new(NewLedgerRow {
            ledger_id: &id,
            processor: Processor::Square,
            processor_txn_id: txn.as_deref(),
            order_id: order.as_deref(),
            kind: LedgerType::Refund,
            amount,
            status: LedgerStatus::Pending,
            booked_at: booked,
            location,
        })
        .unwrap();
        let fields = LedgerFields {
            ledger_id: id.as_str().into(),
            processor: Processor::Square,
            processor_txn_id: txn.as_deref().map(Into::into),
            order_id: order.as_deref().map(Into::into),
            kind: LedgerType::Refund,
            amount,
            status: LedgerStatus::Pending,
            booked_at: booked,
            location,
        };
        prop_assert_eq!(packed.ledger_id(), id.as_str());
        prop_assert_eq!(packed.processor_txn_id().map(String::from), txn.clone());
        prop_assert_eq!(packed.order_id().map(String::from), order.clone());
        prop_assert_eq!(packed.booked_at(), booked);
        prop_assert_eq!((packed.processor, packed.kind, packed.status, packed.amount(), packed.location()),
            (Processor::Square, LedgerType::Refund, LedgerStatus::Pending, amount, location));
        prop_assert_eq!(&packed.fields(), &fields);
        prop_assert_eq!(&LedgerRow::try_from(fields.clone()).unwrap(), &packed);
        let json = serde_json::to_value(&packed).unwrap();
        prop_assert_eq!(&json, &serde_json::to_value(&fields).unwrap());
        let back: LedgerRow = serde_json::from_value(json).unwrap();
        prop_assert_eq!(back, packed);
    }
}

/// A million records of each are held at once: their inline size is a measured memory figure (issue 16),
/// kept from growing by accident (a field added outside the packed text, or padding that no longer fits).
#[test]
#[cfg(target_pointer_width = "64")]
fn compact_records_keep_their_inline_size() {
    assert_eq!(std::mem::size_of::<ProcessorRecord>(), 48);
    assert_eq!(std::mem::size_of::<LedgerRow>(), 40);
    // no larger in an Option (the text's pointer is never null)
    assert_eq!(std::mem::size_of::<Option<ProcessorRecord>>(), 48);
}

fn record_at(line: u64, reference: &str) -> Result<ProcessorRecord, TooLarge> {
    ProcessorRecord::new(NewRecord {
        // ids of no shape that packs: the text's stored length is its length
        id: "tx-1",
        keys: &["ch-1", "tx-1"],
        reference: Some(reference),
        other_references: &[],
        kind: Kind::Charge,
        amount: Money::new(100, Currency::parse("USD").unwrap()),
        fee: None,
        net: None,
        status: ProcessorStatus::Succeeded,
        occurred_at: None,
        location: Location { object: 2, line },
    })
}

fn row_at(line: u64) -> Result<LedgerRow, TooLarge> {
    LedgerRow::new(NewLedgerRow {
        ledger_id: "L-1",
        processor: Processor::Stripe,
        processor_txn_id: Some("ch_1"),
        order_id: None,
        kind: LedgerType::Charge,
        amount: Money::new(100, Currency::parse("USD").unwrap()),
        status: LedgerStatus::Captured,
        booked_at: None,
        location: Location { object: 0, line },
    })
}

/// Records keep their line in 32 bits: the last line that fits is kept exactly, the next one is refused
/// with the line named (the parsers report it as an invalid record), never wrapped to a small line.
#[test]
fn a_record_beyond_the_last_line_a_record_keeps_is_refused_not_wrapped() {
    let last = u64::from(u32::MAX);
    assert_eq!(record_at(last, "ord_1").unwrap().location().line, last);
    assert_eq!(row_at(last).unwrap().location().line, last);
    assert_eq!(record_at(last + 1, "ord_1").err(), Some(TooLarge::Line(last + 1)));
    assert_eq!(row_at(last + 1).err(), Some(TooLarge::Line(last + 1)));
    let why = TooLarge::Line(last + 1).to_string();
    assert!(
        why.contains("4294967296") && why.contains("split the file"),
        "{why}"
    );
}

/// A ledger row's ledger_id, processor_txn_id and order_id share one text cut at 16-bit offsets, like a
/// processor record's: MAX_RECORD_TEXT bytes are kept, more are refused with the sizes named.
#[test]
fn a_ledger_row_text_beyond_the_limit_is_refused_with_its_size() {
    let row = |order: &str| {
        LedgerRow::new(NewLedgerRow {
            ledger_id: "L-1",
            processor: Processor::Stripe,
            // neither packs (recon_core::packed): the limit is on the bytes kept
            processor_txn_id: Some("ch-1"),
            order_id: Some(order),
            kind: LedgerType::Charge,
            amount: Money::new(100, Currency::parse("USD").unwrap()),
            status: LedgerStatus::Captured,
            booked_at: None,
            location: Location { object: 0, line: 2 },
        })
    };
    let fixed = "L-1".len() + "ch-1".len();
    let fits = "o".repeat(MAX_RECORD_TEXT - fixed);
    let r = row(&fits).unwrap();
    assert_eq!(
        (
            &*r.ledger_id(),
            r.processor_txn_id().as_deref(),
            r.order_id().as_deref()
        ),
        ("L-1", Some("ch-1"), Some(fits.as_str()))
    );
    assert_eq!(r.clone(), r, "a clone holds the same text");
    assert_eq!(
        row(&format!("{fits}o")).err(),
        Some(TooLarge::Text {
            len: MAX_RECORD_TEXT + 1,
            max: MAX_RECORD_TEXT
        })
    );
}

/// A processor record's id, keys and references share one text cut at 16-bit offsets: up to
/// MAX_RECORD_TEXT bytes are kept, more are refused with the sizes named.
#[test]
fn a_record_text_beyond_the_limit_is_refused_with_its_size() {
    // the id and the one key written ("tx-1" is held as the id), then the reference
    let fixed = "tx-1".len() + "ch-1".len();
    let fits = "r".repeat(MAX_RECORD_TEXT - fixed);
    let r = record_at(7, &fits).unwrap();
    assert_eq!(
        (r.id().as_str(), r.reference().map(|x| x.len())),
        ("tx-1", Some(fits.len()))
    );
    assert_eq!(r.keys().iter().collect::<Vec<_>>(), ["ch-1", "tx-1"]);
    let over = "r".repeat(MAX_RECORD_TEXT - fixed + 1);
    let e = record_at(7, &over).err();
    assert_eq!(
        e,
        Some(TooLarge::Text {
            len: MAX_RECORD_TEXT + 1,
            max: MAX_RECORD_TEXT
        })
    );
    let why = e.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        why.contains("65536 bytes") && why.contains("at most 65535"),
        "{why}"
    );
}

/// A carried ledger row as earlier versions wrote it reads back and is written the same way.
#[test]
fn a_ledger_row_in_the_shape_earlier_versions_stored_reads_back() {
    let stored = r#"{"ledger_id":"L-1","processor":"stripe","processor_txn_id":null,"order_id":"ord_1",
        "kind":"charge","amount":{"minor":-250,"currency":"USD"},"status":"captured","booked_at":null,
        "location":{"object":1,"line":2}}"#;
    let r: LedgerRow = serde_json::from_str(stored).unwrap();
    assert_eq!(
        (
            &*r.ledger_id(),
            r.processor_txn_id().as_deref(),
            r.order_id().as_deref(),
            r.booked_at()
        ),
        ("L-1", None, Some("ord_1"), None)
    );
    let again = serde_json::to_value(&r).unwrap();
    assert_eq!(again, serde_json::from_str::<serde_json::Value>(stored).unwrap());
}

/// A carried record as earlier versions wrote it (the derived shape of the old struct) reads back.
#[test]
fn a_record_in_the_shape_earlier_versions_stored_reads_back() {
    let stored = r#"{"id":"txn_1","keys":["ch_1","txn_1"],"reference":"ord_1","kind":"charge",
        "amount":{"minor":1050,"currency":"USD"},"fee":null,"net":-5,"status":"succeeded",
        "occurred_at":1718567400000,"location":{"object":0,"line":7}}"#;
    let r: ProcessorRecord = serde_json::from_str(stored).unwrap();
    assert_eq!(
        (r.id().as_str(), r.reference().as_deref(), r.fee(), r.net()),
        ("txn_1", Some("ord_1"), None, Some(-5))
    );
    assert_eq!(r.keys().iter().collect::<Vec<_>>(), ["ch_1", "txn_1"]);
    assert!(r.other_references().is_empty());
    assert_eq!((r.occurred_at(), r.location().line), (Some(1_718_567_400_000), 7));
    let again: serde_json::Value = serde_json::to_value(&r).unwrap();
    let want: serde_json::Value = serde_json::from_str(stored).unwrap();
    assert_eq!(again, want);
}

#[test]
fn every_three_letter_code_parses_as_the_iso_list_says() {
    let known: std::collections::BTreeMap<String, u8> = Currency::all()
        .map(|c| (c.code().to_string(), c.exponent()))
        .collect();
    assert!(known.len() > 150);
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            for c in b'A'..=b'Z' {
                let code = String::from_utf8(vec![a, b, c]).unwrap();
                let parsed = Currency::parse(&code).ok().map(|c| c.exponent());
                assert_eq!(parsed, known.get(&code).copied(), "{code}");
                let lower = code.to_ascii_lowercase();
                assert_eq!(
                    Currency::parse(&lower).ok().map(|c| c.exponent()),
                    parsed,
                    "{lower}"
                );
            }
        }
    }
    assert!(
        Currency::parse("US").is_err() && Currency::parse("U$D").is_err() && Currency::parse("ÜSD").is_err()
    );
}
