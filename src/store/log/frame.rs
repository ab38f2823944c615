//! The log's frame format, and reading a log file's bytes back into frames,
//! telling a torn tail (a commit cut short by a crash) from damage.
//!
//! A frame (format 2) is `seal ‖ payload ‖ seal`: the payload is the batch's
//! delta encoding, its record encoding and the record's length (u32 LE);
//! each seal (64 bytes) is `MAGIC ‖ batch number ‖ payload length ‖
//! BLAKE3(payload) ‖ check`, where the check is the first 8 bytes of BLAKE3,
//! keyed with the store's own frame key, over the 56 bytes before it. The
//! key is random per store, so no bytes a batch carries (metadata, contents)
//! can pass for a seal.
//!
//! An append writes the payload and the trailing seal, syncs, and only then
//! writes the leading seal and syncs again. So a valid leading seal always
//! stands before a payload that was durable, and:
//! - no valid leading seal at the end, and no valid frame after: a torn tail,
//!   the commit never finished (it is cut off);
//! - a valid leading seal whose payload fails its checksum or runs past the
//!   end of the file: damage, never a crash;
//! - a damaged leading seal whose trailing seal and payload are whole: the
//!   frame is read from its trailing seal (a single damaged byte in either
//!   seal loses nothing);
//! - anything else followed by a valid frame: damage.
//!
//! Frames written by earlier versions (format 1: `flagged length ‖
//! BLAKE3(payload) ‖ payload`, no seal, no key) are still read; files may
//! hold format-1 frames followed by format-2 ones.

use super::super::codec::Decoder;

/// The first bytes of a seal. As a format-1 length it would be about 5·10^18
/// bytes, so the two formats never read as each other.
const MAGIC: [u8; 8] = *b"cvmfrm02";
/// A seal's size: the header before the payload and the trailer after it.
pub(crate) const SEAL: usize = 64;
/// What a frame adds to its payload.
pub(crate) const OVERHEAD: usize = 2 * SEAL;
/// Format 1: flagged length ‖ checksum.
const V1_HEADER: usize = 8 + 32;
/// Format 1: the top bit of the length marks a payload that holds the delta first.
const V1_DELTA_FIRST: u64 = 1 << 63;

/// The key a store's seals are checked with (`meta.frame_key`, made with the store).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameKey(pub [u8; 32]);

impl std::fmt::Debug for FrameKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FrameKey(..)")
    }
}

/// What a seal says about its frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seal {
    pub number: u64,
    pub len: u64,
    pub checksum: [u8; 32],
}

impl Seal {
    pub fn encode(&self, key: &FrameKey) -> [u8; SEAL] {
        let mut seal = [0u8; SEAL];
        seal[..8].copy_from_slice(&MAGIC);
        seal[8..16].copy_from_slice(&self.number.to_le_bytes());
        seal[16..24].copy_from_slice(&self.len.to_le_bytes());
        seal[24..56].copy_from_slice(&self.checksum);
        let check = check_of(&seal[..56], key);
        seal[56..].copy_from_slice(&check);
        seal
    }

    /// The seal at the start of `bytes`, if its magic and check hold.
    pub fn decode(bytes: &[u8], key: &FrameKey) -> Option<Seal> {
        let seal = bytes.get(..SEAL)?;
        if seal[..8] != MAGIC || seal[56..] != check_of(&seal[..56], key) {
            return None;
        }
        let word = |at: usize| u64::from_le_bytes(seal[at..at + 8].try_into().expect("8 bytes"));
        Some(Seal { number: word(8), len: word(16), checksum: seal[24..56].try_into().expect("32 bytes") })
    }
}

fn check_of(fields: &[u8], key: &FrameKey) -> [u8; 8] {
    let mac = blake3::keyed_hash(&key.0, fields);
    mac.as_bytes()[..8].try_into().expect("8 bytes")
}

/// One whole frame in place.
#[derive(Debug)]
pub(crate) struct RawFrame<'a> {
    /// Where it starts in the file, and its size.
    pub offset: usize,
    pub bytes: u64,
    /// The batch number its seal names (format 1 has none).
    pub number: Option<u64>,
    pub record: &'a [u8],
    pub delta: &'a [u8],
    /// Read from its trailing seal: the leading one is damaged (a writer
    /// rewrites it).
    pub repaired: Option<Seal>,
}

/// Why reading stopped short of the end of the file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Tail {
    /// Every byte belongs to a whole frame.
    Clean,
    /// The last frame was never finished: a commit cut short. Its bytes
    /// (from `at`) are not part of the log.
    Torn { at: usize },
}

/// Damage that no crash can leave: the log cannot be trusted past `offset`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Damage {
    pub offset: usize,
    pub reason: String,
    /// Valid frames found after the damage: (batch number, offset).
    pub later: Vec<(u64, usize)>,
}

/// A file's frames, as far as they are whole.
#[derive(Debug)]
pub(crate) struct Scan<'a> {
    pub frames: Vec<RawFrame<'a>>,
    /// Where the whole frames end.
    pub end: usize,
    pub tail: Result<Tail, Damage>,
}

/// Read `data` (a log file's bytes) into frames.
pub(crate) fn scan<'a>(data: &'a [u8], key: &FrameKey) -> Scan<'a> {
    let mut frames: Vec<RawFrame<'a>> = Vec::new();
    let mut at = 0usize;
    let tail = loop {
        if at == data.len() {
            break Ok(Tail::Clean);
        }
        let expected = frames.last().and_then(|f| f.number).map(|n| n + 1);
        match frame_at(data, at, expected, key) {
            Found::Frame(frame) => {
                at = frame.offset + frame.bytes as usize;
                frames.push(frame);
            }
            Found::Damage(reason) => break Err(damage(data, at, reason, key)),
            Found::Torn => break Ok(Tail::Torn { at }),
        }
    };
    Scan { frames, end: at, tail }
}

enum Found<'a> {
    Frame(RawFrame<'a>),
    Damage(String),
    Torn,
}

/// The frame starting at `at`, or why there is none.
fn frame_at<'a>(data: &'a [u8], at: usize, expected: Option<u64>, key: &FrameKey) -> Found<'a> {
    let rest = &data[at..];
    if let Some(seal) = Seal::decode(rest, key) {
        return sealed_frame(data, at, seal, expected, None);
    }
    if let Some(frame) = v1_frame(data, at) {
        return Found::Frame(frame);
    }
    // No valid leading seal here. The frame may still be whole: read from
    // its trailing seal, the first valid seal after `at` whose length ends
    // the frame just before it. Any other valid seal found first starts (or
    // ends) a later frame.
    let mut from = at + 1;
    let next = loop {
        let Some((p, seal)) = find_seal(data, from, key) else { break None };
        let trails_this_frame = p >= at + SEAL && seal.len == (p - at - SEAL) as u64;
        if !trails_this_frame {
            break Some(p);
        }
        match sealed_frame(data, at, seal, expected, Some(seal)) {
            Found::Frame(frame) => return Found::Frame(frame),
            _ => from = p + 1,
        }
    };
    if let Some(next) = next {
        return Found::Damage(format!("no valid frame starts here, but a valid seal follows at byte {next}"));
    }
    if let Some(claimed_end) = v1_claimed_end(rest) {
        if claimed_end < rest.len() {
            return Found::Damage(
                "a frame of the earlier format fails its checksum and more bytes follow it".to_string(),
            );
        }
    }
    Found::Torn
}

/// The frame at `at` whose seal (leading, or the trailing one if
/// `repaired`) is `seal`.
fn sealed_frame<'a>(data: &'a [u8], at: usize, seal: Seal, expected: Option<u64>, repaired: Option<Seal>) -> Found<'a> {
    let payload_at = at + SEAL;
    let Some(end) = usize::try_from(seal.len).ok().and_then(|len| payload_at.checked_add(len)) else {
        return Found::Damage(format!("the frame of batch {} claims {} bytes", seal.number, seal.len));
    };
    let Some(payload) = data.get(payload_at..end).filter(|_| end + SEAL <= data.len()) else {
        return Found::Damage(format!(
            "the frame of batch {} needs {} bytes but the file ends {} bytes after its start: the file was \
             truncated (a crash cannot do this: a frame's header is written only once the rest is durable)",
            seal.number,
            seal.len as usize + OVERHEAD,
            data.len() - at
        ));
    };
    if blake3::hash(payload).as_bytes() != &seal.checksum {
        return Found::Damage(format!("the payload of batch {} fails its checksum", seal.number));
    }
    if let Some(expected) = expected.filter(|&e| e != seal.number) {
        return Found::Damage(format!("batch {} follows batch {}", seal.number, expected - 1));
    }
    match split_payload(payload, true) {
        Ok((record, delta)) => Found::Frame(RawFrame {
            offset: at,
            bytes: (end + SEAL - at) as u64,
            number: Some(seal.number),
            record,
            delta,
            repaired,
        }),
        Err(reason) => Found::Damage(format!("batch {}: {reason}", seal.number)),
    }
}

/// The first valid seal at or after `from`.
fn find_seal(data: &[u8], from: usize, key: &FrameKey) -> Option<(usize, Seal)> {
    let mut at = from;
    while at + SEAL <= data.len() {
        let found = data[at..].windows(MAGIC.len()).position(|w| w == MAGIC)?;
        at += found;
        if let Some(seal) = Seal::decode(&data[at..], key) {
            return Some((at, seal));
        }
        at += 1;
    }
    None
}

fn damage(data: &[u8], offset: usize, reason: String, key: &FrameKey) -> Damage {
    let mut later = Vec::new();
    let mut from = offset + 1;
    while let Some((at, seal)) = find_seal(data, from, key) {
        // A trailing seal names its frame too; list each batch once.
        if later.last().is_none_or(|&(n, _)| n != seal.number) {
            later.push((seal.number, at));
        }
        from = at + 1;
    }
    Damage { offset, reason, later }
}

/// A whole, checksum-valid format-1 frame at `at`.
fn v1_frame(data: &[u8], at: usize) -> Option<RawFrame<'_>> {
    let header = data.get(at..at.checked_add(V1_HEADER)?)?;
    let flagged = u64::from_le_bytes(header[..8].try_into().ok()?);
    let len = usize::try_from(flagged & !V1_DELTA_FIRST).ok()?;
    let end = (at + V1_HEADER).checked_add(len)?;
    let payload = data.get(at + V1_HEADER..end)?;
    if blake3::hash(payload).as_bytes() != &header[8..] {
        return None;
    }
    let (record, delta) = split_payload(payload, flagged & V1_DELTA_FIRST != 0).ok()?;
    Some(RawFrame { offset: at, bytes: (end - at) as u64, number: None, record, delta, repaired: None })
}

/// Where a format-1 frame starting `rest` would end, if its length is
/// plausible (a torn format-2 frame starts with zeros or a seal's magic,
/// neither of which is).
fn v1_claimed_end(rest: &[u8]) -> Option<usize> {
    let flagged = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    let len = usize::try_from(flagged & !V1_DELTA_FIRST).ok().filter(|&l| l > 0)?;
    V1_HEADER.checked_add(len).filter(|&end| end <= rest.len() + (64 << 20))
}

/// A payload's record and delta encodings: the delta, the record and the
/// record's length (u32 LE) if `delta_first`, else (format 1's first
/// layout) the length-prefixed record, then the delta.
fn split_payload(payload: &[u8], delta_first: bool) -> Result<(&[u8], &[u8]), String> {
    if !delta_first {
        let mut d = Decoder::new(payload, "batch log frame");
        let record = d.slice().map_err(|e| e.to_string())?;
        return Ok((record, d.rest()));
    }
    let split = payload.len().checked_sub(4).ok_or("the payload is shorter than its record length")?;
    let record_len = u32::from_le_bytes(payload[split..].try_into().expect("4 bytes")) as usize;
    let delta_len = split.checked_sub(record_len).ok_or("the record's length runs past the payload")?;
    Ok((&payload[delta_len..split], &payload[..delta_len]))
}

/// A format-2 frame around `payload` (tests, and the fault-injection suite).
#[cfg(test)]
pub(crate) fn encode(number: u64, payload: &[u8], key: &FrameKey) -> Vec<u8> {
    let seal = Seal { number, len: payload.len() as u64, checksum: *blake3::hash(payload).as_bytes() }.encode(key);
    [&seal[..], payload, &seal[..]].concat()
}

/// Format-1 frames, as earlier versions wrote them (tests).
#[cfg(test)]
pub(crate) fn encode_v1(payload: &[u8], delta_first: bool) -> Vec<u8> {
    let flag = if delta_first { V1_DELTA_FIRST } else { 0 };
    let mut frame = ((payload.len() as u64) | flag).to_le_bytes().to_vec();
    frame.extend_from_slice(blake3::hash(payload).as_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: FrameKey = FrameKey([7; 32]);

    /// A payload whose record is `number` as text and whose delta is `n` bytes.
    fn payload(number: u64, n: usize) -> Vec<u8> {
        let record = format!("record {number}").into_bytes();
        let mut p = vec![number as u8; n];
        p.extend_from_slice(&record);
        p.extend_from_slice(&(record.len() as u32).to_le_bytes());
        p
    }

    fn log(frames: u64) -> Vec<u8> {
        (1..=frames).flat_map(|n| encode(n, &payload(n, 50 + n as usize), &KEY)).collect()
    }

    fn numbers(scan: &Scan) -> Vec<u64> {
        scan.frames.iter().map(|f| f.number.unwrap()).collect()
    }

    #[test]
    fn whole_frames_read_back_in_order() {
        let data = log(4);
        let scan = scan(&data, &KEY);
        assert_eq!((numbers(&scan), scan.end, scan.tail), (vec![1, 2, 3, 4], data.len(), Ok(Tail::Clean)));
        assert_eq!(scan.frames[2].record, b"record 3");
        assert_eq!(scan.frames[2].delta, &[3u8; 53][..]);
    }

    /// Every single-byte change of the log is either read past (a damaged
    /// seal is repaired from the other one), or damage naming where: never
    /// a torn tail that drops committed frames, and never a changed frame.
    #[test]
    fn every_flipped_byte_is_repaired_or_reported_as_damage() {
        let data = log(3);
        for i in 0..data.len() {
            let mut flipped = data.clone();
            flipped[i] ^= 0x10;
            let scan = scan(&flipped, &KEY);
            match &scan.tail {
                Ok(Tail::Clean) => {
                    assert_eq!(numbers(&scan), [1, 2, 3], "byte {i}");
                    for (frame, n) in scan.frames.iter().zip(1..) {
                        assert_eq!(frame.record, format!("record {n}").as_bytes(), "byte {i}");
                    }
                }
                Err(damage) => assert!(damage.offset <= i, "byte {i}: damage reported at {}", damage.offset),
                Ok(Tail::Torn { .. }) => panic!("byte {i}: a flipped byte taken for a torn tail"),
            }
        }
    }

    /// Cutting the file inside the last frame, after its leading seal was
    /// written, is damage (an append writes that seal last); cutting it
    /// before is a torn tail.
    #[test]
    fn truncation_inside_a_sealed_frame_is_damage() {
        let data = log(3);
        let last = data.len() - encode(3, &payload(3, 53), &KEY).len();
        for cut in last + 1..data.len() {
            let scan = scan(&data[..cut], &KEY);
            assert_eq!(numbers(&scan), [1, 2], "cut at {cut}");
            match cut - last < SEAL {
                true => assert_eq!(scan.tail, Ok(Tail::Torn { at: last }), "cut at {cut}"),
                false => assert!(scan.tail.is_err(), "cut at {cut}"),
            }
        }
    }

    /// The states a crash can leave an append in: the payload (maybe part
    /// of it) written where the frame goes, the leading seal not yet (zeros),
    /// or the leading seal half written after a durable payload.
    #[test]
    fn a_crash_mid_append_is_a_torn_tail_or_the_whole_frame() {
        let mut data = log(2);
        let whole = data.len();
        let next = encode(3, &payload(3, 400), &KEY);
        // Payload written, seal not: zeros where it goes.
        let mut unsealed = next.clone();
        unsealed[..SEAL].fill(0);
        for written in [SEAL + 1, SEAL + 200, next.len() - SEAL, next.len() - 1] {
            let torn = [&data[..], &unsealed[..written]].concat();
            let scan = scan(&torn, &KEY);
            assert_eq!((numbers(&scan), scan.tail), (vec![1, 2], Ok(Tail::Torn { at: whole })), "{written}");
        }
        // The whole payload and trailer durable, the leading seal torn: read from the trailer.
        for seal_bytes in [0, 8, 40, 63] {
            let mut frame = next.clone();
            frame[seal_bytes..SEAL].fill(0);
            let full = [&data[..], &frame[..]].concat();
            let scan = scan(&full, &KEY);
            assert_eq!((numbers(&scan), &scan.tail), (vec![1, 2, 3], &Ok(Tail::Clean)), "{seal_bytes}");
            assert!(scan.frames[2].repaired.is_some());
        }
        data.extend_from_slice(&next);
        assert_eq!(numbers(&scan(&data, &KEY)), [1, 2, 3]);
    }

    /// Bytes a batch carries cannot pass for a seal: a frame built with
    /// another key inside a torn tail is no valid frame after it.
    #[test]
    fn seals_made_with_another_key_are_not_seals() {
        let data = log(1);
        let forged = encode(2, &payload(2, 10), &FrameKey([8; 32]));
        let mut torn = data.clone();
        torn.extend_from_slice(&[0u8; SEAL]);
        torn.extend_from_slice(&forged);
        let scan = scan(&torn, &KEY);
        assert_eq!((numbers(&scan), scan.tail), (vec![1], Ok(Tail::Torn { at: data.len() })));
    }

    #[test]
    fn damage_in_the_middle_names_its_place_and_what_follows() {
        let data = log(5);
        let third = encode(1, &payload(1, 51), &KEY).len() + encode(2, &payload(2, 52), &KEY).len();
        let mut flipped = data.clone();
        flipped[third + SEAL + 3] ^= 1;
        let scan = scan(&flipped, &KEY);
        assert_eq!(numbers(&scan), [1, 2]);
        let damage = scan.tail.unwrap_err();
        assert_eq!(damage.offset, third);
        assert!(damage.reason.contains("batch 3 fails its checksum"), "{}", damage.reason);
        assert_eq!(damage.later.iter().map(|l| l.0).collect::<Vec<_>>(), [3, 4, 5]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Any bytes, and any edit of a whole log: no panic, and every frame
        /// read back is one of those written (damage never forges a frame).
        #[test]
        fn any_bytes_scan_without_panic_or_forged_frames(
            random in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            at in 0usize..2000,
            byte in proptest::prelude::any::<u8>(),
            cut in 0usize..2000,
        ) {
            let _ = scan(&random, &KEY);
            let whole = log(4);
            let mut edited = whole.clone();
            let at = at % edited.len();
            edited[at] = byte;
            edited.truncate(edited.len() - cut % 300);
            let scan = scan(&edited, &KEY);
            for (frame, n) in scan.frames.iter().zip(1..) {
                let expected = format!("record {n}");
                proptest::prop_assert_eq!(frame.record, expected.as_bytes());
            }
        }
    }

    #[test]
    fn format_one_frames_are_read_and_format_two_may_follow() {
        let mut data = encode_v1(&payload(1, 10), true);
        let mut record_first = (8u64).to_le_bytes().to_vec();
        record_first.extend_from_slice(b"record 2");
        record_first.extend_from_slice(&[2; 5]);
        data.extend_from_slice(&encode_v1(&record_first, false));
        data.extend_from_slice(&encode(3, &payload(3, 12), &KEY));
        let scan = scan(&data, &KEY);
        assert_eq!(scan.tail, Ok(Tail::Clean));
        let records: Vec<&[u8]> = scan.frames.iter().map(|f| f.record).collect();
        assert_eq!(records, [&b"record 1"[..], b"record 2", b"record 3"]);
        assert_eq!(scan.frames[1].delta, &[2; 5][..]);
        // A damaged format-1 frame with more after it is damage, at the end a torn tail.
        let first = encode_v1(&payload(1, 10), true).len();
        let mut flipped = data.clone();
        flipped[20] ^= 1;
        assert!(super::scan(&flipped, &KEY).tail.is_err());
        let cut = &data[..first + 30];
        assert_eq!(super::scan(cut, &KEY).tail, Ok(Tail::Torn { at: first }));
    }
}
