//! The built-in parties `partyline serve` registers: `main` (chat with a durable
//! history), `echo`, `relay`, `ephemeral` (messages expire: alarms), `items` (a large
//! collection sharded across storage keys), `presence` (connection state that survives
//! hibernation) and `yjs` (a collaborative Yjs document for the unmodified y-websocket
//! providers, hibernating). Each is also an example of the programming model.

mod chat;
mod echo;
mod ephemeral;
mod items;
mod presence;
mod relay;
pub mod yjs;

pub use chat::Chat;
pub use echo::Echo;
pub use ephemeral::Ephemeral;
pub use items::Items;
pub use presence::Presence;
pub use relay::Relay;
pub use yjs::{YDoc, YRoom, Yjs};
