//! The service's gRPC codec: prost's, with the elements of a request
//! counted in its wire bytes before it is decoded. A protobuf element can
//! be 2 bytes on the wire and 50 in memory (an empty hash message), so the
//! size limit alone would let one request take many times its size; past
//! [`MAX_ELEMENTS`] a request is refused with `RESOURCE_EXHAUSTED` before
//! anything is allocated for it.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::{ProstDecoder, ProstEncoder};

use super::proto::*;

/// The most repeated elements (hash messages, Merkle leaves, MSM points and
/// scalars) one request may hold.
pub const MAX_ELEMENTS: u64 = 1 << 22;

/// How many elements a message's wire bytes hold (what its decoding would allocate per item).
pub trait Bounded {
    fn elements(_wire: &[u8]) -> u64 {
        0
    }
}

/// Messages with no repeated elements worth bounding (or that a client
/// reads from its own server).
macro_rules! unbounded {
    ($($t:ty),* $(,)?) => { $(impl Bounded for $t {})* };
}

unbounded!(
    SubmitResponse,
    Job,
    AwaitRequest,
    JobEvent,
    GetRequest,
    CancelRequest,
    ListRequest,
    ListResponse,
    StatusRequest,
    StatusResponse,
    PreloadRequest,
    KeySetStatus,
    EvictRequest,
    UploadBasesResponse,
    RemoveBasesRequest,
    RemoveBasesResponse,
    UploadZkeyRequest,
    UploadZkeyResponse,
);

impl Bounded for SubmitRequest {
    fn elements(wire: &[u8]) -> u64 {
        // payload = 2 → hash = 3 (messages = 1), merkle_root = 4 (leaves = 1),
        // msm = 5 (inline_bases = 2 → points = 1; scalars = 4).
        let mut n = 0;
        for_each_len(wire, |field, payload| {
            if field != 2 {
                return;
            }
            for_each_len(payload, |kind, job| match kind {
                3 | 4 => n += count(job, 1),
                5 => for_each_len(job, |field, value| match field {
                    2 => n += count(value, 1),
                    4 => n += 1,
                    _ => {}
                }),
                _ => {}
            });
        });
        n
    }
}

impl Bounded for UploadBasesRequest {
    fn elements(wire: &[u8]) -> u64 {
        let mut n = 0;
        for_each_len(wire, |field, bases| {
            if field == 2 {
                n += count(bases, 1);
            }
        });
        n
    }
}

/// Call `f` with each length-delimited field of a message (number, bytes).
/// Malformed bytes end the walk: prost's decoding then says what is wrong.
fn for_each_len<'a>(mut wire: &'a [u8], mut f: impl FnMut(u32, &'a [u8])) {
    while !wire.is_empty() {
        let Some(key) = varint(&mut wire) else { return };
        let (field, kind) = ((key >> 3) as u32, key & 7);
        let skip = match kind {
            0 => varint(&mut wire).map(|_| 0),
            1 => Some(8),
            5 => Some(4),
            2 => match varint(&mut wire) {
                Some(len) if len <= wire.len() as u64 => {
                    let (value, rest) = wire.split_at(len as usize);
                    f(field, value);
                    wire = rest;
                    Some(0)
                }
                _ => None,
            },
            _ => None,
        };
        match skip {
            Some(n) if n <= wire.len() => wire = &wire[n..],
            _ => return,
        }
    }
}

/// How many length-delimited fields numbered `number` a message holds.
fn count(wire: &[u8], number: u32) -> u64 {
    let mut n = 0;
    for_each_len(wire, |field, _| n += u64::from(field == number));
    n
}

fn varint(wire: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in wire.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *wire = &wire[i + 1..];
            return Some(value);
        }
    }
    None
}

/// prost's codec, with the bound checked before decoding.
#[derive(Debug, Clone)]
pub struct BoundedCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        BoundedCodec(PhantomData)
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Bounded + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder(ProstDecoder::default())
    }
}

#[derive(Debug)]
pub struct BoundedDecoder<U>(ProstDecoder<U>);

impl<U: Message + Default + Bounded> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // The whole message is in one buffer by the time it is decoded.
        let elements = U::elements(prost::bytes::Buf::chunk(buf));
        if elements > MAX_ELEMENTS {
            return Err(Status::resource_exhausted(format!(
                "the request holds {elements} elements (messages, leaves, points, scalars); at most {MAX_ELEMENTS} \
                 per request (send many hash messages of one length packed)"
            )));
        }
        self.0.decode(buf)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_counted_from_the_wire_as_prost_would_decode_them() {
        let hash = HashJob { messages: vec![HashMessage::default(); 5], ..HashJob::default() };
        let msm = MsmJob {
            group: Group::G1 as i32,
            bases: Some(msm_job::Bases::InlineBases(PointList { points: vec![vec![1; 32]; 3] })),
            scalars: vec![vec![2; 32]; 3],
        };
        let leaves = MerkleRootJob { leaves: vec![vec![0; 32]; 7] };
        for (kind, expected) in [
            (job_payload::Kind::Hash(hash), 5),
            (job_payload::Kind::Msm(msm), 6),
            (job_payload::Kind::MerkleRoot(leaves), 7),
            (job_payload::Kind::Hash(HashJob { packed: vec![0; 640], message_len: 64, ..HashJob::default() }), 0),
        ] {
            let request = SubmitRequest {
                request_id: "r".into(),
                payload: Some(JobPayload { kind: Some(kind) }),
                priority: 3,
                deadline_unix_ms: 99,
            };
            assert_eq!(SubmitRequest::elements(&request.encode_to_vec()), expected);
        }
        let upload = UploadBasesRequest { group: 1, bases: Some(PointList { points: vec![vec![0; 32]; 4] }) };
        assert_eq!(UploadBasesRequest::elements(&upload.encode_to_vec()), 4);
        // Malformed bytes end the count; decoding reports them.
        assert_eq!(SubmitRequest::elements(&[0x12, 0xff]), 0);
    }
}
