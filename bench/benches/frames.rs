//! Criterion micro-benchmarks of the WebSocket hot paths, in bytes per second: unmasking
//! (word-at-a-time against the byte-at-a-time reference), decoding a client frame (header
//! checks + unmask + message assembly with UTF-8 validation), and encoding a server frame.
//!
//! Run: `cargo bench -p partyline-bench --bench frames`; docs/benchmarks.md has results.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use partyline_bench::{MASK, PAYLOAD_SIZES, client_frame, payload};
use partyline_protocol::ws::{
    Decoded, FrameDecoder, Message, MessageAssembler, Opcode, apply_mask, apply_mask_bytewise,
    encode,
};
use std::hint::black_box;

// The binaries use mimalloc; so do the benchmarks, so allocation costs match.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for len in PAYLOAD_SIZES {
        let mut buf = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("word", len), &len, |b, _| {
            b.iter(|| apply_mask(black_box(&mut buf), black_box(MASK)))
        });
        group.bench_with_input(BenchmarkId::new("bytewise", len), &len, |b, _| {
            b.iter(|| apply_mask_bytewise(black_box(&mut buf), black_box(MASK)))
        });
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    let decoder = FrameDecoder::server();
    for (name, opcode) in [("text", Opcode::Text), ("binary", Opcode::Binary)] {
        for len in PAYLOAD_SIZES {
            // Decoding unmasks in place, so every iteration starts from a fresh copy; the
            // copy is measured too, as the engine's read into its buffer would be.
            let frame = client_frame(opcode, len);
            let mut buf = frame.clone();
            let mut assembler = MessageAssembler::new(2 * len + 1024);
            group.throughput(Throughput::Bytes(len as u64));
            group.bench_with_input(BenchmarkId::new(name, len), &len, |b, _| {
                b.iter(|| {
                    buf.copy_from_slice(&frame);
                    let Ok(Decoded::Frame { frame, .. }) = decoder.decode(&mut buf) else {
                        unreachable!("benchmark frame is whole and valid")
                    };
                    match assembler.push(frame) {
                        Ok(Some(Message::Text(s))) => black_box(s.len()),
                        Ok(Some(Message::Binary(b))) => black_box(b.len()),
                        _ => unreachable!("benchmark frame is one data message"),
                    }
                })
            });
        }
    }
    group.finish();
}

fn encode_frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for len in PAYLOAD_SIZES {
        let data = payload(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("server_binary", len), &len, |b, _| {
            b.iter(|| encode::binary(black_box(&data)))
        });
    }
    group.finish();
}

criterion_group!(benches, unmask, decode, encode_frames);
criterion_main!(benches);
