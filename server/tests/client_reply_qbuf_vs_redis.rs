//! CLIENT REPLY ON|OFF|SKIP sequences and the calling client's own `qbuf` in CLIENT
//! INFO / CLIENT LIST, compared byte for byte with Redis 7.0.15.
mod common;
use common::*;
use std::io::Read;
use std::time::{Duration, Instant};

/// Sends `pipeline` in one write followed by `ECHO <marker>`, and returns every byte
/// answered before the marker's reply.
fn answered_before_marker(c: &mut Conn, pipeline: &str) -> Vec<u8> {
    const MARKER: &[u8] = b"$11\r\nend-of-test\r\n";
    let mut bytes = pipeline.as_bytes().to_vec();
    bytes.extend_from_slice(b"ECHO end-of-test\r\n");
    c.send_raw(&bytes);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(MARKER) {
        assert!(
            Instant::now() < deadline,
            "no marker after {pipeline:?}: {got:?}"
        );
        let n = c.stream.read(&mut buf).expect("read");
        assert!(n > 0, "closed after {pipeline:?}");
        got.extend_from_slice(&buf[..n]);
    }
    got.truncate(got.len() - MARKER.len());
    got
}

#[test]
fn client_reply_sequences_answer_as_redis_does() {
    let mut p = Pair::start();
    for pipeline in [
        // ON right after SKIP: ON ends the skip it runs under and answers +OK.
        "CLIENT REPLY SKIP\r\nCLIENT REPLY ON\r\nPING\r\n",
        // A second SKIP skips the command after it, not itself.
        "CLIENT REPLY SKIP\r\nCLIENT REPLY SKIP\r\nPING a\r\nPING b\r\n",
        "CLIENT REPLY SKIP\r\nPING a\r\nPING b\r\n",
        // RESET under SKIP is skipped; RESET under OFF answers.
        "CLIENT REPLY SKIP\r\nRESET\r\nPING\r\n",
        "CLIENT REPLY OFF\r\nPING a\r\nRESET\r\nPING b\r\n",
        "CLIENT REPLY OFF\r\nCLIENT REPLY SKIP\r\nPING a\r\nCLIENT REPLY ON\r\nPING b\r\n",
        "CLIENT REPLY SKIP\r\nCLIENT REPLY OFF\r\nPING a\r\nCLIENT REPLY ON\r\n",
        "CLIENT REPLY SKIP\r\nNOSUCHCOMMAND\r\nPING\r\n",
        "CLIENT REPLY SKIP\r\nMULTI\r\nCLIENT REPLY ON\r\nEXEC\r\nPING\r\n",
    ] {
        let ours = answered_before_marker(&mut p.a, pipeline);
        let theirs = answered_before_marker(&mut p.b, pipeline);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "after {pipeline:?}"
        );
    }
}

/// The `qbuf=` and `qbuf-free=` fields of a CLIENT INFO / CLIENT LIST reply.
fn qbuf_fields(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.split_whitespace()
        .filter(|f| f.starts_with("qbuf"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn own_qbuf_counts_the_running_request_as_redis_does() {
    let mut p = Pair::start();
    for pipeline in [
        "*2\r\n$6\r\nCLIENT\r\n$4\r\nINFO\r\n",
        "*2\r\n$6\r\nCLIENT\r\n$4\r\nLIST\r\n",
        // Inline, and behind another request of the same read.
        "CLIENT INFO\r\n",
        "*1\r\n$4\r\nPING\r\n*2\r\n$6\r\nCLIENT\r\n$4\r\nINFO\r\n",
    ] {
        let ours = qbuf_fields(&answered_before_marker(&mut p.a, pipeline));
        let theirs = qbuf_fields(&answered_before_marker(&mut p.b, pipeline));
        assert!(!theirs.is_empty(), "{pipeline:?}");
        assert_eq!(ours, theirs, "after {pipeline:?}");
    }
}
