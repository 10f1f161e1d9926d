//! `RequestParser::parse` over arbitrary bytes split into input-derived chunks: never
//! panics, never consumes more than it was given, and parses the same requests whole,
//! chunked and byte by byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = tandem_fuzz::check_chunking(data);
});
