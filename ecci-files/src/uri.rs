//! Percent-encoding of URL path segments and query values, as SigV4 defines it
//! (RFC 3986 unreserved characters pass, every other byte is `%XX` uppercase),
//! and the decoding the local server needs; and the origin of a URL, for the
//! origin policy.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The origin of `url`, serialized as `scheme://host[:port]` (the port only
/// when it is not the scheme's default; host lowercased), or `None` when `url`
/// is not an absolute `http`/`https` URL. Never contains a path or a query,
/// so it may be shown where the URL may not.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(url).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    let origin = parsed.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

/// Every byte but the RFC 3986 unreserved characters `A–Z a–z 0–9 - _ . ~`:
/// what SigV4 encodes in a path segment and a query value.
const SIGV4: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// [`SIGV4`], but `/` passes: an object key in a SigV4 path.
const SIGV4_PATH: &AsciiSet = &SIGV4.remove(b'/');

/// Appends `input` to `out`, percent-encoding every byte but `A–Z a–z 0–9 - _ . ~`
/// (and `/` when `keep_slash`) as `%XX`, uppercase.
pub(crate) fn encode_into(out: &mut String, input: &str, keep_slash: bool) {
    let set = if keep_slash { SIGV4_PATH } else { SIGV4 };
    out.extend(utf8_percent_encode(input, set));
}

/// `input` percent-encoded (see [`encode_into`]).
#[cfg(any(test, feature = "local"))]
pub(crate) fn encode(input: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    encode_into(&mut out, input, keep_slash);
    out
}

/// Decodes `%XX` escapes; `None` when an escape is malformed (a `%` not
/// followed by two hex digits: `percent_decode` would pass it through as it
/// is) or the result is not UTF-8.
#[cfg(any(test, feature = "local"))]
pub(crate) fn decode(input: &str) -> Option<String> {
    let well_formed = input.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    percent_encoding::percent_decode_str(input)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decode_inverts_encode(input in any::<String>(), keep_slash in any::<bool>()) {
            let encoded = encode(&input, keep_slash);
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_graphic()));
            prop_assert!(keep_slash || !encoded.contains('/'));
            prop_assert_eq!(decode(&encoded), Some(input));
        }

        #[test]
        fn decode_never_panics(input in any::<String>()) {
            let _ = decode(&input);
        }
    }

    #[track_caller]
    fn check(input: &str, keep_slash: bool, expected: &str) {
        assert_eq!(encode(input, keep_slash), expected, "input {input:?}");
        assert_eq!(
            decode(expected).as_deref(),
            Some(input),
            "decoding {expected:?}"
        );
    }

    #[test]
    fn encoding() {
        check("abc-XYZ_0.9~", false, "abc-XYZ_0.9~");
        check("a b+c", false, "a%20b%2Bc");
        check("a/b", false, "a%2Fb");
        check("a/b", true, "a/b");
        check("é", false, "%C3%A9");
        check("=&?#%", false, "%3D%26%3F%23%25");
        check("", false, "");
    }

    #[test]
    fn origins() {
        #[track_caller]
        fn check(url: &str, expected: Option<&str>) {
            assert_eq!(origin_of(url).as_deref(), expected, "url {url:?}");
        }
        check(
            "http://MinIO:9000/app/x.bin?X-Amz-Signature=s",
            Some("http://minio:9000"),
        );
        check("https://s3.example:443/b/k", Some("https://s3.example"));
        check("http://127.0.0.1:80/", Some("http://127.0.0.1"));
        check("http://[::1]:9000/b", Some("http://[::1]:9000"));
        check("http://user:pw@host:1/b", Some("http://host:1"));
        check("ftp://host/b", None);
        check("file:///etc/passwd", None);
        check("/relative/path", None);
        check("", None);
    }

    #[test]
    fn bad_escapes() {
        for bad in ["%", "%4", "%zz", "%C3", "a%g0"] {
            assert_eq!(decode(bad), None, "input {bad:?}");
        }
        assert_eq!(decode("%41%62").as_deref(), Some("Ab"));
    }
}
