//! Properties of the parsers a client can reach, over arbitrary input: they never panic, they
//! accept exactly what they promise, and what they accept survives a round trip.

use proptest::prelude::*;

use super::{Email, ProductId, Quantity};

proptest! {
    #[test]
    fn quantity_accepts_exactly_the_whole_numbers_from_1_to_99(raw in "\\PC{0,30}") {
        let parsed = Quantity::parse(&raw);
        let expected = raw.trim().parse::<u32>().ok().filter(|n| (1..=99).contains(n))
            .filter(|_| raw.trim().bytes().all(|b| b.is_ascii_digit()));
        prop_assert_eq!(parsed.ok().map(Quantity::get), expected);
    }

    #[test]
    fn quantity_round_trips_its_own_text(n in 1_u32..=99) {
        prop_assert_eq!(Quantity::parse(&n.to_string()).map(Quantity::get), Ok(n));
    }

    #[test]
    fn product_ids_are_positive_integers_only(raw in "\\PC{0,25}") {
        if let Ok(id) = ProductId::parse(&raw) {
            prop_assert!(id.get() > 0);
            prop_assert_eq!(raw.trim().parse::<i64>().ok(), Some(id.get()));
        }
    }

    #[test]
    fn an_accepted_email_is_normalised_and_stable(raw in "[ -~]{0,80}") {
        if let Ok(email) = Email::parse(&raw) {
            prop_assert_eq!(email.as_str(), raw.trim().to_lowercase());
            prop_assert!(email.as_str().len() <= 254);
            prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
        }
    }

    #[test]
    fn arbitrary_form_bodies_never_panic_the_form_parsers(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        #[derive(serde::Deserialize)]
        struct Add { product_id: String, quantity: String }
        if let Ok(form) = serde_urlencoded::from_bytes::<Add>(&body) {
            let _ = ProductId::parse(&form.product_id);
            let _ = Quantity::parse(&form.quantity);
        }
    }
}
