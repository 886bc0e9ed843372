//! Verification codes and their keyed MACs.
//!
//! A code is drawn from the OS CSPRNG and leaves the process only inside the SMS. What is
//! stored (activity result, raised events) is `HMAC-SHA256(key, instance_id ‖ 0 ‖ code)`, with
//! the key kept outside the database, and tags are compared in constant time.

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
#[derive(Clone)]
pub struct VerificationKey([u8; 32]);

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VerificationKey(***)")
    }
}

impl VerificationKey {
    /// A new random key.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)?;
        Ok(VerificationKey(key))
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
        Ok(VerificationKey(key))
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        encode_hex(&self.0)
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

    /// The MAC of `code` for `instance_id`: HMAC-SHA256 truncated to 128 bits, as hex. 128 bits
    /// leave no room for a forgery without the key, and every parked verification stores one.
    pub fn tag(&self, instance_id: &str, code: &Code) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(instance_id.as_bytes());
        mac.update(&[0]);
        mac.update(code.reveal().as_bytes());
        encode_hex(&mac.finalize().into_bytes()[..16])
    }
}

/// Compares two hex tags in constant time (tags have a fixed length, so lengths leak nothing).
pub fn tags_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Writes `contents` to `path` readable by the owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
