//! The peer the shop is measured against: axum with tower-sessions, its session in Redis
//! (tower-sessions-redis-store, over fred) or PostgreSQL (tower-sessions-sqlx-store), one
//! worker. Two modes:
//!
//! `bare` does the session's part of the shop's two paths and nothing else:
//! - read, `GET /cart`: loads the session, reads its 5-line cart, answers the same page bytes
//!   as the ceiling (no render, no CSRF token, no security headers: every one of these flatters
//!   the peer);
//! - write, `POST /cart/items/{line}`: loads the session, sets the line's quantity, saves it
//!   (two round trips, as the shop's compare-and-set, but a concurrent change is lost).
//!
//! `same` does the work the shop does on those paths, with tower-sessions' own means: the
//! cookie is private (encrypted and authenticated, as actix-session's), the cart page is
//! rendered with askama from the shop's own templates with the same data (the signed-in user,
//! the cart's products, prices and totals, a form token in every form), every response carries
//! the shop's security headers, and a write is refused unless its form carries the session's
//! token (compared in constant time). What it still does not do: compare-and-set (a concurrent
//! change is lost), the absolute sign-in lifetime, the index of a user's sessions.
//!
//! `POST /setup` makes a signed-in session with a 5-line cart and answers its form token.
//! Usage: peer redis|postgres URL PAGE PORT [bare|same]

use askama::Template;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use tower_sessions::cookie::Key;
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
    let (store, url, page, port, same) = match args.as_slice() {
        [store, url, page, port] => (store, url, page, port, false),
        [store, url, page, port, mode] if mode == "bare" || mode == "same" => {
            (store, url, page, port, mode == "same")
        }
        _ => {
            eprintln!("usage: peer redis|postgres URL PAGE PORT [bare|same]");
            std::process::exit(2);
        }
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
                serve(RedisStore::new(pool), page, port, same).await
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
                serve(store, page, port, same).await
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
    same: bool,
) -> std::io::Result<()> {
    let sessions = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_expiry(Expiry::OnInactivity(Duration::hours(1)));
    let app = if same {
        // The shop's secret is 64 bytes or more; so is this one.
        let key = Key::from(&[7_u8; 64]);
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/setup", post(same::setup))
            .route("/cart", get(same::cart))
            .route("/cart/items/{line}", post(same::change))
            .layer(axum::middleware::map_response(same::security_headers))
            .layer(sessions.with_private(key))
    } else {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/setup", post(setup))
            .route("/cart", get(move |session: Session| cart(session, page)))
            .route("/cart/items/{line}", post(change))
            .layer(sessions)
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await
}

fn error(err: impl std::fmt::Display) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, err.to_string()).into_response()
}

async fn setup(session: Session) -> Response {
    let cart = five_line_cart();
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
    set_line(&session, line, form.quantity).await
}

/// Sets line `line` (from 1) of the session's cart to `quantity` and saves the session.
async fn set_line(session: &Session, line: usize, quantity: u32) -> Response {
    let mut cart = match session.get::<Vec<Line>>(CART).await {
        Ok(cart) => cart.unwrap_or_default(),
        Err(err) => return error(err),
    };
    let Some(entry) = line.checked_sub(1).and_then(|i| cart.get_mut(i)) else {
        return (StatusCode::BAD_REQUEST, "no such line").into_response();
    };
    entry.quantity = quantity;
    match session.insert(CART, cart).await {
        Ok(()) => Redirect::to("/cart").into_response(),
        Err(err) => error(err),
    }
}

/// The bench's cart: products 1 to 5, one of each.
fn five_line_cart() -> Vec<Line> {
    (1..=5)
        .map(|product_id| Line {
            product_id,
            quantity: 1,
        })
        .collect()
}

/// The shop's work on the same two paths, with tower-sessions and askama.
mod same {
    use super::*;

    const USER: &str = "user";
    const TOKEN: &str = "csrf";

    #[derive(Serialize, Deserialize)]
    pub struct User {
        pub id: i64,
        pub email: String,
    }

    /// The shop's seeded catalog (migrations/*/…_seed_catalog.sql): names and prices in cents.
    const CATALOG: [(&str, i64); 12] = [
        ("Enamel Camp Mug", 1450),
        ("Linen Tea Towel", 1200),
        ("Cast Iron Skillet", 4900),
        ("Beeswax Candle Pair", 1800),
        ("Walnut Cutting Board", 6500),
        ("Wool Throw Blanket", 8900),
        ("Stoneware Bowl Set", 3600),
        ("French Press 1 L", 3200),
        ("Canvas Tote Bag", 2400),
        ("Ceramic Pour-Over", 2800),
        ("Brass Bottle Opener", 1600),
        ("Herb Garden Kit", 2900),
    ];

    /// Dollars and cents as the shop prints them: `$1,234.56`.
    #[derive(Clone, Copy)]
    pub struct Money(i64);

    impl std::fmt::Display for Money {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let (dollars, cents) = (self.0 / 100, self.0 % 100);
            let digits = dollars.to_string();
            let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
            for (i, digit) in digits.chars().enumerate() {
                if i > 0 && (digits.len() - i) % 3 == 0 {
                    grouped.push(',');
                }
                grouped.push(digit);
            }
            write!(f, "${grouped}.{cents:02}")
        }
    }

    pub struct Product {
        pub id: i64,
        pub name: &'static str,
        price_cents: i64,
        /// Bounds the quantity box, as in the shop; one value for every product here (the
        /// work, a clamp per line, is what the comparison needs).
        pub stock: i64,
    }

    /// Static files by their versioned address, as the shop's `Assets` names them: a map
    /// lookup per address a page prints.
    static ASSETS: std::sync::LazyLock<std::collections::HashMap<&'static str, String>> =
        std::sync::LazyLock::new(|| {
            ["/static/style.css", "/static/favicon.svg"]
                .into_iter()
                .map(|path| (path, format!("{path}?v=0123456789abcdef")))
                .collect()
        });

    impl Product {
        pub fn price(&self) -> Money {
            Money(self.price_cents)
        }
    }

    pub struct Row {
        pub product: Product,
        pub quantity: u32,
        pub line_total: Money,
        /// The shop's "was $X, now $Y" when a line's price changed; the peer's lines remember
        /// no price, so never.
        pub was: Option<Money>,
        /// The shop's refused change of a line; never here.
        pub refused: Option<(String, String)>,
    }

    impl Row {
        pub fn max_quantity(&self) -> u32 {
            u32::try_from(self.product.stock.max(0))
                .unwrap_or(u32::MAX)
                .clamp(self.quantity, 99)
        }

        pub fn typed(&self) -> String {
            match &self.refused {
                Some((typed, _)) => typed.clone(),
                None => self.quantity.to_string(),
            }
        }
    }

    pub struct Flash {
        pub text: String,
    }

    impl Flash {
        pub fn is_error(&self) -> bool {
            false
        }
    }

    pub struct Layout {
        pub instance: &'static str,
        pub backend: &'static str,
        pub user: Option<User>,
        pub cart_count: u32,
        pub csrf_token: String,
        pub flash: Option<Flash>,
        pub inspector: bool,
    }

    impl Layout {
        pub fn asset<'a>(&'a self, path: &'a str) -> &'a str {
            ASSETS.get(path).map_or(path, String::as_str)
        }
    }

    #[derive(Template)]
    #[template(path = "cart.html")]
    pub struct CartPage {
        layout: Layout,
        rows: Vec<Row>,
        total: Money,
    }

    /// A signed-in shopper with a 5-line cart and a form token; answers the token.
    pub async fn setup(session: Session) -> Response {
        let cart = five_line_cart();
        let token = hex::encode(rand::random::<[u8; 32]>());
        let user = User {
            id: 1,
            email: "bench@example.com".to_owned(),
        };
        let saved = async {
            session.insert(USER, user).await?;
            session.insert(CART, cart).await?;
            session.insert(TOKEN, &token).await
        };
        match saved.await {
            Ok(()) => token.into_response(),
            Err(err) => error(err),
        }
    }

    pub async fn cart(session: Session) -> Response {
        let user = match session.get::<User>(USER).await {
            Ok(user) => user,
            Err(err) => return error(err),
        };
        let (lines, token) = match (
            session.get::<Vec<Line>>(CART).await,
            session.get::<String>(TOKEN).await,
        ) {
            (Ok(lines), Ok(token)) => (lines.unwrap_or_default(), token.unwrap_or_default()),
            (Err(err), _) | (_, Err(err)) => return error(err),
        };
        let rows: Vec<Row> = lines
            .iter()
            .filter_map(|line| {
                let (name, price_cents) =
                    *CATALOG.get(usize::try_from(line.product_id - 1).ok()?)?;
                Some(Row {
                    product: Product {
                        id: line.product_id,
                        name,
                        price_cents,
                        stock: 50,
                    },
                    quantity: line.quantity,
                    line_total: Money(price_cents * i64::from(line.quantity)),
                    was: None,
                    refused: None,
                })
            })
            .collect();
        let page = CartPage {
            layout: Layout {
                instance: "peer",
                backend: "redis",
                user,
                cart_count: rows.iter().map(|row| row.quantity).sum(),
                csrf_token: token,
                flash: None,
                inspector: false,
            },
            total: Money(rows.iter().map(|row| row.line_total.0).sum()),
            rows,
        };
        match page.render() {
            Ok(html) => Html(html).into_response(),
            Err(err) => error(err),
        }
    }

    #[derive(Deserialize)]
    pub struct ChangeForm {
        quantity: u32,
        csrf_token: String,
    }

    pub async fn change(
        session: Session,
        Path(line): Path<usize>,
        Form(form): Form<ChangeForm>,
    ) -> Response {
        let token = match session.get::<String>(TOKEN).await {
            Ok(token) => token.unwrap_or_default(),
            Err(err) => return error(err),
        };
        if token.is_empty() || !bool::from(token.as_bytes().ct_eq(form.csrf_token.as_bytes())) {
            return (StatusCode::FORBIDDEN, "bad form token").into_response();
        }
        set_line(&session, line, form.quantity).await
    }

    /// The shop's response headers: `X-Served-By`, `no-store`, and the four security headers.
    pub async fn security_headers(mut response: Response) -> Response {
        let headers = response.headers_mut();
        headers.insert(
            HeaderName::from_static("x-served-by"),
            HeaderValue::from_static("peer"),
        );
        if !headers.contains_key(header::CACHE_CONTROL) {
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        for (name, value) in [
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none'; \
                 form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "same-origin"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        response
    }
}
