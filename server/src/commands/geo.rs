//! Command family: geo (Redis 7.0 semantics) on sorted sets whose scores are the
//! 52-bit geohashes of [`crate::types::geohash`]. GEOADD is a ZADD of encoded
//! points (and is propagated as that ZADD, as Redis does); the searches parse into
//! a [`Query`], collect the points of the cells around the centre, order them
//! (with Redis's partial quicksort when COUNT cuts the list) and reply or store.

use super::{err, flags::*, is_kw, CmdError, CmdResult, Command, Ctx};
use crate::notify::{GENERIC, ZSET};
use crate::resp::Reply;
use crate::types::geohash::{self, Shape, ShapeKind};
use crate::types::{Value, ZSet};
use crate::util::detach;
use bytes::Bytes;
use std::cmp::Ordering;

pub const COMMANDS: &[Command] = &[
    Command::new("geoadd", -5, WRITE | DENYOOM, geoadd).keys(1, 1, 1),
    Command::new("geodist", -4, READONLY, geodist).keys(1, 1, 1),
    Command::new("geohash", -2, READONLY, geohash_cmd).keys(1, 1, 1),
    Command::new("geopos", -2, READONLY, geopos).keys(1, 1, 1),
    // GEORADIUS and GEORADIUSBYMEMBER write (STORE), hence "movablekeys".
    Command::new("georadius", -6, WRITE | DENYOOM, georadius)
        .keys(1, 1, 1)
        .keys_with(radius_keys),
    Command::new("georadius_ro", -6, READONLY, georadius_ro).keys(1, 1, 1),
    Command::new("georadiusbymember", -5, WRITE | DENYOOM, georadiusbymember)
        .keys(1, 1, 1)
        .keys_with(member_keys),
    Command::new("georadiusbymember_ro", -5, READONLY, georadiusbymember_ro).keys(1, 1, 1),
    Command::new("geosearch", -7, READONLY, geosearch).keys(1, 1, 1),
    Command::new("geosearchstore", -8, WRITE | DENYOOM, geosearchstore).keys(1, 2, 1),
];

/// Geo errors, with Redis's texts.
#[derive(Debug, thiserror::Error)]
enum GeoError {
    #[error("ERR invalid longitude,latitude pair {0:.6},{1:.6}")]
    InvalidPair(f64, f64),
    #[error("ERR could not decode requested zset member")]
    UnknownMember,
    #[error("ERR unsupported unit provided. please use M, KM, FT, MI")]
    Unit,
    #[error("ERR need numeric {0}")]
    NotNumeric(&'static str),
    #[error("ERR radius cannot be negative")]
    NegativeRadius,
    #[error("ERR height or width cannot be negative")]
    NegativeBox,
    #[error("ERR COUNT must be > 0")]
    Count,
    #[error("ERR the ANY argument requires COUNT argument")]
    AnyWithoutCount,
    #[error("ERR {0} is not compatible with WITHDIST, WITHHASH and WITHCOORD options")]
    StoreWith(&'static str),
    #[error("ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {0}")]
    From(String),
    #[error("ERR exactly one of BYRADIUS and BYBOX can be specified for {0}")]
    By(String),
}

impl From<GeoError> for CmdError {
    fn from(e: GeoError) -> Self {
        CmdError(e.to_string().into())
    }
}

/// printf's `%.<p>f`, including `nan`/`-nan` and `inf`/`-inf`.
fn fixed(d: f64, p: usize) -> String {
    if d.is_nan() {
        return if d.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    format!("{d:.p$}")
}

/// A distance as Redis replies it: four decimals.
fn fmt_distance(d: f64) -> String {
    fixed(d, 4)
}

/// A coordinate as Redis replies it: 17 decimals (its long-double "human" form)
/// with trailing zeros and a bare point removed.
fn fmt_coord(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.into();
    }
    let s = fixed(d, 17);
    let t = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if t == "-0" {
        "0".into()
    } else {
        t.to_string()
    }
}

fn reply_coord(out: &mut Reply, d: f64) {
    let s = fmt_coord(d);
    if out.resp3 {
        out.raw(b",");
        out.raw(s.as_bytes());
        out.raw(b"\r\n");
    } else {
        out.bulk(s.as_bytes());
    }
}

/// Key positions of GEORADIUS: see [`store_keys`].
fn radius_keys(argv: &[Bytes]) -> Vec<usize> {
    store_keys(argv, 6)
}

/// Key positions of GEORADIUSBYMEMBER: see [`store_keys`].
fn member_keys(argv: &[Bytes]) -> Vec<usize> {
    store_keys(argv, 5)
}

/// The source key, then the keys Redis 7.0's key specs name (the argument after
/// the first STORE, then after the first STOREDIST, searching from `options`),
/// then, if different, the destination the command really writes (the last
/// STORE/STOREDIST), so WATCH sees it change.
fn store_keys(argv: &[Bytes], options: usize) -> Vec<usize> {
    let after = |word: &str| {
        (options..argv.len().saturating_sub(1))
            .find(|&i| kw(&argv[i], word))
            .map(|i| i + 1)
    };
    let mut keys = vec![1];
    keys.extend(after("store"));
    keys.extend(after("storedist"));
    let mut used = None;
    let mut i = options;
    while i + 1 < argv.len() {
        if kw(&argv[i], "store") || kw(&argv[i], "storedist") {
            used = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    if let Some(u) = used.filter(|u| !keys.contains(u)) {
        keys.push(u);
    }
    keys
}

/// Redis compares option words with `strcasecmp`: only the bytes before a NUL count.
fn kw(a: &[u8], word: &str) -> bool {
    let end = a.iter().position(|&c| c == 0).unwrap_or(a.len());
    is_kw(&a[..end], word)
}

/// A longitude,latitude pair within the limits geohashes can encode.
fn parse_lonlat(lon: &[u8], lat: &[u8]) -> Result<(f64, f64), CmdError> {
    let lon = super::arg_f64(lon)?;
    let lat = super::arg_f64(lat)?;
    let bad = |v: f64, min: f64, max: f64| v < min || v > max;
    if bad(lon, geohash::LONG_MIN, geohash::LONG_MAX)
        || bad(lat, geohash::LAT_MIN, geohash::LAT_MAX)
    {
        return Err(GeoError::InvalidPair(lon, lat).into());
    }
    Ok((lon, lat))
}

/// Metres per unit (`m`, `km`, `ft`, `mi`, any case).
fn parse_unit(u: &[u8]) -> Result<f64, CmdError> {
    Ok(if kw(u, "m") {
        1.0
    } else if kw(u, "km") {
        1000.0
    } else if kw(u, "ft") {
        0.3048
    } else if kw(u, "mi") {
        1609.34
    } else {
        return Err(GeoError::Unit.into());
    })
}

fn parse_length(a: &[u8], what: &'static str) -> Result<f64, CmdError> {
    super::parse_f64(a).ok_or_else(|| GeoError::NotNumeric(what).into())
}

/// `<radius> <unit>`: (radius, metres per unit).
fn parse_radius(r: &[u8], unit: &[u8]) -> Result<(f64, f64), CmdError> {
    let radius = parse_length(r, "radius")?;
    if radius < 0.0 {
        return Err(GeoError::NegativeRadius.into());
    }
    Ok((radius, parse_unit(unit)?))
}

/// `<width> <height> <unit>`.
fn parse_box(w: &[u8], h: &[u8], unit: &[u8]) -> Result<(ShapeKind, f64), CmdError> {
    let width = parse_length(w, "width")?;
    let height = parse_length(h, "height")?;
    if height < 0.0 || width < 0.0 {
        return Err(GeoError::NegativeBox.into());
    }
    Ok((ShapeKind::Box { width, height }, parse_unit(unit)?))
}

/// The sorted set under `key` for reading: Ok(None) when missing.
fn read_zset<'c>(ctx: &'c mut Ctx, key: &[u8]) -> Result<Option<&'c ZSet>, CmdError> {
    match ctx.get(key) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(err::WRONGTYPE),
    }
}

// ---- GEOADD, GEODIST, GEOHASH, GEOPOS ----

fn geoadd(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let (mut nx, mut xx, mut ch) = (false, false, false);
    let mut idx = 2;
    while let Some(a) = argv.get(idx) {
        if kw(a, "nx") {
            nx = true;
        } else if kw(a, "xx") {
            xx = true;
        } else if kw(a, "ch") {
            ch = true;
        } else {
            break;
        }
        idx += 1;
    }
    let triples = &argv[idx..];
    if !triples.len().is_multiple_of(3) || (nx && xx) || triples.is_empty() {
        return Err(err::SYNTAX);
    }
    // What Redis runs and propagates: ZADD key [options] score member ...
    let mut zadd: Vec<Bytes> = Vec::with_capacity(idx + triples.len() / 3 * 2);
    zadd.push(Bytes::from_static(b"zadd"));
    zadd.extend(argv[1..idx].iter().cloned());
    let mut points = Vec::with_capacity(triples.len() / 3);
    for t in triples.chunks_exact(3) {
        let (lon, lat) = parse_lonlat(&t[0], &t[1])?;
        let score = geohash::encode_score(lon, lat).ok_or(GeoError::InvalidPair(lon, lat))?;
        zadd.push(Bytes::from(score.to_string()));
        zadd.push(t[2].clone());
        points.push((score as f64, &t[2]));
    }
    let key = &argv[1];
    let exists = match ctx.get_mut(key) {
        None => false,
        Some(Value::ZSet(_)) => true,
        Some(_) => return Err(err::WRONGTYPE),
    };
    if !exists {
        if xx {
            out.int(0);
            return Ok(());
        }
        ctx.set(key.clone(), Value::ZSet(Box::default()));
    }
    let lim = super::zsets::limits(ctx);
    let (mut added, mut updated) = (0u64, 0u64);
    if let Some(Value::ZSet(z)) = ctx.get_mut(key) {
        for (score, member) in points {
            match z.score(member) {
                Some(_) if nx => {}
                Some(cur) => {
                    if cur != score {
                        z.insert(detach(member), score, lim);
                        updated += 1;
                    }
                }
                None if xx => {}
                None => {
                    z.insert(detach(member), score, lim);
                    added += 1;
                }
            }
        }
    }
    ctx.delete_if_empty(key);
    if added + updated > 0 {
        ctx.dirty(added + updated);
        // Redis runs GEOADD as ZADD: its event is ZADD's.
        ctx.notify(ZSET, "zadd", key);
    }
    ctx.rewrite = Some(zadd);
    out.int((if ch { added + updated } else { added }) as i64);
    Ok(())
}

fn geodist(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let to_meters = match argv.len() {
        4 => 1.0,
        5 => parse_unit(&argv[4])?,
        _ => return Err(err::SYNTAX),
    };
    let Some(z) = read_zset(ctx, &argv[1])? else {
        out.null();
        return Ok(());
    };
    let (Some(a), Some(b)) = (z.score(&argv[2]), z.score(&argv[3])) else {
        out.null();
        return Ok(());
    };
    let (lon1, lat1) = geohash::decode_score(a);
    let (lon2, lat2) = geohash::decode_score(b);
    let d = geohash::distance(lon1, lat1, lon2, lat2) / to_meters;
    out.bulk(fmt_distance(d).as_bytes());
    Ok(())
}

fn geohash_cmd(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let z = read_zset(ctx, &argv[1])?;
    out.array(argv.len() - 2);
    for m in &argv[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => out.bulk(&geohash::standard_geohash(s)),
            None => out.null(),
        }
    }
    Ok(())
}

fn geopos(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    let z = read_zset(ctx, &argv[1])?;
    out.array(argv.len() - 2);
    for m in &argv[2..] {
        match z.and_then(|z| z.score(m)) {
            Some(s) => {
                let (lon, lat) = geohash::decode_score(s);
                out.array(2);
                reply_coord(out, lon);
                reply_coord(out, lat);
            }
            None => out.null_array(),
        }
    }
    Ok(())
}

// ---- searches ----

/// Which search command is running (they share one parser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// GEORADIUS[_RO] key lon lat radius unit ...
    Radius {
        ro: bool,
    },
    /// GEORADIUSBYMEMBER[_RO] key member radius unit ...
    Member {
        ro: bool,
    },
    Search,
    SearchStore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Order {
    None,
    Asc,
    Desc,
}

/// A parsed search.
#[derive(Debug)]
struct Query {
    shape: Shape,
    withdist: bool,
    withhash: bool,
    withcoord: bool,
    order: Order,
    any: bool,
    /// 0 = no limit.
    count: u64,
    store: Option<Bytes>,
    storedist: bool,
}

/// One match.
#[derive(Debug)]
struct Point {
    member: Bytes,
    lon: f64,
    lat: f64,
    dist: f64,
    score: f64,
}

fn georadius(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, out, argv, Variant::Radius { ro: false })
}

fn georadius_ro(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, out, argv, Variant::Radius { ro: true })
}

fn georadiusbymember(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, out, argv, Variant::Member { ro: false })
}

fn georadiusbymember_ro(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, out, argv, Variant::Member { ro: true })
}

fn geosearch(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, out, argv, Variant::Search)
}

fn geosearchstore(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes]) -> CmdResult {
    search_generic(ctx, out, argv, Variant::SearchStore)
}

/// The position of `member` in the sorted set, or Redis's decode error.
fn member_position(z: &ZSet, member: &[u8]) -> Result<(f64, f64), CmdError> {
    z.score(member)
        .map(geohash::decode_score)
        .ok_or_else(|| GeoError::UnknownMember.into())
}

/// Which of the mutually exclusive GEOSEARCH options were seen.
#[derive(Debug, Default)]
struct Seen {
    from_member: bool,
    from_lonlat: bool,
    by_radius: bool,
    by_box: bool,
}

/// Parses a search in Redis's order (the positional part, then the options left
/// to right, then the cross-option checks). `z` is the source set when it exists:
/// member positions are looked up while parsing, as in Redis.
fn parse_query(argv: &[Bytes], variant: Variant, z: Option<&ZSet>) -> Result<Query, CmdError> {
    let mut q = Query {
        shape: Shape {
            lon: 0.0,
            lat: 0.0,
            kind: ShapeKind::Radius(0.0),
            conversion: 0.0,
        },
        withdist: false,
        withhash: false,
        withcoord: false,
        order: Order::None,
        any: false,
        count: 0,
        store: None,
        storedist: false,
    };
    let base = parse_positional(&mut q, argv, variant, z)?;
    let seen = parse_options(&mut q, argv, base, variant, z)?;
    check_query(&q, &seen, argv, variant)?;
    Ok(q)
}

/// The arguments before the options; returns where the options start.
fn parse_positional(
    q: &mut Query,
    argv: &[Bytes],
    variant: Variant,
    z: Option<&ZSet>,
) -> Result<usize, CmdError> {
    Ok(match variant {
        Variant::Radius { .. } => {
            (q.shape.lon, q.shape.lat) = parse_lonlat(&argv[2], &argv[3])?;
            let (r, conv) = parse_radius(&argv[4], &argv[5])?;
            (q.shape.kind, q.shape.conversion) = (ShapeKind::Radius(r), conv);
            6
        }
        Variant::Member { .. } => {
            // Without a source set Redis does not look at the radius at all.
            if let Some(z) = z {
                (q.shape.lon, q.shape.lat) = member_position(z, &argv[2])?;
                let (r, conv) = parse_radius(&argv[3], &argv[4])?;
                (q.shape.kind, q.shape.conversion) = (ShapeKind::Radius(r), conv);
            }
            5
        }
        Variant::Search => 2,
        Variant::SearchStore => {
            q.store = Some(argv[1].clone());
            3
        }
    })
}

/// The options from `argv[base]` on; an option a variant does not know (or one
/// missing its arguments) is a syntax error.
fn parse_options(
    q: &mut Query,
    argv: &[Bytes],
    base: usize,
    variant: Variant,
    z: Option<&ZSet>,
) -> Result<Seen, CmdError> {
    let search = matches!(variant, Variant::Search | Variant::SearchStore);
    let can_store = matches!(
        variant,
        Variant::Radius { ro: false } | Variant::Member { ro: false }
    );
    let mut seen = Seen::default();
    let mut i = base;
    while let Some(a) = argv.get(i) {
        let left = argv.len() - i - 1;
        if kw(a, "withdist") {
            q.withdist = true;
        } else if kw(a, "withhash") {
            q.withhash = true;
        } else if kw(a, "withcoord") {
            q.withcoord = true;
        } else if kw(a, "any") {
            q.any = true;
        } else if kw(a, "asc") {
            q.order = Order::Asc;
        } else if kw(a, "desc") {
            q.order = Order::Desc;
        } else if kw(a, "count") && left >= 1 {
            let n = super::arg_i64(&argv[i + 1])?;
            if n <= 0 {
                return Err(GeoError::Count.into());
            }
            q.count = n as u64;
            i += 1;
        } else if (kw(a, "store") || kw(a, "storedist")) && left >= 1 && can_store {
            q.store = Some(argv[i + 1].clone());
            q.storedist = kw(a, "storedist");
            i += 1;
        } else if kw(a, "storedist") && variant == Variant::SearchStore {
            q.storedist = true;
        } else if kw(a, "frommember") && left >= 1 && search && !seen.from_lonlat {
            // A missing source set is reported after parsing (an empty reply).
            if let Some(z) = z {
                (q.shape.lon, q.shape.lat) = member_position(z, &argv[i + 1])?;
            }
            seen.from_member = true;
            i += 1;
        } else if kw(a, "fromlonlat") && left >= 2 && search && !seen.from_member {
            (q.shape.lon, q.shape.lat) = parse_lonlat(&argv[i + 1], &argv[i + 2])?;
            seen.from_lonlat = true;
            i += 2;
        } else if kw(a, "byradius") && left >= 2 && search && !seen.by_box {
            let (r, conv) = parse_radius(&argv[i + 1], &argv[i + 2])?;
            (q.shape.kind, q.shape.conversion) = (ShapeKind::Radius(r), conv);
            seen.by_radius = true;
            i += 2;
        } else if kw(a, "bybox") && left >= 3 && search && !seen.by_radius {
            (q.shape.kind, q.shape.conversion) =
                parse_box(&argv[i + 1], &argv[i + 2], &argv[i + 3])?;
            seen.by_box = true;
            i += 3;
        } else {
            return Err(err::SYNTAX);
        }
        i += 1;
    }
    Ok(seen)
}

/// The checks across options, in Redis's order.
fn check_query(q: &Query, seen: &Seen, argv: &[Bytes], variant: Variant) -> CmdResult {
    if q.store.is_some() && (q.withdist || q.withhash || q.withcoord) {
        let what = if variant == Variant::SearchStore {
            "GEOSEARCHSTORE"
        } else {
            "STORE option in GEORADIUS"
        };
        return Err(GeoError::StoreWith(what).into());
    }
    // The messages name the command as the client spelled it.
    let name = || String::from_utf8_lossy(&argv[0]).into_owned();
    let search = matches!(variant, Variant::Search | Variant::SearchStore);
    if search && !(seen.from_member || seen.from_lonlat) {
        return Err(GeoError::From(name()).into());
    }
    if search && !(seen.by_radius || seen.by_box) {
        return Err(GeoError::By(name()).into());
    }
    if q.any && q.count == 0 {
        return Err(GeoError::AnyWithoutCount.into());
    }
    Ok(())
}

/// The points of `z` inside the search, cell by cell in Redis's order, each cell
/// in score order; with `limit` (ANY) the walk stops once that many matched.
fn collect(z: &ZSet, shape: &Shape, limit: u64) -> Vec<Point> {
    let mut found: Vec<Point> = Vec::new();
    let full = |found: &Vec<Point>| limit > 0 && found.len() as u64 >= limit;
    let mut last: Option<geohash::Hash> = None;
    for cell in geohash::search_cells(shape).into_iter().flatten() {
        // Huge searches can name the same cell twice in a row: read it once.
        if last == Some(cell) {
            continue;
        }
        if full(&found) {
            break;
        }
        let (min, max) = geohash::score_range(cell);
        let range = crate::types::zset::ScoreRange {
            min: crate::types::zset::ScoreBound {
                value: min,
                exclusive: false,
            },
            max: crate::types::zset::ScoreBound {
                value: max,
                exclusive: true,
            },
        };
        for (member, score) in z.range_by_score(range) {
            let (lon, lat) = geohash::decode_score(score);
            if let Some(dist) = geohash::within(shape, lon, lat) {
                found.push(Point {
                    member: Bytes::copy_from_slice(member),
                    lon,
                    lat,
                    dist,
                    score,
                });
            }
            if full(&found) {
                break;
            }
        }
        last = Some(cell);
    }
    found
}

/// Redis's distance comparator (equal distances compare equal).
fn by_distance(a: &Point, b: &Point) -> Ordering {
    if a.dist > b.dist {
        Ordering::Greater
    } else if a.dist == b.dist {
        Ordering::Equal
    } else {
        Ordering::Less
    }
}

/// Orders the matches as Redis does: a stable sort of all of them (glibc's merge
/// sort) when all are returned, its partial quicksort when COUNT cuts the list
/// (the order of equal distances depends on the algorithm, so it is the same one).
fn order_points(points: &mut [Point], order: Order, returned: usize) {
    let cmp: fn(&Point, &Point) -> Ordering = match order {
        Order::None => return,
        Order::Asc => by_distance,
        Order::Desc => |a, b| by_distance(a, b).reverse(),
    };
    if returned == points.len() {
        points.sort_by(cmp);
    } else if returned > 0 {
        partial_qsort(points, &cmp, returned - 1);
    }
}

/// Bentley and McIlroy's quicksort (the one Redis's `pqsort` is) that only
/// finishes the partitions overlapping positions `0..=last`: the same comparisons
/// and swaps, so equal elements end up where Redis puts them. Partitions wait on a
/// heap stack rather than in recursion (a crafted set cannot exhaust the stack);
/// they are disjoint, so the order they are handled in changes nothing.
fn partial_qsort<T>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> Ordering, last: usize) {
    // A part starting after `last` cannot hold a returned position.
    let wanted = |lo: usize| lo <= last;
    let mut todo = vec![(0usize, v.len())];
    while let Some((a, n)) = todo.pop() {
        if let Some(parts) = partition_step(v, a, n, cmp) {
            for (lo, m) in parts {
                if m > 1 && wanted(lo) {
                    todo.push((lo, m));
                }
            }
        }
    }
}

/// Insertion sort of `v[a..a + n]`.
fn insertion<T>(v: &mut [T], a: usize, n: usize, cmp: &dyn Fn(&T, &T) -> Ordering) {
    for pm in a + 1..a + n {
        let mut pl = pm;
        while pl > a && cmp(&v[pl - 1], &v[pl]) == Ordering::Greater {
            v.swap(pl, pl - 1);
            pl -= 1;
        }
    }
}

/// The index of the median of three.
fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &dyn Fn(&T, &T) -> Ordering) -> usize {
    use Ordering::{Greater, Less};
    if cmp(&v[a], &v[b]) == Less {
        if cmp(&v[b], &v[c]) == Less {
            b
        } else if cmp(&v[a], &v[c]) == Less {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]) == Greater {
        b
    } else if cmp(&v[a], &v[c]) == Less {
        a
    } else {
        c
    }
}

/// Swaps the blocks `v[i..i + n]` and `v[j..j + n]` element by element.
fn swap_blocks<T>(v: &mut [T], i: usize, j: usize, n: usize) {
    for k in 0..n {
        v.swap(i + k, j + k);
    }
}

/// One partitioning pass over `v[a..a + n]` (Redis 7.0's version, without the
/// switch to insertion sort after a pass with no swap): None when the range was
/// small and got insertion-sorted, else the two unsorted parts left and right of the
/// pivot's equals, as (start, length).
fn partition_step<T>(
    v: &mut [T],
    a: usize,
    n: usize,
    cmp: &dyn Fn(&T, &T) -> Ordering,
) -> Option<[(usize, usize); 2]> {
    use Ordering::{Equal, Greater, Less};
    if n < 7 {
        insertion(v, a, n, cmp);
        return None;
    }
    let mut pm = a + n / 2;
    if n > 7 {
        let mut pl = a;
        let mut pn = a + n - 1;
        if n > 40 {
            let d = n / 8;
            pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
            pm = med3(v, pm - d, pm, pm + d, cmp);
            pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
        }
        pm = med3(v, pl, pm, pn, cmp);
    }
    v.swap(a, pm);
    let (mut pa, mut pb) = (a + 1, a + 1);
    let (mut pc, mut pd) = (a + n - 1, a + n - 1);
    loop {
        while pb <= pc {
            let r = cmp(&v[pb], &v[a]);
            if r == Greater {
                break;
            }
            if r == Equal {
                v.swap(pa, pb);
                pa += 1;
            }
            pb += 1;
        }
        while pb <= pc {
            let r = cmp(&v[pc], &v[a]);
            if r == Less {
                break;
            }
            if r == Equal {
                v.swap(pc, pd);
                pd -= 1;
            }
            pc -= 1;
        }
        if pb > pc {
            break;
        }
        v.swap(pb, pc);
        pb += 1;
        pc -= 1;
    }
    let pn = a + n;
    let r = (pa - a).min(pb - pa);
    swap_blocks(v, a, pb - r, r);
    let r = (pd - pc).min(pn - pd - 1);
    swap_blocks(v, pb, pn - r, r);
    Some([(a, pb - pa), (pn - (pd - pc), pd - pc)])
}

fn search_generic(ctx: &mut Ctx, out: &mut Reply, argv: &[Bytes], variant: Variant) -> CmdResult {
    let src = if variant == Variant::SearchStore {
        &argv[2]
    } else {
        &argv[1]
    };
    let z = read_zset(ctx, src)?;
    let q = parse_query(argv, variant, z)?;
    let mut points = match z {
        Some(z) => collect(z, &q.shape, if q.any { q.count } else { 0 }),
        None => {
            match &q.store {
                Some(dst) => {
                    if ctx.delete(dst) {
                        ctx.dirty(1);
                        ctx.notify(GENERIC, "del", dst);
                    }
                    out.int(0);
                }
                None => out.array(0),
            }
            return Ok(());
        }
    };
    // COUNT needs an order to pick the nearest (unless ANY asked for any N).
    let order = if q.count > 0 && q.order == Order::None && !q.any {
        Order::Asc
    } else {
        q.order
    };
    let returned = if q.count == 0 {
        points.len()
    } else {
        points
            .len()
            .min(usize::try_from(q.count).unwrap_or(usize::MAX))
    };
    order_points(&mut points, order, returned);
    points.truncate(returned);
    for p in &mut points {
        p.dist /= q.shape.conversion;
    }
    match q.store {
        None => reply_points(out, &points, &q),
        Some(dst) => {
            let event = if matches!(variant, Variant::SearchStore) {
                "geosearchstore"
            } else {
                "georadiusstore"
            };
            store_points(ctx, out, &dst, points, q.storedist, event)
        }
    }
    Ok(())
}

fn reply_points(out: &mut Reply, points: &[Point], q: &Query) {
    let extra = usize::from(q.withdist) + usize::from(q.withhash) + usize::from(q.withcoord);
    out.array(points.len());
    for p in points {
        if extra > 0 {
            out.array(extra + 1);
        }
        out.bulk(&p.member);
        if q.withdist {
            out.bulk(fmt_distance(p.dist).as_bytes());
        }
        if q.withhash {
            out.int(p.score as i64);
        }
        if q.withcoord {
            out.array(2);
            reply_coord(out, p.lon);
            reply_coord(out, p.lat);
        }
    }
}

/// Stores the matches as a sorted set (scored by geohash or, with STOREDIST, by
/// distance in the unit); no match deletes the destination.
fn store_points(
    ctx: &mut Ctx,
    out: &mut Reply,
    dst: &Bytes,
    points: Vec<Point>,
    dist: bool,
    event: &str,
) {
    let n = points.len();
    if n == 0 {
        if ctx.delete(dst) {
            ctx.dirty(1);
            ctx.notify(GENERIC, "del", dst);
        }
    } else {
        let items = points
            .into_iter()
            .map(|p| (p.member, if dist { p.dist } else { p.score }))
            .collect();
        let z = ZSet::from_items(items, super::zsets::limits(ctx));
        ctx.set(dst.clone(), Value::ZSet(Box::new(z)));
        ctx.dirty(n as u64);
        ctx.notify(ZSET, event, dst);
    }
    out.int(n as i64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_formatted_like_redis() {
        assert_eq!(fmt_distance(166.27415156960033), "166.2742");
        assert_eq!(fmt_distance(0.0), "0.0000");
        assert_eq!(fmt_distance(f64::NAN.copysign(-1.0)), "-nan");
        assert_eq!(fmt_coord(13.361389338970184), "13.36138933897018433");
        assert_eq!(fmt_coord(180.0), "180");
        assert_eq!(fmt_coord(-0.0), "0");
        assert_eq!(fmt_coord(85.05112878), "85.0511287799999991");
        assert_eq!(
            CmdError::from(GeoError::InvalidPair(181.0, f64::NEG_INFINITY)).0,
            "ERR invalid longitude,latitude pair 181.000000,-inf"
        );
    }

    #[test]
    fn store_keys_are_found_like_redis_finds_them() {
        let argv: Vec<Bytes> = [
            "georadius",
            "k",
            "1",
            "2",
            "3",
            "m",
            "STORE",
            "d",
            "storedist",
            "e",
        ]
        .iter()
        .map(|s| Bytes::from(*s))
        .collect();
        assert_eq!(radius_keys(&argv), vec![1, 7, 9]);
        assert_eq!(radius_keys(&argv[..7]), vec![1]);
        // A member called "store" is not an option (options start at 5).
        let words =
            |w: &[&str]| -> Vec<Bytes> { w.iter().map(|s| Bytes::from(s.to_string())).collect() };
        assert_eq!(
            member_keys(&words(&["georadiusbymember", "k", "store", "10", "km"])),
            vec![1]
        );
        // Two STOREs: the specs name the first, the command writes the last.
        let twice = words(&[
            "georadius",
            "k",
            "1",
            "2",
            "3",
            "m",
            "STORE",
            "d",
            "STORE",
            "e",
        ]);
        assert_eq!(radius_keys(&twice), vec![1, 7, 9]);
        assert!(kw(b"km\0junk", "KM"));
        assert!(!kw(b"kmx", "km"));
    }

    #[test]
    fn geoadd_propagates_as_zadd_and_store_only_when_it_changes_something() {
        use crate::commands::lists::harness::H;
        let mut h = H::new();
        assert_eq!(
            h.ops(&["geoadd", "g", "CH", "13.361389", "38.115556", "Palermo"]),
            vec!["zadd g CH 3479099956230698 Palermo"]
        );
        assert!(h
            .ops(&["geoadd", "g", "13.361389", "38.115556", "Palermo"])
            .is_empty());
        assert!(h.ops(&["geoadd", "g", "200", "38", "x"]).is_empty());
        assert_eq!(
            h.ops(&["georadius", "g", "13", "38", "100", "km", "STORE", "d"]),
            vec!["georadius g 13 38 100 km STORE d"]
        );
        assert!(h
            .ops(&["georadius_ro", "g", "13", "38", "100", "km"])
            .is_empty());
        assert_eq!(
            h.ops(&["georadius", "none", "13", "38", "100", "km", "STORE", "d"]),
            vec!["georadius none 13 38 100 km STORE d"]
        );
        assert!(h
            .ops(&["georadius", "none", "13", "38", "100", "km", "STORE", "d"])
            .is_empty());
    }
}
