//! The token: minting, attenuation and chain verification.
//!
//! tag_0 = keyed_blake3(root_key, canonical(version, domain, identifier))
//! tag_i = keyed_blake3(tag_{i-1}, canonical(caveat_i))
//!
//! Anyone holding a token can append a caveat and compute the next tag without
//! the root key, but nobody can remove one or change one: the tags before it
//! are not in the token. Verification recomputes the chain from the root key.

use rand::RngCore;

use super::caveat::Caveat;
use super::keys::RootKey;
use super::permissions::Permissions;
use super::CapabilityError;
use crate::content_id::canonical;
use crate::resource::DomainId;

/// The version MAC'd into every root tag and written first in the binary form.
pub const TOKEN_VERSION: u8 = 1;

/// Bounds the work of verifying and decoding a token from outside.
pub const MAX_CAVEATS: usize = 64;

/// Rooted in `domain` (its MAC chain starts from that domain's root key).
#[derive(Clone, PartialEq, Eq)]
pub struct CapabilityToken {
    pub domain: DomainId,
    /// A public nonce naming this token lineage.
    pub identifier: [u8; 16],
    pub caveats: Vec<Caveat>,
    /// The last MAC in the chain. Whoever knows it holds the token (a bearer
    /// credential), so `Debug` leaves it out.
    pub tag: [u8; 32],
}

impl std::fmt::Debug for CapabilityToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapabilityToken")
            .field("domain", &self.domain)
            .field("identifier", &crate::content_id::hex_encode(&self.identifier))
            .field("caveats", &self.caveats)
            .field("tag", &"<redacted>")
            .finish()
    }
}

fn root_tag(root: &RootKey, domain: &DomainId, identifier: &[u8; 16]) -> [u8; 32] {
    let encoding = canonical("cvm.capability.root", |w| {
        w.u8(TOKEN_VERSION).str(domain.as_str()).fixed(identifier);
    });
    *blake3::keyed_hash(&root.0, &encoding).as_bytes()
}

fn chain_tag(previous: &[u8; 32], caveat: &Caveat) -> [u8; 32] {
    *blake3::keyed_hash(previous, &caveat.mac_encoding()).as_bytes()
}

/// Check that `caveat` may follow caveats whose intersection is `current`.
fn check_step(current: &Permissions, index: usize, caveat: &Caveat) -> Result<(), CapabilityError> {
    caveat.check_encodable()?;
    if caveat.clone().normalized() != *caveat {
        // `attenuate` sorts lists; an unsorted one would not survive the text form.
        return Err(CapabilityError::InvalidCaveat {
            caveat: caveat.to_string(),
            reason: format!("caveat {index} lists values out of order or twice"),
        });
    }
    if !current.can_delegate() {
        return Err(CapabilityError::NotDelegatable { index, caveat: caveat.to_string() });
    }
    current.check_narrows(caveat).map_err(|reason| CapabilityError::Widening {
        index,
        caveat: caveat.to_string(),
        reason,
    })
}

impl CapabilityToken {
    /// A root token for `domain`: every right, no restriction.
    pub fn mint(root: &RootKey, domain: DomainId, identifier: [u8; 16]) -> Self {
        let tag = root_tag(root, &domain, &identifier);
        CapabilityToken { domain, identifier, caveats: Vec::new(), tag }
    }

    /// `mint` with a fresh random identifier.
    pub fn mint_random(root: &RootKey, domain: DomainId) -> Self {
        let mut identifier = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut identifier);
        CapabilityToken::mint(root, domain, identifier)
    }

    /// A narrower token: this one plus `caveat` (lists sorted and deduplicated).
    /// Needs no root key. Refused when this token lacks the Delegate right or
    /// when the caveat claims anything this token does not already grant.
    pub fn attenuate(&self, caveat: Caveat) -> Result<Self, CapabilityError> {
        let caveat = caveat.normalized();
        let index = self.caveats.len();
        if index >= MAX_CAVEATS {
            return Err(CapabilityError::TooManyCaveats { count: index + 1, max: MAX_CAVEATS });
        }
        check_step(&self.effective(), index, &caveat)?;
        let tag = chain_tag(&self.tag, &caveat);
        let mut caveats = self.caveats.clone();
        caveats.push(caveat);
        Ok(CapabilityToken { domain: self.domain.clone(), identifier: self.identifier, caveats, tag })
    }

    /// One delegation step adding several caveats. Rights caveats are merged
    /// into one and appended last, so a step may drop Delegate and still add
    /// other restrictions.
    pub fn attenuate_all(&self, caveats: impl IntoIterator<Item = Caveat>) -> Result<Self, CapabilityError> {
        let mut rights: Option<Vec<super::Right>> = None;
        let mut token = self.clone();
        for caveat in caveats {
            match caveat {
                Caveat::Rights(given) => {
                    rights = Some(match rights {
                        None => given,
                        Some(prev) => prev.into_iter().filter(|r| given.contains(r)).collect(),
                    })
                }
                other => token = token.attenuate(other)?,
            }
        }
        match rights {
            Some(r) => token.attenuate(Caveat::Rights(r)),
            None => Ok(token),
        }
    }

    /// Recompute the chain from `root` and compare tags in constant time, then
    /// check that every caveat narrows what came before it and was appended
    /// while the token still held Delegate.
    pub fn verify_chain(&self, root: &RootKey) -> Result<(), CapabilityError> {
        if self.caveats.len() > MAX_CAVEATS {
            return Err(CapabilityError::TooManyCaveats { count: self.caveats.len(), max: MAX_CAVEATS });
        }
        let mut tag = root_tag(root, &self.domain, &self.identifier);
        for caveat in &self.caveats {
            tag = chain_tag(&tag, caveat);
        }
        // blake3::Hash compares in constant time.
        if blake3::Hash::from_bytes(tag) != blake3::Hash::from_bytes(self.tag) {
            return Err(CapabilityError::TagMismatch { domain: self.domain.to_string() });
        }
        let mut current = Permissions::unrestricted();
        for (index, caveat) in self.caveats.iter().enumerate() {
            check_step(&current, index, caveat)?;
            current.apply(caveat);
        }
        Ok(())
    }

    /// What the token grants: the intersection of all its caveats.
    pub fn effective(&self) -> Permissions {
        Permissions::of_caveats(&self.caveats)
    }
}
