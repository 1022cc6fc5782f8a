//! The load: signed-in sessions, wrk's Lua scripts, and the check that every add was kept.

use super::*;

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
    let mut lua = String::from("local s = {\n");
    for (cookie, token) in sessions {
        lua.push_str(&format!("  {{\"{cookie}\", \"{token}\"}},\n"));
    }
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
  -- {{product}} walks the catalog; {{line}} walks the 5 lines of a bench cart and {{quantity}}
  -- cycles 1 to 9, so each visit to a line changes it (5 and 9 share no factor) and no cart
  -- ever reaches a limit.
  local fill = function(text)
    return (text:gsub("{{product}}", tostring(round % 12 + 1))
      :gsub("{{line}}", tostring(round % 5 + 1))
      :gsub("{{quantity}}", tostring(round % 9 + 1))
      :gsub("{{token}}", s[k][2]))
  end
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
