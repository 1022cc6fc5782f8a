//! How every store turns session state into bytes and back, and how keys are made.

use actix_session::storage::{LoadError, SessionKey};
use rand::RngCore;

use super::{State, StoreError};

/// The largest encoded state a store accepts. A cart of 50 lines is about 2 KiB; the limit leaves
/// room, and refuses (rather than truncates) anything larger.
pub const MAX_STATE_BYTES: usize = 64 * 1024;

/// Encodes state as a JSON object of strings; state over [`MAX_STATE_BYTES`] is refused whole.
pub fn encode(state: &State) -> Result<String, StoreError> {
    // A map of strings always serializes; were it not to, nothing would be stored.
    let encoded =
        serde_json::to_string(state).map_err(|err| StoreError::Unavailable(err.into()))?;
    if encoded.len() > MAX_STATE_BYTES {
        return Err(StoreError::TooLarge(encoded.len()));
    }
    Ok(encoded)
}

/// Decodes state; anything that is not our JSON object is a `Deserialization` error, which
/// actix-session treats as "no session". The warning names the key's prefix only.
pub fn decode(key: &SessionKey, raw: &[u8]) -> Result<State, LoadError> {
    match std::str::from_utf8(raw) {
        Ok(text) => decode_str(key, text),
        Err(err) => Err(not_ours(key, err.into())),
    }
}

/// [`decode`] that keeps the bytes, as text: they are checked to be UTF-8 once, and
/// serde_json's `str` reader does not check each string again, as its byte reader does.
pub fn decode_owned(key: &SessionKey, raw: Vec<u8>) -> Result<(State, String), LoadError> {
    let text = String::from_utf8(raw).map_err(|err| not_ours(key, err.into()))?;
    let state = decode_str(key, &text)?;
    Ok((state, text))
}

fn decode_str(key: &SessionKey, text: &str) -> Result<State, LoadError> {
    let mut state: State = serde_json::from_str(text).map_err(|err| not_ours(key, err.into()))?;
    state.remove(MAC_ENTRY);
    Ok(state)
}

/// The entry of a stored state that holds its tag, written last: `{…,"__mac":"<32 hex>"}`.
/// An entry rather than a wrapper, so that the release before the one that writes tags (0.3.0)
/// reads a tagged state as it reads any (an entry it does not know, kept as it is).
pub const MAC_ENTRY: &str = "__mac";

/// Whether a state without a valid tag is refused (loads as no session): from 0.5.0 on. 0.4.0
/// wrote a tag on every state and still read untagged state, as 0.3.0 wrote it; this release
/// reads only what verifies (README, "Deploying a new version").
pub const TAG_REQUIRED: bool = true;

/// `,"__mac":"` + 32 hex digits + `"}`: what a tagged state ends with, after its last entry.
const TAG_SUFFIX_LEN: usize = 10 + 32 + 2;

/// The key that authenticates stored state: keyed BLAKE3, derived from `SESSION_SECRET`. A
/// stored state's tag covers its session key and its bytes, so state written into the store
/// by hand, or copied from another session, does not verify. BLAKE3 rather than HMAC-SHA-256:
/// keyed BLAKE3 is a MAC in one pass, and costs a few instructions a byte where SHA-256
/// without its CPU extension costs about thirty.
#[derive(Clone)]
pub struct StateMac([u8; 32]);

/// What a stored state's tag says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    Valid,
    /// No tag: written by a release before tags, or by hand.
    Missing,
    /// A tag that does not verify: forged, copied from another session, or an older release
    /// wrote the state again around another's tag.
    Wrong,
}

impl StateMac {
    pub fn new(secret: &[u8]) -> Self {
        Self(blake3::derive_key(
            "shop 2026-12 session state tag v1",
            secret,
        ))
    }

    fn tag(&self, key: &str, untagged_without_brace: &[u8]) -> [u8; 16] {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(&(key.len() as u64).to_le_bytes());
        hasher.update(key.as_bytes());
        hasher.update(untagged_without_brace);
        hasher.update(b"}");
        let mut tag = [0_u8; 16];
        tag.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
        tag
    }

    /// Appends the tag of `encoded` (a state as [`encode`] writes it) under `key`.
    pub fn seal(&self, key: &str, mut encoded: String) -> String {
        // `{}` or `{…}`: the tag covers the state as encoded, closing brace included.
        encoded.pop();
        let tag = self.tag(key, encoded.as_bytes());
        if encoded.len() > 1 {
            encoded.push(',');
        }
        let mut digits = [0_u8; 32];
        hex::encode_to_slice(tag, &mut digits).expect("32 digits for 16 bytes");
        encoded.push_str("\"__mac\":\"");
        encoded.push_str(std::str::from_utf8(&digits).expect("hex is ASCII"));
        encoded.push_str("\"}");
        encoded
    }

    /// Checks the tag a stored state ends with, in constant time.
    pub fn check(&self, key: &str, raw: &[u8]) -> Tag {
        let Some(split) = raw.len().checked_sub(TAG_SUFFIX_LEN - 1) else {
            return Tag::Missing;
        };
        let (body, suffix) = raw.split_at(split);
        let Some(digits) = suffix
            .strip_prefix(b"\"__mac\":\"")
            .and_then(|rest| rest.strip_suffix(b"\"}"))
        else {
            return Tag::Missing;
        };
        let mut found = [0_u8; 16];
        if hex::decode_to_slice(digits, &mut found).is_err() {
            return Tag::Wrong;
        }
        // The state before its tag: `{` alone (an empty state), or its entries and a comma.
        let untagged = match body {
            [b'{'] => body,
            [.., b','] => &body[..body.len() - 1],
            _ => return Tag::Missing,
        };
        use subtle::ConstantTimeEq;
        match bool::from(self.tag(key, untagged).ct_eq(&found)) {
            true => Tag::Valid,
            false => Tag::Wrong,
        }
    }

    /// Whether a stored state may be used here: a valid tag, or (while untagged state is still
    /// read) none. A state that may not is logged, by its key's prefix.
    pub fn admits(&self, key: &SessionKey, raw: &[u8]) -> bool {
        let tag = self.check(key.as_ref(), raw);
        match (tag, TAG_REQUIRED) {
            (Tag::Valid, _) | (_, false) => true,
            (Tag::Missing, true) => {
                log::warn!(
                    "Session {} holds state without a tag; it is read as no session.",
                    key_prefix(key)
                );
                false
            }
            (Tag::Wrong, true) => {
                log::warn!(
                    "Session {} holds state whose tag does not verify (written by hand, or \
                     copied from another session); it is read as no session.",
                    key_prefix(key)
                );
                false
            }
        }
    }
}

impl std::fmt::Debug for StateMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateMac(..)")
    }
}

fn not_ours(key: &SessionKey, err: anyhow::Error) -> LoadError {
    log::warn!(
        "Session {} holds state that is not ours ({err}); treating it as no session.",
        key_prefix(key)
    );
    LoadError::Deserialization(err)
}

/// Whether bytes that do not decode as this version's state are another version's state rather
/// than garbage: the shop's state is a JSON object of strings, and a later format of the whole
/// state (actix-session's next release writes `{"v":1,"state":{…}}`) must say its version in a
/// numeric `v`, which this format can never hold. Such a state is kept, never overwritten; one
/// that is neither is not ours and loads as no session.
pub fn other_version(raw: &[u8]) -> Option<u64> {
    // This format's values are strings, whose quotes inside are escaped (`\"v\":1`): the bytes
    // `"v":` followed by a digit appear only where a key `v` holds a number, so a state without
    // them is this format's, told in one scan instead of a parse of the whole state (which
    // cost a page view 15,000 instructions, measured with callgrind; memchr's vectorised search
    // costs a few hundred).
    let numeric_v = |at: usize| {
        let mut rest = raw[at + 3..].iter().skip_while(|b| b.is_ascii_whitespace());
        rest.next() == Some(&b':')
            && rest
                .find(|b| !b.is_ascii_whitespace())
                .is_some_and(u8::is_ascii_digit)
    };
    let mayhave = memchr::memmem::find_iter(raw, b"\"v\"").any(numeric_v);
    if !mayhave {
        return None;
    }
    // An object, read as a map: a derived struct would also take `[1]` for `{"v":1}`.
    let state: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(raw).ok()?;
    state.get("v")?.as_u64()
}

/// A new session key: 256 random bits as 64 hex characters.
pub fn new_key() -> SessionKey {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    super::csrf::hex32(&bytes)
        .try_into()
        .expect("64 characters is a valid session key")
}

/// The first characters of a key, enough to tell sessions apart in a log, never enough to use.
pub fn key_prefix(key: &SessionKey) -> &str {
    let key = key.as_ref();
    &key[..key.len().min(8)]
}

/// Milliseconds since the epoch, the unit of `expires_at` in the stores that keep it themselves
/// (SQL, memory): whole seconds made a one-second TTL expire at once when it was set just
/// before a second turned.
pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A TTL in milliseconds.
pub fn millis(ttl: &actix_web::cookie::time::Duration) -> i64 {
    i64::try_from(ttl.whole_milliseconds()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_long_random_and_distinct() {
        let (a, b) = (new_key(), new_key());
        assert_eq!(a.as_ref().len(), 64);
        assert_ne!(a, b);
    }

    #[test]
    fn state_round_trips_exactly() {
        let mut state = State::new();
        state.insert("cart".into(), r#"[{"product_id":1,"quantity":2}]"#.into());
        state.insert("note".into(), "\"ünïcødé \\\" 'quotes' \u{1F600}\"".into());
        let key = new_key();
        assert_eq!(
            decode(&key, encode(&state).unwrap().as_bytes()).unwrap(),
            state
        );
    }

    #[test]
    fn oversized_state_is_refused_not_truncated() {
        let mut state = State::new();
        state.insert("big".into(), "x".repeat(MAX_STATE_BYTES));
        let err = encode(&state).unwrap_err();
        assert!(matches!(err, StoreError::TooLarge(_)));
    }

    fn mac() -> StateMac {
        StateMac::new(&[7; 64])
    }

    #[test]
    fn a_sealed_state_verifies_under_its_key_and_decodes_without_its_tag() {
        let key = new_key();
        for entries in [
            vec![],
            vec![("cart", "[1]")],
            vec![("a", "1"), ("b", "\"}\"")],
        ] {
            let state: State = entries
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let sealed = mac().seal(key.as_ref(), encode(&state).unwrap());
            assert_eq!(
                mac().check(key.as_ref(), sealed.as_bytes()),
                Tag::Valid,
                "{sealed}"
            );
            assert_eq!(decode(&key, sealed.as_bytes()).unwrap(), state);
        }
    }

    #[test]
    fn a_changed_copied_or_untagged_state_does_not_verify() {
        let (key, other) = (new_key(), new_key());
        let mut state = State::new();
        state.insert("user".into(), r#"{"id":1}"#.into());
        let sealed = mac().seal(key.as_ref(), encode(&state).unwrap());
        let forged = sealed.replace(r#"\"id\":1"#, r#"\"id\":2"#);
        assert_eq!(mac().check(key.as_ref(), forged.as_bytes()), Tag::Wrong);
        assert_eq!(mac().check(other.as_ref(), sealed.as_bytes()), Tag::Wrong);
        assert_eq!(
            StateMac::new(&[8; 64]).check(key.as_ref(), sealed.as_bytes()),
            Tag::Wrong
        );
        let plain = encode(&state).unwrap();
        assert_eq!(mac().check(key.as_ref(), plain.as_bytes()), Tag::Missing);
        assert_eq!(mac().check(key.as_ref(), b"{}"), Tag::Missing);
    }

    #[test]
    fn another_versions_state_is_told_from_garbage() {
        assert_eq!(other_version(br#"{"v":2,"state":{"cart":"[]"}}"#), Some(2));
        assert_eq!(
            other_version(br#"{"state":{"cart":"[]"}, "v" : 3}"#),
            Some(3)
        );
        // A value that holds `"v":1` holds it escaped.
        let state = State::from([("cart".to_owned(), r#"{"v":1}"#.to_owned())]);
        assert_eq!(other_version(encode(&state).unwrap().as_bytes()), None);
        for raw in [
            &b"not json"[..],
            b"{\"v\":\"2\"}",
            b"{\"cart\":\"[]\"}",
            b"[1]",
        ] {
            assert_eq!(other_version(raw), None);
        }
    }

    #[test]
    fn foreign_data_is_a_deserialization_error() {
        let key = new_key();
        for raw in [&b"not json"[..], b"[1,2,3]", b"{\"a\":1}", b"\xff\xfe"] {
            assert!(matches!(
                decode(&key, raw),
                Err(LoadError::Deserialization(_))
            ));
        }
    }
}

/// What any bytes and any state do to the codec.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn arbitrary_stored_bytes_decode_or_are_refused_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&new_key(), &raw);
        }

        #[test]
        fn arbitrary_stored_bytes_never_panic_the_tag_check(raw in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = StateMac::new(b"k").check("key", &raw);
        }

        #[test]
        fn session_state_round_trips_exactly(state in proptest::collection::hash_map("\\PC{0,12}", "\\PC{0,40}", 0..12)) {
            let encoded = encode(&state).unwrap();
            prop_assert_eq!(decode(&new_key(), encoded.as_bytes()).unwrap(), state);
        }
    }
}
