//! The RDB loader on arbitrary bytes, into fresh databases: an error or a load, never a
//! panic, and no allocation sized by a declared length (libFuzzer's -malloc_limit_mb
//! catches those). A successful load must survive a save + reload with the same
//! dataset digest (what DEBUG DIGEST shows).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_server::db::Db;
use tandem_server::digest::dataset_digest;
use tandem_server::rdb;

const DBS: usize = 16;

fn fresh() -> Vec<Db> {
    (0..DBS).map(|_| Db::new()).collect()
}

fuzz_target!(|data: &[u8]| {
    // Keep expired keys: the check below must not depend on the clock.
    let opts = rdb::LoadOptions {
        now_ms: 0,
        drop_expired: false,
        ..Default::default()
    };
    let mut dbs = fresh();
    let mut input = data;
    let info = match rdb::load(&mut input, &mut dbs, &opts) {
        Ok(info) => info,
        // Mutated files almost never keep a valid CRC64, which would leave everything
        // after a load (the save + reload check) unexercised. The reader stops right
        // after the 8 checksum bytes: zero them ("saved without checksum") and retry.
        Err(rdb::RdbError::BadChecksum { .. }) => {
            let end = data.len() - input.len();
            let mut patched = data.to_vec();
            patched[end - 8..end].fill(0);
            dbs = fresh();
            match rdb::load(&mut &patched[..], &mut dbs, &opts) {
                Ok(info) => info,
                Err(e) => panic!("load failed once the checksum was zeroed: {e}"),
            }
        }
        Err(_) => return,
    };
    let keys: usize = dbs.iter().map(Db::len).sum();
    assert_eq!(
        info.keys as usize, keys,
        "LoadInfo.keys disagrees with the databases"
    );
    let mut saved = Vec::new();
    rdb::save(&dbs, &rdb::SaveOptions::default(), &mut saved).expect("save to a Vec");
    let mut again = fresh();
    let mut slice = &saved[..];
    let info2 = match rdb::load(&mut slice, &mut again, &opts) {
        Ok(i) => i,
        Err(e) => panic!("reloading our own save failed: {e}"),
    };
    assert!(slice.is_empty(), "reload left bytes unread");
    assert_eq!(
        info2.keys, info.keys,
        "key count changed over save + reload"
    );
    assert_eq!(
        dataset_digest(&dbs),
        dataset_digest(&again),
        "dataset changed over save + reload"
    );
});
