//! A compact binary codec for what the store persists (registers, deltas,
//! batch records). Fixed-width little-endian integers and length-prefixed
//! byte strings; every read is bounds-checked so a damaged record gives an
//! error, never a panic.

use std::collections::BTreeMap;

use crate::content_id::ContentId;
use crate::context::DomainId;
use crate::resource::{LifecycleState, ResourceRegister};

use super::StoreError;

#[derive(Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
}

impl Encoder {
    pub fn with_capacity(n: usize) -> Self {
        Encoder { buf: Vec::with_capacity(n) }
    }
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    pub fn fixed(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    pub fn register(&mut self, r: &ResourceRegister) {
        self.fixed(r.id.as_bytes());
        self.fixed(r.logic.as_bytes());
        self.str(r.domain.as_str());
        self.str(&r.fungibility_domain);
        self.u64(r.quantity);
        self.u64(r.metadata.len() as u64);
        for (k, v) in &r.metadata {
            self.str(k);
            self.str(v);
        }
        self.bytes(&r.contents);
        self.u8(r.state.code());
        self.fixed(&r.nullifier_key_commitment);
        self.str(&r.controller);
        self.u64(r.version);
    }
}

pub struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    what: &'static str,
}

impl<'a> Decoder<'a> {
    pub fn new(data: &'a [u8], what: &'static str) -> Self {
        Decoder { data, pos: 0, what }
    }

    /// Bytes read so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    fn corrupt(&self, why: impl Into<String>) -> StoreError {
        StoreError::Corrupt { what: self.what.to_string(), offset: Some(self.pos), reason: why.into() }
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(self.corrupt(format!("truncated: wanted {n} bytes, {} left", self.data.len() - self.pos))),
        }
    }
    pub fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }
    pub fn u64(&mut self) -> Result<u64, StoreError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    pub fn array32(&mut self) -> Result<[u8; 32], StoreError> {
        let mut b = [0u8; 32];
        b.copy_from_slice(self.take(32)?);
        Ok(b)
    }
    pub fn len(&mut self) -> Result<usize, StoreError> {
        let n = self.u64()?;
        if n > (self.data.len() - self.pos) as u64 {
            return Err(self.corrupt(format!("length {n} exceeds the {} bytes left", self.data.len() - self.pos)));
        }
        Ok(n as usize)
    }
    pub fn bytes(&mut self) -> Result<Vec<u8>, StoreError> {
        Ok(self.slice()?.to_vec())
    }
    /// A length-prefixed byte string, borrowed.
    pub fn slice(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.len()?;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String, StoreError> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes).map_err(|e| self.corrupt(format!("invalid UTF-8: {e}")))
    }
    pub fn register(&mut self) -> Result<ResourceRegister, StoreError> {
        let id = ContentId(self.array32()?);
        let logic = ContentId(self.array32()?);
        let domain = DomainId(self.string()?.into());
        let fungibility_domain = self.string()?.into();
        let quantity = self.u64()?;
        let entries = self.len()?;
        let mut metadata = BTreeMap::new();
        for _ in 0..entries {
            let k = self.string()?;
            let v = self.string()?;
            metadata.insert(k, v);
        }
        let contents = self.bytes()?;
        let code = self.u8()?;
        let state = LifecycleState::from_code(code).ok_or_else(|| self.corrupt(format!("lifecycle code {code}")))?;
        let nullifier_key_commitment = self.array32()?;
        let controller = self.string()?.into();
        let version = self.u64()?;
        Ok(ResourceRegister {
            id,
            logic,
            domain,
            fungibility_domain,
            quantity,
            metadata,
            contents,
            state,
            nullifier_key_commitment,
            controller,
            version,
        })
    }
    /// A register's encoding as it stands, with its id, without decoding
    /// its fields (a checkpoint copies the bytes into redb as they
    /// are; they were checksummed in the log). Lengths are checked.
    pub fn register_span(&mut self) -> Result<(ContentId, &'a [u8]), StoreError> {
        let start = self.pos;
        let id = ContentId(self.array32()?);
        self.take(32)?; // logic
        self.slice()?; // domain
        self.slice()?; // fungibility domain
        self.u64()?; // quantity
        for _ in 0..self.u64()? {
            self.slice()?;
            self.slice()?;
        }
        self.slice()?; // contents
        let code = self.u8()?;
        LifecycleState::from_code(code).ok_or_else(|| self.corrupt(format!("lifecycle code {code}")))?;
        self.take(32)?; // nullifier-key commitment
        self.slice()?; // controller
        self.u64()?; // version
        Ok((id, &self.data[start..self.pos]))
    }
    /// Whether everything has been read.
    pub fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }
    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let rest = &self.data[self.pos..];
        self.pos = self.data.len();
        rest
    }
    pub fn finish(&self) -> Result<(), StoreError> {
        if self.pos != self.data.len() {
            return Err(self.corrupt(format!("{} trailing bytes", self.data.len() - self.pos)));
        }
        Ok(())
    }
}
