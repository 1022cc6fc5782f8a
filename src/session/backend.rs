//! The kinds of session store, whether or not this build compiled them in, and how
//! `SESSION_BACKEND` names them.

use std::fmt;

/// Declares the kinds of store, one line each: the variant, the name `SESSION_BACKEND` gives
/// it, and the Cargo feature that compiles it in (none: always compiled, an embedded store).
/// A store with a feature is a network store.
macro_rules! backends {
    ($($variant:ident = $name:literal $(if $feature:literal)?),+ $(,)?) => {
        /// The kinds of store, whether or not this build compiled them in.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Backend {
            $($variant),+
        }

        impl Backend {
            pub const ALL: &[Backend] = &[$(Backend::$variant),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Backend::$variant => $name),+
                }
            }

            /// Whether this build has the store: the network stores each need their feature.
            pub fn is_compiled(self) -> bool {
                match self {
                    $(Backend::$variant => true $(&& cfg!(feature = $feature))?),+
                }
            }

            fn is_network(self) -> bool {
                match self {
                    $(Backend::$variant => false $(|| !$feature.is_empty())?),+
                }
            }
        }
    };
}

backends! {
    Sqlite = "sqlite",
    Redis = "redis" if "redis",
    Postgres = "postgres" if "postgres",
    Memcached = "memcached" if "memcached",
    Memory = "memory",
}

impl Backend {
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
            .iter()
            .copied()
            .find(|b| b.name() == name)
            .ok_or_else(|| {
                let all: Vec<&str> = Self::ALL.iter().map(|b| b.name()).collect();
                format!(
                    "'{name}' is not a session store; choose one of: {}",
                    all.join(", ")
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
            .iter()
            .copied()
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
