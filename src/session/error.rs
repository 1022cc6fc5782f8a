//! What can go wrong in a session store, by kind. Each store says which it is where it knows;
//! the shop's pages and actix-session's errors are made from the kind, never by looking inside
//! an error for a type.

use super::MAX_STATE_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be reached, or refused the call: nothing was changed.
    #[error(transparent)]
    Unavailable(anyhow::Error),
    /// The store may or may not have kept the change: its reply was lost (a master died
    /// mid-request) and asking again did not tell, or a write that reached too few replicas
    /// could not be undone. The shopper is asked to look before trying again.
    #[error("the session store may or may not have kept the change")]
    OutcomeUnknown(#[source] anyhow::Error),
    /// A write reached the master but not the replicas required (`REDIS_MIN_REPLICAS_ACK`)
    /// within the wait, and was undone: nothing was changed.
    #[error("the write did not reach the {wanted} replica(s) required, and was undone")]
    NotReplicated { wanted: u32 },
    /// What is stored was written by another version of the shop in a shape this one cannot
    /// read (a whole state, or the named value in it). It is never overwritten or deleted
    /// here: the change is refused, and a replica of that version will serve the next try.
    #[error("the session's {0} was written by another version of the shop")]
    OtherVersion(&'static str),
    /// Encoded state over [`MAX_STATE_BYTES`]: refused whole, never truncated.
    #[error("the session state is {0} bytes; the limit is {MAX_STATE_BYTES}")]
    TooLarge(usize),
}

impl From<anyhow::Error> for StoreError {
    fn from(err: anyhow::Error) -> Self {
        StoreError::Unavailable(err)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        StoreError::Unavailable(err.into())
    }
}

#[cfg(feature = "memcached")]
impl From<memcache::exp::Error> for StoreError {
    fn from(err: memcache::exp::Error) -> Self {
        StoreError::Unavailable(err.into())
    }
}

#[cfg(feature = "redis")]
impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        StoreError::Unavailable(err.into())
    }
}

/// `anyhow::Context` for the stores' own calls: a client library's failure, with what was being
/// done, is [`StoreError::Unavailable`]. A store says `OutcomeUnknown` or `NotReplicated` itself,
/// where it knows.
pub(crate) trait Context<T> {
    fn context(self, what: &'static str) -> Result<T, StoreError>;
    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, StoreError>;
}

impl<T, E: Into<anyhow::Error>> Context<T> for Result<T, E> {
    fn context(self, what: &'static str) -> Result<T, StoreError> {
        self.map_err(|err| StoreError::Unavailable(err.into().context(what)))
    }

    fn with_context(self, what: impl FnOnce() -> String) -> Result<T, StoreError> {
        self.map_err(|err| StoreError::Unavailable(err.into().context(what())))
    }
}
