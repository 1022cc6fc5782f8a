//! The kinds of session store, whether or not this build compiled them in, and how
//! `SESSION_BACKEND` names them.

use std::fmt;

/// The kinds of store, whether or not this build compiled them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Redis,
    Postgres,
    Memcached,
    Memory,
}

impl Backend {
    pub const ALL: [Backend; 5] = [
        Backend::Sqlite,
        Backend::Redis,
        Backend::Postgres,
        Backend::Memcached,
        Backend::Memory,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Redis => "redis",
            Backend::Postgres => "postgres",
            Backend::Memcached => "memcached",
            Backend::Memory => "memory",
        }
    }

    /// Whether this build has the store: the network stores each need their Cargo feature.
    pub fn is_compiled(self) -> bool {
        match self {
            Backend::Sqlite | Backend::Memory => true,
            Backend::Redis => cfg!(feature = "redis"),
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::Memcached => cfg!(feature = "memcached"),
        }
    }

    fn is_network(self) -> bool {
        matches!(
            self,
            Backend::Redis | Backend::Postgres | Backend::Memcached
        )
    }

    fn compiled_names() -> String {
        Self::ALL
            .iter()
            .filter(|b| b.is_compiled())
            .map(|b| b.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses `SESSION_BACKEND`, refusing a store this build does not have.
    pub fn parse(name: &str) -> Result<Self, String> {
        let name = name.trim().to_ascii_lowercase();
        let backend = Self::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| {
                format!(
                    "'{name}' is not a session store; choose one of: sqlite, redis, postgres, memcached, memory"
                )
            })?;
        if backend.is_compiled() {
            Ok(backend)
        } else {
            Err(format!(
                "the {name} store is not compiled into this build; rebuild with `--features {name}` \
                 (this build has: {})",
                Self::compiled_names()
            ))
        }
    }

    /// The store used when `SESSION_BACKEND` is unset: the only network store compiled in, or
    /// SQLite when there is none.
    pub fn default_compiled() -> Result<Self, String> {
        let network: Vec<Backend> = Self::ALL
            .into_iter()
            .filter(|b| b.is_network() && b.is_compiled())
            .collect();
        match network.as_slice() {
            [] => Ok(Backend::Sqlite),
            [only] => Ok(*only),
            _ => Err(format!(
                "several session stores are compiled in; set it to one of: {}",
                Self::compiled_names()
            )),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
