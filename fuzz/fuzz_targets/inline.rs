//! The inline request path (input not starting with `*`): the chunking invariants of
//! `resp`, plus each complete line checked against an independent model of Redis's
//! `sdssplitargs` and a quote/re-split round trip of `split_args`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_server::resp::{split_args, Request};

/// C `isspace` in the C locale: what `sdssplitargs` skips between arguments and wants
/// after a closing quote.
fn c_isspace(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// An independent model of Redis 7.0 `sdssplitargs` on a NUL-free line.
fn model_split(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && c_isspace(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut dq, mut sq) = (false, false);
        loop {
            let c = line.get(i).copied();
            if dq {
                match c {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'x') => {
                        match (
                            line.get(i + 2).and_then(|&h| hex(h)),
                            line.get(i + 3).and_then(|&h| hex(h)),
                        ) {
                            (Some(h), Some(l)) => {
                                cur.push(h * 16 + l);
                                i += 3;
                            }
                            _ => {
                                cur.push(b'x');
                                i += 1;
                            }
                        }
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        i += 1;
                        cur.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            o => o,
                        });
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|&n| !c_isspace(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(o) => cur.push(o),
                }
            } else if sq {
                match c {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        cur.push(b'\'');
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|&n| !c_isspace(n)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    Some(o) => cur.push(o),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t') => break,
                    Some(b'"') => dq = true,
                    Some(b'\'') => sq = true,
                    Some(o) => cur.push(o),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// Quotes an argument so that `split_args` must give it back unchanged.
fn quote(arg: &[u8]) -> Vec<u8> {
    let mut q = vec![b'"'];
    for &c in arg {
        q.extend_from_slice(format!("\\x{c:02x}").as_bytes());
    }
    q.push(b'"');
    q
}

fuzz_target!(|data: &[u8]| {
    // Inline requests only: a stream that opens with '*' is the `resp` target's.
    if data.get(1) == Some(&b'*') {
        return;
    }
    let Some(parsed) = tandem_fuzz::check_chunking(data) else {
        return;
    };
    let stream = &data[1..];
    // Compare each complete line the parser took with the model, in order, up to
    // the first line containing NUL (Redis's C strings end there; not modelled) or a
    // multibulk request (a line starting with '*' switches to the other parser).
    let mut requests = parsed.requests.iter();
    let mut rest = stream;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        if rest.first() == Some(&b'*') {
            break;
        }
        let mut line = &rest[..nl];
        rest = &rest[nl + 1..];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        if line.contains(&0) {
            break;
        }
        let model = model_split(line);
        let ours = split_args(line);
        assert_eq!(
            ours, model,
            "split_args differs from the sdssplitargs model on {line:?}"
        );
        let Some(args) = model else {
            assert!(parsed.error.is_some(), "unbalanced quotes accepted");
            break;
        };
        let got = requests
            .next()
            .expect("a complete line produced no request");
        if args.is_empty() {
            assert_eq!(got, &Request::Empty);
        } else {
            let Request::Command(got) = got else {
                panic!("non-empty line parsed as Empty");
            };
            assert_eq!(got.iter().map(|b| b.to_vec()).collect::<Vec<_>>(), args);
            // Round trip: every argument quoted byte by byte comes back as it was.
            let joined: Vec<u8> = args
                .iter()
                .map(|a| quote(a))
                .collect::<Vec<_>>()
                .join(&b' ');
            assert_eq!(split_args(&joined), Some(args));
        }
    }
});
