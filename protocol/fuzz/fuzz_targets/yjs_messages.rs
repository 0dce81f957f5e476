//! Fuzz target: y-websocket messages. The checker never panics; a message it accepts is
//! read by `yrs` as the `yjs` party reads it (the sync and awareness codec, each update
//! decoded and applied to a document, each state vector answered with a diff) without a
//! panic or an allocation the message's bytes cannot account for (libFuzzer's
//! `-malloc_limit_mb` catches those: the reason the checker exists).

#![no_main]

use libfuzzer_sys::fuzz_target;
use partyline_protocol::yjs;
use yrs::sync::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::{Doc, ReadTxn, Transact, Update};

fuzz_target!(|data: &[u8]| {
    if yjs::check(data).is_err() {
        return;
    }
    let doc = Doc::new();
    let mut decoder = DecoderV1::from(data);
    for message in MessageReader::new(&mut decoder) {
        let Ok(message) = message else { break };
        match message {
            Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                assert!(yjs::update_v1(&update).is_ok(), "a checked message's update checks");
                if let Ok(update) = Update::decode_v1(&update) {
                    let _ = doc.transact_mut().apply_update(update);
                }
            }
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                let _ = doc.transact().encode_diff_v1(&sv);
            }
            _ => {}
        }
    }
});
