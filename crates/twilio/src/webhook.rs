//! Twilio's webhook signatures (`X-Twilio-Signature`), to sign requests (the fake) and to
//! check them (a server receiving status callbacks or inbound messages).
//!
//! Twilio signs every webhook request with HMAC-SHA1, keyed with the account's auth token, over
//! the full URL it called (scheme, host, port if any, path and query string) followed by each
//! POST parameter's name and value, sorted by name, without separators; the header carries the
//! Base64 of the MAC. A request whose signature does not match did not come from Twilio (or
//! was changed on the way) and must be refused.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The signature of a form POST to `url` with `params`: Base64(HMAC-SHA1(auth token, url ‖
/// name₁ ‖ value₁ ‖ name₂ ‖ value₂ …)), parameters sorted by name (then value, for repeated
/// names).
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `header` is Twilio's signature of a form POST to `url` with `params`. Compared in
/// constant time. Like Twilio's own helper libraries, the URL is also tried with its default
/// port added or removed (`https://host/…` vs `https://host:443/…`), since proxies differ in
/// which form reaches the application.
pub fn is_valid(auth_token: &str, url: &str, params: &[(String, String)], header: Option<&str>) -> bool {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else { return false };
    let mut valid = subtle::Choice::from(0);
    for candidate in url_variants(url) {
        let expected = signature(auth_token, &candidate, params);
        valid |= expected.as_bytes().ct_eq(header.as_bytes());
    }
    valid.into()
}

/// `url` as given, and with its scheme's default port toggled (text only: the URL Twilio signs
/// is the one it was configured with, byte for byte).
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some((scheme, after)) = url.split_once("://") else { return out };
    let default = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    // The port follows the last ':' unless that ':' is inside an IPv6 literal.
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    match port {
        Some(p) if p == default => out.push(format!("{scheme}://{host}{rest}")),
        Some(_) => {}
        None => out.push(format!("{scheme}://{host}:{default}{rest}")),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// The worked example of Twilio's webhook security documentation: auth token `12345`, this
    /// URL and these parameters sign to `0/KCTR6DLpKmkAf8muzZqo1nDgQ=`.
    #[test]
    fn twilios_published_example_signs_and_validates() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        // Out of order on purpose: the signature sorts them.
        let params = form(&[
            ("To", "+18005551212"),
            ("CallSid", "CA1234567890ABCDE"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("Caller", "+12349013030"),
        ]);
        assert_eq!(signature("12345", url, &params), "0/KCTR6DLpKmkAf8muzZqo1nDgQ=");
        assert!(is_valid("12345", url, &params, Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")));
        // The same request through a proxy that spells out the default port.
        assert!(is_valid(
            "12345",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params,
            Some("0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
        ));
    }

    #[test]
    fn anything_changed_or_missing_is_invalid() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = form(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert!(!is_valid("12345", url, &params, None));
        assert!(!is_valid("12345", url, &params, Some("")));
        assert!(!is_valid("54321", url, &params, Some(good)), "another auth token");
        assert!(!is_valid("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", &params, Some(good)));
        assert!(!is_valid("12345", "https://evil.example/myapp.php?foo=1&bar=2", &params, Some(good)));
        let mut tampered = params.clone();
        tampered[2].1 = "9999".into();
        assert!(!is_valid("12345", url, &tampered, Some(good)));
        let mut extra = params.clone();
        extra.push(("Body".into(), "x".into()));
        assert!(!is_valid("12345", url, &extra, Some(good)));
        assert!(!is_valid("12345", url, &params, Some(&good[..good.len() - 1])), "one byte short");
    }

    #[test]
    fn url_variants_toggle_only_the_default_port() {
        assert_eq!(
            url_variants("https://a.example/x?y=1"),
            ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
        );
        assert_eq!(
            url_variants("https://a.example:443/x"),
            ["https://a.example:443/x", "https://a.example/x"]
        );
        assert_eq!(url_variants("http://127.0.0.1:8080/x"), ["http://127.0.0.1:8080/x"]);
    }
}
