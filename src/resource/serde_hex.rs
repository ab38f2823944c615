//! Hex (de)serialization for byte fields in batch files.

use serde::{Deserialize, Deserializer, Serializer};

use crate::content_id::{hex_decode, hex_encode};

pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex_encode(bytes))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    hex_decode(&text).map_err(serde::de::Error::custom)
}
