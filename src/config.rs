//! Every setting the shop reads, taken from the environment once at start-up.
//!
//! Twelve-factor III: configuration lives in the environment. Each variable is documented on its
//! field with its default; a bad value stops start-up with a message that names the variable.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::db::{is_postgres, is_sqlite};
pub use crate::env::ConfigError;
use crate::env::{Env, invalid};
use crate::session::{Backend, Secret, SessionConfig, StoreSettings};

/// The smallest secret actix-session accepts for signing and encrypting the cookie.
pub const MIN_SECRET_BYTES: usize = 64;

/// The development key used when `SESSION_SECRET` is unset outside production. Public on purpose:
/// a cookie made with it proves nothing.
const DEVELOPMENT_SECRET: &str =
    "development-only-session-secret-do-not-use-in-production-0123456789abcdef";

/// Where the shop runs: production refuses unsafe defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

/// The window every limit counts in, unless configured.
pub const DEFAULT_WINDOW_SECONDS: i64 = 15 * 60;

/// New guest sessions one client may start within the window, unless configured.
pub const DEFAULT_NEW_SESSIONS_PER_CLIENT: i64 = 300;

/// Registrations one client may attempt within the window, unless configured.
pub const DEFAULT_REGISTRATIONS_PER_CLIENT: i64 = 50;

/// The wider IPv6 networks a failed sign-in is counted in as well, unless configured.
pub const DEFAULT_IPV6_NETWORK_PREFIXES: &str = "56,48";

/// The configurable limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `NEW_SESSIONS_PER_CLIENT`.
    pub new_sessions_per_client: i64,
    /// `REGISTRATIONS_PER_CLIENT`.
    pub registrations_per_client: i64,
    /// `LIMIT_WINDOW_SECONDS`: the window every limit counts in.
    pub window: actix_web::cookie::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            new_sessions_per_client: DEFAULT_NEW_SESSIONS_PER_CLIENT,
            registrations_per_client: DEFAULT_REGISTRATIONS_PER_CLIENT,
            window: actix_web::cookie::time::Duration::seconds(DEFAULT_WINDOW_SECONDS),
        }
    }
}

/// The whole configuration of one shop process.
#[derive(Debug, Clone)]
pub struct Config {
    /// `APP_ENV`: `development` (default) or `production`.
    pub app_env: AppEnv,
    /// `HOST`: the address to listen on. Default `127.0.0.1`.
    pub host: String,
    /// `PORT`: the port to listen on; 0 picks a free one. Default `8080`.
    pub port: u16,
    /// `WORKERS`: HTTP worker threads. Default: one per CPU core.
    pub workers: Option<usize>,
    /// `DATABASE_URL`: catalog, users and orders. Default `sqlite://data/shop.db`.
    pub database_url: String,
    /// `STATIC_DIR`: the folder served under `/static`. Default `static`.
    pub static_dir: String,
    /// `INSTANCE_NAME`: shown on every page and in `X-Served-By`. Default: host name and pid.
    pub instance_name: String,
    /// `TRUSTED_PROXIES`: a comma list of addresses or networks (`10.0.0.0/8`) whose
    /// `X-Forwarded-For` names the client, for login limits and logs. Default: none, so the
    /// client is the peer.
    pub trusted_proxies: Vec<IpNet>,
    /// `IPV6_CLIENT_PREFIX`: the prefix length an IPv6 client is counted by in the login limits
    /// (a host usually has a whole /64). 32 to 128. Default `64`.
    pub ipv6_client_prefix: u8,
    /// `IPV6_NETWORK_PREFIXES`: the wider IPv6 networks a failed sign-in is counted in as
    /// well, a comma list of prefix lengths from 16 to 127, each allowed twice the failures of
    /// the one inside it. Default `56,48`.
    pub ipv6_network_prefixes: Vec<u8>,
    /// `NEW_SESSIONS_PER_CLIENT` (new guest sessions one client may start in a window,
    /// default 300) and `REGISTRATIONS_PER_CLIENT` (registrations one client may attempt in a
    /// window, default 50), counted in windows of `LIMIT_WINDOW_SECONDS` (1 to 86400, default
    /// 900).
    pub limits: Limits,
    /// `CHECKOUT_CLAIM_SECONDS`: how long a checkout that has not finished is waited for (its
    /// claim joined by retries) before a retry voids it and orders the cart as it is then,
    /// judged by the database's clock. At least the longest a checkout transaction can take.
    /// Default `30`.
    pub checkout_claim_seconds: i64,
    /// `METRICS_PORT`: serve `/metrics` on its own listener on this port. Default: unset, no
    /// separate listener (and in production no `/metrics` at all).
    pub metrics_port: Option<u16>,
    /// `METRICS_HOST`: the address of the metrics listener. Default `127.0.0.1`.
    pub metrics_host: String,
    /// `DRAIN_SECONDS`: on SIGTERM, how long the shop keeps serving with `/readyz` answering
    /// 503 (so a load balancer or Kubernetes stops sending it shoppers) and every response
    /// closing its connection, before it stops accepting and finishes what is in flight. More
    /// than the keep-alive timeout (5 s), so no idle proxy connection outlives it. 0 to 600.
    /// Default `6`. SIGINT (Ctrl-C) stops at once.
    pub drain_seconds: u64,
    /// `SLOW_REQUEST_MILLIS`: log every request slower than this (`shop::slow`, a warning) with
    /// where its time went (`crate::timing`). Default: unset, nothing recorded.
    pub slow_request: Option<std::time::Duration>,
    /// `SESSION_INSPECTOR`: `1` shows the `/session` inspector. Default: on in development, off
    /// in production.
    pub session_inspector: bool,
    /// Everything about sessions.
    pub session: SessionConfig,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can configure an instance without touching the
    /// process environment. Empty values count as unset. Each section of the settings is read by
    /// a function of its own below, with `Env`'s helpers, which parse and word every error alike.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(&lookup);
        let app_env = app_env(&env)?;
        let Listener {
            host,
            port,
            workers,
            static_dir,
            instance_name,
        } = listener(&env)?;
        let database_url = database_url(&env)?;
        let session = session(&env, app_env, &host, &database_url)?;
        let (trusted_proxies, ipv6_client_prefix) = clients(&env)?;
        let ipv6_network_prefixes = network_prefixes(&env)?;
        let limits = Limits {
            new_sessions_per_client: env.number_in(
                "NEW_SESSIONS_PER_CLIENT",
                DEFAULT_NEW_SESSIONS_PER_CLIENT,
                1..=i64::MAX,
            )?,
            registrations_per_client: env.number_in(
                "REGISTRATIONS_PER_CLIENT",
                DEFAULT_REGISTRATIONS_PER_CLIENT,
                1..=i64::MAX,
            )?,
            window: actix_web::cookie::time::Duration::seconds(env.number_in(
                "LIMIT_WINDOW_SECONDS",
                DEFAULT_WINDOW_SECONDS,
                1..=86_400,
            )?),
        };
        let checkout_claim_seconds =
            env.number_in("CHECKOUT_CLAIM_SECONDS", 30_i64, 1..=i64::MAX)?;
        let metrics_port = match env.text("METRICS_PORT") {
            None => None,
            Some(_) => Some(env.number("METRICS_PORT", 0_u16)?),
        };
        Ok(Self {
            app_env,
            host,
            port,
            workers,
            database_url,
            static_dir,
            instance_name,
            trusted_proxies,
            ipv6_client_prefix,
            ipv6_network_prefixes,
            limits,
            checkout_claim_seconds,
            metrics_port,
            metrics_host: env.text_or("METRICS_HOST", "127.0.0.1"),
            drain_seconds: env
                .number_in("DRAIN_SECONDS", 6_i64, 0..=600)?
                .unsigned_abs(),
            session_inspector: env.flag("SESSION_INSPECTOR", app_env == AppEnv::Development)?,
            slow_request: match env.text("SLOW_REQUEST_MILLIS") {
                None => None,
                Some(_) => Some(std::time::Duration::from_millis(
                    env.number_in("SLOW_REQUEST_MILLIS", 0_i64, 1..=600_000)?
                        .unsigned_abs(),
                )),
            },
            session,
        })
    }

    /// True when the development key stands in for a real `SESSION_SECRET`.
    pub fn uses_development_secret(&self) -> bool {
        self.session.secret.bytes() == DEVELOPMENT_SECRET.as_bytes()
    }
}

/// Whether `host` names this machine only.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn app_env(env: &Env<'_>) -> Result<AppEnv, ConfigError> {
    match env.text("APP_ENV").as_deref() {
        None | Some("development") => Ok(AppEnv::Development),
        Some("production") => Ok(AppEnv::Production),
        Some(other) => Err(invalid(
            "APP_ENV",
            format!("'{other}' is neither 'development' nor 'production'"),
        )),
    }
}

/// Where and how the process listens and names itself.
struct Listener {
    host: String,
    port: u16,
    workers: Option<usize>,
    static_dir: String,
    instance_name: String,
}

fn listener(env: &Env<'_>) -> Result<Listener, ConfigError> {
    Ok(Listener {
        host: env.text_or("HOST", "127.0.0.1"),
        port: env.number("PORT", 8080_u16)?,
        workers: match env.text("WORKERS") {
            None => None,
            Some(_) => Some(env.number_in("WORKERS", 1_usize, 1..=usize::MAX)?),
        },
        static_dir: env.text_or("STATIC_DIR", "static"),
        instance_name: env
            .text("INSTANCE_NAME")
            .unwrap_or_else(default_instance_name),
    })
}

fn database_url(env: &Env<'_>) -> Result<String, ConfigError> {
    let url = env.text_or("DATABASE_URL", "sqlite://data/shop.db");
    if !is_sqlite(&url) && !is_postgres(&url) {
        return Err(invalid(
            "DATABASE_URL",
            "must start with sqlite:// or postgres://",
        ));
    }
    Ok(url)
}

/// The session store, the secret, the cookie and the lifetimes.
fn session(
    env: &Env<'_>,
    app_env: AppEnv,
    host: &str,
    database_url: &str,
) -> Result<SessionConfig, ConfigError> {
    let backend = match env.text("SESSION_BACKEND") {
        Some(name) => Backend::parse(&name).map_err(|e| invalid("SESSION_BACKEND", e))?,
        None => Backend::default_compiled().map_err(|e| invalid("SESSION_BACKEND", e))?,
    };
    let store = StoreSettings::read(backend, env, database_url)?;
    Ok(SessionConfig {
        store,
        secret: secret(env, app_env, host)?,
        ttl_seconds: env.number_in("SESSION_TTL_SECONDS", 1800_i64, 1..=30 * 24 * 3600)?,
        max_login_seconds: env.number_in(
            "SESSION_MAX_LOGIN_SECONDS",
            crate::session::DEFAULT_MAX_LOGIN_SECONDS,
            1..=i64::MAX,
        )?,
        cookie_secure: env.flag("COOKIE_SECURE", app_env == AppEnv::Production)?,
    })
}

fn secret(env: &Env<'_>, app_env: AppEnv, host: &str) -> Result<Secret, ConfigError> {
    match env.text("SESSION_SECRET") {
        Some(secret) if secret.len() >= MIN_SECRET_BYTES => Ok(Secret::new(secret.into_bytes())),
        Some(secret) => Err(invalid(
            "SESSION_SECRET",
            format!(
                "is {} bytes long; it must be at least {MIN_SECRET_BYTES}",
                secret.len()
            ),
        )),
        None if app_env == AppEnv::Production => Err(invalid(
            "SESSION_SECRET",
            "is required when APP_ENV=production (at least 64 bytes, the same on every instance)",
        )),
        // The public development key is fit only for a shop nobody else can reach.
        None if !is_loopback(host) => Err(invalid(
            "SESSION_SECRET",
            format!(
                "is required when listening on {host}, which is not loopback: the development \
                 key is public, so anyone could forge sessions (set 64+ bytes, the same on every \
                 instance)"
            ),
        )),
        None => Ok(Secret::new(DEVELOPMENT_SECRET.as_bytes().to_vec())),
    }
}

/// Who the client is: the trusted proxies and the IPv6 prefix a client is counted by.
fn clients(env: &Env<'_>) -> Result<(Vec<IpNet>, u8), ConfigError> {
    let trusted_proxies = env
        .list("TRUSTED_PROXIES", "")
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    invalid(
                        "TRUSTED_PROXIES",
                        format!("'{item}' is not an address or a network"),
                    )
                })
        })
        .collect::<Result<_, _>>()?;
    let prefix = env.number_in(
        "IPV6_CLIENT_PREFIX",
        crate::client::DEFAULT_IPV6_PREFIX,
        32..=128,
    )?;
    Ok((trusted_proxies, prefix))
}

/// `IPV6_NETWORK_PREFIXES`, widest last.
fn network_prefixes(env: &Env<'_>) -> Result<Vec<u8>, ConfigError> {
    let mut prefixes = env
        .list("IPV6_NETWORK_PREFIXES", DEFAULT_IPV6_NETWORK_PREFIXES)
        .iter()
        .map(|item| {
            item.trim_start_matches('/')
                .parse::<u8>()
                .ok()
                .filter(|prefix| (16..=127).contains(prefix))
                .ok_or_else(|| {
                    invalid(
                        "IPV6_NETWORK_PREFIXES",
                        format!("'{item}' is not a prefix length from 16 to 127"),
                    )
                })
        })
        .collect::<Result<Vec<u8>, _>>()?;
    prefixes.sort_unstable_by(|a, b| b.cmp(a));
    prefixes.dedup();
    Ok(prefixes)
}

fn default_instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "shop".to_owned());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::redact_url;
    use std::collections::HashMap;

    /// Settings with `SESSION_BACKEND=sqlite` unless the case names another, so the cases hold
    /// whichever stores this build compiled in.
    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        vars.entry("SESSION_BACKEND".into())
            .or_insert("sqlite".into());
        Config::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn an_unset_backend_defaults_to_the_only_network_store_or_sqlite() {
        let compiled = [
            cfg!(feature = "redis"),
            cfg!(feature = "postgres"),
            cfg!(feature = "memcached"),
        ]
        .into_iter()
        .filter(|&on| on)
        .count();
        let result = Config::from_lookup(|_| None);
        match compiled {
            0 => assert_eq!(result.unwrap().session.backend(), Backend::Sqlite),
            1 => assert_ne!(result.unwrap().session.backend(), Backend::Sqlite),
            _ => {
                let err = result.unwrap_err();
                assert_eq!(err.variable, "SESSION_BACKEND");
                assert!(err.reason.contains("several"), "{}", err.reason);
            }
        }
    }

    #[test]
    fn defaults_run_on_sqlite_with_the_development_secret() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.port, 8080);
        assert_eq!(config.session.ttl_seconds, 1800);
        assert!(!config.session.cookie_secure);
        assert!(config.uses_development_secret());
        assert!(config.database_url.starts_with("sqlite:"));
    }

    #[test]
    fn production_refuses_to_start_without_a_secret() {
        let err = config(&[("APP_ENV", "production")]).unwrap_err();
        assert_eq!(err.variable, "SESSION_SECRET");
    }

    #[test]
    fn a_short_secret_is_refused() {
        let err = config(&[("SESSION_SECRET", "too-short")]).unwrap_err();
        assert_eq!(err.variable, "SESSION_SECRET");
    }

    #[test]
    fn a_bad_port_names_the_variable() {
        let err = config(&[("PORT", "eighty")]).unwrap_err();
        assert_eq!(err.variable, "PORT");
        assert!(err.to_string().contains("PORT"));
    }

    #[test]
    fn an_unknown_backend_is_refused() {
        let err = config(&[("SESSION_BACKEND", "mongodb")]).unwrap_err();
        assert_eq!(err.variable, "SESSION_BACKEND");
    }

    #[test]
    fn production_sets_the_secure_flag() {
        let secret = "x".repeat(64);
        let config = config(&[("APP_ENV", "production"), ("SESSION_SECRET", &secret)]).unwrap();
        assert!(config.session.cookie_secure);
        assert!(!config.uses_development_secret());
    }

    #[test]
    fn passwords_in_urls_never_reach_the_log() {
        assert_eq!(
            redact_url("postgres://shop:s3cret@db:5432/shop"),
            "postgres://shop:***@db:5432/shop"
        );
        assert_eq!(
            redact_url("postgres://shop@db/shop"),
            "postgres://shop@db/shop"
        );
        assert_eq!(
            redact_url("redis://:pw@127.0.0.1:6379"),
            "redis://:***@127.0.0.1:6379"
        );
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let secret = "s".repeat(70);
        let config = config(&[("SESSION_SECRET", &secret)]).unwrap();
        assert!(!format!("{config:?}").contains(&secret));
    }

    #[test]
    fn the_development_key_is_refused_off_loopback() {
        for host in ["127.0.0.1", "::1", "[::1]", "localhost", "127.0.0.2"] {
            let config = config(&[("HOST", host)]).unwrap();
            assert!(config.uses_development_secret(), "{host}");
        }
        for host in ["0.0.0.0", "::", "192.0.2.10", "shop.example"] {
            let err = config(&[("HOST", host)]).unwrap_err();
            assert_eq!(err.variable, "SESSION_SECRET", "{host}");
            assert!(err.reason.contains(host), "{}", err.reason);
        }
        let secret = "s".repeat(64);
        assert!(config(&[("HOST", "0.0.0.0"), ("SESSION_SECRET", &secret)]).is_ok());
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        let config = config(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1,::1")]).unwrap();
        assert_eq!(config.trusted_proxies.len(), 3);
        let err = config_err(&[("TRUSTED_PROXIES", "10.0.0.0/8,nginx")]);
        assert_eq!(err.variable, "TRUSTED_PROXIES");
    }

    #[test]
    pub(crate) fn flags_numbers_and_ranges_are_read_and_worded_alike_in_every_section() {
        for (variable, bad) in [("COOKIE_SECURE", "yes"), ("SESSION_INSPECTOR", "on")] {
            let err = config_err(&[(variable, bad)]);
            assert_eq!(err.variable, variable);
            assert_eq!(err.reason, format!("'{bad}' is not true (1) or false (0)"));
            for (raw, value) in [("true", true), ("1", true), ("false", false), ("0", false)] {
                let config = config(&[(variable, raw)]).unwrap();
                let read = match variable {
                    "COOKIE_SECURE" => config.session.cookie_secure,
                    _ => config.session_inspector,
                };
                assert_eq!(read, value, "{variable}={raw}");
            }
        }
        for variable in [
            "PORT",
            "WORKERS",
            "SESSION_TTL_SECONDS",
            "CHECKOUT_CLAIM_SECONDS",
        ] {
            let err = config_err(&[(variable, "many")]);
            assert_eq!(err.reason, "'many' is not a valid number", "{variable}");
        }
        #[cfg(feature = "redis")]
        assert_eq!(
            config_err(&[
                ("SESSION_BACKEND", "redis"),
                ("REDIS_MIN_REPLICAS_ACK", "6")
            ])
            .reason,
            "must be 0 to 5"
        );
        assert_eq!(
            config_err(&[("CHECKOUT_CLAIM_SECONDS", "0")]).reason,
            "must be at least 1"
        );
        assert_eq!(config_err(&[("WORKERS", "0")]).reason, "must be at least 1");
    }

    #[test]
    fn ipv6_clients_are_counted_by_a_prefix_of_32_to_128() {
        assert_eq!(config(&[]).unwrap().ipv6_client_prefix, 64);
        let narrower = config(&[("IPV6_CLIENT_PREFIX", "56")]).unwrap();
        assert_eq!(narrower.ipv6_client_prefix, 56);
        for bad in ["0", "129", "/64", "wide"] {
            let err = config_err(&[("IPV6_CLIENT_PREFIX", bad)]);
            assert_eq!(err.variable, "IPV6_CLIENT_PREFIX", "{bad}");
        }
    }

    #[test]
    fn wider_ipv6_networks_and_the_limits_are_read_and_checked() {
        let default = config(&[]).unwrap();
        assert_eq!(default.ipv6_network_prefixes, [56, 48]);
        assert_eq!(default.limits.new_sessions_per_client, 300);
        let set = config(&[
            ("IPV6_NETWORK_PREFIXES", "48, /40,56"),
            ("NEW_SESSIONS_PER_CLIENT", "5"),
        ])
        .unwrap();
        assert_eq!(set.ipv6_network_prefixes, [56, 48, 40]);
        assert_eq!(set.limits.new_sessions_per_client, 5);
        for bad in ["0", "128", "wide"] {
            let err = config_err(&[("IPV6_NETWORK_PREFIXES", bad)]);
            assert_eq!(err.variable, "IPV6_NETWORK_PREFIXES", "{bad}");
        }
        let err = config_err(&[("REGISTRATIONS_PER_CLIENT", "0")]);
        assert_eq!(err.variable, "REGISTRATIONS_PER_CLIENT");
    }

    #[test]
    fn operator_pages_are_on_in_development_and_off_in_production() {
        assert!(config(&[]).unwrap().session_inspector);
        let secret = "s".repeat(64);
        let production = [
            ("APP_ENV", "production"),
            ("SESSION_SECRET", secret.as_str()),
        ];
        assert!(!config(&production).unwrap().session_inspector);
        let mut with = production.to_vec();
        with.push(("SESSION_INSPECTOR", "1"));
        assert!(config(&with).unwrap().session_inspector);
        assert_eq!(
            config_err(&[("METRICS_PORT", "x")]).variable,
            "METRICS_PORT"
        );
    }

    fn config_err(vars: &[(&str, &str)]) -> ConfigError {
        config(vars).unwrap_err()
    }
}
