//! Keyspace layer: the 52-bit interleaved geohash that geo commands keep as the
//! score of a sorted-set member, and the search geometry around it, with Redis
//! 7.0's numbers (so a geo set written here reads identically in Redis).
//!
//! Layout of a score: 26 latitude bits and 26 longitude bits interleaved, the
//! latitude bits in the even positions (bit 0, 2, ...) and the longitude bits in the
//! odd ones, the most significant pair first. Latitude is mapped from
//! [-85.05112878, 85.05112878] (the Web-Mercator limits) and longitude from
//! [-180, 180] onto `0..2^26`; a cell is decoded to its centre. A coarser hash (step
//! `s < 26`) is the top `2s` bits; aligning it to 52 bits gives the score range
//! `[hash << (52-2s), (hash+1) << (52-2s))` that holds every point of that cell.
//!
//! All arithmetic is plain IEEE double in the same order as Redis's C code, and
//! the trigonometry goes to the platform libm, so results match bit for bit.

use std::f64::consts::PI;

pub const LONG_MIN: f64 = -180.0;
pub const LONG_MAX: f64 = 180.0;
pub const LAT_MIN: f64 = -85.05112878;
pub const LAT_MAX: f64 = 85.05112878;
/// Bits per coordinate in a stored score.
pub const STEP_MAX: u8 = 26;
/// Earth's quadratic mean radius (WGS-84), the radius of every distance.
pub const EARTH_RADIUS_M: f64 = 6372797.560856;
/// Half the equator in Web-Mercator metres: the widest radius the step estimate knows.
const MERCATOR_MAX: f64 = 20037726.37;
const DEG_TO_RAD: f64 = PI / 180.0;

fn deg_rad(a: f64) -> f64 {
    a * DEG_TO_RAD
}

fn rad_deg(a: f64) -> f64 {
    a / DEG_TO_RAD
}

/// A closed coordinate interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub min: f64,
    pub max: f64,
}

/// The ranges stored scores use.
pub const WGS84_LON: Range = Range {
    min: LONG_MIN,
    max: LONG_MAX,
};
pub const WGS84_LAT: Range = Range {
    min: LAT_MIN,
    max: LAT_MAX,
};
/// The latitude range of the standard geohash strings GEOHASH prints.
pub const STANDARD_LAT: Range = Range {
    min: -90.0,
    max: 90.0,
};

/// A geohash of `step` bits per coordinate (`2 * step` bits in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hash {
    pub bits: u64,
    pub step: u8,
}

/// The cell a hash names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Area {
    pub lon: Range,
    pub lat: Range,
}

/// Spreads the low 32 bits of `v` to the even bit positions.
fn spread(v: u32) -> u64 {
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x << 8)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x << 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x << 2)) & 0x3333_3333_3333_3333;
    (x | (x << 1)) & 0x5555_5555_5555_5555
}

/// Gathers the even bit positions of `v` into a 32-bit value.
fn gather(v: u64) -> u32 {
    let mut x = v & 0x5555_5555_5555_5555;
    x = (x | (x >> 1)) & 0x3333_3333_3333_3333;
    x = (x | (x >> 2)) & 0x0F0F_0F0F_0F0F_0F0F;
    x = (x | (x >> 4)) & 0x00FF_00FF_00FF_00FF;
    x = (x | (x >> 8)) & 0x0000_FFFF_0000_FFFF;
    x = (x | (x >> 16)) & 0x0000_0000_FFFF_FFFF;
    x as u32
}

/// Latitude bits in the even positions, longitude bits in the odd ones.
pub fn interleave(lat: u32, lon: u32) -> u64 {
    spread(lat) | (spread(lon) << 1)
}

/// The inverse of [`interleave`]: (latitude bits, longitude bits).
pub fn deinterleave(bits: u64) -> (u32, u32) {
    (gather(bits), gather(bits >> 1))
}

/// Encodes a point in the given ranges at `step` bits per coordinate. None when
/// the point is outside the WGS-84 limits or the ranges, or the step is unusable.
pub fn encode(lon_r: Range, lat_r: Range, lon: f64, lat: f64, step: u8) -> Option<Hash> {
    if step == 0 || step > 32 {
        return None;
    }
    let outside = |v: f64, r: Range| !(r.min..=r.max).contains(&v);
    if outside(lon, WGS84_LON) || outside(lat, WGS84_LAT) {
        return None;
    }
    if outside(lon, lon_r) || outside(lat, lat_r) {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_off = (lat - lat_r.min) / (lat_r.max - lat_r.min) * scale;
    let lon_off = (lon - lon_r.min) / (lon_r.max - lon_r.min) * scale;
    // Offsets lie in [0, 2^step]: the truncating conversion cannot saturate.
    Some(Hash {
        bits: interleave(lat_off as u32, lon_off as u32),
        step,
    })
}

/// Encodes a point for storage: the 52-bit score of `lon,lat`.
pub fn encode_score(lon: f64, lat: f64) -> Option<u64> {
    encode(WGS84_LON, WGS84_LAT, lon, lat, STEP_MAX).map(align52)
}

/// The cell of `hash` in the given ranges.
pub fn decode(lon_r: Range, lat_r: Range, hash: Hash) -> Area {
    let (ilat, ilon) = deinterleave(hash.bits);
    let div = (1u64 << hash.step) as f64;
    let lat_scale = lat_r.max - lat_r.min;
    let lon_scale = lon_r.max - lon_r.min;
    let at = |i: u32, min: f64, scale: f64| min + (f64::from(i) * 1.0 / div) * scale;
    // `i + 1` in 32 bits, as Redis computes it (it wraps for scores that are not
    // geohashes; the clamp in `decode_score` hides the difference).
    let after =
        |i: u32, min: f64, scale: f64| min + (f64::from(i.wrapping_add(1)) * 1.0 / div) * scale;
    Area {
        lat: Range {
            min: at(ilat, lat_r.min, lat_scale),
            max: after(ilat, lat_r.min, lat_scale),
        },
        lon: Range {
            min: at(ilon, lon_r.min, lon_scale),
            max: after(ilon, lon_r.min, lon_scale),
        },
    }
}

/// A sorted-set score as the 64-bit integer Redis's C cast yields on x86-64:
/// truncation, negative values wrapping around, and out-of-range values giving
/// the "integer indefinite" pattern (only scores that are not geohashes go there).
pub fn score_to_bits(score: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    let cvtt = |v: f64| -> u64 {
        if v.is_nan() || v <= -TWO63 || v >= TWO63 {
            0x8000_0000_0000_0000
        } else {
            v.trunc() as i64 as u64
        }
    };
    if score.is_nan() || score < TWO63 {
        cvtt(score)
    } else {
        cvtt(score - TWO63) ^ 0x8000_0000_0000_0000
    }
}

/// The centre of a stored score's cell, clamped to the WGS-84 limits: (lon, lat).
pub fn decode_score(score: f64) -> (f64, f64) {
    let hash = Hash {
        bits: score_to_bits(score),
        step: STEP_MAX,
    };
    let a = decode(WGS84_LON, WGS84_LAT, hash);
    let lon = ((a.lon.min + a.lon.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let lat = ((a.lat.min + a.lat.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (lon, lat)
}

/// The 11-character standard geohash (latitude range -90..90) of a stored score,
/// as GEOHASH prints it: 52 bits in ten base-32 digits and a final `0`.
pub fn standard_geohash(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (lon, lat) = decode_score(score);
    let bits = encode(WGS84_LON, STANDARD_LAT, lon, lat, STEP_MAX).map_or(0, |h| h.bits);
    let mut out = [b'0'; 11];
    for (i, c) in out.iter_mut().take(10).enumerate() {
        let idx = (bits >> (52 - (i + 1) * 5)) & 0x1f;
        *c = ALPHABET[idx as usize];
    }
    out
}

/// The score of `hash` aligned to 52 bits (its cell's lowest score).
pub fn align52(hash: Hash) -> u64 {
    hash.bits << (52 - u32::from(hash.step) * 2)
}

/// The scores `[min, max)` of every point inside the cell of `hash`.
pub fn score_range(hash: Hash) -> (f64, f64) {
    let min = align52(hash);
    let max = align52(Hash {
        bits: hash.bits.wrapping_add(1),
        step: hash.step,
    });
    (min as f64, max as f64)
}

/// Moves a hash one cell east (`d > 0`) or west, wrapping around.
fn move_x(hash: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(hash.step) * 2;
    let mut x = hash.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let y = hash.bits & 0x5555_5555_5555_5555;
    let zz = 0x5555_5555_5555_5555u64 >> shift;
    if d > 0 {
        x = x.wrapping_add(zz + 1);
    } else {
        x = (x | zz).wrapping_sub(zz + 1);
    }
    x &= 0xaaaa_aaaa_aaaa_aaaau64 >> shift;
    hash.bits = x | y;
}

/// Moves a hash one cell north (`d > 0`) or south, wrapping around.
fn move_y(hash: &mut Hash, d: i8) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(hash.step) * 2;
    let x = hash.bits & 0xaaaa_aaaa_aaaa_aaaa;
    let mut y = hash.bits & 0x5555_5555_5555_5555;
    let zz = 0xaaaa_aaaa_aaaa_aaaau64 >> shift;
    if d > 0 {
        y = y.wrapping_add(zz + 1);
    } else {
        y = (y | zz).wrapping_sub(zz + 1);
    }
    y &= 0x5555_5555_5555_5555u64 >> shift;
    hash.bits = x | y;
}

/// The neighbour of `hash` `dx` cells east and `dy` cells north.
pub fn neighbour(hash: Hash, dx: i8, dy: i8) -> Hash {
    let mut h = hash;
    move_x(&mut h, dx);
    move_y(&mut h, dy);
    h
}

/// The number of bits per coordinate whose cells are about as large as a search
/// of `range_m` metres around latitude `lat` needs (wider near the poles).
pub fn estimate_steps(range_m: f64, lat: f64) -> u8 {
    if range_m == 0.0 {
        return 26;
    }
    let mut range_m = range_m;
    let mut step: i32 = 1;
    while range_m < MERCATOR_MAX {
        range_m *= 2.0;
        step += 1;
    }
    // Two steps coarser, so the range fits in the usual cases.
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// What a search covers around its centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ShapeKind {
    /// A circle of this radius (in the unit).
    Radius(f64),
    /// An axis-aligned box of this width and height (in the unit).
    Box { width: f64, height: f64 },
}

/// A search: its centre, its extent and the unit's size in metres.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    pub lon: f64,
    pub lat: f64,
    pub kind: ShapeKind,
    /// Metres per unit.
    pub conversion: f64,
}

/// The longitude and latitude limits of a search: `[min_lon, min_lat, max_lon,
/// max_lat]`. The box's east and west edges are measured on the parallel farther
/// from the equator (where a metre spans more longitude).
pub fn bounding_box(s: &Shape) -> [f64; 4] {
    let (half_h, half_w) = match s.kind {
        ShapeKind::Radius(r) => (s.conversion * r, s.conversion * r),
        ShapeKind::Box { width, height } => {
            (s.conversion * (height / 2.0), s.conversion * (width / 2.0))
        }
    };
    let lat_delta = rad_deg(half_h / EARTH_RADIUS_M);
    let lon_delta_top = rad_deg(half_w / EARTH_RADIUS_M / deg_rad(s.lat + lat_delta).cos());
    let lon_delta_bottom = rad_deg(half_w / EARTH_RADIUS_M / deg_rad(s.lat - lat_delta).cos());
    let lon_delta = if s.lat < 0.0 {
        lon_delta_bottom
    } else {
        lon_delta_top
    };
    [
        s.lon - lon_delta,
        s.lat - lat_delta,
        s.lon + lon_delta,
        s.lat + lat_delta,
    ]
}

/// The cells a search reads: the centre cell and its eight neighbours in Redis's
/// order (N, S, E, W, NE, NW, SE, SW), the ones that cannot hold a match left out.
pub fn search_cells(s: &Shape) -> [Option<Hash>; 9] {
    let [min_lon, min_lat, max_lon, max_lat] = bounding_box(s);
    let radius_m = match s.kind {
        ShapeKind::Radius(r) => r,
        ShapeKind::Box { width, height } => {
            ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
        }
    } * s.conversion;
    let mut steps = estimate_steps(radius_m, s.lat);
    let cells_at = |steps: u8| {
        let hash = encode(WGS84_LON, WGS84_LAT, s.lon, s.lat, steps).unwrap_or(Hash {
            bits: 0,
            step: steps,
        });
        let around = [
            (0, 1),
            (0, -1),
            (1, 0),
            (-1, 0),
            (1, 1),
            (-1, 1),
            (1, -1),
            (-1, -1),
        ]
        .map(|(dx, dy)| neighbour(hash, dx, dy));
        (hash, around)
    };
    let (mut hash, mut around) = cells_at(steps);
    let area = |h: Hash| decode(WGS84_LON, WGS84_LAT, h);
    // A neighbour that does not reach the edge of the search: one step coarser.
    let [north, south, east, west, ..] = around.map(area);
    let too_fine = north.lat.max < max_lat
        || south.lat.min > min_lat
        || east.lon.max < max_lon
        || west.lon.min > min_lon;
    if steps > 1 && too_fine {
        steps -= 1;
        (hash, around) = cells_at(steps);
    }
    let centre = area(hash);
    let mut cells = [Some(hash), None, None, None, None, None, None, None, None];
    for (slot, h) in cells[1..].iter_mut().zip(around) {
        *slot = Some(h);
    }
    if steps >= 2 {
        let mut drop = |idx: &[usize]| {
            for &i in idx {
                cells[i] = None;
            }
        };
        // Indexes into `cells`: 1 N, 2 S, 3 E, 4 W, 5 NE, 6 NW, 7 SE, 8 SW.
        if centre.lat.min < min_lat {
            drop(&[2, 8, 7]);
        }
        if centre.lat.max > max_lat {
            drop(&[1, 5, 6]);
        }
        if centre.lon.min < min_lon {
            drop(&[4, 8, 6]);
        }
        if centre.lon.max > max_lon {
            drop(&[3, 7, 5]);
        }
    }
    cells
}

/// The distance in metres between two latitudes on one meridian.
pub fn lat_distance(lat1: f64, lat2: f64) -> f64 {
    EARTH_RADIUS_M * (deg_rad(lat2) - deg_rad(lat1)).abs()
}

/// Great-circle distance in metres (haversine on the mean Earth radius). Points on
/// one meridian take the exact shortcut Redis 7.0 takes (it differs from the
/// general formula in the last bits).
pub fn distance(lon1: f64, lat1: f64, lon2: f64, lat2: f64) -> f64 {
    let lon1r = deg_rad(lon1);
    let lon2r = deg_rad(lon2);
    let v = ((lon2r - lon1r) / 2.0).sin();
    if v == 0.0 {
        return lat_distance(lat1, lat2);
    }
    let lat1r = deg_rad(lat1);
    let lat2r = deg_rad(lat2);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_M * a.sqrt().asin()
}

/// The distance from the centre when the point `lon,lat` is inside the search
/// (NaN distances, from antipodal rounding, count as inside, as in Redis).
pub fn within(s: &Shape, lon: f64, lat: f64) -> Option<f64> {
    match s.kind {
        ShapeKind::Radius(r) => {
            let d = distance(s.lon, s.lat, lon, lat);
            // Only "farther than the radius" excludes: a NaN distance stays in.
            let outside = d.partial_cmp(&(r * s.conversion)) == Some(std::cmp::Ordering::Greater);
            (!outside).then_some(d)
        }
        ShapeKind::Box { width, height } => {
            let (w, h) = (width * s.conversion, height * s.conversion);
            if lat_distance(lat, s.lat) > h / 2.0 {
                return None;
            }
            if distance(lon, lat, s.lon, lat) > w / 2.0 {
                return None;
            }
            Some(distance(s.lon, s.lat, lon, lat))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_round_trips_and_puts_latitude_in_even_bits() {
        assert_eq!(interleave(1, 0), 1);
        assert_eq!(interleave(0, 1), 2);
        assert_eq!(interleave(0x3ff_ffff, 0x3ff_ffff), (1 << 52) - 1);
        for (a, b) in [(0, 0), (12345, 67890), (0x3ff_ffff, 1), (u32::MAX, 7)] {
            assert_eq!(deinterleave(interleave(a, b)), (a, b));
        }
    }

    #[test]
    fn scores_match_the_ones_redis_stores() {
        // GEOADD Sicily 13.361389 38.115556 Palermo 15.087269 37.502669 Catania
        assert_eq!(encode_score(13.361389, 38.115556), Some(3479099956230698));
        assert_eq!(encode_score(15.087269, 37.502669), Some(3479447370796909));
        assert_eq!(encode_score(181.0, 0.0), None);
        assert_eq!(encode_score(0.0, 85.06), None);
        // The upper limits give offsets of exactly 2^26: bits above the 52.
        assert_eq!(encode_score(180.0, 85.05112878), Some(3 << 52));
    }

    #[test]
    fn decoding_gives_the_cell_centre_clamped_to_the_limits() {
        let (lon, lat) = decode_score(3479099956230698.0);
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
        assert_eq!(decode_score(-1.0), (180.0, LAT_MAX));
        assert_eq!(decode_score(2e19).0, decode_score(0.0).0);
        assert_eq!(score_to_bits(-1.0), u64::MAX);
        assert_eq!(score_to_bits(2e19), 0);
        assert_eq!(score_to_bits(9.3e18), 9_300_000_000_000_000_000);
    }

    #[test]
    fn standard_geohash_strings_match_redis() {
        assert_eq!(&standard_geohash(3479099956230698.0), b"sqc8b49rny0");
        assert_eq!(&standard_geohash(3479447370796909.0), b"sqdtr74hyu0");
        assert_eq!(&standard_geohash(0.0), b"00bh0hbj200");
        assert_eq!(&standard_geohash(4503599627370495.0), b"zzpgzgpfxz0");
    }

    #[test]
    fn neighbours_wrap_around_the_antimeridian() {
        let h = encode(WGS84_LON, WGS84_LAT, 179.9, 0.0, 4).unwrap_or(Hash { bits: 0, step: 4 });
        let east = neighbour(h, 1, 0);
        let a = decode(WGS84_LON, WGS84_LAT, east);
        assert_eq!(a.lon.min, -180.0);
        assert_eq!(neighbour(east, -1, 0), h);
        let north = neighbour(h, 0, 1);
        assert_eq!(neighbour(north, 0, -1), h);
        assert!(
            decode(WGS84_LON, WGS84_LAT, north).lat.min > decode(WGS84_LON, WGS84_LAT, h).lat.min
        );
    }

    #[test]
    fn step_estimate_follows_range_and_latitude() {
        assert_eq!(estimate_steps(0.0, 0.0), 26);
        // 1 m doubles 25 times before reaching 20037726.37: 1 + 25 - 2.
        assert_eq!(estimate_steps(1.0, 0.0), 24);
        assert_eq!(estimate_steps(200_000.0, 0.0), 6);
        assert_eq!(estimate_steps(200_000.0, 70.0), 5);
        assert_eq!(estimate_steps(200_000.0, -81.0), 4);
        assert_eq!(estimate_steps(1e9, 0.0), 1);
        assert_eq!(estimate_steps(f64::INFINITY, 0.0), 1);
    }

    #[test]
    fn distances_use_the_haversine_formula() {
        let d = distance(
            13.361389338970184,
            38.1155563954963,
            15.087267458438873,
            37.50266842333162,
        );
        assert_eq!(format!("{:.4}", d / 1000.0), "166.2742");
        assert_eq!(distance(1.0, 2.0, 1.0, 2.0), 0.0);
        // One meridian: the shortcut, one ulp away from the haversine here.
        let (lon, la1, la2) = (-179.99990075826645, -0.2488576560633149, 41.499999733243925);
        assert_eq!(distance(lon, la1, lon, la2) / 0.3048, 15234812.784253089);
    }

    #[test]
    fn search_cells_cover_the_shape_and_drop_useless_neighbours() {
        let s = Shape {
            lon: 15.0,
            lat: 37.0,
            kind: ShapeKind::Radius(1.0),
            conversion: 1000.0,
        };
        let cells = search_cells(&s);
        assert!(cells[0].is_some());
        let inside = |h: &Option<Hash>| {
            h.is_some_and(|h| {
                let (min, max) = score_range(h);
                let sc = encode_score(15.0, 37.0).map_or(0.0, |v| v as f64);
                (min..max).contains(&sc)
            })
        };
        assert!(inside(&cells[0]));
        // A tiny radius in the middle of a cell needs none of its neighbours.
        assert!(cells.iter().skip(1).filter(|c| c.is_some()).count() < 8);
        let b = bounding_box(&s);
        assert!(b[0] < 15.0 && b[2] > 15.0 && b[1] < 37.0 && b[3] > 37.0);
    }

    #[test]
    fn box_membership_checks_both_axes() {
        let s = Shape {
            lon: 0.0,
            lat: 0.0,
            kind: ShapeKind::Box {
                width: 200.0,
                height: 100.0,
            },
            conversion: 1000.0,
        };
        assert!(within(&s, 0.8, 0.0).is_some());
        assert!(within(&s, 0.0, 0.8).is_none());
        assert!(within(&s, 0.0, 0.4).is_some());
    }
}
