//! Hex (de)serialization for 32-byte fields in batch files.

use serde::{Deserialize, Deserializer, Serializer};

use crate::content_id::{hex_decode_32, hex_encode};

pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex_encode(bytes))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    hex_decode_32(&text).map_err(serde::de::Error::custom)
}
