//! The process allocator, wrapped to count live heap bytes (INFO `used_memory`,
//! `maxmemory`).
//!
//! Why this measure: Redis compares `maxmemory` with the bytes its allocator handed
//! out (zmalloc's counter), not with RSS. A counting wrapper around the system
//! allocator gives the same kind of number cheaply, with no new dependency and no
//! stats refresh call, unlike jemalloc's `stats.allocated` which needs an epoch
//! advance to be fresh.
//!
//! Why per-thread deltas: one shared atomic updated on every allocation bounces its
//! cache line between the cores on every request. Each thread instead accumulates
//! its own delta and folds it into the shared counter once it reaches
//! [`FLUSH_BYTES`] (and when the thread exits), so the shared count is off by at
//! most that much per thread — noise next to any useful `maxmemory`.
//!
//! Why unsafe: `GlobalAlloc` is an unsafe trait. Each method forwards to `System`
//! unchanged and only updates a counter, so it inherits `System`'s guarantees.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

pub struct Counting;

/// Largest per-thread delta kept before folding it into [`USED`].
pub const FLUSH_BYTES: isize = 32 * 1024;

/// Bytes allocated by the whole process. Process-global because the allocator is
/// (one of the server's two mutable statics; the other is the log sink): `used_memory`
/// and maxmemory are about this process's heap, whatever value owns the memory.
static USED: AtomicIsize = AtomicIsize::new(0);

/// A thread's not yet folded delta; folded when the thread exits.
struct Delta(Cell<isize>);

impl Drop for Delta {
    fn drop(&mut self) {
        USED.fetch_add(self.0.get(), Ordering::Relaxed);
    }
}

thread_local! {
    static DELTA: Delta = const { Delta(Cell::new(0)) };
}

#[inline]
fn account(n: isize) {
    let folded = DELTA.try_with(|d| {
        let v = d.0.get() + n;
        if v.abs() >= FLUSH_BYTES {
            USED.fetch_add(v, Ordering::Relaxed);
            d.0.set(0);
        } else {
            d.0.set(v);
        }
    });
    // During thread teardown the thread-local is gone: count directly.
    if folded.is_err() {
        USED.fetch_add(n, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to `System` with the caller's arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        account(-(layout.size() as isize));
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            account(layout.size() as isize);
        }
        p
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            account(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Live heap bytes allocated through Rust's allocator.
pub fn used() -> usize {
    USED.load(Ordering::Relaxed).max(0) as usize
}
