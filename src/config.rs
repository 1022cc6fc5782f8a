//! Every setting the shop reads, taken from the environment once at start-up.
//!
//! Twelve-factor III: configuration lives in the environment. Each variable is documented on its
//! field with its default; a bad value stops start-up with a message that names the variable.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::session::{Backend, Secret, SessionConfig, redact_url};

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
    /// `SESSION_INSPECTOR`: `1` shows the `/session` inspector. Default: on in development, off
    /// in production.
    pub session_inspector: bool,
    /// Everything about sessions.
    pub session: SessionConfig,
}

/// A variable that stops start-up, and why.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in {variable}: {reason}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub reason: String,
}

fn invalid(variable: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        variable,
        reason: reason.into(),
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup`, so tests can configure an instance without touching the
    /// process environment. Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());

        let app_env = match get("APP_ENV").as_deref() {
            None | Some("development") => AppEnv::Development,
            Some("production") => AppEnv::Production,
            Some(other) => {
                return Err(invalid(
                    "APP_ENV",
                    format!("'{other}' is neither 'development' nor 'production'"),
                ));
            }
        };
        let host = get("HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
        let port = parse_number("PORT", get("PORT"), 8080_u16)?;
        let workers = match get("WORKERS") {
            None => None,
            Some(raw) => match parse_number("WORKERS", Some(raw), 1_usize)? {
                0 => return Err(invalid("WORKERS", "must be at least 1")),
                n => Some(n),
            },
        };
        let database_url = get("DATABASE_URL").unwrap_or_else(|| "sqlite://data/shop.db".into());
        if !is_sqlite(&database_url) && !is_postgres(&database_url) {
            return Err(invalid(
                "DATABASE_URL",
                "must start with sqlite:// or postgres://",
            ));
        }
        let static_dir = get("STATIC_DIR").unwrap_or_else(|| "static".into());
        let instance_name = get("INSTANCE_NAME").unwrap_or_else(default_instance_name);

        let backend = match get("SESSION_BACKEND") {
            Some(name) => Backend::parse(&name).map_err(|e| invalid("SESSION_BACKEND", e))?,
            None => Backend::default_compiled().map_err(|e| invalid("SESSION_BACKEND", e))?,
        };
        let secret = match get("SESSION_SECRET") {
            Some(secret) if secret.len() >= MIN_SECRET_BYTES => Secret::new(secret.into_bytes()),
            Some(secret) => {
                return Err(invalid(
                    "SESSION_SECRET",
                    format!(
                        "is {} bytes long; it must be at least {MIN_SECRET_BYTES}",
                        secret.len()
                    ),
                ));
            }
            None if app_env == AppEnv::Production => {
                return Err(invalid(
                    "SESSION_SECRET",
                    "is required when APP_ENV=production (at least 64 bytes, the same on every instance)",
                ));
            }
            // The public development key is fit only for a shop nobody else can reach.
            None if !is_loopback(&host) => {
                return Err(invalid(
                    "SESSION_SECRET",
                    format!(
                        "is required when listening on {host}, which is not loopback: the \
                         development key is public, so anyone could forge sessions (set 64+ bytes, \
                         the same on every instance)"
                    ),
                ));
            }
            None => Secret::new(DEVELOPMENT_SECRET.as_bytes().to_vec()),
        };
        let ttl_seconds =
            parse_number("SESSION_TTL_SECONDS", get("SESSION_TTL_SECONDS"), 1800_i64)?;
        if !(1..=30 * 24 * 3600).contains(&ttl_seconds) {
            return Err(invalid(
                "SESSION_TTL_SECONDS",
                "must be between 1 and 2592000 (30 days)",
            ));
        }
        let max_login_seconds = parse_number(
            "SESSION_MAX_LOGIN_SECONDS",
            get("SESSION_MAX_LOGIN_SECONDS"),
            crate::session::DEFAULT_MAX_LOGIN_SECONDS,
        )?;
        if max_login_seconds < 1 {
            return Err(invalid("SESSION_MAX_LOGIN_SECONDS", "must be at least 1"));
        }
        let cookie_secure = match get("COOKIE_SECURE").as_deref() {
            None => app_env == AppEnv::Production,
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => {
                return Err(invalid(
                    "COOKIE_SECURE",
                    format!("'{other}' is not true or false"),
                ));
            }
        };
        let session_database_url = match (get("SESSION_DATABASE_URL"), backend) {
            (Some(url), _) => url,
            (None, Backend::Postgres) if is_postgres(&database_url) => database_url.clone(),
            (None, Backend::Postgres) => {
                return Err(invalid(
                    "SESSION_DATABASE_URL",
                    "is required for the postgres store when DATABASE_URL is not PostgreSQL",
                ));
            }
            (None, _) => "sqlite://data/sessions.db".to_owned(),
        };
        match backend {
            Backend::Sqlite if !is_sqlite(&session_database_url) => {
                return Err(invalid(
                    "SESSION_DATABASE_URL",
                    "must be a sqlite:// URL for the sqlite store",
                ));
            }
            Backend::Postgres if !is_postgres(&session_database_url) => {
                return Err(invalid(
                    "SESSION_DATABASE_URL",
                    "must be a postgres:// URL for the postgres store",
                ));
            }
            _ => {}
        }
        let redis_url = get("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
        let redis_cluster_nodes: Vec<String> = get("REDIS_CLUSTER_NODES")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(bad) = redis_cluster_nodes
            .iter()
            .find(|node| !node.starts_with("redis://") && !node.starts_with("rediss://"))
        {
            return Err(invalid(
                "REDIS_CLUSTER_NODES",
                format!("'{}' is not a redis:// URL", redact_url(bad)),
            ));
        }
        let redis_min_replicas_ack = parse_number(
            "REDIS_MIN_REPLICAS_ACK",
            get("REDIS_MIN_REPLICAS_ACK"),
            0_u32,
        )?;
        if redis_min_replicas_ack > 5 {
            return Err(invalid(
                "REDIS_MIN_REPLICAS_ACK",
                "must be 0 to 5 (replicas per master)",
            ));
        }
        let memcached_servers: Vec<String> = get("MEMCACHED_SERVERS")
            .unwrap_or_else(|| "127.0.0.1:11211".into())
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if memcached_servers.is_empty() {
            return Err(invalid("MEMCACHED_SERVERS", "lists no server"));
        }
        let key_prefix = get("SESSION_KEY_PREFIX").unwrap_or_else(|| "shop:session:".into());
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
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
                .collect::<Result<_, _>>()?,
        };
        let ipv6_client_prefix = parse_number(
            "IPV6_CLIENT_PREFIX",
            get("IPV6_CLIENT_PREFIX"),
            crate::client::DEFAULT_IPV6_PREFIX,
        )?;
        if !(32..=128).contains(&ipv6_client_prefix) {
            return Err(invalid(
                "IPV6_CLIENT_PREFIX",
                "must be 32 to 128 (a prefix length)",
            ));
        }
        let checkout_claim_seconds = parse_number(
            "CHECKOUT_CLAIM_SECONDS",
            get("CHECKOUT_CLAIM_SECONDS"),
            30_i64,
        )?;
        if checkout_claim_seconds < 1 {
            return Err(invalid("CHECKOUT_CLAIM_SECONDS", "must be at least 1"));
        }
        let metrics_port = match get("METRICS_PORT") {
            None => None,
            Some(raw) => Some(parse_number("METRICS_PORT", Some(raw), 0_u16)?),
        };
        let metrics_host = get("METRICS_HOST").unwrap_or_else(|| "127.0.0.1".into());
        let session_inspector = match get("SESSION_INSPECTOR").as_deref() {
            None => app_env == AppEnv::Development,
            Some("1" | "true") => true,
            Some("0" | "false") => false,
            Some(other) => {
                return Err(invalid(
                    "SESSION_INSPECTOR",
                    format!("'{other}' is not 1 or 0"),
                ));
            }
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
            checkout_claim_seconds,
            metrics_port,
            metrics_host,
            session_inspector,
            session: SessionConfig {
                backend,
                secret,
                ttl_seconds,
                max_login_seconds,
                cookie_secure,
                database_url: session_database_url,
                redis_url,
                redis_cluster_nodes,
                redis_min_replicas_ack,
                memcached_servers,
                key_prefix,
            },
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

fn parse_number<T: std::str::FromStr>(
    variable: &'static str,
    raw: Option<String>,
    default: T,
) -> Result<T, ConfigError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| invalid(variable, format!("'{raw}' is not a valid number"))),
    }
}

pub(crate) fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

pub(crate) fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
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
            0 => assert_eq!(result.unwrap().session.backend, Backend::Sqlite),
            1 => assert_ne!(result.unwrap().session.backend, Backend::Sqlite),
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
