//! A first pass over a batch file's JSON for what serde's typed parse lets
//! through: a duplicate key (serde keeps the last one silently), a top
//! level that is not one object, and arrays standing for objects (serde
//! reads a struct from its fields in order, positionally).

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};

/// The keys whose values are lists in the batch format. Nowhere else is an
/// array allowed, and never an array inside an array.
const LISTS: [&str; 6] = ["ops", "grants", "programs", "inline_programs", "inputs", "outputs"];

/// Check `text` (which must be one JSON object); errors carry serde_json's
/// line and column.
pub(super) fn check(text: &str) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    Strict { place: Place::Top }.deserialize(&mut de)?;
    de.end()
}

#[derive(Clone, Copy)]
enum Place<'k> {
    Top,
    Field(&'k str),
    Element,
}

struct Strict<'k> {
    place: Place<'k>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl Strict<'_> {
    fn scalar<E: Error>(&self) -> Result<(), E> {
        match self.place {
            Place::Top => Err(E::custom("a batch file is one JSON object ({\"domain\": …, \"ops\": […]})")),
            _ => Ok(()),
        }
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(A::Error::custom(format!("duplicate key `{key}` (each key may appear once)")));
            }
            map.next_value_seed(Strict { place: Place::Field(&key) })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        match self.place {
            Place::Top => {
                return Err(A::Error::custom(
                    "a batch file is one JSON object ({\"domain\": …, \"ops\": […]}), not an array",
                ))
            }
            Place::Element => return Err(A::Error::custom("an array inside an array is not part of the batch format")),
            Place::Field(key) if !LISTS.contains(&key) => {
                return Err(A::Error::custom(format!(
                    "field `{key}` takes an object or a single value, not an array (fields are named, never \
                     given by position)"
                )))
            }
            Place::Field(_) => {}
        }
        while seq.next_element_seed(Strict { place: Place::Element })?.is_some() {}
        Ok(())
    }

    fn visit_bool<E: Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: Error>(self) -> Result<(), E> {
        self.scalar()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        check(text).expect_err(text).to_string()
    }

    #[test]
    fn what_the_typed_parse_would_let_through_is_refused() {
        assert!(check(r#"{"a": 1, "ops": [{"op": "x", "inputs": [{"id": 1}]}], "m": {"k": "v"}}"#).is_ok());
        assert!(err(r#"{"a": 1, "a": 2}"#).contains("duplicate key `a`"));
        assert!(err(r#"{"environment": {"k": "1", "k": "2"}}"#).contains("duplicate key `k`"));
        assert!(err(r#"{"ops": [{"op": "create", "op": "delete"}]}"#).contains("line 1"));
        assert!(err(r#"["d", "mint"]"#).contains("not an array"));
        assert!(err("7").contains("one JSON object"));
        assert!(err(r#"{"ops": [{"resource": ["cid", "d"]}]}"#).contains("field `resource`"));
        assert!(err(r#"{"ops": [[1]]}"#).contains("array inside an array"));
        assert!(err(r#"{"a": 1} {"b": 2}"#).contains("trailing characters"));
    }
}
