//! The built-in parties `partyline serve` registers: `main` (chat with a durable
//! history), `echo`, `relay`, `ephemeral` (messages expire: alarms) and `items` (a large
//! collection sharded across storage keys). Each is also an example of the programming
//! model.

mod chat;
mod echo;
mod ephemeral;
mod items;
mod relay;

pub use chat::Chat;
pub use echo::Echo;
pub use ephemeral::Ephemeral;
pub use items::Items;
pub use relay::Relay;
