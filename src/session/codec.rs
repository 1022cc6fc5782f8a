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
    serde_json::from_str(text).map_err(|err| not_ours(key, err.into()))
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

    #[test]
    fn another_versions_state_is_told_from_garbage() {
        assert_eq!(other_version(br#"{"v":2,"state":{"cart":"[]"}}"#), Some(2));
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
        fn session_state_round_trips_exactly(state in proptest::collection::hash_map("\\PC{0,12}", "\\PC{0,40}", 0..12)) {
            let encoded = encode(&state).unwrap();
            prop_assert_eq!(decode(&new_key(), encoded.as_bytes()).unwrap(), state);
        }
    }
}
