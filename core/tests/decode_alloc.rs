//! Decoding a frame allocates nothing, whatever the bytes claim.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
};

use pollen_core::wire::{self, Message};
use proptest::prelude::*;

thread_local! {
    static ALLOCATED: Cell<usize> = const { Cell::new(0) };
}

/// Counts the bytes this thread allocates.
struct Counting;

// SAFETY: forwards to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.with(|a| a.set(a.get() + layout.size()));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocated_by(f: impl FnOnce()) -> usize {
    let before = ALLOCATED.with(Cell::get);
    f();
    ALLOCATED.with(Cell::get) - before
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_allocates_nothing(buf in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert_eq!(allocated_by(|| { let _ = wire::decode_frame(&buf); }), 0);
        prop_assert_eq!(allocated_by(|| { let _ = wire::decode(&buf); }), 0);
    }

    #[test]
    fn decoding_frames_that_claim_huge_counts_allocates_nothing(kind in 0u8..20, claim in any::<u64>()) {
        // version, kind, then a varint claiming `claim` elements or bytes.
        let mut body = vec![wire::PROTOCOL_VERSION, kind];
        let mut v = claim;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 { body.push(byte); break; }
            body.push(byte | 0x80);
        }
        prop_assert_eq!(allocated_by(|| { let _ = wire::decode(&body); }), 0);
    }
}

#[test]
fn decoding_a_large_valid_block_allocates_nothing() {
    let data = vec![3u8; wire::MAX_BLOCK_LEN];
    let mut frame = Vec::new();
    wire::encode(
        &Message::Block {
            piece: 9,
            offset: 0,
            data: &data,
        },
        &mut frame,
    )
    .expect("valid");
    assert_eq!(
        allocated_by(|| {
            let _ = wire::decode_frame(&frame);
        }),
        0
    );
}

#[test]
fn the_counter_sees_allocations() {
    let n = allocated_by(|| {
        std::hint::black_box(vec![0u8; 100]);
    });
    assert!(n >= 100, "counted {n}");
}
