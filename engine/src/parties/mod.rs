//! The built-in parties `partyline serve` registers: `main` (chat), `echo` and `relay`.
//! Each is also an example of the programming model.

mod chat;
mod echo;
mod relay;

pub use chat::Chat;
pub use echo::Echo;
pub use relay::Relay;
