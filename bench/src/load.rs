//! The load: signed-in sessions, wrk's Lua scripts, and the check that every add was kept.

use super::*;

/// The Lua that fills a request's templates in wrk, as [`nth`] does for the open-loop
/// generator: `{product}` walks the catalog; `{line}` walks the 5 lines of a bench cart and
/// `{quantity}` cycles 1 to 9, so each visit to a line changes it (5 and 9 share no factor) and
/// no cart ever reaches a limit; `{token}` is the session's form token.
const LUA_FILL: &str = r#"  local fill = function(text)
    return (text:gsub("{product}", tostring(round % 12 + 1))
      :gsub("{line}", tostring(round % 5 + 1))
      :gsub("{quantity}", tostring(round % 9 + 1))
      :gsub("{token}", s[k][2]))
  end"#;

/// The start of a wrk script: `local s = {` with a `{cookie, token}` per session (the caller
/// closes it).
fn lua_sessions(sessions: &[(String, String)]) -> String {
    let mut lua = String::from("local s = {\n");
    for (cookie, token) in sessions {
        lua.push_str(&format!("  {{\"{cookie}\", \"{token}\"}},\n"));
    }
    lua
}

/// A wrk script cycling through sessions; `{cookie}` and `{token}` in `request` are filled per
/// request from the list.
pub(crate) fn lua_script(
    dir: &Path,
    name: &str,
    sessions: &[(String, String)],
    method: &str,
    path: &str,
    body: &str,
) -> anyhow::Result<PathBuf> {
    let mut lua = lua_sessions(sessions);
    lua.push_str(&format!(
        r#"}}
local n = #s
local i = 0
-- With several wrk threads, each takes its own share of the sessions (thread t the j-th
-- requests with j = t mod threads), so two threads never race on one session's cart.
local threads = 0
setup = function(thread)
  thread:set("id", threads)
  threads = threads + 1
end
local step = 1
init = function(args)
  step = tonumber(args[1]) or 1
end
request = function()
  local j = i * step + (id or 0)
  local k = j % n + 1
  local round = math.floor(j / n)
{LUA_FILL}
  i = i + 1
  local headers = {{["Cookie"] = s[k][1], ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Forwarded-For"] = "10." .. math.floor(k / 250) .. "." .. (k % 250) .. ".1"}}
  local body = nil
  if "{method}" ~= "GET" then body = fill("{body}") end
  return wrk.format("{method}", fill("{path}"), headers, body)
end
"#
    ));
    wrk::script(dir, name, &lua)
}

/// The realistic mix, a cycle of 20 requests from signed-in shoppers: 16 catalog and product
/// pages (80%), 3 cart reads (15%), 1 cart change (5%). (Checkouts are left out: each would
/// empty a cart the later changes need, and spend the catalog's stock within seconds.) Each
/// is (method, path, body, the status it answers), with `{product}`, `{line}`, `{quantity}`
/// and `{token}` filled per request as [`lua_script`] fills them.
pub(crate) const MIX: [(&str, &str, &str, u16); 20] = {
    const PAGE: (&str, &str, &str, u16) = ("GET", "/", "", 200);
    const PRODUCT: (&str, &str, &str, u16) = ("GET", "/products/{product}", "", 200);
    const CART: (&str, &str, &str, u16) = ("GET", "/cart", "", 200);
    const CHANGE: (&str, &str, &str, u16) = (
        "POST",
        "/cart/items/{line}",
        "quantity={quantity}&csrf_token={token}",
        303,
    );
    [
        PAGE, PRODUCT, PRODUCT, PAGE, CART, PRODUCT, PAGE, PRODUCT, PAGE, PRODUCT, //
        CART, PAGE, PRODUCT, PAGE, PRODUCT, CHANGE, PAGE, CART, PRODUCT, PAGE,
    ]
};

/// Request `j` of a run over `sessions` that cycle in turn: its session `k`, and `fill` for its
/// templates (the product walks the catalog; the line walks a bench cart's 5 lines and the
/// quantity cycles 1 to 9, so each visit to a line changes it: 5 and 9 share no factor).
pub(crate) fn nth(j: usize, sessions: &[(String, String)]) -> (usize, impl Fn(&str) -> String) {
    let n = sessions.len();
    let (k, round) = (j % n, j / n);
    let token = sessions[k].1.clone();
    (k, move |text: &str| {
        text.replace("{product}", &(round % 12 + 1).to_string())
            .replace("{line}", &(round % 5 + 1).to_string())
            .replace("{quantity}", &(round % 9 + 1).to_string())
            .replace("{token}", &token)
    })
}

/// The client address session `k` claims (`X-Forwarded-For`): each session is its own client.
pub(crate) fn client_of(k: usize) -> String {
    format!("10.{}.{}.1", k / 250, k % 250)
}

/// Which of [`MIX`] request `j` over `n` sessions sends: session `k`'s `r`-th visit sends
/// entry `k + r`, so over 20 visits every session sends each once (a plain `j mod 20` would
/// give the changes to a twentieth of the sessions whenever `n` is a multiple of 20).
pub(crate) fn mix_step(j: usize, n: usize) -> usize {
    (j % n + j / n) % MIX.len()
}

/// A wrk script sending [`MIX`] session after session, as [`mix_step`] picks.
pub(crate) fn mix_script(dir: &Path, sessions: &[(String, String)]) -> anyhow::Result<PathBuf> {
    let mut lua = lua_sessions(sessions);
    lua.push_str("}\nlocal mix = {\n");
    for (method, path, body, _) in MIX {
        lua.push_str(&format!("  {{\"{method}\", \"{path}\", \"{body}\"}},\n"));
    }
    lua.push_str(
        r#"}
local n = #s
local i = 0
request = function()
  local k = i % n + 1
  local round = math.floor(i / n)
  local m = mix[((k - 1) + round) % #mix + 1]
"#,
    );
    lua.push_str(LUA_FILL);
    lua.push_str(
        r#"
  i = i + 1
  local headers = {["Cookie"] = s[k][1], ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Forwarded-For"] = "10." .. math.floor((k - 1) / 250) .. "." .. ((k - 1) % 250) .. ".1"}
  local body = nil
  if m[1] ~= "GET" then body = fill(m[3]) end
  return wrk.format(m[1], fill(m[2]), headers, body)
end
"#,
    );
    wrk::script(dir, "mix", &lua)
}

/// [`MIX`] for a steady run: the same requests in the same order as [`mix_script`] sends them,
/// one cycle over every session.
pub(crate) fn steady_mix(sessions: &[(String, String)]) -> Vec<steady::Request> {
    (0..sessions.len() * MIX.len())
        .map(|j| {
            let (method, path, body, ok) = MIX[mix_step(j, sessions.len())];
            let (k, fill) = nth(j, sessions);
            steady::Request {
                post: method == "POST",
                path: fill(path),
                cookie: sessions[k].0.clone(),
                body: (method == "POST").then(|| fill(body)),
                client: client_of(k),
                ok,
                session: k,
            }
        })
        .collect()
}

/// Logged-in sessions (each a login of the same account, with a 5-line cart) or guest
/// sessions, as cookies with their CSRF tokens.
/// Signed-in sessions per account: the shop keeps a user's last 50 sign-ins and ends the
/// oldest beyond that (so that "log out everywhere else" reaches every one), so more sessions of
/// one account would leave the bench driving ended ones.
const SESSIONS_PER_ACCOUNT: usize = 40;

/// The account of signed-in session `i`, one per [`SESSIONS_PER_ACCOUNT`] sessions.
fn account_of(email: &str, i: usize) -> String {
    format!("{}-{email}", i / SESSIONS_PER_ACCOUNT)
}

pub(crate) async fn sessions(
    url: &str,
    email: &str,
    count: usize,
    logged_in: bool,
) -> anyhow::Result<Vec<(Shopper, String, String)>> {
    if logged_in {
        for first in (0..count).step_by(SESSIONS_PER_ACCOUNT) {
            let (registered, _) = Shopper::new(url, &account_of(email, first), None)?
                .register(PASSWORD)
                .await?;
            if !registered {
                bail!("could not register the account of session {first}");
            }
        }
    }
    let mut out = Vec::with_capacity(count);
    let mut tasks = JoinSet::new();
    for i in 0..count {
        let (url, email) = (url.to_owned(), account_of(email, i));
        tasks.spawn(async move {
            // Each session from its own loopback address, as real shoppers come from their
            // own: one client's concurrent sign-ins beyond the login limit are refused.
            let source = std::net::Ipv4Addr::new(127, 1, (i / 250) as u8, (i % 250 + 1) as u8);
            let shopper = Shopper::new(&url, &email, Some(source.into()))?;
            if logged_in {
                if !shopper.login(PASSWORD).await? {
                    bail!("login {i} was refused");
                }
                // A signed-in shopper's session holds a 5-line cart, as the read path's does.
                for product in 1..=5 {
                    shopper.add(product, 1).await?;
                }
            }
            let token = shopper.csrf_token().await?;
            let cookie = shopper.cookie_header().context("no cookie")?;
            Ok::<_, anyhow::Error>((shopper, cookie, token))
        });
        if tasks.len() >= 16 {
            out.push(tasks.join_next().await.context("a task")???);
        }
    }
    while let Some(done) = tasks.join_next().await {
        out.push(done??);
    }
    Ok(out)
}

pub(crate) async fn items_in_carts(shoppers: &[(Shopper, String, String)]) -> anyhow::Result<u64> {
    let mut total = 0;
    for (shopper, _, _) in shoppers {
        total += shopper
            .look()
            .await?
            .1
            .iter()
            .map(|(_, q)| u64::from(*q))
            .sum::<u64>();
    }
    Ok(total)
}

/// `clients` concurrent clients each make `adds` adds, every one to completion, on sessions no
/// other client uses; returns how many the shop acknowledged.
pub(crate) async fn checked_adds(
    shoppers: &[(Shopper, String, String)],
    clients: usize,
    adds: usize,
) -> anyhow::Result<u64> {
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let mine: Vec<Shopper> = shoppers
            .iter()
            .skip(client)
            .step_by(clients)
            .map(|(s, _, _)| s.clone())
            .collect();
        if mine.is_empty() {
            continue;
        }
        tasks.spawn(async move {
            let mut acknowledged = 0_u64;
            for i in 0..adds {
                let product = i64::try_from(i % 12 + 1).unwrap_or(1);
                if mine[i % mine.len()].add(product, 1).await.is_ok() {
                    acknowledged += 1;
                }
            }
            acknowledged
        });
    }
    let mut total = 0;
    while let Some(done) = tasks.join_next().await {
        total += done?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_80_percent_pages_15_cart_reads_and_5_changes_from_each_session() {
        let sessions: Vec<(String, String)> = (0..3)
            .map(|k| (format!("shop_session=c{k}"), format!("t{k}")))
            .collect();
        let requests = steady_mix(&sessions);
        assert_eq!(requests.len(), 60);
        let pages = requests
            .iter()
            .filter(|r| !r.post && (r.path == "/" || r.path.starts_with("/products/")))
            .count();
        let carts = requests
            .iter()
            .filter(|r| !r.post && r.path == "/cart")
            .count();
        let changes: Vec<_> = requests.iter().filter(|r| r.post).collect();
        assert_eq!((pages, carts, changes.len()), (48, 9, 3));
        assert!(
            requests
                .iter()
                .all(|r| r.ok == if r.post { 303 } else { 200 })
        );
        // Each session makes its own change, with its own form token, on its cookie.
        for change in &changes {
            let k = change.cookie.strip_prefix("shop_session=c").unwrap();
            assert!(change.path.starts_with("/cart/items/"));
            let body = change.body.as_deref().unwrap();
            assert!(body.starts_with("quantity=") && body.ends_with(&format!("csrf_token=t{k}")));
        }
        let mut changed: Vec<_> = changes.iter().map(|c| c.cookie.clone()).collect();
        changed.sort();
        changed.dedup();
        assert_eq!(changed.len(), 3);
        assert!(!requests.iter().any(|r| r.path.contains('{')));
        // With as many sessions as the mix has steps, every session still makes a change.
        let twenty: Vec<(String, String)> = (0..20)
            .map(|k| (format!("c{k}"), format!("t{k}")))
            .collect();
        let mut writers: Vec<_> = steady_mix(&twenty)
            .into_iter()
            .filter(|r| r.post)
            .map(|r| r.cookie)
            .collect();
        writers.sort();
        writers.dedup();
        assert_eq!(writers.len(), 20);
    }
}
