//! The peer the issue measured the shop against: axum with tower-sessions, its session in Redis
//! (tower-sessions-redis-store, over fred) or PostgreSQL (tower-sessions-sqlx-store), one
//! worker. It does the session's part of the shop's two paths and nothing else:
//!
//! - read, `GET /cart`: loads the session, reads its 5-line cart, answers the same page bytes
//!   as the ceiling (no render, no CSRF token, no security headers, no sliding expiry: every
//!   one of these flatters the peer);
//! - write, `POST /cart/items/{line}`: loads the session, sets the line's quantity, saves it
//!   (two round trips, as the shop's compare-and-set, but a concurrent change is lost).
//!
//! `POST /setup` makes a session with a 5-line cart. Usage: peer redis|postgres URL PAGE PORT

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::{Deserialize, Serialize};
use tower_sessions::cookie::time::Duration;
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore};
use tower_sessions_redis_store::RedisStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_sqlx_store::PostgresStore;
use tower_sessions_sqlx_store::sqlx::PgPool;

#[derive(Serialize, Deserialize)]
struct Line {
    product_id: i64,
    quantity: u32,
}

#[derive(Deserialize)]
struct QuantityForm {
    quantity: u32,
}

const CART: &str = "cart";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, url, page, port] = args.as_slice() else {
        eprintln!("usage: peer redis|postgres URL PAGE PORT");
        std::process::exit(2);
    };
    let page: &'static str = match std::fs::read_to_string(page) {
        Ok(page) => page.leak(),
        Err(err) => fail(&format!("could not read {page}: {err}")),
    };
    let port: u16 = port.parse().unwrap_or_else(|_| fail("PORT is a number"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|err| fail(&err.to_string()));
    runtime.block_on(async move {
        let result = match store.as_str() {
            "redis" => {
                let config = Config::from_url(url).unwrap_or_else(|err| fail(&err.to_string()));
                let pool = Pool::new(config, None, None, None, 1)
                    .unwrap_or_else(|err| fail(&err.to_string()));
                let _connection = pool.init().await;
                serve(RedisStore::new(pool), page, port).await
            }
            "postgres" => {
                let pool = PgPool::connect(url)
                    .await
                    .unwrap_or_else(|err| fail(&err.to_string()));
                let store = PostgresStore::new(pool);
                store
                    .migrate()
                    .await
                    .unwrap_or_else(|err| fail(&err.to_string()));
                serve(store, page, port).await
            }
            other => fail(&format!("no peer store {other}")),
        };
        if let Err(err) = result {
            fail(&err.to_string());
        }
    });
}

fn fail(message: &str) -> ! {
    eprintln!("peer: {message}");
    std::process::exit(1)
}

async fn serve(
    store: impl SessionStore + Clone,
    page: &'static str,
    port: u16,
) -> std::io::Result<()> {
    let sessions = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/setup", post(setup))
        .route("/cart", get(move |session: Session| cart(session, page)))
        .route("/cart/items/{line}", post(change))
        .layer(sessions);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}

fn error(err: impl std::fmt::Display) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, err.to_string()).into_response()
}

async fn setup(session: Session) -> Response {
    let cart: Vec<Line> = (1..=5)
        .map(|product_id| Line {
            product_id,
            quantity: 1,
        })
        .collect();
    match session.insert(CART, cart).await {
        Ok(()) => "ok".into_response(),
        Err(err) => error(err),
    }
}

async fn cart(session: Session, page: &'static str) -> Response {
    match session.get::<Vec<Line>>(CART).await {
        Ok(Some(lines)) if lines.len() == 5 => Html(page).into_response(),
        Ok(_) => (StatusCode::NOT_FOUND, "no 5-line cart").into_response(),
        Err(err) => error(err),
    }
}

async fn change(
    session: Session,
    Path(line): Path<usize>,
    Form(form): Form<QuantityForm>,
) -> Response {
    let mut cart = match session.get::<Vec<Line>>(CART).await {
        Ok(cart) => cart.unwrap_or_default(),
        Err(err) => return error(err),
    };
    let Some(entry) = line.checked_sub(1).and_then(|i| cart.get_mut(i)) else {
        return (StatusCode::BAD_REQUEST, "no such line").into_response();
    };
    entry.quantity = form.quantity;
    match session.insert(CART, cart).await {
        Ok(()) => Redirect::to("/cart").into_response(),
        Err(err) => error(err),
    }
}
