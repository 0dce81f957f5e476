//! [`Error`]: what party hooks and engine calls fail with, saying who is at fault (the
//! client, party code, storage, an overloaded server, a deadline) and so what to answer: an
//! HTTP status for a request, a close code for a socket. Any error converts with `?`, as do
//! `&str` and `String` (party code's own failures).

use partyline_protocol::ws::CloseCode;
use std::error::Error as StdError;

/// Who caused an error, which decides the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Bad input from the client (a 4xx status; nothing on the server is wrong).
    Client(u16),
    /// Party code failed (500).
    Party,
    /// Room storage refused or failed (503 when it is only busy, else 500).
    Storage,
    /// The server is past a limit that clears with time: a queue or budget is full (503).
    Overloaded,
    /// A deadline passed (504).
    TimedOut,
}

/// The error party hooks return and engine calls fail with.
pub struct Error {
    fault: Fault,
    source: Box<dyn StdError>,
}

/// The result party hooks return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Bad input from the client: answered with `status` (a 4xx) over HTTP.
    pub fn client(status: u16, message: impl Into<String>) -> Error {
        debug_assert!((400..500).contains(&status), "client errors are 4xx, not {status}");
        Error { fault: Fault::Client(status), source: message.into().into() }
    }

    /// A queue or budget of the server is full; trying again later may work.
    pub fn overloaded(message: impl Into<String>) -> Error {
        Error { fault: Fault::Overloaded, source: message.into().into() }
    }

    /// A deadline passed.
    pub fn timed_out(message: impl Into<String>) -> Error {
        Error { fault: Fault::TimedOut, source: message.into().into() }
    }

    /// Who is at fault.
    pub fn fault(&self) -> Fault {
        self.fault
    }

    /// The HTTP status that answers this error.
    pub fn status(&self) -> u16 {
        match self.fault {
            Fault::Client(status) => status,
            Fault::Party => 500,
            Fault::Storage if self.storage_error() == Some(&partyline_storage::Error::Busy) => 503,
            Fault::Storage => 500,
            Fault::Overloaded => 503,
            Fault::TimedOut => 504,
        }
    }

    /// The close code that ends a socket over this error: 1013 (try again later) when the
    /// server is overloaded, 1011 otherwise.
    pub fn close_code(&self) -> CloseCode {
        match self.fault {
            Fault::Overloaded => CloseCode::TRY_AGAIN_LATER,
            _ => CloseCode::INTERNAL_ERROR,
        }
    }

    /// The storage error behind this one, if it is one.
    pub fn storage_error(&self) -> Option<&partyline_storage::Error> {
        self.source.downcast_ref()
    }

    /// The underlying error, if it is a `T`.
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        self.source.downcast_ref()
    }
}

impl<E: Into<Box<dyn StdError>>> From<E> for Error {
    fn from(e: E) -> Error {
        let source = e.into();
        let fault = match source.downcast_ref::<partyline_storage::Error>() {
            // The room's name came from the client's URL.
            Some(partyline_storage::Error::NameTooLong { .. }) => Fault::Client(414),
            Some(_) => Fault::Storage,
            None => Fault::Party,
        };
        Error { fault, source }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(&self.source, f)
    }
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.fault, self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_decide_statuses_and_close_codes() {
        let party: Error = "boom".into();
        assert_eq!((party.fault(), party.status()), (Fault::Party, 500));
        let parse: Error = "x".parse::<u32>().unwrap_err().into();
        assert_eq!(parse.status(), 500);
        assert_eq!(Error::client(400, "bad").status(), 400);
        let busy: Error = partyline_storage::Error::Busy.into();
        assert_eq!((busy.fault(), busy.status()), (Fault::Storage, 503));
        let poisoned: Error = partyline_storage::Error::Poisoned.into();
        assert_eq!(poisoned.status(), 500);
        assert_eq!(poisoned.storage_error(), Some(&partyline_storage::Error::Poisoned));
        assert_eq!(Error::overloaded("full").close_code(), CloseCode::TRY_AGAIN_LATER);
        let long: Error =
            partyline_storage::Error::NameTooLong { size: 70_000, max: 63_487 }.into();
        assert_eq!(long.status(), 414, "the client chose the room's name");
        assert_eq!(Error::timed_out("late").status(), 504);
        assert_eq!(party.to_string(), "boom");
    }
}
