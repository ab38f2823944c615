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
    fn elements(_walk: &Walk, _wire: &[u8]) -> u64 {
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
    fn elements(walk: &Walk, wire: &[u8]) -> u64 {
        // payload = 2 → hash = 3 (messages = 1), merkle_root = 4 (leaves = 1),
        // msm = 5 (inline_bases = 2 → points = 1; scalars = 4).
        let mut n = 0;
        walk.each(wire, |field, payload| {
            if field != 2 {
                return;
            }
            walk.each(payload, |kind, job| match kind {
                3 | 4 => n += walk.count(job, 1),
                5 => walk.each(job, |field, value| match field {
                    2 => n += walk.count(value, 1),
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
    fn elements(walk: &Walk, wire: &[u8]) -> u64 {
        let mut n = 0;
        walk.each(wire, |field, bases| {
            if field == 2 {
                n += walk.count(bases, 1);
            }
        });
        n
    }
}

/// A walk over a message's length-delimited fields, remembering whether it
/// met a group (wire types 3 and 4, proto2's, which no message of this API
/// has). prost skips a group and decodes what follows it, so a count that
/// stopped there would let everything after it past the bound: a request
/// with one is refused instead.
#[derive(Default)]
pub struct Walk {
    group: std::cell::Cell<Option<u32>>,
}

impl Walk {
    /// Call `f` with each length-delimited field of a message (number, bytes).
    /// Malformed bytes end the walk: prost's decoding then says what is wrong.
    fn each<'a>(&self, mut wire: &'a [u8], mut f: impl FnMut(u32, &'a [u8])) {
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
                3 | 4 => {
                    self.group.set(Some(field));
                    None
                }
                _ => None,
            };
            match skip {
                Some(n) if n <= wire.len() => wire = &wire[n..],
                _ => return,
            }
        }
    }

    /// How many length-delimited fields numbered `number` a message holds.
    fn count(&self, wire: &[u8], number: u32) -> u64 {
        let mut n = 0;
        self.each(wire, |field, _| n += u64::from(field == number));
        n
    }

    /// The field number of the first group met, if any.
    pub fn group(&self) -> Option<u32> {
        self.group.get()
    }
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
        let walk = Walk::default();
        let elements = U::elements(&walk, prost::bytes::Buf::chunk(buf));
        if let Some(field) = walk.group() {
            return Err(Status::invalid_argument(format!(
                "the request holds a protobuf group (wire type 3 or 4, field {field}): no message of this API has \
                 groups"
            )));
        }
        if elements > MAX_ELEMENTS {
            return Err(Status::resource_exhausted(format!(
                "the request holds {elements} elements (messages, leaves, points, scalars); at most {MAX_ELEMENTS} \
                 per request (send many hash messages of one length packed)"
            )));
        }
        // Bytes that are no message of this API are the sender's fault
        // (prost's codec calls them INTERNAL, which reads as the server's).
        // This codec decodes the client's responses too, hence no "request".
        self.0.decode(buf).map_err(|status| match status.code() {
            tonic::Code::Internal => Status::invalid_argument(format!(
                "the message received is not a valid protobuf message of this API: {}",
                status.message()
            )),
            _ => status,
        })
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
            assert_eq!(SubmitRequest::elements(&Walk::default(), &request.encode_to_vec()), expected);
        }
        let upload = UploadBasesRequest { group: 1, bases: Some(PointList { points: vec![vec![0; 32]; 4] }) };
        assert_eq!(UploadBasesRequest::elements(&Walk::default(), &upload.encode_to_vec()), 4);
        // Malformed bytes end the count; decoding reports them.
        assert_eq!(SubmitRequest::elements(&Walk::default(), &[0x12, 0xff]), 0);
    }

    /// An empty group (field 15) before the payload: prost skips it and
    /// decodes the rest, so the walk must not stop there unnoticed; at any
    /// level the bound is checked.
    #[test]
    fn a_group_anywhere_the_bound_is_counted_refuses_the_request() {
        let group = [0x7b, 0x7c];
        let hash = HashJob { messages: vec![HashMessage::default(); 5], ..HashJob::default() };
        let payload = JobPayload { kind: Some(job_payload::Kind::Hash(hash.clone())) };
        let request = SubmitRequest { request_id: "r".into(), payload: Some(payload), ..SubmitRequest::default() };
        let mut wire = group.to_vec();
        wire.extend(request.encode_to_vec());
        assert_eq!(SubmitRequest::decode(&wire[..]).unwrap(), request, "prost decodes past the group");
        let walk = Walk::default();
        SubmitRequest::elements(&walk, &wire);
        assert_eq!(walk.group(), Some(15));

        // Inside the hash job, before its messages.
        let mut job = group.to_vec();
        job.extend(hash.encode_to_vec());
        let mut payload = vec![0x1a];
        prost::encoding::encode_varint(job.len() as u64, &mut payload);
        payload.extend(&job);
        let mut wire = vec![0x12];
        prost::encoding::encode_varint(payload.len() as u64, &mut wire);
        wire.extend(&payload);
        let decoded = SubmitRequest::decode(&wire[..]).unwrap();
        assert!(matches!(decoded.payload.unwrap().kind, Some(job_payload::Kind::Hash(h)) if h.messages.len() == 5));
        let walk = Walk::default();
        SubmitRequest::elements(&walk, &wire);
        assert_eq!(walk.group(), Some(15));

        let walk = Walk::default();
        assert_eq!(SubmitRequest::elements(&walk, &request.encode_to_vec()), 5);
        assert_eq!(walk.group(), None);
    }
}
