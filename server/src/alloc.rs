//! The process allocator, wrapped to count live heap bytes (INFO `used_memory`,
//! `maxmemory`).
//!
//! Why this measure: Redis compares `maxmemory` with the bytes its allocator handed
//! out (zmalloc's counter), not with RSS. A counting wrapper around the system
//! allocator gives the same kind of number exactly and cheaply (one relaxed atomic
//! add per allocation and free), with no new dependency and no stats refresh call,
//! unlike jemalloc's `stats.allocated` which needs an epoch advance to be fresh.
//!
//! Why unsafe: `GlobalAlloc` is an unsafe trait. Each method forwards to `System`
//! unchanged and only updates a counter, so it inherits `System`'s guarantees.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Counting;

static USED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            USED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        USED.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            USED.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            USED.fetch_add(new_size, Ordering::Relaxed);
            USED.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes allocated through Rust's allocator.
pub fn used() -> usize {
    USED.load(Ordering::Relaxed)
}
