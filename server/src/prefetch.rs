//! A cache prefetch hint (a helper below the keyspace layer): `Db::prefetch` uses it
//! to start loading a pipelined batch's keys before its commands run.
//!
//! Why unsafe: `_mm_prefetch` is a `#[target_feature(enable = "sse")]` intrinsic,
//! which Rust only lets an `unsafe` block call. The instruction is a hint: it never
//! faults, accepts any address (dangling or null included) and changes nothing the
//! program can observe, and SSE is part of the x86_64 baseline, so the call is sound
//! for every pointer. Elsewhere it is a no-op.
#![allow(unsafe_code)]

/// Asks the CPU to bring the cache line at `p` into L1.
#[inline(always)]
pub fn read<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: see the module doc: a prefetch never faults or writes, for any
    // address, and SSE is always present on x86_64.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
