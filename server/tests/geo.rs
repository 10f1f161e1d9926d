//! Geo commands: black-box tests of every command, option and error, the same
//! commands side by side with Debian's redis-server 7.0.15 (fixed scripts, RESP3,
//! and a seeded random sequence near the poles, the antimeridian and the limits),
//! and replication of GEOADD / GEORADIUS STORE / GEOSEARCHSTORE to a Tandem and a
//! Redis replica.
mod common;
use common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const PALERMO: &str = "13.361389 38.115556 Palermo";
const CATANIA: &str = "15.087269 37.502669 Catania";

impl Pair {
    /// A command given as space-separated words.
    fn line(&mut self, line: &str) -> R {
        let parts: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.same(&parts)
    }
}

fn sicily(ours: &TestServer) -> Conn {
    let mut c = ours.conn();
    assert_eq!(
        c.cmd(&format!("GEOADD Sicily {PALERMO} {CATANIA}")),
        R::Int(2)
    );
    c
}

/// An array of `[member, distance]` pairs.
fn with_dist(items: &[(&str, &str)]) -> R {
    R::Arr(items.iter().map(|(m, d)| arr(&[m, d])).collect())
}

#[test]
fn geoadd_stores_redis_scores_and_honours_nx_xx_ch() {
    let ours = TestServer::start(&[]);
    let mut c = sicily(&ours);
    // The scores Redis stores for the same points.
    assert_eq!(c.cmd("ZSCORE Sicily Palermo"), b("3479099956230698"));
    assert_eq!(c.cmd("ZSCORE Sicily Catania"), b("3479447370796909"));
    assert_eq!(c.cmd("TYPE Sicily"), R::Simple("zset".into()));
    // NX adds only new members, XX only updates, CH counts updates too.
    assert_eq!(c.cmd("GEOADD Sicily NX 13 38 Palermo 15 37 New"), R::Int(1));
    assert_eq!(c.cmd("ZSCORE Sicily Palermo"), b("3479099956230698"));
    assert_eq!(
        c.cmd("GEOADD Sicily XX 13 38 Palermo 15 37 Other"),
        R::Int(0)
    );
    assert_eq!(c.cmd("ZSCORE Sicily Other"), R::Nil);
    assert_ne!(c.cmd("ZSCORE Sicily Palermo"), b("3479099956230698"));
    assert_eq!(c.cmd("GEOADD Sicily CH 1 1 Palermo 2 2 Fresh"), R::Int(2));
    assert_eq!(c.cmd("GEOADD Sicily CH 1 1 Palermo"), R::Int(0));
    assert_eq!(c.cmd("GEOADD missing XX 1 1 a"), R::Int(0));
    assert_eq!(c.cmd("EXISTS missing"), R::Int(0));
    assert_eq!(c.cmd("GEOADD Sicily NX XX 1 1 a"), err("ERR syntax error"));
    assert_eq!(c.cmd("GEOADD Sicily 1 1 a 2 2"), err("ERR syntax error"));
    assert_eq!(c.cmd("ZCARD Sicily"), R::Int(4));
}

#[test]
fn geopos_geohash_and_geodist_decode_the_scores() {
    let ours = TestServer::start(&[]);
    let mut c = sicily(&ours);
    assert_eq!(
        c.cmd("GEOPOS Sicily Palermo nope"),
        R::Arr(vec![
            arr(&["13.36138933897018433", "38.11555639549629859"]),
            R::NilArr
        ])
    );
    assert_eq!(
        c.cmd("GEOHASH Sicily Palermo Catania nope"),
        R::Arr(vec![b("sqc8b49rny0"), b("sqdtr74hyu0"), R::Nil])
    );
    assert_eq!(c.cmd("GEODIST Sicily Palermo Catania"), b("166274.1516"));
    assert_eq!(c.cmd("GEODIST Sicily Palermo Catania km"), b("166.2742"));
    assert_eq!(c.cmd("GEODIST Sicily Palermo Catania MI"), b("103.3182"));
    assert_eq!(c.cmd("GEODIST Sicily Palermo Catania ft"), b("545518.8700"));
    assert_eq!(c.cmd("GEODIST Sicily Palermo nope"), R::Nil);
    assert_eq!(c.cmd("GEODIST nokey a b"), R::Nil);
    assert_eq!(c.cmd("GEOPOS nokey a"), R::Arr(vec![R::NilArr]));
    assert_eq!(c.cmd("GEOHASH nokey a"), R::Arr(vec![R::Nil]));
    // Scores that are not geohashes decode to the clamped limits, like Redis.
    assert_eq!(c.cmd("ZADD junk -1 neg"), R::Int(1));
    assert_eq!(
        c.cmd("GEOPOS junk neg"),
        R::Arr(vec![arr(&["180", "85.0511287799999991"])])
    );
}

#[test]
fn searches_reply_with_distances_hashes_and_coordinates() {
    let ours = TestServer::start(&[]);
    let mut c = sicily(&ours);
    assert_eq!(
        c.cmd("GEORADIUS Sicily 15 37 200 km WITHDIST ASC"),
        with_dist(&[("Catania", "56.4413"), ("Palermo", "190.4424")])
    );
    assert_eq!(c.cmd("GEORADIUS_RO Sicily 15 37 100 km"), arr(&["Catania"]));
    assert_eq!(
        c.cmd("GEORADIUSBYMEMBER Sicily Palermo 200 km DESC WITHDIST"),
        with_dist(&[("Catania", "166.2742"), ("Palermo", "0.0000")])
    );
    assert_eq!(
        c.cmd("GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km ASC WITHCOORD WITHHASH COUNT 1"),
        R::Arr(vec![R::Arr(vec![
            b("Catania"),
            R::Int(3479447370796909),
            arr(&["15.08726745843887329", "37.50266842333162032"]),
        ])])
    );
    assert_eq!(
        c.cmd("GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 100 km"),
        arr(&["Palermo"])
    );
    // COUNT alone sorts ascending; ANY stops at the first COUNT matches found.
    assert_eq!(
        c.cmd("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 1"),
        arr(&["Catania"])
    );
    assert!(matches!(
        c.cmd("GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km COUNT 1 ANY"),
        R::Arr(v) if v.len() == 1
    ));
    assert_eq!(
        c.cmd("GEOSEARCH nokey FROMLONLAT 1 1 BYRADIUS 1 km"),
        arr(&[])
    );
    assert_eq!(
        c.cmd("GEOSEARCH Sicily FROMLONLAT 0 0 BYRADIUS 1 km"),
        arr(&[])
    );
    // RESP3: coordinates are doubles, distances stay strings.
    assert!(matches!(c.cmd("HELLO 3"), R::Map(_)));
    assert_eq!(
        c.cmd("GEOPOS Sicily Catania"),
        R::Arr(vec![R::Arr(vec![
            R::Double("15.08726745843887329".into()),
            R::Double("37.50266842333162032".into())
        ])])
    );
    assert_eq!(c.cmd("GEOPOS Sicily nope"), R::Arr(vec![R::Nil]));
    assert_eq!(c.cmd("GEODIST Sicily Palermo Catania km"), b("166.2742"));
}

#[test]
fn store_and_storedist_write_sorted_sets_and_an_empty_result_deletes() {
    let ours = TestServer::start(&[]);
    let mut c = sicily(&ours);
    assert_eq!(c.cmd("SET dst old EX 100"), R::ok());
    assert_eq!(c.cmd("GEORADIUS Sicily 15 37 200 km STORE dst"), R::Int(2));
    assert_eq!(
        c.cmd("ZRANGE dst 0 -1 WITHSCORES"),
        arr(&["Palermo", "3479099956230698", "Catania", "3479447370796909"])
    );
    assert_eq!(c.cmd("TTL dst"), R::Int(-1));
    assert_eq!(
        c.cmd("GEORADIUSBYMEMBER Sicily Palermo 200 km STOREDIST d2 DESC COUNT 1"),
        R::Int(1)
    );
    assert_eq!(
        c.cmd("ZRANGE d2 0 -1 WITHSCORES"),
        arr(&["Catania", "166.27415156960032"])
    );
    assert_eq!(
        c.cmd("GEOSEARCHSTORE d3 Sicily FROMLONLAT 15 37 BYRADIUS 100 km STOREDIST"),
        R::Int(1)
    );
    assert_eq!(
        c.cmd("ZRANGE d3 0 -1 WITHSCORES"),
        arr(&["Catania", "56.441257870158204"])
    );
    // No match (or no source): the destination is deleted.
    assert_eq!(
        c.cmd("GEOSEARCHSTORE d3 Sicily FROMLONLAT 0 0 BYRADIUS 1 km"),
        R::Int(0)
    );
    assert_eq!(c.cmd("EXISTS d3"), R::Int(0));
    assert_eq!(c.cmd("GEORADIUS nokey 1 1 1 km STORE dst"), R::Int(0));
    assert_eq!(c.cmd("EXISTS dst"), R::Int(0));
    // The _RO forms know no STORE.
    assert_eq!(
        c.cmd("GEORADIUS_RO Sicily 15 37 200 km STORE dst"),
        err("ERR syntax error")
    );
}

#[test]
fn store_destinations_are_keys_that_watch_sees_change() {
    let ours = TestServer::start(&[]);
    let mut c = sicily(&ours);
    let mut other = ours.conn();
    for (i, store) in [
        "GEORADIUS Sicily 15 37 200 km STORE d",
        "GEORADIUSBYMEMBER Sicily Palermo 200 km STOREDIST d",
        "GEOSEARCHSTORE d Sicily FROMLONLAT 15 37 BYRADIUS 200 km",
        // Two destinations: the last one is written.
        "GEORADIUS Sicily 15 37 200 km STORE x STORE d",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(c.cmd("DEL d"), R::Int(i64::from(i > 0)));
        assert_eq!(c.cmd("WATCH d"), R::ok());
        assert_eq!(other.cmd(store), R::Int(2), "{store}");
        assert_eq!(c.cmd("MULTI"), R::ok());
        assert_eq!(c.cmd("PING"), R::Simple("QUEUED".into()));
        assert_eq!(c.cmd("EXEC"), R::NilArr, "{store}");
    }
    assert_eq!(c.cmd("EXISTS x"), R::Int(0));
}

#[test]
fn bad_input_gets_redis_errors_and_changes_nothing() {
    let mut p = Pair::start();
    p.line(&format!("GEOADD g {PALERMO} {CATANIA}"));
    p.line("SET s str");
    let before = p.line("ZRANGE g 0 -1 WITHSCORES");
    let bad = [
        "GEOADD g 181 0 x",
        "GEOADD g -180.5 0 x",
        "GEOADD g 0 85.06 x",
        "GEOADD g 0 -86 x",
        "GEOADD g 10 10 ok 200 10 x",
        "GEOADD g nan 0 x",
        "GEOADD g 0 NaN x",
        "GEOADD g inf 0 x",
        "GEOADD g 0 -inf x",
        "GEOADD g 1e400 0 x",
        "GEOADD g 1.5x 0 x",
        "GEOADD g GT 1 1 x",
        "GEOADD g CH 1 1",
        "GEOADD s 1 1 x",
        "GEOADD s 1 100 x",
        "GEORADIUS g 15 37 -1 km",
        "GEORADIUS g 15 37 nan km",
        "GEORADIUS g 15 37 x km",
        "GEORADIUS g 15 37 1 parsecs",
        "GEORADIUS g 200 37 1 km",
        "GEORADIUS g 15 37 1 km COUNT 0",
        "GEORADIUS g 15 37 1 km COUNT -3",
        "GEORADIUS g 15 37 1 km COUNT x",
        "GEORADIUS g 15 37 1 km ANY",
        "GEORADIUS g 15 37 1 km STORE d WITHDIST",
        "GEORADIUS g 15 37 1 km WITHHASH STOREDIST d",
        "GEORADIUS g 15 37 1 km BOGUS",
        "GEORADIUS s 15 37 1 km",
        "GEORADIUS s 15 37 -1 km",
        "GEORADIUSBYMEMBER g nope 1 km",
        "GEORADIUSBYMEMBER g Palermo -1 km",
        "GEORADIUSBYMEMBER_RO g Palermo 1 km STORE d",
        "GEOSEARCH g FROMLONLAT 15 37",
        "GEOSEARCH g BYRADIUS 1 km",
        "geosearch g BYRADIUS 1 km",
        "GEOSEARCH g FROMLONLAT 15 37 FROMMEMBER Palermo BYRADIUS 1 km",
        "GEOSEARCH g FROMMEMBER nope BYRADIUS 1 km",
        "GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 1 km BYBOX 1 1 km",
        "GEOSEARCH g FROMLONLAT 15 37 BYBOX -1 1 km",
        "GEOSEARCH g FROMLONLAT 15 37 BYBOX 1 x km",
        "GEOSEARCH g FROMLONLAT 15 37 BYBOX x 1 km",
        "GEOSEARCH g FROMLONLAT 15 37 BYBOX 1 1 yards",
        "GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 1 km STORE d",
        "GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 1 km STOREDIST",
        "GEOSEARCH g FROMLONLAT 15 37 BYRADIUS 1 km ANY",
        "GEOSEARCH s FROMLONLAT 15 37 BYRADIUS 1 km",
        "GEOSEARCHSTORE d g FROMLONLAT 15 37 BYRADIUS 1 km WITHCOORD",
        "GEOSEARCHSTORE d g FROMLONLAT 15 37 BYRADIUS 1 km STORE x",
        "GEOSEARCHSTORE g s FROMLONLAT 15 37 BYRADIUS 1 km",
        "GEODIST g Palermo Catania furlongs",
        "GEODIST g Palermo Catania km extra",
        "GEODIST s a b",
        "GEOPOS s a",
        "GEOHASH s a",
        "GEOADD g",
        "GEOSEARCH g FROMLONLAT 15 37",
    ];
    for line in bad {
        let r = p.line(line);
        assert!(matches!(r, R::Err(_)), "{line}: {r:?}");
        assert_eq!(p.line("ZRANGE g 0 -1 WITHSCORES"), before, "{line}");
        assert_eq!(p.line("GET s"), b("str"), "{line}");
        assert_eq!(p.line("EXISTS d x"), R::Int(0), "{line}");
    }
    // The exact texts of the main ones.
    assert_eq!(
        p.line("GEOADD g 181 0 x"),
        err("ERR invalid longitude,latitude pair 181.000000,0.000000")
    );
    assert_eq!(
        p.line("GEORADIUS g 15 37 1 parsecs"),
        err("ERR unsupported unit provided. please use M, KM, FT, MI")
    );
    assert_eq!(
        p.line("GEORADIUSBYMEMBER g nope 1 km"),
        err("ERR could not decode requested zset member")
    );
    assert_eq!(
        p.line("GEORADIUS g 15 37 1 km COUNT 0"),
        err("ERR COUNT must be > 0")
    );
    assert_eq!(
        p.line("GEORADIUS g 15 37 1 km ANY"),
        err("ERR the ANY argument requires COUNT argument")
    );
    assert_eq!(
        p.line("GEORADIUS g 15 37 -1 km"),
        err("ERR radius cannot be negative")
    );
    assert_eq!(p.line("GEOADD s 1 1 x"), err(WRONGTYPE));
    // Huge radii are fine: everything is in range.
    p.line("GEORADIUS g 0 0 inf km WITHDIST");
    p.line("GEORADIUS g 0 0 1e300 m ASC");
    p.line("GEOSEARCH g FROMLONLAT 0 0 BYBOX inf inf km WITHDIST");
    assert_eq!(p.a.cmd("PING"), R::Simple("PONG".into()));
}

#[test]
fn command_info_and_key_positions_match_redis() {
    let mut p = Pair::start();
    for name in [
        "geoadd",
        "geodist",
        "geohash",
        "geopos",
        "georadius",
        "georadius_ro",
        "georadiusbymember",
        "georadiusbymember_ro",
        "geosearch",
        "geosearchstore",
    ] {
        let (R::Arr(ours), R::Arr(theirs)) = (
            p.a.cmd(&format!("COMMAND INFO {name}")),
            p.b.cmd(&format!("COMMAND INFO {name}")),
        ) else {
            panic!("COMMAND INFO {name} is not an array");
        };
        let (R::Arr(ours), R::Arr(theirs)) = (&ours[0], &theirs[0]) else {
            panic!("COMMAND INFO {name} has no entry");
        };
        // Name, arity, flags, first key, last key, step; categories as a set.
        assert_eq!(ours[..6], theirs[..6], "COMMAND INFO {name}");
        assert_eq!(
            bulks_or_simple(&ours[6]),
            bulks_or_simple(&theirs[6]),
            "{name}"
        );
    }
    p.line("COMMAND GETKEYS GEORADIUS k 1 2 3 m STORE d");
    p.line("COMMAND GETKEYS GEORADIUSBYMEMBER k m 3 km STOREDIST d");
    p.line("COMMAND GETKEYS GEOSEARCHSTORE d k FROMLONLAT 1 2 BYRADIUS 1 m");
    p.line("COMMAND GETKEYS GEORADIUS k 1 2 3 m STORE d STOREDIST e");
    p.line("COMMAND GETKEYS GEORADIUSBYMEMBER k store 3 km");
    p.line("COMMAND GETKEYS GEORADIUS k 1 2 3 m STOREDIST e STORE d");
}

fn bulks_or_simple(r: &R) -> std::collections::BTreeSet<String> {
    let (R::Arr(v) | R::Set(v)) = r else {
        panic!("not an array: {r:?}");
    };
    v.iter()
        .map(|i| match i {
            R::Simple(s) => s.clone(),
            R::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn geo_scripts_match_redis() {
    let mut p = Pair::start();
    let script = [
        &format!("GEOADD Sicily {PALERMO} {CATANIA}") as &str,
        "GEOADD Sicily CH NX 13.361389 38.115556 Palermo 15 37 X",
        "GEOADD Sicily CH 13.361389 38.115556 Palermo 15.1 37 X",
        "geoadd Sicily xx ch 15.2 37.1 X",
        "GEODIST Sicily Palermo Catania",
        "GEODIST Sicily Palermo Catania Km",
        "GEODIST Sicily Palermo X mi",
        "GEODIST Sicily Palermo Catania FT",
        "GEOHASH Sicily Palermo Catania X nope",
        "GEOPOS Sicily Palermo Catania X nope",
        "GEORADIUS Sicily 15 37 200 km",
        "GEORADIUS Sicily 15 37 200 km WITHDIST WITHCOORD WITHHASH ASC",
        "GEORADIUS Sicily 15 37 200 km WITHDIST WITHCOORD WITHHASH DESC COUNT 1",
        "GEORADIUS Sicily 15 37 200 km COUNT 2 ANY",
        "GEORADIUS Sicily 15 37 200 km STORE d",
        "ZRANGE d 0 -1 WITHSCORES",
        "GEORADIUS Sicily 15 37 200 km STOREDIST d2 DESC COUNT 2",
        "ZRANGE d2 0 -1 WITHSCORES",
        "GEORADIUSBYMEMBER Sicily Palermo 200 km WITHDIST",
        "GEORADIUSBYMEMBER_RO Sicily Palermo 500 mi WITHCOORD",
        "GEORADIUSBYMEMBER nokey nope -200 km STORE d",
        "EXISTS d",
        // Without a source set the radius is not even parsed.
        "GEORADIUSBYMEMBER nokey nope -1 parsecs",
        "GEORADIUSBYMEMBER nokey nope x km WITHDIST",
        "GEOSEARCH Sicily FROMMEMBER Palermo BYRADIUS 200 km WITHDIST",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 400 400 km WITHDIST ASC",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYBOX 200 10 km WITHDIST ASC",
        "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYRADIUS 200 km STOREDIST",
        "ZRANGE dst 0 -1 WITHSCORES",
        "GEOSEARCHSTORE dst Sicily FROMLONLAT 15 37 BYBOX 300 300 km COUNT 1 DESC",
        "ZRANGE dst 0 -1 WITHSCORES",
        // The limits, the poles and both sides of the antimeridian.
        "GEOADD w 180 85.05112878 a -180 -85.05112878 b 0 0 c 179.99 0 d -179.99 0 e",
        "GEOPOS w a b c d e",
        "GEOHASH w a b c d e",
        "GEOSEARCH w FROMLONLAT 180 0 BYRADIUS 10 km WITHDIST WITHCOORD",
        "GEOSEARCH w FROMLONLAT -180 0 BYBOX 10 10 km WITHDIST WITHCOORD",
        "GEOSEARCH w FROMLONLAT 0 85 BYRADIUS 30000 km WITHDIST WITHHASH",
        "GEOSEARCH w FROMLONLAT 0 0 BYRADIUS 30000 km WITHDIST WITHCOORD WITHHASH",
        "GEORADIUS w 0 0 inf km WITHDIST",
        "GEORADIUS w 0 0 0 km WITHDIST",
        "GEOSEARCH w FROMLONLAT 0 0 BYBOX 0 0 km WITHDIST",
        "GEODIST w a b",
        "GEODIST w d e",
        // Option words and units compare up to a NUL byte, like strcasecmp.
        "GEODIST Sicily Palermo Catania km\0junk",
        // Scores that are not geohashes.
        "ZADD junk 4503599627370495 max -1 neg 1e17 big 9.3e18 huge 2e19 huger 0 zero 1.5 frac",
        "GEOPOS junk max neg big huge huger zero frac",
        "GEOHASH junk max neg big huge huger zero frac",
        "GEODIST junk max zero",
        "GEOSEARCH junk FROMMEMBER frac BYRADIUS 100 km WITHHASH",
        "HELLO 3",
        "GEOPOS Sicily Palermo nope",
        "GEOSEARCH Sicily FROMLONLAT 15 37 BYRADIUS 200 km WITHDIST WITHCOORD WITHHASH",
        "GEOHASH Sicily Palermo nope",
        "GEODIST Sicily Palermo nope",
        "GEORADIUS nokey 1 1 1 km",
    ];
    for line in script {
        if line == "HELLO 3" {
            // Same protocol switch on both (the reply carries a per-server id).
            assert!(matches!(p.a.cmd(line), R::Map(_)));
            assert!(matches!(p.b.cmd(line), R::Map(_)));
            continue;
        }
        p.line(line);
    }
}

#[test]
fn equal_distances_come_out_in_redis_order_with_and_without_count() {
    let mut p = Pair::start();
    // 90 members on 9 points around a centre: many exact ties. A full result is
    // stably sorted; COUNT runs Redis's partial quicksort, whose tie order is its own.
    let mut rng = StdRng::seed_from_u64(7);
    let mut members: Vec<usize> = (0..90).collect();
    for i in (1..members.len()).rev() {
        members.swap(i, rng.gen_range(0..=i));
    }
    for (n, m) in members.iter().enumerate() {
        let (lon, lat) = (
            11.0 + (n % 3) as f64 * 0.01,
            41.0 + (n % 9 / 3) as f64 * 0.01,
        );
        p.line(&format!("GEOADD ties {lon} {lat} m{m}"));
    }
    for count in 1..=91 {
        for order in ["ASC", "DESC"] {
            p.line(&format!(
                "GEOSEARCH ties FROMLONLAT 11.01 41.01 BYRADIUS 50 km {order} COUNT {count} WITHDIST"
            ));
            p.line(&format!(
                "GEORADIUS ties 11.004 41.0 50 km {order} COUNT {count} STOREDIST d"
            ));
            p.line("ZRANGE d 0 -1 WITHSCORES");
        }
    }
    p.line("GEOSEARCH ties FROMLONLAT 11.01 41.01 BYRADIUS 50 km ASC");
    p.line("GEOSEARCH ties FROMLONLAT 11.01 41.01 BYRADIUS 50 km DESC");
}

// ---- seeded random sequence ----

const LAT_MAX: f64 = 85.05112878;

fn rand_lon(rng: &mut StdRng) -> String {
    let v: f64 = match rng.gen_range(0..8) {
        0 => [180.0, -180.0, 179.9999, -179.9999, 0.0][rng.gen_range(0..5)],
        1 => rng.gen_range(179.0..180.0) * if rng.gen() { 1.0 } else { -1.0 },
        2 => rng.gen_range(10.0..12.0),
        3 => [10.5, 11.25, -0.0][rng.gen_range(0..3)],
        _ => rng.gen_range(-180.0..=180.0),
    };
    format!("{v}")
}

fn rand_lat(rng: &mut StdRng) -> String {
    let v: f64 = match rng.gen_range(0..8) {
        0 => [LAT_MAX, -LAT_MAX, 85.0, -85.0, 0.0][rng.gen_range(0..5)],
        1 => rng.gen_range(80.0..LAT_MAX) * if rng.gen() { 1.0 } else { -1.0 },
        2 => rng.gen_range(40.0..42.0),
        3 => [41.5, 40.25][rng.gen_range(0..2)],
        _ => rng.gen_range(-LAT_MAX..=LAT_MAX),
    };
    format!("{v}")
}

fn rand_member(rng: &mut StdRng) -> String {
    format!("m{}", rng.gen_range(0..60))
}

fn rand_length(rng: &mut StdRng) -> String {
    if rng.gen_range(0..6) == 0 {
        return ["0", "1", "100", "inf", "-1", "x"][rng.gen_range(0..6)].to_string();
    }
    let v = 10f64.powf(rng.gen_range(-1.0..7.5));
    format!("{:.*}", rng.gen_range(0..4), v)
}

fn rand_unit(rng: &mut StdRng) -> String {
    let units = ["m", "km", "ft", "mi", "M", "KM", "Mi", "furlong"];
    let n = if rng.gen_bool(0.05) { 8 } else { 4 };
    units[rng.gen_range(0..n)].to_string()
}

/// Options of a search; `store` adds STORE/STOREDIST (GEORADIUS forms), `search_store`
/// leaves out WITH* and may add STOREDIST (GEOSEARCHSTORE).
fn rand_options(rng: &mut StdRng, store: bool, search_store: bool) -> Vec<String> {
    let mut o: Vec<String> = Vec::new();
    for w in ["WITHCOORD", "WITHDIST", "WITHHASH"] {
        if !search_store && rng.gen_bool(0.4) {
            o.push(w.into());
        }
    }
    match rng.gen_range(0..10) {
        0..=2 => o.push("ASC".into()),
        3..=5 => o.push("DESC".into()),
        _ => {}
    }
    if rng.gen_bool(0.5) {
        let n = [1, 2, 3, 5, 10, 20, rng.gen_range(1..50)][rng.gen_range(0..7)];
        o.extend(["COUNT".to_string(), n.to_string()]);
        if rng.gen_bool(0.3) {
            o.push("ANY".into());
        }
    } else if rng.gen_bool(0.03) {
        o.push("ANY".into());
    }
    if store && rng.gen_bool(0.3) {
        if rng.gen_bool(0.95) {
            o.retain(|x| !x.starts_with("WITH"));
        }
        o.push(["STORE", "STOREDIST"][rng.gen_range(0..2)].into());
        o.push(["d1", "d2"][rng.gen_range(0..2)].into());
    }
    if search_store && rng.gen_bool(0.5) {
        o.push("STOREDIST".into());
    }
    o
}

fn rand_center(rng: &mut StdRng) -> Vec<String> {
    if rng.gen() {
        vec!["FROMMEMBER".into(), rand_member(rng)]
    } else {
        vec!["FROMLONLAT".into(), rand_lon(rng), rand_lat(rng)]
    }
}

fn rand_shape(rng: &mut StdRng) -> Vec<String> {
    if rng.gen() {
        vec!["BYRADIUS".into(), rand_length(rng), rand_unit(rng)]
    } else {
        vec![
            "BYBOX".into(),
            rand_length(rng),
            rand_length(rng),
            rand_unit(rng),
        ]
    }
}

fn rand_geoadd(rng: &mut StdRng, key: &str) -> Vec<String> {
    let mut v = vec!["GEOADD".to_string(), key.to_string()];
    if rng.gen_bool(0.2) {
        v.push(["NX", "XX", "CH"][rng.gen_range(0..3)].into());
    }
    for _ in 0..rng.gen_range(1..6) {
        if rng.gen_bool(0.03) {
            // Out of range now and then: an error and no change.
            v.push(format!("{}", rng.gen_range(-200.0..200.0)));
            v.push(format!("{}", rng.gen_range(-90.0..90.0)));
        } else {
            v.push(rand_lon(rng));
            v.push(rand_lat(rng));
        }
        v.push(rand_member(rng));
    }
    // Members on one point: equal distances, where the sort's tie order shows.
    if rng.gen_bool(0.2) {
        let (lon, lat) = (rand_lon(rng), rand_lat(rng));
        for _ in 0..rng.gen_range(2..8) {
            v.extend([lon.clone(), lat.clone(), rand_member(rng)]);
        }
    }
    v
}

fn rand_op(rng: &mut StdRng) -> Vec<String> {
    let key = ["g1", "g2", "g3"][rng.gen_range(0..3)].to_string();
    let dst = || ["d1", "d2"];
    let s = |x: &str| x.to_string();
    let r: f64 = rng.gen();
    let mut v: Vec<String>;
    if r < 0.3 {
        return rand_geoadd(rng, &key);
    } else if r < 0.42 {
        v = vec![s("GEOSEARCH"), key];
        v.extend(rand_center(rng));
        v.extend(rand_shape(rng));
        v.extend(rand_options(rng, false, false));
    } else if r < 0.5 {
        v = vec![s("GEOSEARCHSTORE"), s(dst()[rng.gen_range(0..2)]), key];
        v.extend(rand_center(rng));
        v.extend(rand_shape(rng));
        v.extend(rand_options(rng, false, true));
    } else if r < 0.6 {
        let name = ["GEORADIUS", "GEORADIUS_RO"][rng.gen_range(0..2)];
        v = vec![s(name), key, rand_lon(rng), rand_lat(rng)];
        v.extend([rand_length(rng), rand_unit(rng)]);
        v.extend(rand_options(rng, true, false));
    } else if r < 0.68 {
        let name = ["GEORADIUSBYMEMBER", "GEORADIUSBYMEMBER_RO"][rng.gen_range(0..2)];
        v = vec![
            s(name),
            key,
            rand_member(rng),
            rand_length(rng),
            rand_unit(rng),
        ];
        v.extend(rand_options(rng, true, false));
    } else if r < 0.76 {
        v = vec![s("ZRANGE"), s(dst()[rng.gen_range(0..2)]), s("0"), s("-1")];
        v.push(s("WITHSCORES"));
    } else if r < 0.84 {
        v = vec![s("GEOPOS"), key];
        v.extend((0..rng.gen_range(1..4)).map(|_| rand_member(rng)));
    } else if r < 0.9 {
        v = vec![s("GEOHASH"), key];
        v.extend((0..rng.gen_range(1..4)).map(|_| rand_member(rng)));
    } else if r < 0.97 {
        v = vec![s("GEODIST"), key, rand_member(rng), rand_member(rng)];
        if rng.gen_bool(0.7) {
            v.push(s(["m", "km", "ft", "mi"][rng.gen_range(0..4)]));
        }
    } else {
        v = vec![s("ZREM"), key, rand_member(rng)];
    }
    v
}

#[test]
fn seeded_random_geo_sequences_match_redis() {
    let mut p = Pair::start();
    let mut rng = StdRng::seed_from_u64(0x6e0_5eed);
    let (mut searches, mut hits) = (0, 0);
    for _ in 0..1500 {
        let op = rand_op(&mut rng);
        let args: Vec<&[u8]> = op.iter().map(String::as_bytes).collect();
        let r = p.same(&args);
        if op[0].starts_with("GEOSEARCH") || op[0].starts_with("GEORADIUS") {
            searches += 1;
            if matches!(&r, R::Arr(v) if !v.is_empty()) || matches!(r, R::Int(n) if n > 0) {
                hits += 1;
            }
        }
    }
    // The sequence exercises real searches, not only empty or failing ones.
    assert!(
        searches > 400 && hits > 100,
        "{searches} searches, {hits} hits"
    );
    for key in ["g1", "g2", "g3", "d1", "d2"] {
        p.line(&format!("ZRANGE {key} 0 -1 WITHSCORES"));
    }
}

// ---- replication ----

fn snapshot(c: &mut Conn, keys: &[&str]) -> Vec<R> {
    keys.iter()
        .map(|k| c.cmd(&format!("ZRANGE {k} 0 -1 WITHSCORES")))
        .collect()
}

/// Runs a geo workload on `m` (some writes refused, some changing nothing).
fn geo_workload(m: &mut Conn) {
    let mut rng = StdRng::seed_from_u64(0x6e0_4e71);
    for i in 0..300 {
        let mut op = match i % 5 {
            0 | 1 => rand_geoadd(&mut rng, ["g1", "g2"][i % 2]),
            2 => {
                let mut v: Vec<String> = ["GEOSEARCHSTORE", "d1", "g1"].map(String::from).into();
                v.extend(rand_center(&mut rng));
                v.extend(rand_shape(&mut rng));
                v.extend(rand_options(&mut rng, false, true));
                v
            }
            3 => {
                let mut v: Vec<String> = vec!["GEORADIUS".into(), "g2".into()];
                v.extend([
                    rand_lon(&mut rng),
                    rand_lat(&mut rng),
                    rand_length(&mut rng),
                ]);
                v.push("km".into());
                v.extend(rand_options(&mut rng, false, true));
                v
            }
            _ => vec!["ZREM".into(), "g1".into(), rand_member(&mut rng)],
        };
        if i % 5 == 3 {
            // STORE or STOREDIST into d2 (GEORADIUS's own option names).
            op.retain(|x| x != "STOREDIST");
            op.extend([["STORE", "STOREDIST"][i % 2].to_string(), "d2".to_string()]);
        }
        let args: Vec<&[u8]> = op.iter().map(String::as_bytes).collect();
        m.cmd_args(&args);
    }
}

#[test]
fn geo_writes_replicate_to_tandem_and_redis_replicas() {
    let m = TestServer::start(&["--repl-diskless-sync", "no"]);
    let mut mc = m.conn();
    // Data before the replicas exist (full sync), the rest streamed.
    assert_eq!(mc.cmd(&format!("GEOADD g1 {PALERMO} {CATANIA}")), R::Int(2));
    let t = TestServer::start(&["--replicaof", &format!("127.0.0.1 {}", m.port)]);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = m.port.to_string();
    let r = RealRedis::start(dir.path(), "dump.rdb", &["--replicaof", "127.0.0.1", &port]);
    let (mut tc, mut rc) = (t.conn(), r.conn());
    assert!(wait_until(WAIT, || tc.role_connected()), "{}", t.stdout());
    assert!(wait_until(WAIT, || rc.role_connected()));
    geo_workload(&mut mc);
    let keys = ["g1", "g2", "d1", "d2"];
    let want = snapshot(&mut mc, &keys);
    assert!(
        want.iter().all(|v| matches!(v, R::Arr(x) if !x.is_empty())),
        "every key holds a set: {want:?}"
    );
    assert!(wait_until(WAIT, || snapshot(&mut tc, &keys) == want));
    assert!(wait_until(WAIT, || snapshot(&mut rc, &keys) == want));
}

#[test]
fn a_tandem_replica_of_redis_applies_its_geo_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let r = RealRedis::start(dir.path(), "dump.rdb", &[]);
    let t = TestServer::start(&["--replicaof", &format!("127.0.0.1 {}", r.port)]);
    let (mut rc, mut tc) = (r.conn(), t.conn());
    assert!(wait_until(WAIT, || tc.role_connected()), "{}", t.stdout());
    geo_workload(&mut rc);
    let keys = ["g1", "g2", "d1", "d2"];
    let want = snapshot(&mut rc, &keys);
    assert!(wait_until(WAIT, || snapshot(&mut tc, &keys) == want));
}
