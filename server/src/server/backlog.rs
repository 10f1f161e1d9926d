//! The replication backlog: the retained tail of the replication stream, used to
//! serve partial resynchronisations (PSYNC).
//!
//! Byte-level semantics (Redis `server.repl_backlog`):
//! * Stream offsets are 1-based: the first byte ever produced has offset 1, so after
//!   N bytes `master_repl_offset` (= [`Backlog::end_offset`]) is N.
//! * The backlog keeps the last `histlen` bytes: offsets `first_byte ..= end_offset`
//!   where `first_byte = end_offset - histlen + 1`. An empty backlog created when the
//!   stream is at offset N has `first_byte = N + 1`, `histlen = 0`.
//! * A replica that has applied everything up to offset X asks for `X + 1`; that is
//!   servable iff `first_byte <= X + 1 <= end_offset + 1` and the answer is the
//!   `end_offset - X` bytes from `X + 1` to the end (zero bytes when up to date).
//! * At least `size` bytes are kept (older bytes are trimmed once more than `size`
//!   are held); `size` has a floor of 16 KiB like Redis's `repl-backlog-size`.

/// Smallest backlog Redis accepts.
pub const MIN_SIZE: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct Backlog {
    size: usize,
    /// Retained bytes live in `data[start..]`; the prefix is garbage awaiting compaction.
    data: Vec<u8>,
    start: usize,
    /// Stream offset of `data[start]` (or of the next byte when empty).
    first_byte: i64,
}

impl Backlog {
    /// An empty backlog for a stream whose last produced byte is `end_offset`.
    pub fn new(size: usize, end_offset: i64) -> Self {
        Backlog {
            size: size.max(MIN_SIZE),
            data: Vec::new(),
            start: 0,
            first_byte: end_offset + 1,
        }
    }

    /// Bytes the backlog's buffer holds in memory now (it grows up to `size`).
    pub fn memory(&self) -> usize {
        self.data.capacity()
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Changes the retention (CONFIG SET repl-backlog-size); trims if needed.
    pub fn resize(&mut self, size: usize) {
        self.size = size.max(MIN_SIZE);
        self.trim();
    }

    pub fn histlen(&self) -> i64 {
        (self.data.len() - self.start) as i64
    }

    pub fn first_byte(&self) -> i64 {
        self.first_byte
    }

    /// Offset of the last byte held (= master_repl_offset).
    pub fn end_offset(&self) -> i64 {
        self.first_byte + self.histlen() - 1
    }

    /// Appends stream bytes.
    pub fn append(&mut self, bytes: &[u8]) {
        self.data.extend_from_slice(bytes);
        self.trim();
    }

    fn trim(&mut self) {
        let held = self.data.len() - self.start;
        if held > self.size {
            let drop = held - self.size;
            self.start += drop;
            self.first_byte += drop as i64;
        }
        // Compact once the dead prefix is as large as what we keep: amortised O(1).
        if self.start > 0 && self.start >= self.size.max(64 * 1024) {
            self.data.drain(..self.start);
            self.start = 0;
        }
    }

    /// Whether a replica may continue from stream offset `off` (the first byte it
    /// still needs).
    pub fn can_serve(&self, off: i64) -> bool {
        off >= self.first_byte && off <= self.end_offset() + 1
    }

    /// The bytes from offset `off` to the end, if servable.
    pub fn since(&self, off: i64) -> Option<&[u8]> {
        if !self.can_serve(off) {
            return None;
        }
        let skip = (off - self.first_byte) as usize;
        Some(&self.data[self.start + skip..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_backlog_reports_next_offset_as_first_byte() {
        let b = Backlog::new(1 << 20, 0);
        assert_eq!(b.first_byte(), 1);
        assert_eq!(b.histlen(), 0);
        assert_eq!(b.end_offset(), 0);
        assert!(b.can_serve(1));
        assert_eq!(b.since(1), Some(&b""[..]));
        assert!(!b.can_serve(2));
        assert!(!b.can_serve(0));
        let b = Backlog::new(1 << 20, 4222);
        assert_eq!(b.first_byte(), 4223);
        assert!(b.can_serve(4223));
    }

    #[test]
    fn offsets_are_one_based_and_serve_the_tail() {
        let mut b = Backlog::new(1 << 20, 0);
        b.append(b"*1\r\n$4\r\nping\r\n"); // 14 bytes: offsets 1..=14
        b.append(b"abc"); // 15..=17
        assert_eq!(b.end_offset(), 17);
        assert_eq!(b.histlen(), 17);
        assert_eq!(b.since(15), Some(&b"abc"[..]));
        assert_eq!(b.since(18), Some(&b""[..]));
        assert_eq!(b.since(19), None);
        assert_eq!(b.since(1).map(|s| s.len()), Some(17));
    }

    #[test]
    fn trimming_keeps_exactly_size_bytes_and_moves_first_byte() {
        let mut b = Backlog::new(MIN_SIZE, 100);
        let chunk = vec![b'x'; 1000];
        for _ in 0..100 {
            b.append(&chunk);
        }
        assert_eq!(b.histlen(), MIN_SIZE as i64);
        assert_eq!(b.end_offset(), 100 + 100_000);
        assert_eq!(b.first_byte(), b.end_offset() - MIN_SIZE as i64 + 1);
        assert!(!b.can_serve(b.first_byte() - 1));
        assert_eq!(b.since(b.first_byte()).map(|s| s.len()), Some(MIN_SIZE));
        // Many more appends: compaction must not disturb the content.
        let mut n = 0u8;
        for _ in 0..200 {
            b.append(&[n; 700]);
            n = n.wrapping_add(1);
        }
        let tail = b.since(b.end_offset() - 699).expect("tail");
        assert!(tail.iter().all(|&c| c == n.wrapping_sub(1)));
        assert_eq!(b.histlen(), MIN_SIZE as i64);
    }

    #[test]
    fn resize_trims_old_bytes() {
        let mut b = Backlog::new(1 << 20, 0);
        b.append(&vec![1u8; 100_000]);
        b.resize(20_000);
        assert_eq!(b.histlen(), 20_000);
        assert_eq!(b.first_byte(), 80_001);
        assert_eq!(b.end_offset(), 100_000);
    }
}
