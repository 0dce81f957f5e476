//! Replies awaited on a shard: an HTTP request waiting for its room's response, or a room
//! (or edge gate) waiting for another room's answer to a fetch. Each waiter holds a
//! [`ReplySlot`] under a token; the answer arrives as `ToEdge::Response` with that token.
//! Dropping the slot (the waiter gave up at its deadline, or its task ended) forgets the
//! token, so a late answer is dropped, never leaked.

use super::ids::ShardAddr;
use super::message::ReplyTo;
use partyline_protocol::http::Response;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// The shard's table of awaited replies. Bounded by the requests waiting: each holds one
/// slot, and every wait has a deadline.
#[derive(Default)]
pub(crate) struct Replies {
    pending: RefCell<HashMap<u64, Rc<Slot>>>,
    next_token: Cell<u64>,
}

#[derive(Default)]
struct Slot {
    response: RefCell<Option<Response>>,
    waker: RefCell<Option<Waker>>,
}

/// One awaited reply; its token is forgotten when it drops.
pub(crate) struct ReplySlot<'a> {
    replies: &'a Replies,
    token: u64,
    slot: Rc<Slot>,
    reply_to: ReplyTo,
}

impl Replies {
    /// A new slot; send its [`ReplySlot::reply_to`] with the request.
    pub fn open(&self, here: ShardAddr) -> ReplySlot<'_> {
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let slot = Rc::new(Slot::default());
        self.pending.borrow_mut().insert(token, slot.clone());
        ReplySlot { replies: self, token, slot, reply_to: ReplyTo { to: here, token } }
    }

    /// Delivers the response for `token`; dropped if nobody waits for it any more.
    pub fn complete(&self, token: u64, response: Response) {
        let Some(slot) = self.pending.borrow_mut().remove(&token) else {
            return;
        };
        *slot.response.borrow_mut() = Some(response);
        if let Some(waker) = slot.waker.borrow_mut().take() {
            waker.wake();
        }
    }
}

impl ReplySlot<'_> {
    pub fn reply_to(&self) -> ReplyTo {
        self.reply_to
    }

    /// Waits for the response. Unbounded by itself: callers wrap it in a deadline.
    pub async fn wait(&self) -> Response {
        poll_fn(|cx| match self.slot.response.borrow_mut().take() {
            Some(response) => Poll::Ready(response),
            None => {
                *self.slot.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for ReplySlot<'_> {
    fn drop(&mut self) {
        self.replies.pending.borrow_mut().remove(&self.token);
    }
}
