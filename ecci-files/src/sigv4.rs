//! Presigned URLs for an S3-compatible object store (AWS Signature Version 4,
//! query-string form), path-style: `{endpoint}/{bucket}/{key}?X-Amz-…`.
//!
//! This is what the platform's fileManager hands out from its MinIO store; a
//! local fileManager uses it to front a real S3-compatible server.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use ecci_files::sigv4::{Credentials, Method, S3Presigner};
//!
//! let presigner = S3Presigner::new(
//!     "http://127.0.0.1:9000",
//!     "us-east-1",
//!     Credentials::new("minioadmin", "minioadmin"),
//! )?;
//! let url = presigner.presign_at(
//!     Method::Put, "app1", "model.bin", Duration::from_secs(3600),
//!     UNIX_EPOCH + Duration::from_secs(1_700_000_000),
//! )?;
//! assert!(url.expose().starts_with("http://127.0.0.1:9000/app1/model.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&"));
//! assert_eq!(url.to_string(), "http://127.0.0.1:9000/app1/model.bin?<redacted>");
//! # Ok::<(), ecci_files::sigv4::PresignError>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ecci_proto::file::PresignedUrl;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::transfer::hex;
use crate::uri;

/// The longest validity S3 accepts for a presigned URL: 7 days.
pub const MAX_EXPIRES: Duration = Duration::from_secs(7 * 24 * 3600);

/// The HTTP method a URL is signed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// Download.
    Get,
    /// Upload.
    Put,
}

impl Method {
    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
        }
    }
}

/// S3 credentials. [`Debug`](fmt::Debug) shows only the access key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The access key id.
    pub access_key: String,
    /// The secret key.
    pub secret_key: String,
    /// A session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl Credentials {
    /// Long-term credentials (no session token).
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            session_token: None,
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a URL cannot be presigned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PresignError {
    /// The endpoint is not `http://host[:port]` or `https://host[:port]`.
    #[error("endpoint {endpoint:?} is not http(s)://host[:port]")]
    BadEndpoint {
        /// The endpoint given.
        endpoint: String,
    },
    /// The validity is zero or longer than [`MAX_EXPIRES`].
    #[error("a presigned URL must be valid for 1 s to 7 days, not {secs} s")]
    BadExpiry {
        /// The validity asked for, in whole seconds.
        secs: u64,
    },
    /// The bucket or key is empty.
    #[error("the bucket and the key must not be empty")]
    EmptyName,
    /// The clock is before 1970.
    #[error("the clock is before 1970")]
    Clock,
}

/// Presigns path-style URLs for one S3-compatible endpoint.
#[derive(Debug, Clone)]
pub struct S3Presigner {
    /// `scheme://host[:port]`, default port removed.
    base: String,
    /// The `Host` header a client sends to `base`.
    host: String,
    region: String,
    credentials: Credentials,
}

impl S3Presigner {
    /// A presigner for `endpoint` (`http(s)://host[:port]`, no path) in
    /// `region` (MinIO's default is `us-east-1`).
    ///
    /// # Errors
    ///
    /// [`PresignError::BadEndpoint`] when the endpoint is not of that form.
    pub fn new(
        endpoint: &str,
        region: impl Into<String>,
        credentials: Credentials,
    ) -> Result<Self, PresignError> {
        let bad = || PresignError::BadEndpoint {
            endpoint: endpoint.to_owned(),
        };
        let trimmed = endpoint.trim_end_matches('/');
        let (scheme, authority) = trimmed.split_once("://").ok_or_else(bad)?;
        let default_port = match scheme {
            "http" => ":80",
            "https" => ":443",
            _ => return Err(bad()),
        };
        let ok = !authority.is_empty()
            && authority
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
        if !ok {
            return Err(bad());
        }
        let host = authority
            .strip_suffix(default_port)
            .unwrap_or(authority)
            .to_ascii_lowercase();
        Ok(Self {
            base: format!("{scheme}://{host}"),
            host,
            region: region.into(),
            credentials,
        })
    }

    /// A URL for `method` on `bucket/key`, valid for `expires` from now.
    ///
    /// # Errors
    ///
    /// See [`PresignError`].
    pub fn presign(
        &self,
        method: Method,
        bucket: &str,
        key: &str,
        expires: Duration,
    ) -> Result<PresignedUrl, PresignError> {
        self.presign_at(method, bucket, key, expires, SystemTime::now())
    }

    /// As [`S3Presigner::presign`], signed as of `now`.
    ///
    /// # Errors
    ///
    /// See [`PresignError`].
    pub fn presign_at(
        &self,
        method: Method,
        bucket: &str,
        key: &str,
        expires: Duration,
        now: SystemTime,
    ) -> Result<PresignedUrl, PresignError> {
        if bucket.is_empty() || key.is_empty() {
            return Err(PresignError::EmptyName);
        }
        let mut path = String::from("/");
        uri::encode_into(&mut path, bucket, false);
        path.push('/');
        uri::encode_into(&mut path, key, true);
        let unix = now
            .duration_since(UNIX_EPOCH)
            .map_err(|_| PresignError::Clock)?;
        let signed = sign(&Request {
            method,
            host: &self.host,
            path: &path,
            region: &self.region,
            credentials: &self.credentials,
            unix_secs: unix.as_secs(),
            expires,
        })?;
        Ok(PresignedUrl::new(format!("{}{path}?{signed}", self.base)))
    }
}

/// What one signature covers.
struct Request<'a> {
    method: Method,
    host: &'a str,
    /// The encoded path, as sent.
    path: &'a str,
    region: &'a str,
    credentials: &'a Credentials,
    unix_secs: u64,
    expires: Duration,
}

/// The query string of a presigned request, signature last.
fn sign(req: &Request<'_>) -> Result<String, PresignError> {
    let secs = req.expires.as_secs();
    if secs == 0 || req.expires > MAX_EXPIRES {
        return Err(PresignError::BadExpiry { secs });
    }
    let (date, time) = utc(req.unix_secs);
    let amz_date = format!("{date}T{time}Z");
    let scope = format!("{date}/{}/s3/aws4_request", req.region);
    let credential = format!("{}/{scope}", req.credentials.access_key);
    // Keys in byte order, as the canonical query string needs them.
    let mut params = vec![
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_owned()),
        ("X-Amz-Credential", credential),
        ("X-Amz-Date", amz_date.clone()),
        ("X-Amz-Expires", secs.to_string()),
    ];
    if let Some(token) = &req.credentials.session_token {
        params.push(("X-Amz-Security-Token", token.clone()));
    }
    params.push(("X-Amz-SignedHeaders", "host".to_owned()));
    let mut query = String::new();
    for (key, value) in &params {
        if !query.is_empty() {
            query.push('&');
        }
        query.push_str(key);
        query.push('=');
        uri::encode_into(&mut query, value, false);
    }
    let canonical = format!(
        "{}\n{}\n{query}\nhost:{}\n\nhost\nUNSIGNED-PAYLOAD",
        req.method.as_str(),
        req.path,
        req.host
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", req.credentials.secret_key).as_bytes(),
        date.as_bytes(),
    );
    for part in [req.region, "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex(&hmac(&key, string_to_sign.as_bytes()));
    Ok(format!("{query}&X-Amz-Signature={signature}"))
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any size");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `(YYYYMMDD, HHMMSS)` of a Unix time, in UTC.
fn utc(unix_secs: u64) -> (String, String) {
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    (
        format!("{y:04}{m:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    /// 2013-05-24T00:00:00Z, the date of AWS's published examples.
    const EXAMPLE_TIME: u64 = 1_369_353_600;

    /// AWS's documented presigned GET ("Authenticating Requests: Using Query
    /// Parameters"), a virtual-hosted URL: only the host and path differ from
    /// what [`S3Presigner`] builds, so this pins the whole signing chain.
    #[test]
    fn aws_documented_example() {
        let credentials = Credentials::new(AKID, SECRET);
        let query = sign(&Request {
            method: Method::Get,
            host: "examplebucket.s3.amazonaws.com",
            path: "/test.txt",
            region: "us-east-1",
            credentials: &credentials,
            unix_secs: EXAMPLE_TIME,
            expires: Duration::from_secs(86_400),
        })
        .unwrap();
        assert_eq!(
            query,
            "X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
    }

    #[track_caller]
    fn check(endpoint: &str, expected: Result<(&str, &str), PresignError>) {
        let got = S3Presigner::new(endpoint, "us-east-1", Credentials::new("a", "b"))
            .map(|p| (p.base, p.host));
        let expected = expected.map(|(b, h)| (b.to_owned(), h.to_owned()));
        assert_eq!(got, expected, "endpoint {endpoint:?}");
    }

    #[test]
    fn endpoints() {
        let bad = |e: &str| {
            Err(PresignError::BadEndpoint {
                endpoint: e.to_owned(),
            })
        };
        check(
            "http://127.0.0.1:9000",
            Ok(("http://127.0.0.1:9000", "127.0.0.1:9000")),
        );
        check(
            "http://minio:9000/",
            Ok(("http://minio:9000", "minio:9000")),
        );
        check("http://Minio:80", Ok(("http://minio", "minio")));
        check(
            "https://s3.example:443",
            Ok(("https://s3.example", "s3.example")),
        );
        check(
            "https://s3.example:80",
            Ok(("https://s3.example:80", "s3.example:80")),
        );
        check("http://[::1]:9000", Ok(("http://[::1]:9000", "[::1]:9000")));
        check("ftp://h", bad("ftp://h"));
        check("minio:9000", bad("minio:9000"));
        check("http://", bad("http://"));
        check("http://h/prefix", bad("http://h/prefix"));
        check("http://u:p@h", bad("http://u:p@h"));
    }

    #[test]
    fn path_style_urls() {
        let p =
            S3Presigner::new("http://h:9000", "us-east-1", Credentials::new(AKID, SECRET)).unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(EXAMPLE_TIME);
        let url = p
            .presign_at(
                Method::Put,
                "app1",
                "a b/ü.bin",
                Duration::from_secs(60),
                at,
            )
            .unwrap();
        assert!(
            url.expose()
                .starts_with("http://h:9000/app1/a%20b/%C3%BC.bin?X-Amz-Algorithm="),
            "{url:?}"
        );
        assert!(url.expose().contains("&X-Amz-Expires=60&"));
        let get = p
            .presign_at(
                Method::Get,
                "app1",
                "a b/ü.bin",
                Duration::from_secs(60),
                at,
            )
            .unwrap();
        assert_ne!(url, get, "the method is signed");
        let err = |d: u64| p.presign_at(Method::Get, "b", "k", Duration::from_secs(d), at);
        assert_eq!(err(0), Err(PresignError::BadExpiry { secs: 0 }));
        assert_eq!(err(604_801), Err(PresignError::BadExpiry { secs: 604_801 }));
        assert!(err(604_800).is_ok());
        assert_eq!(
            p.presign_at(Method::Get, "", "k", Duration::from_secs(1), at),
            Err(PresignError::EmptyName)
        );
    }

    #[test]
    fn session_token_is_signed() {
        let mut credentials = Credentials::new(AKID, SECRET);
        credentials.session_token = Some("tok/en".to_owned());
        assert!(!format!("{credentials:?}").contains("tok/en"));
        assert!(!format!("{credentials:?}").contains(SECRET));
        let p = S3Presigner::new("http://h", "r", credentials).unwrap();
        let url = p
            .presign_at(Method::Get, "b", "k", Duration::from_secs(1), UNIX_EPOCH)
            .unwrap();
        assert!(
            url.expose()
                .contains("&X-Amz-Security-Token=tok%2Fen&X-Amz-SignedHeaders=host&")
        );
        assert!(url.expose().contains("X-Amz-Date=19700101T000000Z"));
    }

    #[test]
    fn dates() {
        let check_date = |secs: u64, date: &str, time: &str| {
            assert_eq!(utc(secs), (date.to_owned(), time.to_owned()), "secs {secs}");
        };
        check_date(0, "19700101", "000000");
        check_date(EXAMPLE_TIME, "20130524", "000000");
        check_date(951_782_400, "20000229", "000000");
        check_date(1_709_251_199, "20240229", "235959");
        check_date(4_102_444_800, "21000101", "000000");
        check_date(1_700_000_000, "20231114", "221320");
    }
}
