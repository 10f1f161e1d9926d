//! Command family: SORT and SORT_RO (Redis 7.0 semantics). Options are parsed into
//! [`SortOpts`]; the elements are loaded, ordered by pure code ([`order`]) and then
//! projected through the GET patterns, replied or stored as a list.

use super::{err, flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::notify::{GENERIC, LIST};
use crate::resp::Reply;
use crate::types::{List, Value};
use bytes::Bytes;
use std::cmp::Ordering;

pub const COMMANDS: &[Command] = &[
    // Both are "movablekeys" in Redis 7.0 (STORE, and BY/GET reading keys named by
    // the data), with 1 1 1 as the fixed part.
    Command::new("sort", -2, WRITE | DENYOOM, sort)
        .keys(1, 1, 1)
        .keys_with(sort_keys),
    Command::new("sort_ro", -2, READONLY, sort_ro)
        .keys(1, 1, 1)
        .keys_with(|_| vec![1]),
];

const NOT_DOUBLE: CmdError = CmdError(std::borrow::Cow::Borrowed(
    "ERR One or more scores can't be converted into double",
));

/// Key positions: the sorted key and the STORE destination (skipping option
/// arguments the way the parser does, so `GET store` is not a key).
fn sort_keys(argv: &[Bytes]) -> Vec<usize> {
    let mut keys = vec![1];
    let mut j = 2;
    while j < argv.len() {
        let a = &argv[j];
        if is_kw(a, "limit") {
            j += 2;
        } else if is_kw(a, "get") || is_kw(a, "by") {
            j += 1;
        } else if is_kw(a, "store") && j + 1 < argv.len() {
            keys.push(j + 1);
            j += 1;
        }
        j += 1;
    }
    keys
}

/// The parsed options of one SORT call.
#[derive(Debug, Default)]
struct SortOpts {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    store: Option<Bytes>,
    by: Option<Bytes>,
    /// A BY pattern without `*` was given (sticky, like Redis).
    dontsort: bool,
    gets: Vec<Bytes>,
}

fn parse_opts(argv: &[Bytes], readonly: bool) -> Result<SortOpts, CmdError> {
    let mut o = SortOpts {
        limit_count: -1,
        ..SortOpts::default()
    };
    let mut j = 2;
    while let Some(a) = argv.get(j) {
        let left = argv.len() - j - 1;
        if is_kw(a, "asc") {
            o.desc = false;
        } else if is_kw(a, "desc") {
            o.desc = true;
        } else if is_kw(a, "alpha") {
            o.alpha = true;
        } else if is_kw(a, "limit") && left >= 2 {
            o.limit_start = super::arg_i64(&argv[j + 1])?;
            o.limit_count = super::arg_i64(&argv[j + 2])?;
            j += 2;
        } else if !readonly && is_kw(a, "store") && left >= 1 {
            o.store = Some(argv[j + 1].clone());
            j += 1;
        } else if is_kw(a, "by") && left >= 1 {
            let pat = &argv[j + 1];
            if !cstr(pat).contains(&b'*') {
                o.dontsort = true;
            }
            o.by = Some(pat.clone());
            j += 1;
        } else if is_kw(a, "get") && left >= 1 {
            o.gets.push(argv[j + 1].clone());
            j += 1;
        } else {
            return Err(err::SYNTAX);
        }
        j += 1;
    }
    Ok(o)
}

/// The bytes before the first NUL: what Redis's C string functions see.
fn cstr(b: &[u8]) -> &[u8] {
    b.iter().position(|&c| c == 0).map_or(b, |i| &b[..i])
}

/// Resolves a BY/GET pattern for one element: `#` is the element, `*` is replaced
/// by it, and `key->field` reads a hash field. None when nothing is found.
fn lookup_pattern(ctx: &mut Ctx, pat: &[u8], elem: &Bytes, write: bool) -> Option<Bytes> {
    if pat.first() == Some(&b'#') && pat.get(1).is_none_or(|&c| c == 0) {
        return Some(elem.clone());
    }
    let c = cstr(pat);
    let star = c.iter().position(|&b| b == b'*')?;
    let after = &c[star + 1..];
    let arrow = after
        .windows(2)
        .position(|w| w == b"->")
        .filter(|&i| i + 2 < after.len());
    let (key_tail_end, field) = match arrow {
        Some(i) => {
            let f = star + 1 + i;
            (f, Some(&pat[f + 2..]))
        }
        None => (pat.len(), None),
    };
    let mut key = Vec::with_capacity(pat.len() + elem.len());
    key.extend_from_slice(&pat[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(pat.get(star + 1..key_tail_end).unwrap_or(&[]));
    let v = if write {
        ctx.get_mut(&key)
    } else {
        ctx.get(&key)
    }?;
    match (v, field) {
        (Value::Str(s), None) => Some(s.to_bytes()),
        (Value::Hash(h), Some(f)) => h.get(f).map(Bytes::copy_from_slice),
        _ => None,
    }
}

/// Parses a score like C's `strtod` as SORT uses it: leading white space and an
/// empty string are accepted, trailing garbage, NaN and out-of-range are not.
fn sort_score(b: &[u8]) -> Option<f64> {
    let c = cstr(b);
    if c.is_empty() {
        return Some(0.0);
    }
    let t = match c.iter().position(|b| !b" \t\n\x0b\x0c\r".contains(b)) {
        Some(i) => &c[i..],
        None => return None,
    };
    let s = std::str::from_utf8(t).ok()?;
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "infinity" => f64::INFINITY,
        _ if lower.starts_with("0x") => hex_float(&lower[2..])?,
        _ => {
            if !body
                .bytes()
                .all(|b| b.is_ascii_digit() || b".eE+-".contains(&b))
            {
                return None;
            }
            let v: f64 = body.parse().ok()?;
            let mantissa = body.split(['e', 'E']).next().unwrap_or("");
            let nonzero = mantissa.bytes().any(|c| matches!(c, b'1'..=b'9'));
            // glibc reports ERANGE for overflow and for subnormal or zero results.
            let underflow = v != 0.0 && v.abs() < f64::MIN_POSITIVE;
            if v.is_infinite() || underflow || (v == 0.0 && nonzero) {
                return None;
            }
            v
        }
    };
    if v.is_nan() {
        return None;
    }
    Some(if neg { -v } else { v })
}

/// A hexadecimal float body (after `0x`): digits, an optional fraction and an
/// optional binary exponent `p[+-]N`.
fn hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.split_once('p') {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for d in int.chars() {
        v = v * 16.0 + f64::from(d.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for d in frac.chars() {
        v += f64::from(d.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    let v = v * 2f64.powi(exp);
    (v.is_finite()).then_some(v)
}

/// The sort key of one element.
enum Key {
    Score(f64),
    Alpha(Option<Bytes>),
    Elem,
}

/// Orders `items` (element, key) like Redis's comparator: numeric with the element
/// as tie-break, ALPHA by the BY value (missing first) or the element; `binary`
/// (STORE) compares whole byte strings, otherwise C-string order (strcoll, C locale).
fn order(items: &mut [(Bytes, Key)], desc: bool, binary: bool) {
    let text = |a: &[u8], b: &[u8]| {
        if binary {
            a.cmp(b)
        } else {
            cstr(a).cmp(cstr(b))
        }
    };
    items.sort_by(|(ea, ka), (eb, kb)| {
        let c = match (ka, kb) {
            (Key::Score(a), Key::Score(b)) => a
                .partial_cmp(b)
                .unwrap_or(Ordering::Equal)
                .then_with(|| ea.cmp(eb)),
            (Key::Alpha(a), Key::Alpha(b)) => match (a, b) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (Some(a), Some(b)) => text(a, b),
            },
            _ => text(ea, eb),
        };
        if desc {
            c.reverse()
        } else {
            c
        }
    });
}

/// The elements of the sorted key, in the container's order; `is_set` for sets.
fn load(ctx: &mut Ctx, key: &[u8]) -> Result<(Vec<Bytes>, bool), CmdError> {
    Ok(match ctx.get(key) {
        None => (Vec::new(), false),
        Some(Value::List(l)) => (l.iter().map(Bytes::copy_from_slice).collect(), false),
        Some(Value::Set(s)) => (s.iter().map(|m| m.to_bytes()).collect(), true),
        Some(Value::ZSet(z)) => (
            z.iter().map(|(m, _)| Bytes::copy_from_slice(m)).collect(),
            false,
        ),
        Some(_) => return Err(err::WRONGTYPE),
    })
}

/// Redis's LIMIT clamping: the inclusive output range `[start, end]` (empty when
/// `end < start`).
fn clamp_limit(start: i64, count: i64, len: i64) -> (i64, i64) {
    let mut start = start.max(0).min(len);
    let count = count.max(-1).min(len);
    let mut end = if count < 0 { len } else { start + count - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

fn sort(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    sort_generic(ctx, out, argv, false)
}

fn sort_ro(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    sort_generic(ctx, out, argv, true)
}

fn sort_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], readonly: bool) -> CmdResult {
    let mut o = parse_opts(argv, readonly)?;
    let (mut elems, is_set) = load(ctx, &argv[1])?;
    // A set has no order of its own: a stored result, or one a script reads, is
    // sorted so replicas agree (a script's later writes may depend on it).
    if o.dontsort && is_set && (o.store.is_some() || ctx.client.lua) {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let write = o.store.is_some();
    let (start, end) = clamp_limit(o.limit_start, o.limit_count, elems.len() as i64);
    if o.dontsort {
        // Lists and sorted sets keep their own order (DESC walks it backwards);
        // a set is returned in its iteration order.
        if o.desc && !is_set {
            elems.reverse();
        }
    } else {
        let mut items = Vec::with_capacity(elems.len());
        let mut bad = false;
        for e in elems.drain(..) {
            let by = o.by.as_ref().map(|p| lookup_pattern(ctx, p, &e, write));
            let key = if o.alpha {
                match by {
                    Some(v) => Key::Alpha(v),
                    None => Key::Elem,
                }
            } else {
                let v = match &by {
                    Some(None) => Some(0.0),
                    Some(Some(v)) => sort_score(v),
                    None => sort_score(&e),
                };
                bad |= v.is_none();
                Key::Score(v.unwrap_or(0.0))
            };
            items.push((e, key));
        }
        if bad {
            return Err(NOT_DOUBLE);
        }
        order(&mut items, o.desc, write);
        elems = items.into_iter().map(|(e, _)| e).collect();
    }
    let picked: &[Bytes] = if end >= start {
        elems.get(start as usize..=end as usize).unwrap_or_default()
    } else {
        &[]
    };
    let mut rows: Vec<Option<Bytes>> = Vec::new();
    for e in picked {
        if o.gets.is_empty() {
            rows.push(Some(e.clone()));
        }
        for g in &o.gets {
            rows.push(lookup_pattern(ctx, g, e, write));
        }
    }
    match o.store {
        None => {
            out.array(rows.len());
            for r in &rows {
                out.opt_bulk(r.as_deref());
            }
        }
        Some(dst) => {
            let n = rows.len();
            if n > 0 {
                let mut list = List::new(List::fill_of(&ctx.config()));
                list.extend(rows.into_iter().map(Option::unwrap_or_default));
                ctx.set(&dst, Value::List(Box::new(list)));
                ctx.dirty(n as u64);
                ctx.notify(LIST, "sortstore", &dst);
            } else if ctx.delete(&dst) {
                ctx.dirty(1);
                ctx.notify(GENERIC, "del", &dst);
            }
            out.int(n as i64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_clamped_like_redis() {
        assert_eq!(clamp_limit(0, -1, 5), (0, 4));
        assert_eq!(clamp_limit(-10, 2, 5), (0, 1));
        assert_eq!(clamp_limit(3, i64::MAX, 5), (3, 4));
        assert_eq!(clamp_limit(i64::MAX, 1, 5), (4, 3));
        assert_eq!(clamp_limit(1, 0, 5), (1, 0));
        assert_eq!(clamp_limit(0, -5, 0), (-1, -2));
    }

    #[test]
    fn scores_parse_like_strtod() {
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b"  1.5"), Some(1.5));
        assert_eq!(sort_score(b"1.5 "), None);
        assert_eq!(sort_score(b" "), None);
        assert_eq!(sort_score(b"0x10"), Some(16.0));
        assert_eq!(sort_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(sort_score(b"1e400"), None);
        assert_eq!(sort_score(b"1e-310"), None);
        assert_eq!(sort_score(b"0x"), None);
        assert_eq!(sort_score(b"abc"), None);
        assert_eq!(sort_score(b"2\0junk"), Some(2.0));
    }

    #[test]
    fn store_keys_are_found_past_option_arguments() {
        let argv: Vec<Bytes> = ["sort", "k", "get", "store", "limit", "0", "1", "store", "d"]
            .iter()
            .map(|s| Bytes::from(*s))
            .collect();
        assert_eq!(sort_keys(&argv), vec![1, 8]);
    }

    #[test]
    fn only_a_store_that_changes_something_propagates() {
        use crate::commands::lists::harness::H;
        let mut h = H::new();
        h.ops(&["rpush", "l", "3", "1", "2"]);
        assert!(h.ops(&["sort", "l"]).is_empty());
        assert!(h.ops(&["sort_ro", "l", "desc"]).is_empty());
        assert_eq!(h.ops(&["sort", "l", "store", "d"]), vec!["sort l store d"]);
        assert!(h.store.dbs[0].contains(b"d"));
        // An empty result deletes the destination (a change), then changes nothing.
        assert_eq!(
            h.ops(&["sort", "missing", "store", "d"]),
            vec!["sort missing store d"]
        );
        assert!(!h.store.dbs[0].contains(b"d"));
        assert!(h.ops(&["sort", "missing", "store", "d"]).is_empty());
    }
}
