//! Fuzz target: y-websocket messages. The checker never panics; a message it accepts is
//! read by `yrs` as the `yjs` party reads it (the sync and awareness codec, each update
//! decoded and applied to a document, the updates merged, each state vector answered with
//! a diff) without a panic or an allocation the message's bytes cannot account for
//! (libFuzzer's `-malloc_limit_mb` catches those: the reason the checker exists).

#![no_main]

use libfuzzer_sys::fuzz_target;
use partyline_protocol::yjs;
use yrs::sync::{Message, MessageReader, SyncMessage};
use yrs::updates::decoder::{Decode, DecoderV1};
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, Transact, Update};

fuzz_target!(|data: &[u8]| {
    if yjs::check(data).is_err() {
        return;
    }
    let doc = Doc::new();
    let mut decoded = Vec::new();
    let mut decoder = DecoderV1::from(data);
    for message in MessageReader::new(&mut decoder) {
        let Ok(message) = message else { break };
        match message {
            Message::Sync(SyncMessage::SyncStep2(update) | SyncMessage::Update(update)) => {
                assert!(yjs::update_v1(&update).is_ok(), "a checked message's update checks");
                if let Ok(update) = Update::decode_v1(&update) {
                    let _ = doc.transact_mut().apply_update(update);
                }
                if let Ok(update) = Update::decode_v1(&update) {
                    decoded.push(update);
                }
            }
            Message::Sync(SyncMessage::SyncStep1(sv)) => {
                let _ = doc.transact().encode_diff_v1(&sv);
            }
            _ => {}
        }
    }
    // The party merges a batch's updates: the merge must not panic either (what it gives
    // is checked again before it is stored).
    if decoded.len() > 1 {
        let merged = Update::merge_updates(decoded).encode_v1();
        let _ = yjs::update_v1(&merged);
    }
});
