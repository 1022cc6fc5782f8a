//! CSRF tokens that cost a guest no stored session.
//!
//! A visitor who has changed nothing has no session in the store, so their forms cannot be
//! protected by a token kept there. Instead every visitor gets a random nonce in a small cookie of
//! its own (`__Host-shop_csrf` when cookies are Secure, so a sibling domain cannot plant one), and
//! a form's token is an HMAC of that nonce under `SESSION_SECRET`: a signed double-submit token.
//! Once the visitor has a stored session the token moves into it and is bound to that session
//! (see `ShopSession::csrf_token`); a login starts a new one. Tokens are compared in constant
//! time, and a browser's `Sec-Fetch-Site: cross-site` is refused on its own.

use actix_web::cookie::Key;
use actix_web::{HttpMessage, HttpRequest};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The nonce cookie over plain HTTP (development, tests behind a local nginx).
pub const COOKIE: &str = "shop_csrf";
/// The nonce cookie when cookies are Secure: the `__Host-` prefix makes browsers refuse it unless
/// it was set by this host, over HTTPS, for the whole site.
pub const SECURE_COOKIE: &str = "__Host-shop_csrf";

pub fn cookie_name(secure: bool) -> &'static str {
    if secure { SECURE_COOKIE } else { COOKIE }
}

/// This request's nonce: the one its cookie carried, or a new one that the response will set.
#[derive(Clone, Debug)]
pub struct Nonce {
    pub value: String,
    /// Made during this request; no form can carry a token for it yet.
    pub is_new: bool,
}

/// A fresh nonce: 256 random bits as 64 hex characters.
pub fn new_nonce() -> String {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex32(&bytes)
}

/// 32 bytes as 64 lower-case hex digits, written into place: `hex::encode` builds its string a
/// `char` at a time, a tenth of the cost of a cookie-less view's two (nonce and token).
pub fn hex32(bytes: &[u8; 32]) -> String {
    let mut digits = [0_u8; 64];
    hex::encode_to_slice(bytes, &mut digits).expect("64 digits for 32 bytes");
    String::from_utf8(digits.to_vec()).expect("hex digits are ASCII")
}

fn is_nonce(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The request's nonce, read from its cookie once, or made once and remembered so that every
/// form on the page and the cookie agree.
pub fn nonce_of(req: &HttpRequest, secure: bool) -> Nonce {
    if let Some(nonce) = req.extensions().get::<Nonce>() {
        return nonce.clone();
    }
    let nonce = match req.cookie(cookie_name(secure)) {
        Some(cookie) if is_nonce(cookie.value()) => Nonce {
            value: cookie.value().to_owned(),
            is_new: false,
        },
        _ => Nonce {
            value: new_nonce(),
            is_new: true,
        },
    };
    req.extensions_mut().insert(nonce.clone());
    nonce
}

/// Replaces the request's nonce with a new one that the response will set: at sign-in and
/// sign-out, so the tokens of forms shown before stop working.
pub fn renew_nonce(req: &HttpRequest) {
    req.extensions_mut().insert(Nonce {
        value: new_nonce(),
        is_new: true,
    });
}

/// HMAC-SHA256 under the signing half of the session secret, with the key's two HMAC blocks
/// hashed once at start-up: each hash then costs two SHA-256 compressions, not four (the form
/// token of a cookie-less page view was a fifth of its instructions).
#[derive(Clone)]
pub struct Signer(Hmac<Sha256>);

impl Signer {
    pub fn new(key: &Key) -> Self {
        Self(Hmac::<Sha256>::new_from_slice(key.signing()).expect("HMAC takes a key of any length"))
    }

    /// HMAC-SHA256 of `value` for one `purpose`, in hex: what only the shop's replicas can
    /// compute, the same on each of them and across builds.
    pub fn hash(&self, purpose: &str, value: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(value);
        hex32(&mac.finalize().into_bytes().into())
    }

    /// The form token for a nonce.
    pub fn token(&self, nonce: &str) -> String {
        self.hash("shop csrf v1", nonce.as_bytes())
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(..)")
    }
}

/// Whether the browser says the request comes from another site. Browsers that send
/// `Sec-Fetch-Site` cannot be made to lie in it; clients that do not send it are judged by the
/// token alone.
pub fn is_cross_site(req: &HttpRequest) -> bool {
    req.headers()
        .get("sec-fetch-site")
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"cross-site"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_its_nonce_signed_with_the_secret() {
        let key = Key::generate();
        let signer = Signer::new(&key);
        let (a, b) = (new_nonce(), new_nonce());
        assert_eq!(
            signer.token(&a),
            Signer::new(&key).token(&a),
            "the same on every replica"
        );
        assert_ne!(signer.token(&a), signer.token(&b));
        assert_ne!(signer.token(&a), a, "the nonce itself is not a token");
        assert_ne!(Signer::new(&Key::generate()).token(&a), signer.token(&a));
    }

    #[test]
    fn a_token_is_hmac_sha256_of_its_purpose_and_nonce() {
        // Tokens must stay the same across builds and the precomputed key: a rolling deploy
        // mixes replicas. HMAC-SHA256 computed in one go, as before the key was precomputed.
        let key = Key::from(&[7_u8; 64]);
        let mut mac = Hmac::<Sha256>::new_from_slice(key.signing()).unwrap();
        mac.update(b"shop csrf v1:abc");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(Signer::new(&key).token("abc"), expected);
    }

    #[test]
    fn hex32_writes_what_hex_encode_writes() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 37 + 5) as u8);
        assert_eq!(hex32(&bytes), hex::encode(bytes));
    }

    #[test]
    fn only_hex_nonces_of_the_right_length_are_taken_from_a_cookie() {
        assert!(is_nonce(&new_nonce()));
        assert!(!is_nonce("abc"));
        assert!(!is_nonce(&"g".repeat(64)));
        assert!(!is_nonce(&"a".repeat(65)));
    }
}
