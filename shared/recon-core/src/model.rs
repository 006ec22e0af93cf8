//! The canonical model (spec section 5): processor records and ledger rows as every source normalises them.
//!
//! Over 400 lines: one file holds the whole vocabulary (processor, kinds, statuses, keys, records) so that a
//! reader sees it in one place.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::money::{Currency, Money};
use crate::packed::Str;

/// A payment processor reconciled by recon.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Processor {
    Stripe,
    Paypal,
    Square,
}

impl Processor {
    pub const ALL: [Processor; 3] = [Processor::Stripe, Processor::Paypal, Processor::Square];

    pub fn as_str(self) -> &'static str {
        match self {
            Processor::Stripe => "stripe",
            Processor::Paypal => "paypal",
            Processor::Square => "square",
        }
    }
}

/// `str::trim`, with a fast path for the usual field that has nothing to trim: a first and a last byte that
/// are visible ASCII are not white space, so the text is returned as it is without decoding it (the
/// standard trim decodes a character at each end; every field of millions of rows is read through this).
#[inline]
pub fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(a), Some(b)) if a.is_ascii_graphic() && b.is_ascii_graphic() => s,
        _ => s.trim(),
    }
}

impl fmt::Display for Processor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Processor {
    type Err = String;
    /// Any case, surrounding whitespace ignored (compared in place: every ledger row is read through this).
    fn from_str(s: &str) -> Result<Self, String> {
        let t = trim(s);
        Processor::ALL
            .into_iter()
            .find(|p| t.eq_ignore_ascii_case(p.as_str()))
            .ok_or_else(|| {
                format!(
                    "unknown processor {:?} (expected stripe, paypal or square)",
                    t.to_ascii_lowercase()
                )
            })
    }
}

/// What a processor record is. Charges, refunds and disputes are reconciled one-to-one; the others are
/// counted in `excluded_counts`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Charge,
    Refund,
    Dispute,
    Payout,
    Fee,
    Adjustment,
    /// Money sent to or received from another account that is not a sale: PayPal payments sent (T00xx
    /// debits), MassPay, transfers between balances.
    Transfer,
    /// A currency conversion inside the processor balance (PayPal T02xx).
    Conversion,
    /// Money added to the processor balance from a bank or card (PayPal T03xx, T07xx, Stripe top-ups).
    Funding,
    /// A hold, reserve or release of funds that are already counted elsewhere (PayPal T11 holds, T15xx,
    /// T21xx, Stripe reserves).
    Hold,
    /// An authorization or its void: no money moved (PayPal T13xx).
    Authorization,
    Other,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Charge => "charge",
            Kind::Refund => "refund",
            Kind::Dispute => "dispute",
            Kind::Payout => "payout",
            Kind::Fee => "fee",
            Kind::Adjustment => "adjustment",
            Kind::Transfer => "transfer",
            Kind::Conversion => "conversion",
            Kind::Funding => "funding",
            Kind::Hold => "hold",
            Kind::Authorization => "authorization",
            Kind::Other => "other",
        }
    }

    /// Reconciled one-to-one against the ledger.
    pub fn is_reconciled(self) -> bool {
        matches!(self, Kind::Charge | Kind::Refund | Kind::Dispute)
    }
}

/// The outcome a processor reports for a record.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessorStatus {
    Succeeded,
    Pending,
    Failed,
    Reversed,
    Canceled,
    Refunded,
}

impl ProcessorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProcessorStatus::Succeeded => "succeeded",
            ProcessorStatus::Pending => "pending",
            ProcessorStatus::Failed => "failed",
            ProcessorStatus::Reversed => "reversed",
            ProcessorStatus::Canceled => "canceled",
            ProcessorStatus::Refunded => "refunded",
        }
    }
    /// Did the money of this record settle? Pending, failed, denied, reversed and canceled records did not:
    /// when no ledger row claims one, it is counted under `excluded_counts.not_settled`, not reported.
    pub fn is_settled(self) -> bool {
        matches!(self, ProcessorStatus::Succeeded | ProcessorStatus::Refunded)
    }

    /// Failed, denied, reversed or canceled: money did not (or no longer) move.
    pub fn is_unsuccessful(self) -> bool {
        matches!(
            self,
            ProcessorStatus::Failed | ProcessorStatus::Reversed | ProcessorStatus::Canceled
        )
    }
}

/// Ledger `type` column.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerType {
    Charge,
    Refund,
    Dispute,
    Adjustment,
}

impl LedgerType {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerType::Charge => "charge",
            LedgerType::Refund => "refund",
            LedgerType::Dispute => "dispute",
            LedgerType::Adjustment => "adjustment",
        }
    }
}

impl FromStr for LedgerType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "charge" => Ok(LedgerType::Charge),
            "refund" => Ok(LedgerType::Refund),
            "dispute" => Ok(LedgerType::Dispute),
            "adjustment" => Ok(LedgerType::Adjustment),
            other => Err(format!(
                "type {other:?} is not one of charge, refund, dispute, adjustment"
            )),
        }
    }
}

/// Ledger `status` column.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LedgerStatus {
    Captured,
    Refunded,
    Pending,
    Failed,
}

impl LedgerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerStatus::Captured => "captured",
            LedgerStatus::Refunded => "refunded",
            LedgerStatus::Pending => "pending",
            LedgerStatus::Failed => "failed",
        }
    }
}

impl FromStr for LedgerStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "captured" => Ok(LedgerStatus::Captured),
            "refunded" => Ok(LedgerStatus::Refunded),
            "pending" => Ok(LedgerStatus::Pending),
            "failed" => Ok(LedgerStatus::Failed),
            other => Err(format!(
                "status {other:?} is not one of captured, refunded, pending, failed"
            )),
        }
    }
}

/// Where a record came from: the object (index into the run's object-key list) and the 1-based line of a
/// text file or the 0-based record index in a JSON page. Ordering by location defines "first" when two
/// records collide (duplicates), so results never depend on the order records are handed in.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub struct Location {
    pub object: u32,
    pub line: u64,
}

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// One processor record in canonical form, compact: the id, the keys and the references share one
/// allocation, and fee, net and time carry their presence in bits, so a million records take about half
/// the memory (and the kernel's page zeroing) of one allocation and one `Option` per field. Read it through
/// the accessors; build it with [`ProcessorRecord::new`] (borrowed text, the parsers' path) or from
/// [`RecordFields`] (owned, the serialised shape).
#[derive(Clone, PartialEq, Eq)]
pub struct ProcessorRecord {
    /// The id, the keys (NUL-separated), the first reference and the other references (NUL-separated):
    /// segments [`ID`], [`KEYS`], [`REFERENCE`] and [`OTHER_REFERENCES`] (at most [`MAX_RECORD_TEXT`]
    /// bytes), each field packed when its shape packs ([`crate::packed`]: a stored field never holds NUL
    /// unless its text does, and keys holding NUL are dropped, so the separators stand).
    text: Text<4>,
    /// The gross amount's minor units ([`ProcessorRecord::amount`] with `currency`): a [`Money`] field
    /// would pad its 4-byte currency to 8.
    minor: i64,
    /// The fee when there is one, else the net: with both, the net is the gross less the fee (every
    /// processor reports it so; [`ProcessorRecord::new`] refuses one that is not), so it is not kept
    /// twice (8 bytes a record).
    fee_or_net: i64,
    occurred_at: Millis,
    /// Which of reference, fee, net and time are present ([`HAS_REFERENCE`] ...).
    has: Presence,
    /// Where the id stands among the keys when it is one of them ([`ID_NOT_A_KEY`]: it is not): kept once,
    /// as the id (a Stripe `txn_` id is both; 29 bytes a record, a smaller allocation class).
    id_key: u8,
    pub kind: Kind,
    pub status: ProcessorStatus,
    currency: Currency,
    /// The [`Location`], packed: its object and a line below 2^32 ([`TooLarge::Line`] otherwise).
    at: PackedLocation,
}

/// The most text (id, keys and references together) a processor record or a ledger row keeps: its segments
/// are cut at 16-bit offsets. Longer is reported as an invalid record ([`TooLarge::Text`]).
pub const MAX_RECORD_TEXT: usize = u16::MAX as usize;

/// A [`Location`] in 8 bytes (it is 16, its line being 64-bit): records keep this, so that a day of
/// millions of records takes 8 bytes a record less.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PackedLocation {
    object: u32,
    line: u32,
}

impl PackedLocation {
    fn of(l: Location) -> Result<PackedLocation, TooLarge> {
        Ok(PackedLocation {
            object: l.object,
            line: u32::try_from(l.line).map_err(|_| TooLarge::Line(l.line))?,
        })
    }

    fn get(self) -> Location {
        Location {
            object: self.object,
            line: u64::from(self.line),
        }
    }
}

/// The accessors of a compact record's amount (`minor` and `currency`) and packed location (`at`).
macro_rules! amount_and_location {
    ($compact:ty) => {
        impl $compact {
            /// The amount, signed from the merchant's side.
            pub fn amount(&self) -> Money {
                Money::new(self.minor, self.currency)
            }

            /// Where it was read (object and line or index).
            pub fn location(&self) -> Location {
                self.at.get()
            }

            /// As read from object `object` instead, its line unchanged (object indexes are moved apart when
            /// two sides' numbering would overlap).
            pub fn set_object(&mut self, object: u32) {
                self.at.object = object;
            }

            /// As read on line `line` instead (a part of a file read on its own numbers its lines from the
            /// part's start); a line beyond what it keeps leaves it unchanged and says so.
            pub fn set_line(&mut self, line: u64) -> Result<(), TooLarge> {
                self.at = PackedLocation::of(Location {
                    line,
                    ..self.at.get()
                })?;
                Ok(())
            }
        }
    };
}

amount_and_location!(ProcessorRecord);
amount_and_location!(LedgerRow);

const ID: usize = 0;
const KEYS: usize = 1;
const REFERENCE: usize = 2;
const OTHER_REFERENCES: usize = 3;

const HAS_REFERENCE: usize = 0;
const HAS_FEE: usize = 1;
const HAS_NET: usize = 2;
const HAS_TIME: usize = 3;

/// A compact record's text: its `N` segments one after the other in one allocation of the exact size behind
/// a thin pointer (8 bytes: a `Box<[u8]>` takes 16), headed by where each segment ends (the last end is the
/// text's length, at most [`MAX_RECORD_TEXT`] bytes): one byte an end when the text is at most
/// [`SHORT_TEXT`] bytes, else [`LONG_TEXT`] and two bytes an end. The ends travel with the text in the
/// allocation's spare room (a Stripe charge's 67 bytes and 4 ends take the 80-byte class its text took
/// alone, a ledger row's 35 and 3 the 40-byte one), so a record is 8 bytes smaller than with the ends
/// beside the pointer. Segments may be packed ([`crate::packed`]) and are read through [`Str`].
pub(crate) struct Text<const N: usize> {
    /// The start of a leaked `Box<[u8]>` (the header, then the text), owned by this value (freed by `Drop`).
    ptr: std::ptr::NonNull<u8>,
}

/// The longest text whose ends take one byte each (below [`LONG_TEXT`], so a short header's first byte is
/// never it).
const SHORT_TEXT: usize = 254;
/// The first byte of a header of two-byte ends.
const LONG_TEXT: u8 = 0xFF;

// SAFETY: a `Text` owns its allocation like a `Box<[u8]>` (no shared ownership, never written after it is
// built), so it can move to and be read from another thread as one can.
#[allow(unsafe_code)]
unsafe impl<const N: usize> Send for Text<N> {}
// SAFETY: as above; `&Text` gives only shared slices out.
#[allow(unsafe_code)]
unsafe impl<const N: usize> Sync for Text<N> {}

impl<const N: usize> Text<N> {
    /// `bytes` cut at `ends` (ascending; the last is taken as `bytes.len()` whatever it says). At most
    /// [`MAX_RECORD_TEXT`] bytes ([`TooLarge::Text`] otherwise).
    fn cut_bytes(bytes: &[u8], ends: [usize; N]) -> Result<Self, TooLarge> {
        let len = bytes.len();
        let too_long = || TooLarge::Text {
            len,
            max: MAX_RECORD_TEXT,
        };
        if len > MAX_RECORD_TEXT || N == 0 {
            return Err(too_long());
        }
        let mut at = ends.map(|e| e.min(len));
        if let Some(last) = at.last_mut() {
            *last = len;
        }
        let short = len <= SHORT_TEXT;
        let header = if short { N } else { 1 + 2 * N };
        let mut all = Vec::with_capacity(header + len);
        if short {
            // every end is at most the length: at most SHORT_TEXT
            all.extend(at.iter().map(|&e| e as u8));
        } else {
            all.push(LONG_TEXT);
            for e in at {
                all.extend_from_slice(&u16::try_from(e).map_err(|_| too_long())?.to_le_bytes());
            }
        }
        all.extend_from_slice(bytes);
        // the exact size: `into_boxed_slice` keeps the allocation (no copy)
        let ptr = std::ptr::NonNull::from(Box::leak(all.into_boxed_slice())).cast::<u8>();
        Ok(Text { ptr })
    }

    /// The whole allocation: the header, then the text.
    #[allow(unsafe_code)]
    fn whole(&self) -> &[u8] {
        let p = self.ptr.as_ptr();
        // SAFETY: `ptr` is the start of a `Box<[u8]>` leaked in `cut_bytes` and freed only by `drop`; it
        // holds at least its header: N bytes (short) or 1 + 2N (long, first byte LONG_TEXT), then exactly
        // the text's length (the last end) more.
        let head = unsafe { std::slice::from_raw_parts(p, N) };
        let total = match head.first() {
            Some(&LONG_TEXT) => {
                // SAFETY: a long header is 1 + 2N bytes
                let long = unsafe { std::slice::from_raw_parts(p, 1 + 2 * N) };
                let last = u16::from_le_bytes([long[2 * N - 1], long[2 * N]]);
                1 + 2 * N + usize::from(last)
            }
            _ => N + head.last().map_or(0, |&e| usize::from(e)),
        };
        // SAFETY: as above: the allocation is exactly `total` bytes
        unsafe { std::slice::from_raw_parts(p, total) }
    }

    /// Where segment `i` ends, read from the header of `whole`.
    fn end(whole: &[u8], i: usize) -> usize {
        match whole.first() {
            Some(&LONG_TEXT) => whole
                .get(1 + 2 * i..3 + 2 * i)
                .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]]))),
            _ => whole.get(i).map_or(0, |&e| usize::from(e)),
        }
    }

    fn header_len(whole: &[u8]) -> usize {
        match whole.first() {
            Some(&LONG_TEXT) => 1 + 2 * N,
            _ => N,
        }
    }

    /// The whole text's bytes.
    #[cfg(test)]
    fn as_bytes(&self) -> &[u8] {
        let w = self.whole();
        w.get(Self::header_len(w)..).unwrap_or(&[])
    }

    /// Segment `i`'s bytes (0 to `N - 1`).
    fn segment_bytes(&self, i: usize) -> &[u8] {
        let w = self.whole();
        let from = i.checked_sub(1).map_or(0, |k| Self::end(w, k));
        let to = Self::end(w, i);
        let h = Self::header_len(w);
        w.get(h + from..h + to).unwrap_or(&[])
    }
}

impl<const N: usize> Drop for Text<N> {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        let raw = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.whole().len());
        // SAFETY: `raw` is the `Box<[u8]>` leaked in `cut_bytes` (same start, same length), freed once, here.
        drop(unsafe { Box::from_raw(raw) });
    }
}

impl<const N: usize> Clone for Text<N> {
    fn clone(&self) -> Self {
        let ptr = std::ptr::NonNull::from(Box::leak(Box::<[u8]>::from(self.whole()))).cast::<u8>();
        Text { ptr }
    }
}

impl<const N: usize> PartialEq for Text<N> {
    fn eq(&self, other: &Self) -> bool {
        // the header is a function of the ends (its form of the length): equal exactly when both are
        self.whole() == other.whole()
    }
}

impl<const N: usize> Eq for Text<N> {}

/// Which optional values a compact record holds: bit `i` for value `i` (the values themselves are stored
/// without their `Option`).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Presence(u8);

impl Presence {
    fn of<const K: usize>(present: [bool; K]) -> Presence {
        Presence(
            present
                .iter()
                .enumerate()
                .fold(0, |b, (i, &p)| b | (u8::from(p) << i)),
        )
    }

    /// `value()` when value `i` is present.
    fn then<T>(self, i: usize, value: impl FnOnce() -> T) -> Option<T> {
        ((self.0 >> i) & 1 == 1).then(value)
    }
}

/// `Debug` (the owned fields), `Serialize` (a borrowed view of the same shape) and `Deserialize` (the
/// owned fields, packed) of a compact record type.
macro_rules! compact_serde {
    ($compact:ty, $fields:ty) => {
        impl fmt::Debug for $compact {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.fields().fmt(f)
            }
        }

        impl Serialize for $compact {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.view().serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $compact {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <$compact>::try_from(<$fields>::deserialize(d)?).map_err(serde::de::Error::custom)
            }
        }
    };
}

compact_serde!(ProcessorRecord, RecordFields);
compact_serde!(LedgerRow, LedgerFields);

/// A record that cannot be kept compact (the parsers report it as an invalid record): its text is kept in
/// one allocation indexed by 16-bit offsets ([`MAX_RECORD_TEXT`]) and its line in 32 bits.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TooLarge {
    /// The id, keys and references together are `len` bytes, more than `max`.
    Text { len: usize, max: usize },
    /// The record is on a line beyond 4,294,967,295.
    Line(u64),
    /// The net is not the gross less the fee (minor units), as every processor defines it: one of the three
    /// figures is wrong, and a record keeps the net as the gross less the fee.
    Net { gross: i64, fee: i64, net: i64 },
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TooLarge::Text { len, max } => write!(
                f,
                "the record's ids, keys and references are {len} bytes together; at most {max} are kept: \
                 shorten the references (metadata, order ids) the export carries"
            ),
            TooLarge::Line(line) => write!(
                f,
                "the record is on line {line}, beyond line {}, the last recon can point to: split the \
                 file in smaller files and send them again",
                u32::MAX
            ),
            TooLarge::Net { gross, fee, net } => write!(
                f,
                "the net {net} is not the gross {gross} less the fee {fee} (minor units), as the processor \
                 defines it: one of the three figures is wrong; check the export"
            ),
        }
    }
}

impl std::error::Error for TooLarge {}

/// A processor record's values with its text borrowed: what the parsers hand to [`ProcessorRecord::new`].
/// Keys and other references are trimmed; empty ones, ones holding NUL and repeats are dropped.
#[derive(Clone, Copy, Debug)]
pub struct NewRecord<'a> {
    pub id: &'a str,
    pub keys: &'a [&'a str],
    pub reference: Option<&'a str>,
    pub other_references: &'a [&'a str],
    pub kind: Kind,
    pub amount: Money,
    pub fee: Option<i64>,
    pub net: Option<i64>,
    pub status: ProcessorStatus,
    pub occurred_at: Option<Millis>,
    pub location: Location,
}

/// One processor record with owned fields: the serialised shape (carried records, Lambda payloads) and
/// the way tests spell a record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RecordFields {
    /// The record's own identity on the processor side (Stripe `txn_`, PayPal transaction id + event code,
    /// Square payment/refund id): two records with the same id are the same record twice.
    pub id: Box<str>,
    /// Identifiers of *this* record the ledger may hold, best first (Stripe: source, `txn_`, the disputed
    /// charge for disputes, the payment intent for charges).
    pub keys: Keys,
    /// The merchant's order reference, used by the fallback match (the first candidate reference: the
    /// one shown in reports).
    pub reference: Option<Box<str>>,
    /// Further candidate references the fallback also tries (PayPal `invoice_id` after `custom_field`,
    /// Square `order_id` after `reference_id`, configured Stripe metadata keys), best first.
    #[serde(default, skip_serializing_if = "Keys::is_empty")]
    pub other_references: Keys,
    pub kind: Kind,
    /// Gross amount, signed from the merchant's side.
    pub amount: Money,
    pub fee: Option<i64>,
    pub net: Option<i64>,
    pub status: ProcessorStatus,
    pub occurred_at: Option<Millis>,
    pub location: Location,
}

/// The serialised shape, borrowed from a compact record (the same fields and names as [`RecordFields`]).
#[derive(Serialize)]
struct RecordView<'a> {
    id: Str<'a>,
    keys: KeyList<'a>,
    reference: Option<Str<'a>>,
    #[serde(skip_serializing_if = "KeyList::is_empty")]
    other_references: KeyList<'a>,
    kind: Kind,
    amount: Money,
    fee: Option<i64>,
    net: Option<i64>,
    status: ProcessorStatus,
    occurred_at: Option<Millis>,
    location: Location,
}

/// Appends the keys of `parts` to `text`, NUL-separated, each packed when `packed` ([`crate::packed`]),
/// dropping empty ones, ones holding NUL and repeats (as [`Keys`] does).
fn push_keys<S: AsRef<str>>(text: &mut Vec<u8>, parts: impl IntoIterator<Item = S>, packed: bool) {
    push_keys_but(text, parts, "", packed);
}

/// [`push_keys`], except that `held` (a key the record holds already: its id), when it is one of the keys,
/// is not written again: its place among the keys written is returned (at most [`ID_NOT_A_KEY`] - 1).
fn push_keys_but<S: AsRef<str>>(
    text: &mut Vec<u8>,
    parts: impl IntoIterator<Item = S>,
    held: &str,
    packed: bool,
) -> u8 {
    const TRACKED: usize = 8;
    let mut held_at = ID_NOT_A_KEY;
    let start = text.len();
    // where the first keys kept lie in `text`: a repeat is found by comparing with them, not by scanning
    // the text for separators (that scan showed in the parse profile); packing is a function of the text,
    // so stored keys are equal exactly when the keys are
    let mut spans = [(0usize, 0usize); TRACKED];
    let mut n = 0usize;
    for k in parts {
        let k = trim(k.as_ref());
        if k.is_empty() || k.as_bytes().contains(&0) {
            continue;
        }
        let planned = packed.then(|| crate::packed::plan(k));
        let stored = planned.as_ref().map_or(k.as_bytes(), |p| p.bytes());
        let repeat = if n <= TRACKED {
            spans[..n].iter().any(|&(a, b)| text.get(a..b) == Some(stored))
        } else {
            text.get(start..)
                .unwrap_or(&[])
                .split(|&c| c == 0)
                .any(|x| x == stored)
        };
        if repeat {
            continue;
        }
        if !held.is_empty() && k == held {
            if held_at != ID_NOT_A_KEY {
                // a repeat of the key held elsewhere
                continue;
            }
            if let Some(at) = u8::try_from(n).ok().filter(|&at| at < ID_NOT_A_KEY) {
                held_at = at;
                continue;
            }
        }
        if text.len() > start {
            text.push(0);
        }
        let at = text.len();
        text.extend_from_slice(stored);
        if let Some(s) = spans.get_mut(n) {
            *s = (at, text.len());
        }
        n += 1;
    }
    held_at
}

/// Runs `f` on this thread's scratch buffer, emptied: a compact record's text is written there first, then
/// copied behind its header into an allocation of its exact size ([`Text::cut_bytes`]). A larger capacity
/// would stay allocated, as the allocator keeps a block shrunk by less than half, and one byte more can cost
/// the next size class (80 -> 96 bytes for a Stripe charge).
fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    thread_local! {
        static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    }
    let mut buf = SCRATCH.take();
    buf.clear();
    let out = f(&mut buf);
    SCRATCH.set(buf);
    out
}

/// "The id is not one of the record's keys" in [`ProcessorRecord`]'s `id_key`.
const ID_NOT_A_KEY: u8 = u8::MAX;

impl ProcessorRecord {
    /// Writes a record's text into `out` (cleared first), each field packed when `packed`, else raw: the
    /// segments' ends and the id's place among the keys.
    fn write_text(r: &NewRecord<'_>, packed: bool, out: &mut Vec<u8>) -> ([usize; 4], u8) {
        use crate::packed::{pack_planned, plan};
        let put = |s: &str, out: &mut Vec<u8>| match packed {
            true => pack_planned(plan(s), out),
            false => out.extend_from_slice(s.as_bytes()),
        };
        out.clear();
        put(r.id, out);
        let id_end = out.len();
        let id_key = push_keys_but(out, r.keys.iter().copied(), r.id, packed);
        let keys_end = out.len();
        if let Some(reference) = r.reference {
            put(reference, out);
        }
        let reference_end = out.len();
        push_keys(out, r.other_references.iter().copied(), packed);
        ([id_end, keys_end, reference_end, out.len()], id_key)
    }

    /// Packs a record whose text is borrowed (one allocation of the exact size).
    pub fn new(r: NewRecord<'_>) -> Result<ProcessorRecord, TooLarge> {
        let (text, id_key) = with_scratch(|buf| {
            let (ends, id_key) = Self::write_text(&r, true, buf);
            let cut = match Text::cut_bytes(buf, ends) {
                // beyond the limit, the error names the text's own length (what the source holds)
                Err(TooLarge::Text { max, .. }) => {
                    let len = Self::write_text(&r, false, buf).0[3];
                    Err(TooLarge::Text { len, max })
                }
                cut => cut,
            };
            (cut, id_key)
        });
        let text = text?;
        let fee_or_net = match (r.fee, r.net) {
            (Some(fee), Some(net)) if r.amount.minor.checked_sub(fee) == Some(net) => fee,
            (Some(fee), Some(net)) => {
                return Err(TooLarge::Net {
                    gross: r.amount.minor,
                    fee,
                    net,
                })
            }
            (Some(fee), None) => fee,
            (None, net) => net.unwrap_or(0),
        };
        Ok(ProcessorRecord {
            text,
            has: Presence::of([
                r.reference.is_some(),
                r.fee.is_some(),
                r.net.is_some(),
                r.occurred_at.is_some(),
            ]),
            id_key,
            kind: r.kind,
            status: r.status,
            minor: r.amount.minor,
            currency: r.amount.currency,
            fee_or_net,
            occurred_at: r.occurred_at.unwrap_or(0),
            at: PackedLocation::of(r.location)?,
        })
    }

    fn segment(&self, i: usize) -> Str<'_> {
        Str::unpack(self.text.segment_bytes(i))
    }

    /// The record's own identity on the processor side (Stripe `txn_`, PayPal transaction id + event code,
    /// Square payment/refund id): two records with the same id are the same record twice.
    pub fn id(&self) -> Str<'_> {
        self.segment(ID)
    }

    /// The id as stored: equal exactly when the ids are, and equal to a ledger row's field as stored
    /// exactly when the texts are (packing is a function of the text alone).
    pub(crate) fn id_stored(&self) -> &[u8] {
        self.text.segment_bytes(ID)
    }

    /// Identifiers of *this* record the ledger may hold, best first (Stripe: source, `txn_`, the disputed
    /// charge for disputes, the payment intent for charges).
    pub fn keys(&self) -> KeyList<'_> {
        KeyList {
            listed: self.text.segment_bytes(KEYS),
            held: (self.id_key != ID_NOT_A_KEY).then(|| (self.id_stored(), self.id_key)),
        }
    }

    /// The merchant's order reference, used by the fallback match (the first candidate reference: the one
    /// shown in reports).
    pub fn reference(&self) -> Option<Str<'_>> {
        self.has.then(HAS_REFERENCE, || self.segment(REFERENCE))
    }

    /// Further candidate references the fallback also tries (PayPal `invoice_id` after `custom_field`,
    /// Square `order_id` after `reference_id`, configured Stripe metadata keys), best first.
    pub fn other_references(&self) -> KeyList<'_> {
        KeyList::of(self.text.segment_bytes(OTHER_REFERENCES))
    }

    pub fn fee(&self) -> Option<i64> {
        self.has.then(HAS_FEE, || self.fee_or_net)
    }

    /// The net: the gross less the fee when there is a fee (checked when packed), else as reported.
    pub fn net(&self) -> Option<i64> {
        self.has
            .then(HAS_NET, || match self.fee() {
                Some(fee) => self.minor.checked_sub(fee),
                None => Some(self.fee_or_net),
            })
            .flatten()
    }

    pub fn occurred_at(&self) -> Option<Millis> {
        self.has.then(HAS_TIME, || self.occurred_at)
    }

    /// The record with owned fields (to change one and pack it again).
    pub fn fields(&self) -> RecordFields {
        RecordFields {
            id: self.id().into(),
            keys: self.keys().iter().collect(),
            reference: self.reference().map(Into::into),
            other_references: self.other_references().iter().collect(),
            kind: self.kind,
            amount: self.amount(),
            fee: self.fee(),
            net: self.net(),
            status: self.status,
            occurred_at: self.occurred_at(),
            location: self.location(),
        }
    }

    /// The record with `change` made to its owned fields, packed again.
    pub fn with(&self, change: impl FnOnce(&mut RecordFields)) -> Result<ProcessorRecord, TooLarge> {
        let mut f = self.fields();
        change(&mut f);
        ProcessorRecord::try_from(f)
    }

    fn view(&self) -> RecordView<'_> {
        RecordView {
            id: self.id(),
            keys: self.keys(),
            reference: self.reference(),
            other_references: self.other_references(),
            kind: self.kind,
            amount: self.amount(),
            fee: self.fee(),
            net: self.net(),
            status: self.status,
            occurred_at: self.occurred_at(),
            location: self.location(),
        }
    }

    /// Every candidate reference of the fallback match, best first, without repeats.
    pub fn references(&self) -> impl Iterator<Item = Str<'_>> {
        let first = self.reference().map(Str::trimmed).filter(|r| !r.is_empty());
        first.into_iter().chain(
            self.other_references()
                .iter()
                .filter(move |r| !matches!(&first, Some(f) if f.eq_ignore_ascii_case(r))),
        )
    }
}

impl TryFrom<RecordFields> for ProcessorRecord {
    type Error = TooLarge;
    fn try_from(f: RecordFields) -> Result<ProcessorRecord, TooLarge> {
        // the keys are already as packing leaves them (trimmed, none empty, no NUL, no repeat): packed
        // again unchanged
        let keys: Vec<&str> = f.keys.iter().collect();
        let others: Vec<&str> = f.other_references.iter().collect();
        ProcessorRecord::new(NewRecord {
            id: &f.id,
            keys: &keys,
            reference: f.reference.as_deref(),
            other_references: &others,
            kind: f.kind,
            amount: f.amount,
            fee: f.fee,
            net: f.net,
            status: f.status,
            occurred_at: f.occurred_at,
            location: f.location,
        })
    }
}

/// A record's keys as it holds them (borrowed): in order, never empty, never holding NUL.
#[derive(Clone, Copy, Default)]
pub struct KeyList<'a> {
    /// The keys written as keys, NUL-separated, each as stored (packed or raw: [`crate::packed`]).
    listed: &'a [u8],
    /// A key held elsewhere in the record (its id, as stored), and its place: before the `n`-th listed key.
    held: Option<(&'a [u8], u8)>,
}

impl<'a> KeyList<'a> {
    fn of(listed: &'a [u8]) -> KeyList<'a> {
        KeyList { listed, held: None }
    }

    /// The keys in order.
    pub fn iter(self) -> impl Iterator<Item = Str<'a>> {
        self.stored().map(Str::unpack)
    }

    /// The keys in order, as stored: equal exactly when the keys are, and to a ledger row's field as stored
    /// exactly when the texts are.
    pub(crate) fn stored(self) -> impl Iterator<Item = &'a [u8]> {
        // one pass over the listed keys (the matcher's probe loop runs this for every record)
        let mut listed = self.listed.split(|&c| c == 0).filter(|k| !k.is_empty());
        let mut held = self.held;
        let mut n = 0usize;
        std::iter::from_fn(move || {
            if let Some((k, at)) = held {
                if usize::from(at) == n {
                    held = None;
                    return Some(k);
                }
            }
            match listed.next() {
                Some(k) => {
                    n += 1;
                    Some(k)
                }
                None => held.take().map(|(k, _)| k),
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty() && self.held.is_none()
    }
}

impl PartialEq for KeyList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for KeyList<'_> {}

impl std::hash::Hash for KeyList<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        for k in self.iter() {
            k.hash(h);
        }
    }
}

impl std::fmt::Debug for KeyList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for KeyList<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// A record's match keys, best first, kept in one allocation (a million records hold three or four each).
/// Keys are never empty and never contain NUL; iteration yields them in order.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Keys(Box<str>);

impl Keys {
    /// The keys as a record holds them.
    pub fn list(&self) -> KeyList<'_> {
        KeyList::of(self.0.as_bytes())
    }

    /// The keys in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        // kept raw: every listed key is a slice of the text
        self.0.split('\0').filter(|k| !k.is_empty())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Keys {
    /// The keys of `parts`, in order, in one allocation of the exact size (the parsers' fast path); empty
    /// keys, keys containing NUL and repeats are dropped, as by `collect()`.
    pub fn from_parts(parts: &[&str]) -> Keys {
        let mut kept: [&str; 8] = [""; 8];
        let mut n = 0usize;
        let mut len = 0usize;
        for k in parts {
            let k = trim(k);
            if k.is_empty() || k.contains('\0') || kept[..n].contains(&k) {
                continue;
            }
            if n == kept.len() {
                return parts.iter().collect();
            }
            kept[n] = k;
            n += 1;
            len += k.len() + 1;
        }
        let mut s = String::with_capacity(len.saturating_sub(1));
        for (i, k) in kept[..n].iter().enumerate() {
            if i > 0 {
                s.push('\0');
            }
            s.push_str(k);
        }
        Keys(s.into_boxed_str())
    }
}

impl<S: AsRef<str>> FromIterator<S> for Keys {
    /// Empty keys, keys containing NUL and repeats are dropped.
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut s = Vec::new();
        push_keys(&mut s, iter, false);
        // raw keys (slices of `str`s) and NUL separators: UTF-8 throughout
        Keys(String::from_utf8(s).unwrap_or_default().into_boxed_str())
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Keys {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Vec::<String>::deserialize(d)?.into_iter().collect())
    }
}

/// One internal ledger row, compact: its `ledger_id`, `processor_txn_id` and `order_id` share one
/// allocation, each packed when its shape packs ([`crate::packed`]: a Stripe id in 19 bytes of 27, a numbered
/// id in a few), and the booking time carries its presence in a bit. Read it through the accessors; build it
/// with [`LedgerRow::new`] (borrowed text, the parser's path) or from [`LedgerFields`] (owned, the serialised
/// shape).
#[derive(Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// The `ledger_id`, the `processor_txn_id` and the `order_id`, one after the other, each packed or raw
    /// (segments [`LEDGER_ID`], [`TXN`], [`ORDER`]; at most [`MAX_RECORD_TEXT`] bytes).
    text: Text<3>,
    /// The amount's minor units ([`LedgerRow::amount`] with `currency`).
    minor: i64,
    booked_at: Millis,
    /// Which of `processor_txn_id`, `order_id` and `booked_at` are present.
    has: Presence,
    pub processor: Processor,
    pub kind: LedgerType,
    pub status: LedgerStatus,
    currency: Currency,
    /// The [`Location`], packed (a line below 2^32).
    at: PackedLocation,
}

const LEDGER_ID: usize = 0;
const TXN: usize = 1;
const ORDER: usize = 2;

const HAS_TXN: usize = 0;
const HAS_ORDER: usize = 1;
const HAS_BOOKED: usize = 2;

/// One internal ledger row with owned fields: the serialised shape (carried rows, Lambda payloads) and the
/// way tests spell a row.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct LedgerFields {
    pub ledger_id: Box<str>,
    pub processor: Processor,
    /// Empty in the file becomes `None`: matched by order id + amount + currency instead.
    pub processor_txn_id: Option<Box<str>>,
    pub order_id: Option<Box<str>>,
    pub kind: LedgerType,
    pub amount: Money,
    pub status: LedgerStatus,
    pub booked_at: Option<Millis>,
    pub location: Location,
}

/// The serialised shape, borrowed from a compact row (the same fields and names as [`LedgerFields`]).
#[derive(Serialize)]
struct LedgerView<'a> {
    ledger_id: Str<'a>,
    processor: Processor,
    processor_txn_id: Option<Str<'a>>,
    order_id: Option<Str<'a>>,
    kind: LedgerType,
    amount: Money,
    status: LedgerStatus,
    booked_at: Option<Millis>,
    location: Location,
}

/// A ledger row's values with its text borrowed: what the parser hands to [`LedgerRow::new`].
#[derive(Clone, Copy, Debug)]
pub struct NewLedgerRow<'a> {
    pub ledger_id: &'a str,
    pub processor: Processor,
    pub processor_txn_id: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub kind: LedgerType,
    pub amount: Money,
    pub status: LedgerStatus,
    pub booked_at: Option<Millis>,
    pub location: Location,
}

impl LedgerRow {
    /// Packs a row whose text is borrowed (one allocation of the exact size).
    pub fn new(r: NewLedgerRow<'_>) -> Result<LedgerRow, TooLarge> {
        let (txn, order) = (r.processor_txn_id.unwrap_or(""), r.order_id.unwrap_or(""));
        let cut = with_scratch(|text| {
            let mut ends = [0; 3];
            for (end, field) in ends.iter_mut().zip([r.ledger_id, txn, order]) {
                crate::packed::pack_planned(crate::packed::plan(field), text);
                *end = text.len();
            }
            Text::cut_bytes(text, ends)
        });
        // beyond the limit, the error names the text's own length (what the export holds)
        let raw = r.ledger_id.len() + txn.len() + order.len();
        let text = cut.map_err(|e| match e {
            TooLarge::Text { max, .. } => TooLarge::Text { len: raw, max },
            e => e,
        })?;
        Ok(LedgerRow {
            text,
            has: Presence::of([
                r.processor_txn_id.is_some(),
                r.order_id.is_some(),
                r.booked_at.is_some(),
            ]),
            processor: r.processor,
            kind: r.kind,
            status: r.status,
            minor: r.amount.minor,
            currency: r.amount.currency,
            booked_at: r.booked_at.unwrap_or(0),
            at: PackedLocation::of(r.location)?,
        })
    }

    fn segment(&self, i: usize) -> Str<'_> {
        Str::unpack(self.text.segment_bytes(i))
    }

    /// Whether any of the row's text fields (its `ledger_id`, `processor_txn_id` and `order_id`) holds a
    /// NUL: only a raw field can (packed ones hold letters, digits and printable ASCII).
    pub(crate) fn text_has_nul(&self) -> bool {
        (0..3).any(|i| {
            let b = self.text.segment_bytes(i);
            crate::packed::is_raw(b) && b.contains(&0)
        })
    }

    pub fn ledger_id(&self) -> Str<'_> {
        self.segment(LEDGER_ID)
    }

    /// The `ledger_id` as stored (packed or raw): two rows' are equal exactly when their ids are.
    pub(crate) fn ledger_id_stored(&self) -> &[u8] {
        self.text.segment_bytes(LEDGER_ID)
    }

    /// The `processor_txn_id` as stored (empty for none).
    pub(crate) fn processor_txn_id_stored(&self) -> &[u8] {
        self.text.segment_bytes(TXN)
    }

    /// Empty in the file becomes `None`: matched by order id + amount + currency instead.
    pub fn processor_txn_id(&self) -> Option<Str<'_>> {
        self.has.then(HAS_TXN, || self.segment(TXN))
    }

    pub fn order_id(&self) -> Option<Str<'_>> {
        self.has.then(HAS_ORDER, || self.segment(ORDER))
    }

    pub fn booked_at(&self) -> Option<Millis> {
        self.has.then(HAS_BOOKED, || self.booked_at)
    }

    /// The row with owned fields (to change one and pack it again).
    pub fn fields(&self) -> LedgerFields {
        LedgerFields {
            ledger_id: self.ledger_id().into(),
            processor: self.processor,
            processor_txn_id: self.processor_txn_id().map(Into::into),
            order_id: self.order_id().map(Into::into),
            kind: self.kind,
            amount: self.amount(),
            status: self.status,
            booked_at: self.booked_at(),
            location: self.location(),
        }
    }

    /// The row with `change` made to its owned fields, packed again.
    pub fn with(&self, change: impl FnOnce(&mut LedgerFields)) -> Result<LedgerRow, TooLarge> {
        let mut f = self.fields();
        change(&mut f);
        LedgerRow::try_from(f)
    }

    fn view(&self) -> LedgerView<'_> {
        LedgerView {
            ledger_id: self.ledger_id(),
            processor: self.processor,
            processor_txn_id: self.processor_txn_id(),
            order_id: self.order_id(),
            kind: self.kind,
            amount: self.amount(),
            status: self.status,
            booked_at: self.booked_at(),
            location: self.location(),
        }
    }
}

impl TryFrom<LedgerFields> for LedgerRow {
    type Error = TooLarge;
    fn try_from(f: LedgerFields) -> Result<LedgerRow, TooLarge> {
        LedgerRow::new(NewLedgerRow {
            ledger_id: &f.ledger_id,
            processor: f.processor,
            processor_txn_id: f.processor_txn_id.as_deref(),
            order_id: f.order_id.as_deref(),
            kind: f.kind,
            amount: f.amount,
            status: f.status,
            booked_at: f.booked_at,
            location: f.location,
        })
    }
}

/// Which side of the reconciliation a record is on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Processor,
    Ledger,
}

/// A record that could not be parsed: kept with its raw text, where it was and why.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct InvalidRecord {
    pub side: Side,
    pub location: Location,
    /// The field that failed, when one did.
    pub field: Option<String>,
    pub reason: String,
    pub raw: String,
}

impl InvalidRecord {
    /// A record of `side` at `location` whose `field` could not be read, and why.
    pub fn new(side: Side, location: Location, field: &str, reason: String, raw: String) -> InvalidRecord {
        InvalidRecord {
            side,
            location,
            field: Some(field.to_string()),
            reason,
            raw,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_processor_is_read_in_any_case_and_an_unknown_one_named() {
        for (text, p) in [
            ("stripe", Processor::Stripe),
            (" PayPal ", Processor::Paypal),
            ("SQUARE", Processor::Square),
            ("\tStripe\n", Processor::Stripe),
        ] {
            assert_eq!(text.parse::<Processor>(), Ok(p), "{text:?}");
        }
        assert_eq!(
            " Adyen ".parse::<Processor>(),
            Err("unknown processor \"adyen\" (expected stripe, paypal or square)".to_string())
        );
        assert!("stripes".parse::<Processor>().is_err());
        assert!("".parse::<Processor>().is_err());
    }

    /// A ledger row of the usual shape (a numbered ledger id, a Stripe id, a numbered order id) keeps its
    /// text packed: 35 bytes where the text is 51 (an allocation of 40 bytes instead of 56), read back as
    /// written; equal rows keep equal bytes.
    #[test]
    fn a_ledger_row_of_the_usual_shape_keeps_its_text_packed() {
        let row = |txn: &str| {
            LedgerRow::new(NewLedgerRow {
                ledger_id: "L-000000001",
                processor: Processor::Stripe,
                processor_txn_id: Some(txn),
                order_id: Some("ord_100000000"),
                kind: LedgerType::Charge,
                amount: Money::new(
                    100,
                    Currency::parse("USD").unwrap_or_else(|e| unreachable!("{e}")),
                ),
                status: LedgerStatus::Captured,
                booked_at: None,
                location: Location { object: 0, line: 2 },
            })
            .unwrap_or_else(|e| unreachable!("{e}"))
        };
        let r = row("ch_3MmlLrLkdIwHu7ix0snN0B15");
        assert_eq!(r.text.as_bytes().len(), 7 + 19 + 9);
        assert_eq!(
            (
                &*r.ledger_id(),
                r.processor_txn_id().as_deref(),
                r.order_id().as_deref()
            ),
            (
                "L-000000001",
                Some("ch_3MmlLrLkdIwHu7ix0snN0B15"),
                Some("ord_100000000")
            )
        );
        assert_eq!(r.ledger_id_stored(), row("x").ledger_id_stored());
        assert_ne!(
            r.processor_txn_id_stored(),
            row("ch_3MmlLrLkdIwHu7ix0snN0B16").processor_txn_id_stored()
        );
        // a NUL is found in a raw field, and never in a packed one's bytes (which may hold zeros)
        assert!(!row("ch_000000000000000000000000").text_has_nul());
        assert!(row("ch\0x").text_has_nul());
    }

    /// A Stripe record's `txn_` id is one of its keys: the text holds it once, the keys give it back in
    /// its place.
    #[test]
    fn an_id_that_is_a_key_is_written_once() {
        let r = ProcessorRecord::new(NewRecord {
            id: "txn_1",
            keys: &["ch_1", "txn_1", "pi_1", " txn_1"],
            reference: Some("ord_1"),
            other_references: &[],
            kind: Kind::Charge,
            amount: Money::new(
                1,
                crate::Currency::parse("USD").unwrap_or_else(|e| unreachable!("{e}")),
            ),
            fee: None,
            net: None,
            status: ProcessorStatus::Succeeded,
            occurred_at: None,
            location: Location { object: 0, line: 1 },
        })
        .unwrap_or_else(|e| unreachable!("{e}"));
        let mut stored = Vec::new();
        for (field, then) in [
            ("txn_1", None),
            ("ch_1", Some(0)),
            ("pi_1", None),
            ("ord_1", None),
        ] {
            crate::packed::pack(field, &mut stored);
            stored.extend(then);
        }
        assert_eq!(r.text.as_bytes(), stored);
        assert_eq!(r.keys().iter().collect::<Vec<_>>(), ["ch_1", "txn_1", "pi_1"]);
        assert_eq!(r.reference().as_deref(), Some("ord_1"));
    }

    /// The ends live in the allocation's header, one byte each up to SHORT_TEXT bytes of text and two beyond:
    /// every segment reads back on both sides of that line and at the limits, clones are equal, and texts
    /// that differ only in where a segment ends are not.
    #[test]
    fn a_text_keeps_its_segments_in_either_header() {
        for len in [
            0usize,
            1,
            SHORT_TEXT - 1,
            SHORT_TEXT,
            SHORT_TEXT + 1,
            1000,
            MAX_RECORD_TEXT,
        ] {
            let bytes: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let ends = [len / 3, len / 2, len / 2, len];
            let t = Text::<4>::cut_bytes(&bytes, ends).unwrap_or_else(|e| unreachable!("{e}"));
            assert_eq!(t.as_bytes(), bytes.as_slice(), "{len}");
            let mut from = 0;
            for (i, &end) in ends.iter().enumerate() {
                assert_eq!(t.segment_bytes(i), &bytes[from..end], "{len} segment {i}");
                from = end;
            }
            let header = if len <= SHORT_TEXT { 4 } else { 9 };
            assert_eq!(t.whole().len(), header + len);
            assert!(t.clone() == t);
            if len > 1 {
                let moved = Text::<4>::cut_bytes(&bytes, [len / 3 + 1, len / 2, len / 2, len])
                    .unwrap_or_else(|e| unreachable!("{e}"));
                assert!(moved != t, "{len}");
            }
        }
        let over = vec![b'a'; MAX_RECORD_TEXT + 1];
        assert!(Text::<3>::cut_bytes(&over, [0, 0, 0]).is_err());
    }
}
