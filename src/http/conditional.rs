//! Conditional and range requests for the files a [`super::StaticSite`] serves
//! (RFC 9110 §13 and §14): what `If-Match`, `If-Unmodified-Since`, `If-None-Match`,
//! `If-Modified-Since`, `Range` and `If-Range` ask, evaluated against a file's validators
//! (its strong `ETag` and its `Last-Modified` date).
//!
//! Pure functions of the request's fields: the handler builds the response.

use std::time::SystemTime;

use super::request::Headers;
use super::response::parse_http_date;

/// What the preconditions of a request decide (RFC 9110 §13.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Go on with the request (and its `Range`, if any).
    Proceed,
    /// 304 Not Modified: the client's copy is current (GET and HEAD only).
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// One member of an entity-tag list (RFC 9110 §8.8.3): `W/"x"` or `"x"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    /// The quoted part, quotes included (how [`evaluate`]'s `etag` is written).
    opaque: &'a str,
}

/// The entity tags of an `If-Match` / `If-None-Match` value, or `None` for `*`. Members
/// that are not entity tags are skipped (they can match nothing).
fn tags(value: &str) -> Option<Vec<Tag<'_>>> {
    if value.trim() == "*" {
        return None;
    }
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return Some(out);
        }
        let (weak, after) = match rest.strip_prefix("W/") {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let Some(body) = after.strip_prefix('"') else {
            // Not an entity tag: skip to the next member.
            rest = rest.find(',').map_or("", |i| &rest[i..]);
            continue;
        };
        let Some(close) = body.find('"') else {
            return Some(out);
        };
        out.push(Tag {
            weak,
            opaque: &after[..close + 2],
        });
        rest = &body[close + 1..];
    }
}

/// Whether any field `name` lists `etag` (`*` matches any current representation);
/// `strong`: the strong comparison of RFC 9110 §8.8.3.2 (both tags strong), else weak.
fn list_matches(headers: &Headers, name: &str, etag: &str, strong: bool) -> bool {
    headers.get_all(name).any(|v| match tags(v) {
        None => true,
        Some(list) => list.iter().any(|t| t.opaque == etag && !(strong && t.weak)),
    })
}

/// The date of field `name`, if present and a valid HTTP-date (an invalid one is ignored,
/// RFC 9110 §13.1.3 and §13.1.4).
fn date(headers: &Headers, name: &str) -> Option<SystemTime> {
    headers.get(name).and_then(parse_http_date)
}

/// RFC 9110 §13.2.2: evaluate the preconditions of a request for a representation whose
/// strong entity tag is `etag` (quoted, as sent in `ETag`) and last modification time is
/// `modified` (whole seconds), in the order the RFC gives:
///
/// 1. `If-Match`: no strong match → 412;
/// 2. else `If-Unmodified-Since`: modified after the date → 412;
/// 3. `If-None-Match`: a (weak) match, `*` included → 304 for GET/HEAD, 412 otherwise;
/// 4. else, for GET/HEAD, `If-Modified-Since`: not modified since → 304.
///
/// So `If-Modified-Since` counts only without `If-None-Match` (a recipient MUST ignore
/// it then, §13.1.3), and an ETag comparison beats a date.
pub fn evaluate(
    method: &str,
    headers: &Headers,
    etag: &str,
    modified: Option<SystemTime>,
) -> Precondition {
    // Most requests carry no precondition at all: one pass over the fields tells, instead
    // of a search for each of the four.
    let conditional = headers
        .iter()
        .any(|(name, _)| name.len() > 3 && name.as_bytes()[..3].eq_ignore_ascii_case(b"if-"));
    if !conditional {
        return Precondition::Proceed;
    }
    let get_or_head = method == "GET" || method == "HEAD";
    if headers.contains("if-match") {
        if !list_matches(headers, "if-match", etag, true) {
            return Precondition::Failed;
        }
    } else if let (Some(since), Some(m)) = (date(headers, "if-unmodified-since"), modified) {
        if m > since {
            return Precondition::Failed;
        }
    }
    if headers.contains("if-none-match") {
        if list_matches(headers, "if-none-match", etag, false) {
            return if get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if get_or_head {
        if let (Some(since), Some(m)) = (date(headers, "if-modified-since"), modified) {
            if m <= since {
                return Precondition::NotModified;
            }
        }
    }
    Precondition::Proceed
}

/// What to send of a representation of some length (RFC 9110 §14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// 200 with the whole representation: no `Range`, one to ignore (not GET, another
    /// unit, malformed, `If-Range` not matching), or several ranges (we do not send
    /// multipart/byteranges; RFC 9110 §14.2 lets a server ignore `Range`).
    Whole,
    /// 206 with bytes `first..=last` (`Content-Range: bytes first-last/len`).
    Part {
        /// First byte sent.
        first: u64,
        /// Last byte sent (inclusive).
        last: u64,
    },
    /// 416 with `Content-Range: bytes */len`: no range overlaps the representation.
    Unsatisfiable,
}

/// One byte range as written: `first-last`, `first-` or `-suffix` (RFC 9110 §14.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    From(u64, Option<u64>),
    Suffix(u64),
}

/// The ranges of a `bytes=...` value, or `None` if it is not a valid bytes range set.
fn specs(value: &str) -> Option<Vec<Spec>> {
    let (unit, set) = value.trim().split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let digits = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let mut out = Vec::new();
    for member in set.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            // Empty list elements are allowed (RFC 9110 §5.6.1).
            continue;
        }
        let (a, b) = member.split_once('-')?;
        let spec = if a.is_empty() {
            Spec::Suffix(digits(b)?)
        } else {
            let first = digits(a)?;
            let last = if b.is_empty() { None } else { Some(digits(b)?) };
            // RFC 9110 §14.1.1: last < first makes the whole set invalid.
            if last.is_some_and(|l| l < first) {
                return None;
            }
            Spec::From(first, last)
        };
        out.push(spec);
    }
    (!out.is_empty()).then_some(out)
}

/// `spec` cut to a representation of `len` bytes, or `None` if unsatisfiable.
fn resolve(spec: Spec, len: u64) -> Option<(u64, u64)> {
    match spec {
        Spec::From(first, _) if first >= len => None,
        Spec::From(first, last) => Some((first, last.map_or(len - 1, |l| l.min(len - 1)))),
        Spec::Suffix(0) => None,
        Spec::Suffix(_) if len == 0 => None,
        Spec::Suffix(n) => Some((len.saturating_sub(n), len - 1)),
    }
}

/// Whether `If-Range` lets the `Range` through (RFC 9110 §13.1.5): an entity tag must
/// match strongly; a date must equal `modified` exactly. Absent, it does.
fn if_range_holds(headers: &Headers, etag: &str, modified: Option<SystemTime>) -> bool {
    let Some(value) = headers.get("if-range") else {
        return true;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        // A weak tag never matches strongly.
        return value == etag;
    }
    match (parse_http_date(value), modified) {
        (Some(d), Some(m)) => d == m,
        _ => false,
    }
}

/// RFC 9110 §14.2: what a `GET` with this request's `Range` (and `If-Range`) gets of a
/// representation of `len` bytes whose validators are `etag` and `modified`. Only GET has
/// ranges; any other method gets [`RangeAnswer::Whole`].
pub fn range(
    method: &str,
    headers: &Headers,
    etag: &str,
    modified: Option<SystemTime>,
    len: u64,
) -> RangeAnswer {
    if method != "GET" {
        return RangeAnswer::Whole;
    }
    let Some(value) = headers.get("range") else {
        return RangeAnswer::Whole;
    };
    // An invalid Range, or one in another unit, is ignored (§14.2: "MAY ignore").
    let Some(specs) = specs(value) else {
        return RangeAnswer::Whole;
    };
    if !if_range_holds(headers, etag, modified) {
        return RangeAnswer::Whole;
    }
    let satisfiable: Vec<(u64, u64)> = specs.iter().filter_map(|&s| resolve(s, len)).collect();
    match satisfiable.as_slice() {
        [] => RangeAnswer::Unsatisfiable,
        [(first, last)] if specs.len() == 1 => RangeAnswer::Part {
            first: *first,
            last: *last,
        },
        // Several ranges: the whole file in one 200, simpler for every client than
        // multipart/byteranges and never larger than the file.
        _ => RangeAnswer::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::http_date;
    use std::time::{Duration, UNIX_EPOCH};

    const TAG: &str = "\"abc-1\"";

    fn h(fields: &[(&str, &str)]) -> Headers {
        let mut h = Headers::new();
        for (n, v) in fields {
            h.append(*n, *v);
        }
        h
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn preconditions_in_rfc_order() {
        let m = Some(at(1_000_000));
        let old = http_date(at(999_999));
        let same = http_date(at(1_000_000));
        let ev = |method: &str, f: &[(&str, &str)]| evaluate(method, &h(f), TAG, m);
        use Precondition::*;
        assert_eq!(ev("GET", &[]), Proceed);
        // If-Match: strong comparison, `*` matches, otherwise 412.
        assert_eq!(ev("GET", &[("If-Match", TAG)]), Proceed);
        assert_eq!(ev("GET", &[("If-Match", "*")]), Proceed);
        assert_eq!(ev("GET", &[("If-Match", "\"other\"")]), Failed);
        assert_eq!(ev("GET", &[("If-Match", "W/\"abc-1\"")]), Failed);
        assert_eq!(ev("GET", &[("If-Match", "\"x\", \"abc-1\"")]), Proceed);
        // If-Unmodified-Since only without If-Match.
        assert_eq!(ev("GET", &[("If-Unmodified-Since", &old)]), Failed);
        assert_eq!(ev("GET", &[("If-Unmodified-Since", &same)]), Proceed);
        assert_eq!(
            ev("GET", &[("If-Match", TAG), ("If-Unmodified-Since", &old)]),
            Proceed
        );
        // If-None-Match: weak comparison, `*`; 304 for GET/HEAD, 412 for the rest.
        assert_eq!(ev("GET", &[("If-None-Match", TAG)]), NotModified);
        assert_eq!(ev("HEAD", &[("If-None-Match", "W/\"abc-1\"")]), NotModified);
        assert_eq!(ev("GET", &[("If-None-Match", "*")]), NotModified);
        assert_eq!(ev("PUT", &[("If-None-Match", "*")]), Failed);
        assert_eq!(ev("GET", &[("If-None-Match", "\"x\"")]), Proceed);
        // If-Modified-Since is ignored when If-None-Match is present.
        assert_eq!(
            ev(
                "GET",
                &[("If-None-Match", "\"x\""), ("If-Modified-Since", &same)]
            ),
            Proceed
        );
        assert_eq!(ev("GET", &[("If-Modified-Since", &same)]), NotModified);
        assert_eq!(ev("GET", &[("If-Modified-Since", &old)]), Proceed);
        assert_eq!(ev("POST", &[("If-Modified-Since", &same)]), Proceed);
        assert_eq!(ev("GET", &[("If-Modified-Since", "yesterday")]), Proceed);
        // If-Match fails before If-None-Match is looked at.
        assert_eq!(
            ev("GET", &[("If-Match", "\"x\""), ("If-None-Match", TAG)]),
            Failed
        );
    }

    #[test]
    fn entity_tag_lists() {
        assert_eq!(tags("*"), None);
        let t = tags(" \"a,b\" , W/\"c\",junk, \"d\"").unwrap();
        let o: Vec<_> = t.iter().map(|t| (t.weak, t.opaque)).collect();
        assert_eq!(
            o,
            vec![(false, "\"a,b\""), (true, "\"c\""), (false, "\"d\"")]
        );
        assert_eq!(tags("\"unterminated").unwrap(), vec![]);
    }

    #[test]
    fn ranges() {
        let r = |v: &str| range("GET", &h(&[("Range", v)]), TAG, None, 1000);
        use RangeAnswer::*;
        assert_eq!(r("bytes=0-99"), Part { first: 0, last: 99 });
        assert_eq!(
            r("bytes=500-"),
            Part {
                first: 500,
                last: 999
            }
        );
        assert_eq!(
            r("bytes=-100"),
            Part {
                first: 900,
                last: 999
            }
        );
        assert_eq!(
            r("bytes=-5000"),
            Part {
                first: 0,
                last: 999
            }
        );
        assert_eq!(
            r("bytes=990-5000"),
            Part {
                first: 990,
                last: 999
            }
        );
        assert_eq!(r("BYTES = 1-1"), Part { first: 1, last: 1 });
        assert_eq!(r("bytes=1000-"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=2000-3000, 1500-"), Unsatisfiable);
        // Several ranges: the whole representation.
        assert_eq!(r("bytes=0-1,5-6"), Whole);
        assert_eq!(r("bytes=0-1,5000-6000"), Whole);
        // Invalid or foreign: ignored.
        for v in [
            "bytes=5-1",
            "bytes=a-b",
            "items=0-1",
            "bytes=",
            "bytes=--1",
            "0-1",
        ] {
            assert_eq!(r(v), Whole, "{v}");
        }
        // Only GET has ranges.
        assert_eq!(
            range("HEAD", &h(&[("Range", "bytes=0-1")]), TAG, None, 10),
            Whole
        );
        // An empty representation satisfies no range.
        assert_eq!(
            range("GET", &h(&[("Range", "bytes=0-")]), TAG, None, 0),
            Unsatisfiable
        );
    }

    #[test]
    fn if_range() {
        let m = Some(at(1_000_000));
        let same = http_date(at(1_000_000));
        let old = http_date(at(999_000));
        let r = |ir: &str| {
            range(
                "GET",
                &h(&[("Range", "bytes=0-0"), ("If-Range", ir)]),
                TAG,
                m,
                10,
            )
        };
        let part = RangeAnswer::Part { first: 0, last: 0 };
        assert_eq!(r(TAG), part);
        assert_eq!(r(&same), part);
        assert_eq!(r("\"other\""), RangeAnswer::Whole);
        assert_eq!(r("W/\"abc-1\""), RangeAnswer::Whole);
        assert_eq!(r(&old), RangeAnswer::Whole);
        assert_eq!(r("not a date"), RangeAnswer::Whole);
    }

    #[test]
    fn any_field_values_never_panic() {
        // Values built from the characters the parsers look at, in every mix.
        let alphabet = b"\"W/,* -=0123456789bytesBYTES\t";
        let mut state = 0x2545_f491_u64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            let mut value: String = (0..len)
                .map(|i| alphabet[((state >> (i % 8 * 8)) as usize + i) % alphabet.len()] as char)
                .collect();
            // Half of them well started, so the range parser gets past the unit.
            if state & 1 == 1 {
                value.insert_str(0, "bytes=");
            }
            let fields = h(&[
                ("If-Match", &value),
                ("If-None-Match", &value),
                ("Range", &value),
                ("If-Range", &value),
            ]);
            let _ = evaluate("GET", &fields, TAG, Some(at(1)));
            for len in [0, 1, 1000, u64::MAX] {
                if let RangeAnswer::Part { first, last } = range("GET", &fields, TAG, None, len) {
                    assert!(first <= last && last < len, "{value:?} len {len}");
                }
            }
        }
    }
}
