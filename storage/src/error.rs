//! Storage errors: each says what was refused or what failed, and whether anything was
//! written (a refused call never writes; a failed commit poisons the store).

/// What a storage call can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A key longer than the profile allows (nothing written).
    KeyTooLarge { size: usize, max: usize },
    /// A value larger than the profile allows (nothing written).
    ValueTooLarge { size: usize, max: usize },
    /// More keys in one call than allowed (nothing written).
    BatchTooLarge { count: usize, max: usize },
    /// A transaction buffered more writes than one commit may carry (nothing written).
    TransactionTooLarge { max: usize },
    /// A party name and room id too long together to namespace (`size` bytes with their
    /// length prefixes): no key of the room could be stored.
    NameTooLong { size: usize, max: usize },
    /// An earlier write or fsync failed: the store refuses writes until it is reopened,
    /// rather than acknowledge writes it cannot make durable.
    Poisoned,
    /// The store was closed.
    Closed,
    /// Another store (in this or another process) has the folder open.
    Locked,
    /// The storage thread has `QUEUE_MAX` requests waiting; try again later (nothing
    /// written).
    Busy,
    /// fjall or the file system failed (the message says how).
    Io(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::KeyTooLarge { size, max } => {
                write!(f, "key of {size} bytes exceeds the limit of {max} bytes")
            }
            Error::ValueTooLarge { size, max } => {
                write!(f, "value of {size} bytes exceeds the limit of {max} bytes")
            }
            Error::BatchTooLarge { count, max } => {
                write!(f, "{count} keys in one call exceed the limit of {max}")
            }
            Error::TransactionTooLarge { max } => {
                write!(f, "a transaction may buffer at most {max} writes")
            }
            Error::NameTooLong { size, max } => write!(
                f,
                "party name and room id take {size} bytes; storage allows at most {max}"
            ),
            Error::Poisoned => f.write_str(
                "storage is poisoned: an earlier write failed to reach the disk; restart the server",
            ),
            Error::Closed => f.write_str("storage is closed"),
            Error::Locked => f.write_str("the storage folder is in use by another store"),
            Error::Busy => f.write_str("storage is overloaded (request queue full); try again"),
            Error::Io(e) => write!(f, "storage I/O error: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<fjall::Error> for Error {
    fn from(e: fjall::Error) -> Self {
        match e {
            fjall::Error::Poisoned => Error::Poisoned,
            fjall::Error::Locked => Error::Locked,
            other => Error::Io(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
