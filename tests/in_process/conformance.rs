//! One conformance suite, written once, run against every store compiled into this build, each
//! against its real server: the semantics every store must keep.

use std::collections::HashMap;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use shop::session::{Backend, LOADED, Loaded, MAX_STATE_BYTES, Store};

use crate::helpers::{store_of, test_settings_for};

type State = HashMap<String, String>;

async fn store(backend: &str) -> Store {
    store_sliding_to(backend, 1800).await
}

/// A store whose reads slide a session's expiry to `ttl_seconds`.
async fn store_sliding_to(backend: &str, ttl_seconds: i64) -> Store {
    let (mut settings, dir) = test_settings_for(backend).await;
    settings.insert("SESSION_TTL_SECONDS".into(), ttl_seconds.to_string());
    // The SQLite file lives in the folder; keep it for the life of the test process.
    std::mem::forget(dir);
    store_of(&settings).await
}

fn key(raw: &str) -> SessionKey {
    raw.to_owned().try_into().unwrap()
}

/// A state like the shop's, with the awkward characters a store might mangle.
fn rich_state() -> State {
    let cart: Vec<String> = (1..=200)
        .map(|i| format!(r#"{{"product_id":{i},"quantity":{}}}"#, i % 99 + 1))
        .collect();
    HashMap::from([
        (
            "user".into(),
            r#"{"id":7,"email":"zoë@example.com"}"#.into(),
        ),
        ("cart".into(), format!("[{}]", cart.join(","))),
        (
            "note".into(),
            "\"quotes\" 'single' \\ back\\slash ünïcødé 日本語 🛒 \u{0}".into(),
        ),
        ("csrf".into(), "\"abc\"".into()),
    ])
}

/// What `load` returns, less the bytes it carries for `update`'s compare-and-set and its key.
async fn loaded(store: &Store, key: &SessionKey) -> Option<State> {
    let mut state = store.load(key).await.unwrap()?;
    let carried = state
        .remove(LOADED)
        .expect("a loaded state carries what was read");
    let carried = Loaded::read(&carried).expect("the key and the bytes");
    assert_eq!(carried.key, key.as_ref(), "a loaded state carries its key");
    assert!(carried.raw.starts_with('{'), "{}", carried.raw);
    Some(state)
}

const TTL: Duration = Duration::seconds(60);

async fn saved_and_loaded_state_is_identical(backend: &str) {
    let store = store(backend).await;
    let state = rich_state();
    let key = store.save(state.clone(), &TTL).await.unwrap();
    assert_eq!(loaded(&store, &key).await, Some(state));
}

async fn save_never_overwrites_an_existing_key(backend: &str) {
    let store = store(backend).await;
    let original = HashMap::from([("user".to_owned(), "1".to_owned())]);
    let key = store.save(original.clone(), &TTL).await.unwrap();
    let intruder = r#"{"user":"2"}"#;
    assert!(
        !store
            .insert_new(key.as_ref(), intruder, &TTL)
            .await
            .unwrap()
    );
    assert_eq!(loaded(&store, &key).await, Some(original));
    let other = store
        .save(HashMap::from([("user".into(), "3".into())]), &TTL)
        .await
        .unwrap();
    assert_ne!(key, other, "every save gets its own key");
}

async fn update_never_brings_back_a_deleted_session(backend: &str) {
    let store = store(backend).await;
    let key = store
        .save(HashMap::from([("user".into(), "1".into())]), &TTL)
        .await
        .unwrap();
    let same_key = self::key(key.as_ref());
    store.delete(&key).await.unwrap();
    // A slower request that loaded the session before the logout now writes it back.
    let late = HashMap::from([("user".into(), "1".into()), ("cart".into(), "[]".into())]);
    let returned = store.update(same_key, late, &TTL).await.unwrap();
    assert_eq!(loaded(&store, &returned).await, None);
    assert_eq!(store.raw(returned.as_ref()).await.unwrap(), None);
}

async fn expired_state_never_loads_and_is_not_revived(backend: &str) {
    let store = store_sliding_to(backend, 2).await;
    let state = HashMap::from([("user".into(), "1".into())]);
    let key = store
        .save(state.clone(), &Duration::seconds(2))
        .await
        .unwrap();
    assert_eq!(loaded(&store, &key).await, Some(state.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(loaded(&store, &key).await, None);
    let again = self::key(key.as_ref());
    let returned = store.update(again, state, &TTL).await.unwrap();
    assert_eq!(
        loaded(&store, &returned).await,
        None,
        "update revived an expired session"
    );
}

async fn a_read_slides_the_expiry_and_keeps_the_bytes(backend: &str) {
    let store = store(backend).await;
    let state = rich_state();
    // Saved with a short TTL; the store's own TTL (the instance's, 1800 s) is what a read
    // slides it to, at once on Redis and Memcached, and on the SQL stores because less than
    // half of it is left.
    let key = store
        .save(state.clone(), &Duration::seconds(2))
        .await
        .unwrap();
    let (raw_before, _) = store.raw(key.as_ref()).await.unwrap().unwrap();
    assert_eq!(loaded(&store, &key).await, Some(state.clone()));
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(
        loaded(&store, &key).await,
        Some(state),
        "the read slid the expiry"
    );
    let (raw_after, ttl) = store.raw(key.as_ref()).await.unwrap().unwrap();
    assert_eq!(raw_before, raw_after, "the slide kept the bytes");
    assert!((1790..=1800).contains(&ttl), "ttl {ttl}");
}

async fn sliding_a_deleted_key_creates_nothing(backend: &str) {
    let store = store(backend).await;
    let key = store
        .save(HashMap::from([("user".into(), "1".into())]), &TTL)
        .await
        .unwrap();
    store.delete(&key).await.unwrap();
    assert_eq!(loaded(&store, &key).await, None, "the sliding read");
    store.touch(key.as_ref(), &TTL).await.unwrap();
    assert_eq!(loaded(&store, &key).await, None, "the slide on its own");
    assert_eq!(store.raw(key.as_ref()).await.unwrap(), None);
}

async fn state_over_the_limit_is_refused_not_truncated(backend: &str) {
    let store = store(backend).await;
    let huge = HashMap::from([("cart".to_owned(), "x".repeat(MAX_STATE_BYTES))]);
    assert!(matches!(
        store.save(huge.clone(), &TTL).await,
        Err(SaveError::Serialization(_))
    ));
    let small = HashMap::from([("cart".to_owned(), "[]".to_owned())]);
    let key = store.save(small.clone(), &TTL).await.unwrap();
    let same = self::key(key.as_ref());
    assert!(matches!(
        store.update(same, huge, &TTL).await,
        Err(UpdateError::Serialization(_))
    ));
    assert_eq!(
        loaded(&store, &key).await,
        Some(small),
        "the old state is intact"
    );
}

async fn foreign_data_under_a_key_loads_as_no_session(backend: &str) {
    let store = store(backend).await;
    for (i, garbage) in ["not json", "[1,2,3]", r#"{"user":7}"#, "\u{fffd}\u{fffd}"]
        .iter()
        .enumerate()
    {
        let raw_key = format!("{:064x}", 0xf00d + i);
        assert!(
            store
                .insert_new(&raw_key, garbage, &TTL)
                .await
                .unwrap_or(true)
        );
        let loaded = store.load(&key(&raw_key)).await;
        assert!(
            matches!(loaded, Err(LoadError::Deserialization(_))),
            "{garbage:?} must be refused as foreign data"
        );
    }
}

async fn a_missing_key_loads_as_no_session(backend: &str) {
    let store = store(backend).await;
    assert_eq!(store.load(&key(&"0".repeat(64))).await.unwrap(), None);
}

async fn a_write_based_on_a_stale_read_is_dropped(backend: &str) {
    let store = store(backend).await;
    let key = store
        .save(HashMap::from([("cart".into(), "[]".into())]), &TTL)
        .await
        .unwrap();
    let mut first = store.load(&key).await.unwrap().unwrap();
    let mut second = store.load(&key).await.unwrap().unwrap();
    first.insert("cart".into(), "[1]".into());
    second.insert("cart".into(), "[2]".into());
    let same = |k: &SessionKey| self::key(k.as_ref());
    store.update(same(&key), first, &TTL).await.unwrap();
    store.update(same(&key), second, &TTL).await.unwrap();
    let now = loaded(&store, &key).await.unwrap();
    assert_eq!(
        now["cart"], "[1]",
        "the second write would have lost the first"
    );
}

/// What a load carries for the request (the bytes read, the key) stays in the request: a write
/// of the loaded state, through `update` or through `modify` from the read, stores neither.
async fn what_a_load_carries_is_never_stored(backend: &str) {
    let store = store(backend).await;
    let key = store.save(rich_state(), &TTL).await.unwrap();
    let mut state = store.load(&key).await.unwrap().unwrap();
    state.insert("cart".into(), "[3]".into());
    store
        .update(self::key(key.as_ref()), state, &TTL)
        .await
        .unwrap();
    let read = store.load(&key).await.unwrap().unwrap();
    let raw = Loaded::read(&read[LOADED]).unwrap().raw.as_bytes().to_vec();
    let already_read = shop::session::ReadAtStart {
        raw,
        state: Some(read),
    };
    store
        .modify(key.as_ref(), &TTL, Some(already_read), |state| {
            state.insert("cart".into(), "[4]".into());
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .unwrap()
        .expect("a live session");
    let (stored, _) = store.raw(key.as_ref()).await.unwrap().unwrap();
    assert!(stored.contains("[4]"), "{stored}");
    for carried in [LOADED, key.as_ref()] {
        assert!(!stored.contains(carried), "{carried} was stored: {stored}");
    }
}

async fn concurrent_modifies_all_apply(backend: &str) {
    let store = store(backend).await;
    let key = store
        .save(HashMap::from([("count".into(), "0".into())]), &TTL)
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (store, key) = (store.clone(), key.as_ref().to_owned());
        tasks.spawn(async move {
            store
                .modify(&key, &TTL, None, |state| {
                    let n: u32 = state["count"].parse().unwrap();
                    state.insert("count".into(), (n + 1).to_string());
                    Ok::<_, std::convert::Infallible>(())
                })
                .await
        });
    }
    let mut applied = 0;
    while let Some(result) = tasks.join_next().await {
        if matches!(result.unwrap(), Ok(Some(()))) {
            applied += 1;
        }
    }
    let count: u32 = loaded(&store, &key).await.unwrap()["count"]
        .parse()
        .unwrap();
    assert_eq!(count, applied, "every applied change is kept, no other");
    assert!(applied >= 15, "only {applied} of 20 changes applied");
}

async fn modify_of_a_missing_session_changes_nothing(backend: &str) {
    let store = store(backend).await;
    let missing = "1".repeat(64);
    let result = store
        .modify(&missing, &TTL, None, |_| {
            Ok::<_, std::convert::Infallible>(())
        })
        .await
        .unwrap();
    assert!(result.is_none());
    assert_eq!(
        store.raw(&missing).await.unwrap(),
        None,
        "nothing was created"
    );
}

/// Each actix worker runs its own runtime, and a replica's workers stop one by one when it is
/// replaced: a store that another runtime used serves this one while that runtime is idle and
/// after it has stopped. (Memcached's pool and PostgreSQL's, shared by every worker, handed out
/// connections opened on another worker's runtime: answers waited for that worker's loop, and
/// failed once it had stopped; a draining replica answered a shopper 503 in CI's rolling update.)
async fn a_store_outlives_a_runtime_that_used_it(backend: &str) {
    let store = store(backend).await;
    let worker = store.clone();
    let (saved, stop) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let other = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Saves in flight together, so this runtime opens several connections.
        let keys = runtime.block_on(async {
            let mut saves = tokio::task::JoinSet::new();
            for n in 0..8 {
                let worker = worker.clone();
                saves.spawn(async move {
                    let state = HashMap::from([("n".to_owned(), n.to_string())]);
                    (n, worker.save(state, &TTL).await.unwrap())
                });
            }
            saves.join_all().await
        });
        saved.0.send(keys).unwrap();
        // Idle (its loop not turning) until told to stop.
        stop.1.recv().unwrap();
        drop(runtime);
    });
    let keys = saved.1.recv().unwrap();
    every_session_loads_and_changes(&store, &keys, "while the other runtime is idle").await;
    stop.0.send(()).unwrap();
    other.join().unwrap();
    every_session_loads_and_changes(&store, &keys, "after it stopped").await;
}

async fn every_session_loads_and_changes(store: &Store, keys: &[(u32, SessionKey)], phase: &str) {
    let within = std::time::Duration::from_secs(5);
    for (n, key) in keys {
        let state = tokio::time::timeout(within, loaded(store, key))
            .await
            .unwrap_or_else(|_| panic!("loading session {n} {phase} took over 5 s"));
        assert_eq!(
            state.map(|s| s["n"].clone()),
            Some(n.to_string()),
            "{phase}"
        );
        let changed = tokio::time::timeout(
            within,
            store.modify(key.as_ref(), &TTL, None, |state| {
                state.insert("n".into(), n.to_string());
                Ok::<_, std::convert::Infallible>(())
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("changing session {n} {phase} took over 5 s"))
        .unwrap();
        assert_eq!(
            changed,
            Some(()),
            "session {n} could not be changed {phase}"
        );
    }
}

macro_rules! conformance {
    ($($store:ident $(if $feature:literal)?),* ; $cases:tt) => {
        $(
            $(#[cfg(feature = $feature)])?
            mod $store {
                conformance!(@cases $store $cases);
            }
        )*

        /// The stores the suite runs against, by `SESSION_BACKEND` name.
        const IN_THE_SUITE: &[&str] = &[$(stringify!($store)),*];
    };
    (@cases $store:ident [$($case:ident),*]) => {
        $(
            #[tokio::test]
            async fn $case() {
                super::$case(stringify!($store)).await;
            }
        )*
    };
}

conformance!(
    sqlite, memory, redis if "redis", postgres if "postgres", memcached if "memcached";
    [
        saved_and_loaded_state_is_identical,
        save_never_overwrites_an_existing_key,
        update_never_brings_back_a_deleted_session,
        expired_state_never_loads_and_is_not_revived,
        a_read_slides_the_expiry_and_keeps_the_bytes,
        sliding_a_deleted_key_creates_nothing,
        state_over_the_limit_is_refused_not_truncated,
        foreign_data_under_a_key_loads_as_no_session,
        a_missing_key_loads_as_no_session,
        a_write_based_on_a_stale_read_is_dropped,
        what_a_load_carries_is_never_stored,
        concurrent_modifies_all_apply,
        modify_of_a_missing_session_changes_nothing,
        a_store_outlives_a_runtime_that_used_it
    ]
);

/// A store compiled into the shop but left out of the list above would run unchecked.
#[test]
fn every_compiled_store_is_in_the_suite() {
    for backend in Backend::ALL.iter().filter(|b| b.is_compiled()) {
        assert!(
            IN_THE_SUITE.contains(&backend.name()),
            "the {backend} store is compiled in but not in the conformance suite: add it to the \
             list at the end of tests/in_process/conformance.rs"
        );
    }
}
