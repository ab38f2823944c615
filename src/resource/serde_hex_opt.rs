//! Hex (de)serialization for optional byte fields in batch files.

use serde::{Deserialize, Deserializer, Serializer};

use crate::content_id::{hex_decode, hex_encode};

pub fn serialize<S: Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(b) => s.serialize_some(&hex_encode(b)),
        None => s.serialize_none(),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(d)?;
    text.map(|t| hex_decode(&t).map_err(serde::de::Error::custom)).transpose()
}
