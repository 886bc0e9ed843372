//! Verification codes and their keyed MACs.
//!
//! A challenge's code is *derived* from the verification key, never stored: digits drawn by
//! rejection sampling from `HMAC-SHA256(code key, instance ‖ execution ‖ challenge ‖ counter)`,
//! where the code key is itself `HMAC-SHA256(key, "durable/sms-code/v1")`. So a re-run of the
//! sending activity (after a crash between Twilio accepting the SMS and the activity's commit,
//! or a retry after a timeout) sends the same code, only the key holder can compute it, and it
//! is uniform over the code space. The code leaves the process only inside the SMS. What is
//! stored (activity result, raised events) is `HMAC-SHA256(key, instance_id ‖ 0 ‖ code)`, and
//! tags are compared in constant time.

use durable_runtime::private_files::write_private;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::fmt;
use std::path::Path;
use subtle::ConstantTimeEq;

/// Shortest and longest supported code lengths.
pub const CODE_DIGITS: std::ops::RangeInclusive<u32> = 4..=10;

/// A verification code, printed zero-padded to its length. Not `Debug`-printable in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Code {
    value: u64,
    digits: u32,
}

impl Code {
    /// A uniformly random code of `digits` digits from the OS CSPRNG (rejection sampling, so
    /// no modulo bias).
    pub fn random(digits: u32) -> Result<Code, getrandom::Error> {
        assert!(CODE_DIGITS.contains(&digits), "code length out of range");
        let bound = 10u64.pow(digits);
        // The largest multiple of `bound` that fits in u64: values at or above it are redrawn.
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes)?;
            let v = u64::from_le_bytes(bytes);
            if v < zone {
                return Ok(Code { value: v % bound, digits });
            }
        }
    }

    /// Parses a guess: a JSON number `0 ≤ n < 10^digits`, or a string of 1 to `digits` ASCII
    /// digits (so `"0042"` and `42` are the same 4-digit code).
    pub fn from_guess(json: &serde_json::Value, digits: u32) -> Result<Code, String> {
        let bound = 10u64.pow(digits);
        let explain = || {
            format!(
                "the answer must be the {digits}-digit code as a JSON number (e.g. 42) or string (e.g. \"0042\")"
            )
        };
        let value = match json {
            serde_json::Value::Number(n) => n.as_u64().filter(|v| *v < bound).ok_or_else(explain)?,
            serde_json::Value::String(s)
                if !s.is_empty() && s.len() <= digits as usize && s.bytes().all(|b| b.is_ascii_digit()) =>
            {
                s.parse::<u64>().map_err(|_| explain())?
            }
            _ => return Err(explain()),
        };
        Ok(Code { value, digits })
    }

    /// The code as the user sees it, zero-padded.
    pub fn reveal(&self) -> String {
        format!("{:0width$}", self.value, width = self.digits as usize)
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code(<{} digits>)", self.digits)
    }
}

/// The secret key of the code MACs (32 bytes). Kept outside the database.
///
/// Holds the MAC states of its three uses ready keyed (tags, codes, pseudonyms): each use clones
/// one instead of setting an HMAC key up again.
#[derive(Clone)]
pub struct VerificationKey {
    bytes: [u8; 32],
    tags: Hmac<Sha256>,
    codes: Hmac<Sha256>,
    pseudonyms: Hmac<Sha256>,
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationKey(***)")
    }
}

impl VerificationKey {
    fn new(bytes: [u8; 32]) -> Self {
        let keyed = |key: &[u8]| Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        let tags = keyed(&bytes);
        // A key for each other purpose, derived from the verification key (`HMAC-SHA256(key,
        // label)`), so codes, pseudonyms and answer tags never share a key.
        let subkey = |label: &[u8]| {
            let mut mac = tags.clone();
            mac.update(label);
            keyed(&mac.finalize().into_bytes())
        };
        VerificationKey {
            bytes,
            codes: subkey(CODE_KEY_LABEL),
            pseudonyms: subkey(PSEUDONYM_KEY_LABEL),
            tags,
        }
    }

    /// A new random key.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(VerificationKey::new(key))
    }

    /// Parses 64 hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, String> {
        let hex = hex.trim();
        let bytes = decode_hex(hex).filter(|b| b.len() == 32).ok_or_else(|| {
            "the verification key must be 64 hex digits (32 random bytes), e.g. from `openssl rand -hex 32`"
                .to_string()
        })?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&bytes);
        Ok(VerificationKey::new(key))
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.bytes)
    }

    /// Loads the key from `path`, creating it (owner-only permissions) on first use.
    pub fn load_or_create(path: &Path) -> std::io::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate().map_err(std::io::Error::other)?;
                write_private(path, &key.to_hex())?;
                Ok(key)
            }
            Err(e) => Err(e),
        }
    }

    /// The code of challenge `challenge` of execution `execution_id` of instance `instance_id`:
    /// the same for every call with the same arguments (so a re-sent SMS carries the same
    /// code), unpredictable without the key, and uniform over the `digits`-digit codes.
    ///
    /// Each input is length-prefixed, so distinct (instance, execution, challenge) triples never
    /// feed the MAC the same bytes. Each MAC output gives four 64-bit candidates; a candidate in
    /// the top `2^64 mod 10^digits` values is rejected (no modulo bias), which happens with
    /// probability below 10^-9, and the counter moves on only if all four are rejected.
    pub fn derive_code(&self, instance_id: &str, execution_id: &str, challenge: u32, digits: u32) -> Code {
        assert!(CODE_DIGITS.contains(&digits), "code length out of range");
        let bound = 10u64.pow(digits);
        let zone = u64::MAX - (u64::MAX % bound);
        for counter in 0u32.. {
            let mut mac = self.codes.clone();
            for part in [instance_id.as_bytes(), execution_id.as_bytes()] {
                mac.update(&(part.len() as u64).to_be_bytes());
                mac.update(part);
            }
            mac.update(&challenge.to_be_bytes());
            mac.update(&counter.to_be_bytes());
            let out = mac.finalize().into_bytes();
            for chunk in out.chunks_exact(8) {
                let v = u64::from_be_bytes(chunk.try_into().expect("8-byte chunk"));
                if v < zone {
                    return Code { value: v % bound, digits };
                }
            }
        }
        unreachable!("2^32 MAC outputs all rejected")
    }

    /// A keyed pseudonym of `value` (e.g. a phone number or a client address) for lookups and
    /// rate limits: `HMAC-SHA256(pseudonym key, value)` truncated to 128 bits, as hex. Stable
    /// for a given verification key (so every node computes the same), meaningless without it.
    pub fn pseudonym(&self, value: &str) -> String {
        let mut mac = self.pseudonyms.clone();
        mac.update(value.as_bytes());
        encode_hex(&mac.finalize().into_bytes()[..16])
    }

    /// The MAC of `code` for `instance_id`: HMAC-SHA256 truncated to 128 bits, as hex. 128 bits
    /// leave no room for a forgery without the key, and every parked verification stores one.
    pub fn tag(&self, instance_id: &str, code: &Code) -> String {
        let mut mac = self.tags.clone();
        mac.update(instance_id.as_bytes());
        mac.update(&[0]);
        mac.update(code.reveal().as_bytes());
        encode_hex(&mac.finalize().into_bytes()[..16])
    }
}

/// Label of the key codes are derived with.
const CODE_KEY_LABEL: &[u8] = b"durable/sms-code/v1";
/// Label of the key of pseudonyms (phone numbers, client addresses).
const PSEUDONYM_KEY_LABEL: &[u8] = b"durable/pseudonym/v1";

/// Compares two hex tags in constant time (tags have a fixed length, so lengths leak nothing).
pub fn tags_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn encode_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn random_codes_are_in_range_and_vary() {
        let codes: Vec<u64> = (0..2000).map(|_| Code::random(4).unwrap().value).collect();
        assert!(codes.iter().all(|c| *c < 10_000));
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert!(distinct.len() > 1500, "2000 draws from 10,000 values should rarely repeat");
        assert_eq!(Code::random(10).unwrap().reveal().len(), 10);
    }

    #[test]
    fn digits_are_uniform_enough() {
        // Chi-squared over the last digit of 100,000 codes: 9 degrees of freedom, p=0.001 at 27.9.
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[(Code::random(6).unwrap().value % 10) as usize] += 1;
        }
        let expected = 10_000.0;
        let chi2: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
        assert!(chi2 < 27.9, "chi2 = {chi2}");
    }

    #[test]
    fn guesses_parse_as_numbers_or_digit_strings() {
        assert_eq!(Code::from_guess(&json!(42), 4).unwrap().reveal(), "0042");
        assert_eq!(Code::from_guess(&json!("0042"), 4).unwrap().reveal(), "0042");
        assert_eq!(Code::from_guess(&json!("42"), 4).unwrap().reveal(), "0042");
        assert!(Code::from_guess(&json!(10000), 4).is_err());
        assert!(Code::from_guess(&json!(-1), 4).is_err());
        assert!(Code::from_guess(&json!(4.2), 4).is_err());
        assert!(Code::from_guess(&json!("12345"), 4).is_err());
        assert!(Code::from_guess(&json!("4a"), 4).is_err());
        assert!(Code::from_guess(&json!(null), 4).is_err());
    }

    #[test]
    fn tags_bind_the_code_to_the_instance() {
        let key = VerificationKey::generate().unwrap();
        let code = Code::from_guess(&json!(1234), 4).unwrap();
        let t = key.tag("a", &code);
        assert_eq!(t.len(), 32);
        assert!(tags_match(&t, &key.tag("a", &Code::from_guess(&json!("1234"), 4).unwrap())));
        assert!(!tags_match(&t, &key.tag("b", &code)));
        assert!(!tags_match(&t, &key.tag("a", &Code::from_guess(&json!(1235), 4).unwrap())));
        let other = VerificationKey::generate().unwrap();
        assert!(!tags_match(&t, &other.tag("a", &code)));
        assert!(!format!("{code:?}{key:?}").contains("1234"));
    }

    /// A fixed key, so the statistical tests below are deterministic (they cannot flake).
    fn fixed_key() -> VerificationKey {
        VerificationKey::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f").unwrap()
    }

    /// Pearson's chi-squared statistic of `counts` against a uniform expectation.
    fn chi2(counts: &[u32]) -> f64 {
        let expected = counts.iter().map(|&c| f64::from(c)).sum::<f64>() / counts.len() as f64;
        counts.iter().map(|&c| (f64::from(c) - expected).powi(2) / expected).sum()
    }

    #[test]
    fn derived_codes_are_reproducible_and_need_the_key() {
        let key = fixed_key();
        let a = key.derive_code("inst", "exec", 1, 4);
        assert_eq!(a, key.derive_code("inst", "exec", 1, 4), "a re-send must carry the same code");
        assert_eq!(a.reveal().len(), 4);
        assert_eq!(key.derive_code("inst", "exec", 1, 10).reveal().len(), 10);
        // The length prefixes keep ("ab", "c") and ("a", "bc") apart.
        let split = |i: &str, e: &str| key.derive_code(i, e, 1, 10);
        assert_ne!(split("ab", "c"), split("a", "bc"));
        let other = VerificationKey::generate().unwrap();
        let ours: Vec<_> = (0..20).map(|c| key.derive_code("inst", "exec", c, 10)).collect();
        let theirs: Vec<_> = (0..20).map(|c| other.derive_code("inst", "exec", c, 10)).collect();
        assert!(ours.iter().zip(&theirs).all(|(a, b)| a != b), "another key derives other codes");
        assert!(!format!("{a:?}").contains(&a.reveal()));
    }

    #[test]
    fn derived_codes_are_uniform_over_the_code_space() {
        // 40,000 verifications: chi-squared of each digit position (9 degrees of freedom, the
        // 0.1 % critical value is 27.9) and of the first three digits (999 d.f., 1142.8).
        let key = fixed_key();
        let mut positions = [[0u32; 10]; 4];
        let mut first3 = vec![0u32; 1000];
        for i in 0..40_000 {
            let code = key.derive_code(&format!("{i:032x}"), "0123456789abcdef", 1, 4).value;
            assert!(code < 10_000);
            let digits = [code / 1000, code / 100 % 10, code / 10 % 10, code % 10];
            for (p, d) in digits.iter().enumerate() {
                positions[p][*d as usize] += 1;
            }
            first3[(code / 10) as usize] += 1;
        }
        for (p, counts) in positions.iter().enumerate() {
            let x = chi2(counts);
            assert!(x < 27.9, "digit {p}: chi2 = {x}");
        }
        let x = chi2(&first3);
        assert!(x < 1142.8, "first three digits: chi2 = {x}");
    }

    #[test]
    fn derived_codes_are_independent_per_instance_execution_and_challenge() {
        // Neighbouring inputs must give unrelated codes: the difference of the codes of two
        // inputs that differ in one component is uniform (chi-squared over its last two digits,
        // 99 d.f., 0.1 % critical value 148.3), and equal codes occur at the chance rate 10^-4.
        let key = fixed_key();
        type Input = (String, String, u32);
        type Pair = fn(u32) -> (Input, Input);
        let pairs: [(&str, Pair); 3] = [
            ("challenge", |i| ((format!("i{i}"), "e".into(), 1), (format!("i{i}"), "e".into(), 2))),
            ("execution", |i| ((format!("i{i}"), "e1".into(), 1), (format!("i{i}"), "e2".into(), 1))),
            ("instance", |i| ((format!("i{i}"), "e".into(), 1), (format!("i{}", i + 1), "e".into(), 1))),
        ];
        for (what, pair) in pairs {
            let mut differences = vec![0u32; 100];
            let mut equal = 0;
            for i in 0..20_000 {
                let ((i1, e1, c1), (i2, e2, c2)) = pair(i);
                let a = key.derive_code(&i1, &e1, c1, 4).value;
                let b = key.derive_code(&i2, &e2, c2, 4).value;
                differences[((a + 10_000 - b) % 100) as usize] += 1;
                equal += u32::from(a == b);
            }
            let x = chi2(&differences);
            assert!(x < 148.3, "{what}: chi2 of differences = {x}");
            // Expected 2 of 20,000; 12 or more has a chance below 10^-6.
            assert!(equal < 12, "{what}: {equal} equal codes");
        }
    }

    #[test]
    fn pseudonyms_are_stable_keyed_and_opaque() {
        let key = fixed_key();
        let p = key.pseudonym("+14255550123");
        assert_eq!(p, key.pseudonym("+14255550123"));
        assert_eq!(p.len(), 32);
        assert!(!p.contains("4255550123"));
        assert_ne!(p, key.pseudonym("+14255550124"));
        assert_ne!(p, VerificationKey::generate().unwrap().pseudonym("+14255550123"));
    }

    #[test]
    fn keys_round_trip_and_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("verification.key");
        let a = VerificationKey::load_or_create(&path).unwrap();
        let b = VerificationKey::load_or_create(&path).unwrap();
        assert_eq!(a.to_hex(), b.to_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(VerificationKey::from_hex("abc").is_err());
    }
}
