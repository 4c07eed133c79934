//! Text that HealthLake writes (a job's message, an output URI) can name the account: a role or
//! KMS key ARN, an account id, a key id. Callers never see those.

/// Removes what would identify the account from text that HealthLake wrote (a job's message, an
/// output URI): ARNs (a role or a KMS key), 12-digit account ids and key ids (UUIDs).
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let boundary = out.chars().next_back().is_none_or(|c| !c.is_ascii_alphanumeric());
        if boundary && starts_with_ignore_case(rest, "arn:") {
            let end = rest.find(|c: char| c.is_whitespace() || "\"'<>()[]{},;`".contains(c));
            out.push_str("[redacted]");
            rest = &rest[end.unwrap_or(rest.len())..];
            continue;
        }
        let run = rest
            .find(|c: char| !c.is_ascii_hexdigit() && c != '-')
            .unwrap_or(rest.len());
        if boundary && run > 0 {
            let token = &rest[..run];
            if let Some(len) = sensitive_prefix(token) {
                out.push_str("[redacted]");
                rest = &rest[len..];
                continue;
            }
            // Not sensitive: copy its first group (and its dash) through, so that each group
            // after a dash is examined on its own ("2024-123456789012" in a bucket name) but
            // the tail of a longer number is not ("1234567890123").
            let group = token.find('-').map_or(run, |i| i + 1);
            out.push_str(&token[..group]);
            rest = &rest[group..];
            continue;
        }
        let c = rest.chars().next().expect("rest is not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// Removes S3 locations from text that HealthLake wrote, for a caller who is not told where the
/// export went: `s3://` URIs whole, and `bucket` (the export's bucket) wherever it stands.
pub fn scrub_s3(text: &str, bucket: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if starts_with_ignore_case(rest, "s3://") {
            let end = rest.find(|c: char| c.is_whitespace() || "\"'<>()[]{},;`".contains(c));
            out.push_str("[redacted]");
            rest = &rest[end.unwrap_or(rest.len())..];
            continue;
        }
        if let Some(b) = bucket.filter(|b| starts_with_ignore_case(rest, b)) {
            out.push_str("[redacted]");
            rest = &rest[b.len()..];
            continue;
        }
        let c = rest.chars().next().expect("rest is not empty");
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// `token` is a run of hex digits and dashes that starts at a word boundary. Returns how much of
/// it to redact: a whole UUID, or 12 decimal digits that are not part of a longer number.
fn sensitive_prefix(token: &str) -> Option<usize> {
    let is_uuid = |t: &str| {
        t.len() == 36
            && t.char_indices().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    c == '-'
                } else {
                    c.is_ascii_hexdigit()
                }
            })
    };
    if token.len() >= 36 && is_uuid(&token[..36]) && !token[36..].starts_with(|c: char| c.is_ascii_hexdigit())
    {
        return Some(36);
    }
    // Split the run at dashes and look at the first group of digits, e.g. 123456789012 in
    // "123456789012-exports".
    let first = token.split('-').next().unwrap_or("");
    if first.len() == 12 && first.bytes().all(|b| b.is_ascii_digit()) {
        return Some(12);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_redacts_arns_accounts_and_key_ids() {
        assert_eq!(
            scrub("Access denied for arn:aws:iam::123456789012:role/Export-Role, retry"),
            "Access denied for [redacted], retry"
        );
        assert_eq!(
            scrub("account 123456789012 lacks access"),
            "account [redacted] lacks access"
        );
        assert_eq!(
            scrub("s3://exports-123456789012-us-east-1/x/"),
            "s3://exports-[redacted]-us-east-1/x/"
        );
        assert_eq!(
            scrub("key 1234abcd-12ab-34cd-56ef-1234567890ab gone"),
            "key [redacted] gone"
        );
        assert_eq!(scrub("ARN:AWS:kms:x"), "[redacted]");
        // Ordinary numbers, longer digit runs and words that contain "arn" are left alone.
        assert_eq!(
            scrub("exported 1234567890123 resources"),
            "exported 1234567890123 resources"
        );
        assert_eq!(scrub("learn:more 42 items"), "learn:more 42 items");
        assert_eq!(scrub("s3://bucket/prefix/"), "s3://bucket/prefix/");
        assert_eq!(scrub("ünïcödé ok"), "ünïcödé ok");
    }

    #[test]
    fn scrub_s3_removes_locations_and_the_bucket() {
        assert_eq!(
            scrub_s3("write to S3://Acme-Exports/p/x.ndjson failed", None),
            "write to [redacted] failed"
        );
        assert_eq!(
            scrub_s3(
                "bucket acme-exports (https://acme-exports.s3.amazonaws.com) denied",
                Some("acme-exports")
            ),
            "bucket [redacted] (https://[redacted].s3.amazonaws.com) denied"
        );
        assert_eq!(scrub_s3("nothing here", Some("acme")), "nothing here");
        assert_eq!(scrub_s3("ünï s3://b/ü", None), "ünï [redacted]");
    }
}
