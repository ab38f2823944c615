//! [`Label`]: an immutable string for the text fields of resources (domain,
//! fungibility domain, controller).
//!
//! Registers are copied from operations and shared between the batch, its
//! delta and the store's index; with `String` fields every copy allocated
//! three strings and every consumed register freed them, which made the
//! allocator the largest cost of a batch. Labels are short, so one of up to
//! [`INLINE`] bytes is kept in place and copied with the register; a longer
//! one is shared behind a reference count. (Shared short labels made every
//! register copy and drop three atomic updates of the same few counters, on
//! whichever core: 8% of a batch's execution.)

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest label kept in place: a label is then 24 bytes either way.
pub const INLINE: usize = 22;

#[derive(Clone)]
pub struct Label(Repr);

#[derive(Clone)]
enum Repr {
    /// The first `len` bytes of `bytes`, which came from a `&str`.
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    Shared(Arc<str>),
}

impl Label {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                // SAFETY: an inline label holds the bytes of a `&str` whole
                // (`From<&str>` copies all of them or takes the shared form).
                unsafe { std::str::from_utf8_unchecked(&bytes[..*len as usize]) }
            }
            Repr::Shared(s) => s,
        }
    }
}

impl Default for Label {
    fn default() -> Self {
        Label::from("")
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl PartialOrd for Label {
    fn partial_cmp(&self, other: &Label) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Label {
    fn cmp(&self, other: &Label) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

/// As its text (so a map keyed by labels can be searched with a `&str`).
impl Hash for Label {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Deref for Label {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Label {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Label {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Label {
    fn from(s: &str) -> Self {
        if s.len() > INLINE {
            return Label(Repr::Shared(Arc::from(s)));
        }
        let mut bytes = [0u8; INLINE];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Label(Repr::Inline { len: s.len() as u8, bytes })
    }
}

impl From<&String> for Label {
    fn from(s: &String) -> Self {
        Label::from(s.as_str())
    }
}

impl From<String> for Label {
    fn from(s: String) -> Self {
        match s.len() > INLINE {
            true => Label(Repr::Shared(Arc::from(s))),
            false => Label::from(s.as_str()),
        }
    }
}

impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Label {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Label::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_and_prints_as_its_text() {
        let a = Label::from("coin");
        assert_eq!(a, "coin");
        assert_eq!(a, String::from("coin"));
        assert_eq!(a.clone(), a);
        let (a_, b_) = (Label::from("a"), Label::from("b"));
        assert!(a_ < b_);
        assert_eq!(format!("{a} {a:?}"), "coin \"coin\"");
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"coin\"");
        assert_eq!(serde_json::from_str::<Label>("\"coin\"").unwrap(), a);
        assert_eq!(Label::default(), "");
    }

    /// Labels at, around and far past the inline length (and multi-byte
    /// text across it) keep their text, compare, order and hash as their
    /// text whichever form holds them.
    #[test]
    fn inline_and_shared_labels_behave_as_their_text() {
        use std::collections::hash_map::DefaultHasher;
        fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
            let mut h = DefaultHasher::new();
            t.hash(&mut h);
            h.finish()
        }
        let texts: Vec<String> = [0, 1, INLINE - 1, INLINE, INLINE + 1, 3 * INLINE]
            .iter()
            .map(|&n| "x".repeat(n))
            .chain(["é".repeat(INLINE / 2), "é".repeat(INLINE / 2 + 1), "ŝ€".repeat(8)])
            .collect();
        for text in &texts {
            for label in [Label::from(text.as_str()), Label::from(text.clone()), Label::from(text)] {
                assert_eq!(label.as_str(), text);
                assert_eq!(label.len(), text.len());
                assert_eq!(label.clone(), label);
                assert_eq!(hash_of(&label), hash_of(text.as_str()));
                assert_eq!(matches!(label.0, Repr::Inline { .. }), text.len() <= INLINE, "{text:?}");
            }
        }
        let mut labels: Vec<Label> = texts.iter().map(Label::from).collect();
        let mut sorted = texts.clone();
        labels.sort();
        sorted.sort();
        assert_eq!(labels.iter().map(Label::as_str).collect::<Vec<_>>(), sorted);
        let mut map = std::collections::HashMap::new();
        map.insert(Label::from("y".repeat(INLINE + 5)), 1);
        map.insert(Label::from("coin"), 2);
        assert_eq!((map.get("coin"), map.get("y".repeat(INLINE + 5).as_str())), (Some(&2), Some(&1)));
        assert_eq!(std::mem::size_of::<Label>(), 24);
    }
}
