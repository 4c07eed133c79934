//! Id validation against an oracle: the regex crate's reading of HealthLake's model pattern
//! `^[\p{L}\p{Z}\p{N}_.:/=+\-%@]*$` plus the 1-32 character rule, and a percent-decoder written
//! here, independently of the one the function uses. A datastore id in the path must also be
//! plain (`^[A-Za-z0-9._-]*$` as it stands, so never percent-encoded): what is outside the
//! model anyway is named as the model's error, anything else is `NotPlain`.
//!
//! Input: `flags datastore [0x00 job]`. Bit 0 of `flags` says whether the ids are percent-encoded
//! (REST APIs, function URLs, ALB) or already decoded (HTTP APIs).
#![no_main]

use export_job_status::error::Error;
use export_job_status::ids::{DatastoreId, IdError, JobId, MAX_LEN};
use export_job_status::route::RawIds;
use libfuzzer_sys::fuzz_target;
use regex::Regex;
use std::sync::LazyLock;

static MODEL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{Z}\p{N}_.:/=+\-%@]*$").expect("the model's pattern"));
static ONE_CHAR: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[\p{L}\p{Z}\p{N}_.:/=+\-%@]$").expect("one character of it"));
/// regex's tables are Unicode 16, the function's (unicode-properties) Unicode 18: a code point
/// assigned since 16 may be a letter to the function and unassigned to regex. Strings with such
/// a code point are checked for consistency only, not against the oracle.
static UNASSIGNED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\p{Cn}").expect("Cn"));
static PLAIN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9._-]*$").expect("plain"));

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (a, b) = match rest.iter().position(|&x| x == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &b""[..]),
    };
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    check_id(&a);
    check_id(&b);

    let encoded = flags & 1 == 1;
    let raw = RawIds {
        datastore: a.clone(),
        job: b.clone(),
        encoded,
    };
    let got = raw.parse();
    let decoded = |s: &str| if encoded { decode(s) } else { Ok(s.to_owned()) };
    let datastore = if a.is_empty() || PLAIN.is_match(&a) {
        decoded(&a).and_then(|d| oracle(&d).map(|()| d))
    } else {
        match decoded(&a).and_then(|d| oracle(&d)) {
            Err(reason @ (IdError::BadChar { .. } | IdError::TooLong { .. })) => Err(reason),
            _ => Err(IdError::NotPlain),
        }
    };
    let want = match datastore {
        Err(reason) => Err(("datastoreId", reason)),
        Ok(ds) => match decoded(&b).and_then(|d| oracle(&d).map(|()| d)) {
            Err(reason) => Err(("jobId", reason)),
            Ok(job) => Ok((ds, job)),
        },
    };
    match (&got, &want) {
        // Newer than the oracle's tables: nothing to compare.
        (_, Err((_, reason))) if *reason == OUT_OF_ORACLE => {}
        (Ok((ds, job)), Ok((want_ds, want_job))) => {
            assert_eq!((ds.as_str(), job.as_str()), (want_ds.as_str(), want_job.as_str()));
        }
        (Err(Error::InvalidId { param, reason }), Err((want_param, want_reason))) => {
            assert_eq!(
                (param, reason),
                (want_param, want_reason),
                "{a:?} {b:?} encoded: {encoded}"
            );
        }
        _ => panic!("RawIds {{ {a:?}, {b:?}, encoded: {encoded} }}: got {got:?}, oracle says {want:?}"),
    }
});

/// The oracle's verdict for a code point newer than its tables.
const OUT_OF_ORACLE: IdError = IdError::BadChar {
    ch: '\u{10FFFF}',
    position: 0,
};

/// What the model says about an already-decoded id, with the error the function must give.
fn oracle(s: &str) -> Result<(), IdError> {
    if UNASSIGNED.is_match(s) {
        return Err(OUT_OF_ORACLE);
    }
    if !MODEL.is_match(s) {
        let (i, ch) = s
            .chars()
            .enumerate()
            .find(|(_, c)| !ONE_CHAR.is_match(c.encode_utf8(&mut [0; 4])))
            .expect("a string the pattern rejects has a character outside the class");
        return Err(IdError::BadChar { ch, position: i + 1 });
    }
    match s.chars().count() {
        0 => Err(IdError::Empty),
        n if n > MAX_LEN => Err(IdError::TooLong { chars: n }),
        _ => Ok(()),
    }
}

/// Both id types parse alike, agree with the oracle, and keep the text as given.
fn check_id(s: &str) {
    let ds = DatastoreId::parse(s);
    let job = JobId::parse(s);
    assert_eq!(ds.as_ref().err(), job.as_ref().err());
    match (&ds, oracle(s)) {
        (Ok(id), Ok(())) => assert_eq!(id.as_str(), s),
        (Err(got), Err(want)) if want != OUT_OF_ORACLE => assert_eq!(*got, want, "{s:?}"),
        (got, Err(_)) if UNASSIGNED.is_match(s) => {
            // Newer than the oracle: only the function's own consistency can be checked.
            if let Ok(id) = got {
                assert_eq!(id.as_str(), s);
                assert!((1..=MAX_LEN).contains(&s.chars().count()));
            }
        }
        (got, want) => panic!("{s:?}: got {got:?}, oracle says {want:?}"),
    }
}

/// Percent-decoding as RFC 3986 defines it: `%` and two hex digits is a byte, anything else is
/// itself. The result must be UTF-8.
fn decode(s: &str) -> Result<String, IdError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| IdError::NotUtf8)
}
