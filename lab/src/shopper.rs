//! A shopper with a browser's cookie jar, following no redirects, reading pages as HTML; and
//! the few page-reading functions the lab and the tests share. The one HTTP client of the
//! workspace: the lab's shoppers, the benchmark's sign-ins and the shop's tests all use it.

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::{Context, bail};
use regex::Regex;
use reqwest::StatusCode;
use reqwest::cookie::Jar;

/// One response, as the shopper saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub status: StatusCode,
    pub served_by: String,
    pub location: Option<String>,
    pub body: String,
}

#[derive(Clone)]
pub struct Shopper {
    client: reqwest::Client,
    jar: Arc<Jar>,
    base: String,
    pub email: String,
}

static CSRF: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"name="csrf_token" value="([0-9a-f]+)""#).unwrap());
static CART_LINE: LazyLock<Regex> = LazyLock::new(|| {
    // Both shapes: this release's (the stock as its max) and the previous one's, which replicas
    // of the deploy test still serve.
    Regex::new(
        r#"id="qty-(\d+)" name="quantity" type="number"(?: inputmode="numeric")? min="0" max="\d+" value="(\d+)""#,
    )
    .unwrap()
});
static USER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"<span class="user">([^<]+)</span>"#).unwrap());
static STOCK: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(\d+) in stock").unwrap());
static ORDER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"href="/orders/(\d+)""#).unwrap());

/// The CSRF token in a page's forms.
pub fn csrf_token(body: &str) -> Option<String> {
    CSRF.captures(body).map(|c| c[1].to_owned())
}

/// The cart page's lines as `(product id, quantity)`.
pub fn cart_lines(body: &str) -> Vec<(i64, u32)> {
    CART_LINE
        .captures_iter(body)
        .filter_map(|c| Some((c[1].parse().ok()?, c[2].parse().ok()?)))
        .collect()
}

/// The signed-in user's email, from the navigation.
pub fn signed_in_as(body: &str) -> Option<String> {
    USER.captures(body).map(|c| c[1].to_owned())
}

/// How many items a product page says are in stock (0 when sold out), if it says.
pub fn stock_shown(body: &str) -> Option<i64> {
    if body.contains("Sold out") {
        return Some(0);
    }
    STOCK.captures(body)?[1].parse().ok()
}

/// The ids of the orders an order history links to, in page order.
pub fn order_ids(body: &str) -> Vec<i64> {
    ORDER
        .captures_iter(body)
        .filter_map(|c| c[1].parse().ok())
        .collect()
}

/// How long one request may take: longer is a hang, not a slow page.
const TIMEOUT: Duration = Duration::from_secs(30);

impl Seen {
    /// The CSRF token of the page's forms.
    pub fn csrf_token(&self) -> Option<String> {
        csrf_token(&self.body)
    }

    /// Panics unless the page is a `303 See Other` to `path`: for tests.
    #[track_caller]
    pub fn assert_redirects_to(&self, path: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        assert_eq!(self.location.as_deref(), Some(path));
    }
}

impl Shopper {
    /// A shopper talking to `base`, from `source` (a loopback address) when given, so that
    /// `ip_hash` sees different clients.
    pub fn new(base: &str, email: &str, source: Option<IpAddr>) -> anyhow::Result<Self> {
        Self::with_agent(base, email, source, None)
    }

    /// A shopper whose every request goes on a new connection. A browser resends a request
    /// whose reused connection the server closed before answering (as nginx's old workers close
    /// idle ones when it reloads); reqwest does not, so the deploy, which reloads nginx, keeps
    /// no idle connection to reuse.
    pub fn with_fresh_connections(
        base: &str,
        email: &str,
        source: Option<IpAddr>,
    ) -> anyhow::Result<Self> {
        Self::build(base, email, source, None, 0)
    }

    /// A shopper whose browser names itself `agent` in `User-Agent`, when given.
    pub fn with_agent(
        base: &str,
        email: &str,
        source: Option<IpAddr>,
        agent: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::build(base, email, source, agent, usize::MAX)
    }

    fn build(
        base: &str,
        email: &str,
        source: Option<IpAddr>,
        agent: Option<&str>,
        idle_connections: usize,
    ) -> anyhow::Result<Self> {
        let jar = Arc::new(Jar::default());
        let mut client = reqwest::Client::builder()
            .pool_max_idle_per_host(idle_connections)
            // Below the shop's keep-alive (5 s): a connection the shop is closing for idleness is
            // never the one reused. reqwest keeps them 90 s, and a reuse racing the shop's close
            // failed the benchmark's smoke run once ("connection closed before message
            // completed" on its first page after an idle phase).
            .pool_idle_timeout(Duration::from_secs(4))
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .local_address(source);
        if let Some(agent) = agent {
            client = client.user_agent(agent);
        }
        Ok(Self {
            client: client.build()?,
            jar,
            base: base.trim_end_matches('/').to_owned(),
            email: email.to_owned(),
        })
    }

    /// The same browser, cookies and all, talking to another address (another replica).
    pub fn at(&self, base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            ..self.clone()
        }
    }

    /// The browser's HTTP client, for a request the shopper's methods do not make.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The address of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The value of the cookie `name` as the browser holds it, as `name=value`.
    pub fn cookie(&self, name: &str) -> Option<String> {
        let prefix = format!("{name}=");
        self.cookie_header()?
            .split("; ")
            .find(|c| c.starts_with(&prefix))
            .map(str::to_owned)
    }

    /// Posts a form as it is, with no CSRF token added.
    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Seen> {
        let response = self.client.post(self.url(path)).form(form).send().await?;
        Self::seen(response).await
    }

    async fn seen(response: reqwest::Response) -> anyhow::Result<Seen> {
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let served_by = header("x-served-by").unwrap_or_default();
        let location = header("location");
        let status = response.status();
        Ok(Seen {
            status,
            served_by,
            location,
            body: response.text().await?,
        })
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Seen> {
        let response = self.client.get(self.url(path)).send().await?;
        Self::seen(response).await
    }

    /// Posts a form with the CSRF token read from a page first, as a browser would have it.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> anyhow::Result<Seen> {
        let token = self.csrf_token().await?;
        self.post_with_token(path, form, &token).await
    }

    /// Posts a form with a token the shopper already has (from a page read earlier).
    pub async fn post_with_token(
        &self,
        path: &str,
        form: &[(&str, &str)],
        token: &str,
    ) -> anyhow::Result<Seen> {
        let mut form = form.to_vec();
        form.push(("csrf_token", token));
        self.post_form(path, &form).await
    }

    /// The `Cookie` header this shopper's browser would send.
    pub fn cookie_header(&self) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let url = reqwest::Url::parse(&self.base).ok()?;
        Some(self.jar.cookies(&url)?.to_str().ok()?.to_owned())
    }

    /// The CSRF token of this shopper's session, as its pages carry it.
    pub async fn csrf_token(&self) -> anyhow::Result<String> {
        let page = self.get("/login").await?;
        csrf_token(&page.body).context("no CSRF token on the login page")
    }

    /// Logs in to an existing account: whether it worked.
    pub async fn login(&self, password: &str) -> anyhow::Result<bool> {
        let seen = self
            .post("/login", &[("email", &self.email), ("password", password)])
            .await?;
        Ok(seen.status == StatusCode::SEE_OTHER)
    }

    /// Registers (and so logs in): whether it worked, and the replica that answered.
    pub async fn register(&self, password: &str) -> anyhow::Result<(bool, String)> {
        let seen = self
            .post(
                "/register",
                &[("email", &self.email), ("password", password)],
            )
            .await?;
        Ok((seen.status == StatusCode::SEE_OTHER, seen.served_by))
    }

    /// Adds to the cart; returns the replica that served the add.
    pub async fn add(&self, product_id: i64, quantity: u32) -> anyhow::Result<String> {
        let seen = self
            .post(
                "/cart/items",
                &[
                    ("product_id", &product_id.to_string()),
                    ("quantity", &quantity.to_string()),
                ],
            )
            .await?;
        if seen.status != StatusCode::SEE_OTHER {
            bail!("adding product {product_id} got {}", seen.status);
        }
        Ok(seen.served_by)
    }

    /// What the shopper sees on the cart page: who they are, and the cart.
    pub async fn look(&self) -> anyhow::Result<(Option<String>, Vec<(i64, u32)>, String)> {
        let seen = self.get("/cart").await?;
        if seen.status != StatusCode::OK {
            bail!("the cart page answered {}", seen.status);
        }
        Ok((
            signed_in_as(&seen.body),
            cart_lines(&seen.body),
            seen.served_by,
        ))
    }

    /// Checks out; the order's path when it was placed.
    pub async fn checkout(&self) -> anyhow::Result<Option<String>> {
        let seen = self.post("/checkout", &[]).await?;
        Ok(seen
            .location
            .filter(|l| seen.status == StatusCode::SEE_OTHER && l.starts_with("/orders/")))
    }
}
