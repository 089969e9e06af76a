//! `GrantRecord` JSON: any document gives a record or a serde error, never a
//! panic; a record read back from its own JSON is the same record.
#![no_main]

use hoopai_oauth::GrantRecord;
use hoopai_oauth_fuzz::assert_same_token;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = serde_json::from_slice::<GrantRecord>(data) else {
        return;
    };
    let _ = (record.expires_at(), record.access_token().fingerprint());
    let json = serde_json::to_vec(&record).expect("a record serializes");
    let back: GrantRecord = serde_json::from_slice(&json).expect("its own JSON reads back");
    let head = |r: &GrantRecord| {
        (
            (r.schema, r.grant.clone(), r.version),
            (r.status.clone(), r.lease.clone()),
            (r.tokens.obtained_at(), r.tokens.expires_at()),
        )
    };
    assert_eq!(
        head(&back),
        head(&record),
        "a record changes when written and read back"
    );
    assert_same_token(back.tokens.token(), record.tokens.token());
});
