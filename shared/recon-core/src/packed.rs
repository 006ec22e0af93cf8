//! Identifiers kept in fewer bytes: a compact record's text fields are stored packed when an identifier has a
//! shape that packs, and read back through [`Str`], which gives the text exactly as it was read.
//!
//! Two shapes pack, and a field takes the shortest of its raw text and the shapes that fit it:
//! - an *id*: an optional known prefix (Stripe's object prefixes, `txn_`, `ch_`, `pi_` ...) and a body of
//!   ASCII letters, digits and `_`, six bits a character: a Stripe `ch_` id of 27 bytes takes 19;
//! - a *number*: a short ASCII prefix without digits and 1 to 19 digits (leading zeros kept), the digits as
//!   an integer: `L-000000001` takes 7 bytes, `ord_100000000` 9.
//!
//! A packed field starts with a byte from 0x80 to 0xBF, which never starts UTF-8 text, so a raw field (any
//! text) and a packed one are told apart by their first byte. Packing is a function of the text alone (the
//! same text always packs the same way) and unpacking gives the text back exactly (tested over every shape
//! and at random), so two fields are equal exactly when their stored bytes are.

use std::fmt;

/// The longest text that is packed: [`Str`] holds an unpacked one inline.
pub const MAX_PACKED_TEXT: usize = 64;

/// Known id prefixes, at most 32 (the marker's low five bits); index 0 is no prefix. Stripe's object prefixes,
/// the ids a processor report and a ledger hold most.
const PREFIXES: [&str; 32] = [
    "", "txn_", "ch_", "py_", "pi_", "re_", "pyr_", "dp_", "du_", "po_", "tr_", "trr_", "in_", "cus_",
    "sub_", "src_", "card_", "pm_", "ba_", "fee_", "fr_", "il_", "ii_", "cn_", "ipi_", "iar_", "ic_", "ich_",
    "pst_", "cbtxn_", "seti_", "acct_",
];

/// The index of `prefix` in [`PREFIXES`] (0: not one of them).
fn prefix_index(prefix: &[u8]) -> u8 {
    match prefix {
        b"txn_" => 1,
        b"ch_" => 2,
        b"py_" => 3,
        b"pi_" => 4,
        b"re_" => 5,
        b"pyr_" => 6,
        b"dp_" => 7,
        b"du_" => 8,
        b"po_" => 9,
        b"tr_" => 10,
        b"trr_" => 11,
        b"in_" => 12,
        b"cus_" => 13,
        b"sub_" => 14,
        b"src_" => 15,
        b"card_" => 16,
        b"pm_" => 17,
        b"ba_" => 18,
        b"fee_" => 19,
        b"fr_" => 20,
        b"il_" => 21,
        b"ii_" => 22,
        b"cn_" => 23,
        b"ipi_" => 24,
        b"iar_" => 25,
        b"ic_" => 26,
        b"ich_" => 27,
        b"pst_" => 28,
        b"cbtxn_" => 29,
        b"seti_" => 30,
        b"acct_" => 31,
        _ => 0,
    }
}

/// First byte of an id: `ID + prefix index`.
const ID: u8 = 0x80;
/// First byte of a number: `NUMBER + digits - 1` (1 to 19 digits).
const NUMBER: u8 = 0xA0;
const MAX_DIGITS: usize = 19;
/// The longest prefix a number keeps.
const MAX_NUMBER_PREFIX: usize = 12;

/// The six-bit code past the body characters' codes; [`PAD`] fills the last byte when it has room for one more.
const PAD: u8 = 63;

/// The six-bit code of every byte ([`NOT_BODY`] for a byte that is not a body character).
const CODES: [u8; 256] = {
    let mut t = [NOT_BODY; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};
const NOT_BODY: u8 = 0xFF;

fn code(b: u8) -> u8 {
    CODES[usize::from(b)]
}

/// The body characters by their six-bit code.
/// `_` has code 0, and the bits a last byte leaves unused are ones: a zero byte comes only of a body that
/// holds `_`, or of two characters of codes 16/32/48 and 1-3 side by side (about one id in seventy), and a
/// stored field that would hold one is kept raw ([`plan`]).
const ALPHABET: &[u8; 63] = b"_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Bytes of the integer of `d` digits, written in base 255 with every byte one more than its digit (never
/// zero): 255^bytes > 10^d - 1.
fn number_bytes(d: usize) -> usize {
    match d {
        0..=2 => 1,
        3..=4 => 2,
        5..=7 => 3,
        8..=9 => 4,
        10..=12 => 5,
        13..=14 => 6,
        15..=16 => 7,
        _ => 8,
    }
}

/// How a text is stored: its form and its stored length.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Form {
    Raw,
    /// Prefix index and body length (characters).
    Id(u8, usize),
    /// Prefix length and digits.
    Number(usize, usize),
}

fn id_len(body: usize) -> usize {
    1 + (6 * body).div_ceil(8)
}

/// The shortest form of `s` and its stored length (raw on a tie: read without unpacking).
fn form(s: &str) -> (Form, usize) {
    let b = s.as_bytes();
    let mut best = (Form::Raw, b.len());
    if b.len() > MAX_PACKED_TEXT || b.len() < 4 {
        return best;
    }
    // an id: a known prefix (its letters up to the first `_`) and a body of body characters, or a body alone
    if b.iter().all(|&c| code(c) != NOT_BODY) {
        let p = b
            .iter()
            .take(7)
            .position(|&c| c == b'_')
            .and_then(|u| b.get(..=u))
            .map_or(0, prefix_index);
        let plen = PREFIXES.get(usize::from(p)).map_or(0, |x| x.len());
        let body = b.len() - plen;
        let len = id_len(body);
        if len < best.1 {
            best = (Form::Id(p, body), len);
        }
    }
    // a number: the digits at the end, behind a prefix of printable ASCII without digits
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    let plen = b.len() - digits;
    if (1..=MAX_DIGITS).contains(&digits)
        && plen <= MAX_NUMBER_PREFIX
        && b.get(..plen).is_some_and(|p| {
            p.iter()
                .all(|&c| (0x20..0x7f).contains(&c) && !c.is_ascii_digit())
        })
    {
        let len = 1 + plen + number_bytes(digits);
        if len < best.1 {
            best = (Form::Number(plen, digits), len);
        }
    }
    best
}

/// How a text is to be stored ([`plan`]): its length is [`Packing::len`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Packing<'a> {
    text: &'a str,
    /// The packed bytes (`len` of them), unless the text is stored raw.
    packed: Option<[u8; MAX_PACKED_TEXT]>,
    len: usize,
}

impl Packing<'_> {
    /// The bytes the text is stored as.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// The text as it is stored.
    pub fn bytes(&self) -> &[u8] {
        match &self.packed {
            Some(b) => b.get(..self.len).unwrap_or(&[]),
            None => self.text.as_bytes(),
        }
    }
}

/// How `s` is stored: packed in its shortest form unless the packed bytes hold a zero byte (then raw), so
/// that a stored field never holds NUL (a record's keys are NUL-separated as stored; raw keys hold none)
/// and the same text is stored the same way in every record and row, whatever the field.
pub(crate) fn plan(s: &str) -> Packing<'_> {
    let (form, len) = form(s);
    let raw = Packing {
        text: s,
        packed: None,
        len: s.len(),
    };
    if form == Form::Raw {
        return raw;
    }
    let mut out = Buf {
        b: [0; MAX_PACKED_TEXT],
        n: 0,
    };
    write(s.as_bytes(), form, &mut out);
    if out.n != len || out.b[..len].contains(&0) {
        return raw;
    }
    Packing {
        text: s,
        packed: Some(out.b),
        len,
    }
}

/// Appends `s` as it is stored ([`plan`]).
#[cfg(test)]
pub(crate) fn pack(s: &str, out: &mut Vec<u8>) {
    pack_planned(plan(s), out)
}

/// Appends a planned text as it is stored (its [`Packing::len`] bytes).
pub(crate) fn pack_planned(p: Packing<'_>, out: &mut Vec<u8>) {
    out.extend_from_slice(p.bytes());
}

/// Packed bytes being written (never more than the text they pack, at most [`MAX_PACKED_TEXT`]).
struct Buf {
    b: [u8; MAX_PACKED_TEXT],
    n: usize,
}

impl Buf {
    fn push(&mut self, x: u8) {
        if let Some(slot) = self.b.get_mut(self.n) {
            *slot = x;
            self.n += 1;
        }
    }

    fn extend_from_slice(&mut self, xs: &[u8]) {
        for &x in xs {
            self.push(x);
        }
    }
}

/// Writes text `b` in packed form `form` (not [`Form::Raw`]).
fn write(b: &[u8], form: Form, out: &mut Buf) {
    match form {
        Form::Raw => out.extend_from_slice(b),
        Form::Id(p, n) => {
            out.push(ID + p);
            let body = b.get(b.len() - n..).unwrap_or(&[]);
            // four characters in three bytes; one, two or three left in one, two or three bytes (three
            // with a pad: the room for a fourth must not read as one)
            let mut chunks = body.chunks_exact(4);
            for c in &mut chunks {
                let v = (u32::from(code(c[0])) << 18)
                    | (u32::from(code(c[1])) << 12)
                    | (u32::from(code(c[2])) << 6)
                    | u32::from(code(c[3]));
                out.extend_from_slice(&v.to_be_bytes()[1..]);
            }
            match *chunks.remainder() {
                [a] => out.push((code(a) << 2) | 0b11),
                [a, b] => {
                    let v = (u16::from(code(a)) << 10) | (u16::from(code(b)) << 4) | 0xF;
                    out.extend_from_slice(&v.to_be_bytes());
                }
                [a, b, c] => {
                    let v = (u32::from(code(a)) << 18)
                        | (u32::from(code(b)) << 12)
                        | (u32::from(code(c)) << 6)
                        | u32::from(PAD);
                    out.extend_from_slice(&v.to_be_bytes()[1..]);
                }
                _ => {}
            }
        }
        Form::Number(plen, d) => {
            out.push(NUMBER + (d as u8 - 1));
            out.extend_from_slice(b.get(..plen).unwrap_or(&[]));
            let mut value = b
                .get(plen..)
                .unwrap_or(&[])
                .iter()
                .fold(0u64, |v, &c| v * 10 + u64::from(c - b'0'));
            for _ in 0..number_bytes(d) {
                out.push((value % 255) as u8 + 1);
                value /= 255;
            }
        }
    }
}

/// Whether `stored` is a raw text (not packed).
pub(crate) fn is_raw(stored: &[u8]) -> bool {
    !stored.first().is_some_and(|&m| (ID..=0xBF).contains(&m))
}

/// A text field of a compact record, exactly as it was read: borrowed when stored raw, unpacked into the
/// value itself otherwise. Use it as a `&str` (it dereferences to one).
#[derive(Clone, Copy)]
pub struct Str<'a>(Repr<'a>);

#[derive(Clone, Copy)]
enum Repr<'a> {
    Raw(&'a str),
    /// ASCII (what unpacking writes), `len` bytes of `buf`.
    Unpacked {
        len: u8,
        buf: [u8; MAX_PACKED_TEXT],
    },
}

impl<'a> Str<'a> {
    /// The text stored as `stored` (raw or packed, as [`pack`] wrote it). Stored bytes that are neither
    /// (never written by `pack`) read as empty.
    pub(crate) fn unpack(stored: &'a [u8]) -> Str<'a> {
        match stored.first() {
            Some(&m) if (ID..NUMBER).contains(&m) => Str::id(m - ID, stored.get(1..).unwrap_or(&[])),
            Some(&m) if (NUMBER..NUMBER + MAX_DIGITS as u8).contains(&m) => {
                Str::number(usize::from(m - NUMBER) + 1, stored.get(1..).unwrap_or(&[]))
            }
            _ => Str(Repr::Raw(std::str::from_utf8(stored).unwrap_or(""))),
        }
    }

    /// The raw text borrowed (no unpacking to do).
    pub(crate) fn raw(s: &'a str) -> Str<'a> {
        Str(Repr::Raw(s))
    }

    /// The text without white space at either end ([`crate::model::trim`]).
    pub fn trimmed(self) -> Str<'a> {
        match self.0 {
            Repr::Raw(s) => Str(Repr::Raw(crate::model::trim(s))),
            Repr::Unpacked { .. } => {
                let all = self.as_str();
                let kept = crate::model::trim(all);
                if kept.len() == all.len() {
                    return self;
                }
                let from = all.len() - all.trim_start().len();
                let to = from + kept.len();
                let mut out = [0u8; MAX_PACKED_TEXT];
                out[..to - from].copy_from_slice(&all.as_bytes()[from..to]);
                Str(Repr::Unpacked {
                    len: (to - from) as u8,
                    buf: out,
                })
            }
        }
    }

    fn id(prefix: u8, body: &[u8]) -> Str<'a> {
        let mut buf = [0u8; MAX_PACKED_TEXT];
        let p = PREFIXES.get(usize::from(prefix)).copied().unwrap_or("");
        let mut len = p.len().min(MAX_PACKED_TEXT);
        buf[..len].copy_from_slice(&p.as_bytes()[..len]);
        // three bytes hold four characters; a last byte or two hold one or two (or a pad ends them)
        let mut put = |sym: u32, len: &mut usize| -> bool {
            match (ALPHABET.get(sym as usize), buf.get_mut(*len)) {
                (Some(&ch), Some(slot)) => {
                    *slot = ch;
                    *len += 1;
                    true
                }
                _ => false,
            }
        };
        let mut chunks = body.chunks_exact(3);
        'chunks: for c in &mut chunks {
            let v = (u32::from(c[0]) << 16) | (u32::from(c[1]) << 8) | u32::from(c[2]);
            for shift in [18, 12, 6, 0] {
                if !put((v >> shift) & 63, &mut len) {
                    break 'chunks;
                }
            }
        }
        match *chunks.remainder() {
            [a] => {
                put(u32::from(a) >> 2, &mut len);
            }
            [a, b] => {
                let v = (u32::from(a) << 8) | u32::from(b);
                if put(v >> 10, &mut len) {
                    put((v >> 4) & 63, &mut len);
                }
            }
            _ => {}
        }
        Str(Repr::Unpacked { len: len as u8, buf })
    }

    fn number(digits: usize, rest: &[u8]) -> Str<'a> {
        let mut buf = [0u8; MAX_PACKED_TEXT];
        let n = number_bytes(digits);
        let plen = rest.len().saturating_sub(n).min(MAX_PACKED_TEXT - MAX_DIGITS);
        if !rest[..plen].is_ascii() {
            // never written by `pack` (its prefixes are printable ASCII): read as empty, and `buf` stays ASCII
            return Str(Repr::Raw(""));
        }
        buf[..plen].copy_from_slice(&rest[..plen]);
        // base 255, least significant first, each byte one more than its digit
        let mut value = rest
            .get(plen..plen + n)
            .unwrap_or(&[])
            .iter()
            .rev()
            .fold(0u64, |v, &b| {
                v.wrapping_mul(255).wrapping_add(u64::from(b.saturating_sub(1)))
            });
        let len = plen + digits;
        for slot in buf[plen..len].iter_mut().rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        Str(Repr::Unpacked { len: len as u8, buf })
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Raw(s) => s,
            Repr::Unpacked { len, buf } => {
                let b = buf.get(..usize::from(*len)).unwrap_or(&[]);
                // SAFETY: unpacking writes ASCII only (known prefixes, body characters, a number's prefix,
                // checked ASCII, and its digits), and ASCII is UTF-8
                #[allow(unsafe_code)]
                unsafe {
                    std::str::from_utf8_unchecked(b)
                }
            }
        }
    }
}

impl std::ops::Deref for Str<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Str<'_> {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Str<'_> {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Str<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Str<'_> {}

impl PartialEq<str> for Str<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Str<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<Str<'_>> for &str {
    fn eq(&self, other: &Str<'_>) -> bool {
        *self == other.as_str()
    }
}

impl PartialOrd for Str<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Str<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Str<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl fmt::Display for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Str<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for Str<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl From<Str<'_>> for Box<str> {
    fn from(s: Str<'_>) -> Box<str> {
        s.as_str().into()
    }
}

impl From<Str<'_>> for String {
    fn from(s: Str<'_>) -> String {
        s.as_str().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &str) -> (String, usize) {
        let mut out = Vec::new();
        pack(s, &mut out);
        assert_eq!(out.len(), plan(s).len(), "{s:?}");
        (Str::unpack(&out).as_str().to_string(), out.len())
    }

    #[test]
    fn shapes_pack_smaller_and_read_back_exactly() {
        for (s, len) in [
            ("txn_1MiN3gLkdIwHu7ixxapQrznl", 19),
            ("ch_3MmlLrLkdIwHu7ix0snN0B15", 19),
            ("pi_3MmlLrLkdIwHu7ix0wcpVGNa", 19),
            ("ord_100000000", 9),
            ("L-000000001", 7),
            ("L-000000000", 7),
            ("0000", 3),
            // a zero byte in the packed form (`_` then `0` start a body group): kept raw
            ("ch__000xyz", 10),
            ("5HM66834EH6946829", 14),
            ("ch_", 3),
            ("Order #1042", 10),
            ("ord_1, part", 11),
            ("", 0),
            ("a", 1),
            ("9999999999999999999", 9),
            ("99999999999999999999", 16),
            ("é-123456", 9),
        ] {
            assert_eq!(round(s), (s.to_string(), len), "{s:?}");
        }
    }

    /// The prefix table and the `match` that finds a prefix's index are two spellings of one list: they agree.
    #[test]
    fn every_known_prefix_is_found_at_its_index() {
        for (i, p) in PREFIXES.iter().enumerate().skip(1) {
            assert_eq!(usize::from(prefix_index(p.as_bytes())), i, "{p}");
        }
        assert_eq!(prefix_index(b""), 0);
        assert_eq!(prefix_index(b"ord_"), 0);
    }

    #[test]
    fn every_body_length_reads_back() {
        // the pad decides whether the last byte's room holds one more character: every length, both ways
        let chars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_";
        for n in 0..=60usize {
            let body: String = chars.chars().cycle().skip(n).take(n).collect();
            for s in [format!("txn_{body}"), format!("zz{body}"), body.clone()] {
                if s.len() <= MAX_PACKED_TEXT {
                    assert_eq!(round(&s).0, s);
                }
            }
        }
        for d in 1..=25usize {
            for lead in ["", "L-", "x", "INV ", "long prefix!"] {
                for s in [
                    format!("{lead}{}", "9".repeat(d)),
                    format!("{lead}{}", "0".repeat(d)),
                ] {
                    assert_eq!(round(&s).0, s);
                }
            }
        }
    }

    #[test]
    fn stored_bytes_are_equal_exactly_when_texts_are() {
        let texts = [
            "ch_1", "ch_01", "ch_10", "L-1", "L-01", "L-001", "1", "01", "001", "ord_1", "ORD_1",
        ];
        let stored: Vec<Vec<u8>> = texts
            .iter()
            .map(|s| {
                let mut v = Vec::new();
                pack(s, &mut v);
                v
            })
            .collect();
        for (i, a) in stored.iter().enumerate() {
            for (j, b) in stored.iter().enumerate() {
                assert_eq!(a == b, i == j, "{} {}", texts[i], texts[j]);
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_back(s in "(txn_|ch_|pi_|L-|ord_|INV-|)[0-9A-Za-z_]{0,70}|[ -~]{0,14}[0-9]{0,22}|\\PC{0,80}") {
            proptest::prop_assert_eq!(round(&s).0, s.clone());
            proptest::prop_assert!(round(&s).1 <= s.len());
            // a stored field never holds NUL unless its text does (keys are NUL-separated as stored)
            let mut out = Vec::new();
            pack(&s, &mut out);
            proptest::prop_assert_eq!(out.contains(&0), s.contains('\0'));
        }
    }

    /// Trimming an unpacked text (a number's prefix may be white space) gives what trimming the text gives.
    #[test]
    fn an_unpacked_text_trims_as_the_text_does() {
        for s in [
            " 12345678",
            "  L-1234567",
            "ord_100000000",
            "ch_3MmlLrLkdIwHu7ix0snN0B15",
            " ",
            "  12",
        ] {
            let mut out = Vec::new();
            pack(s, &mut out);
            assert_eq!(
                Str::unpack(&out).trimmed().as_str(),
                crate::model::trim(s),
                "{s:?}"
            );
        }
        assert!(!is_raw(&{
            let mut out = Vec::new();
            pack(" 12345678", &mut out);
            out
        }));
    }

    #[test]
    fn unknown_first_bytes_read_as_empty_not_as_garbage() {
        assert_eq!(Str::unpack(&[0xBF, 1, 2]).as_str(), "");
        assert_eq!(Str::unpack(&[0xFF]).as_str(), "");
        // a number whose prefix is not ASCII (pack never writes one)
        assert_eq!(Str::unpack(&[NUMBER, 0xC3, 0xA9, 1]).as_str(), "");
    }
}
