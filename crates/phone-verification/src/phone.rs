//! Phone numbers: only E.164 (`+`, then 8 to 15 digits, the first not 0) is accepted, checked
//! before any instance exists, so garbage never reaches Twilio, the store or the logs.

use durable_core::Payload;
use durable_twilio::mask_phone;

/// Fewest and most digits after the `+`. E.164 allows at most 15; the shortest numbers in use
/// (country code plus subscriber number) have 8.
pub const E164_DIGITS: std::ops::RangeInclusive<usize> = 8..=15;

/// What a valid number looks like, for error messages.
pub const E164_HINT: &str = "a phone number in E.164 form: '+', the country code and the number, 8 to 15 \
     digits in all, without spaces, dashes or brackets, e.g. \"+14255550123\"";

/// Checks that `phone` is an E.164 number; the error says what a valid one looks like (and
/// never repeats the input in full: it may be huge or personal).
pub fn check_e164(phone: &str) -> Result<(), String> {
    let Some(digits) = phone.strip_prefix('+') else {
        return Err(format!("{} does not start with '+'; send {E164_HINT}", describe(phone)));
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{} has characters other than digits after the '+'; send {E164_HINT}",
            describe(phone)
        ));
    }
    if !E164_DIGITS.contains(&digits.len()) {
        return Err(format!("{} has {} digits; send {E164_HINT}", describe(phone), digits.len()));
    }
    if digits.starts_with('0') {
        return Err(format!(
            "{} starts with 0, which no country code does; send {E164_HINT}",
            describe(phone)
        ));
    }
    Ok(())
}

/// Undoes the one extra level of JSON encoding the official Python client SDK adds: its
/// `start_new` serializes the input with `json.dumps` and posts that text as a JSON string, so a
/// number started through it arrives as the string `"+14255550123"` *with* its quotes (Durable
/// Functions' Python orchestrators decode it again; ours is Rust). A string that is itself a JSON
/// string is replaced by its content, once; anything else is returned as it is. Used by the start
/// guard and the orchestrator alike, so both see the same number.
pub fn unwrap_sdk_encoding(phone: String) -> String {
    if phone.starts_with('"')
        && let Ok(serde_json::Value::String(inner)) = serde_json::from_str(&phone)
    {
        return inner;
    }
    phone
}

/// The phone number of a start request: the input must be one JSON string holding an E.164
/// number (or, from the Python SDK, one holding that JSON string: see
/// [`unwrap_sdk_encoding`]). One encoded more often than that (a caller that encoded it itself
/// too) is refused with a message that says it was encoded twice.
pub fn phone_from_input(input: Option<&Payload>) -> Result<String, String> {
    let shape = format!("the input must be a JSON string holding {E164_HINT}");
    let Some(payload) = input else {
        return Err(format!("a phone number is required: {shape}"));
    };
    let value: serde_json::Value = payload.decode().map_err(|e| format!("{shape} ({e})"))?;
    let serde_json::Value::String(phone) = value else {
        let kind = match value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number (put it in quotes, with its '+')",
            serde_json::Value::Array(_) => "an array",
            serde_json::Value::Object(_) => "an object",
            serde_json::Value::String(_) => unreachable!("handled above"),
        };
        return Err(format!("{shape}; got {kind}"));
    };
    let phone = unwrap_sdk_encoding(phone);
    if phone.contains('"') {
        return Err(format!(
            "the phone number was JSON-encoded twice (the string itself contains quotes): send the body \
             \"+14255550123\", not \"\\\"+14255550123\\\"\"; {shape}"
        ));
    }
    check_e164(&phone)?;
    Ok(phone)
}

/// The country calling code allow-list check: `phone` (already E.164) must start with `+` and
/// one of `codes` (e.g. `["1", "44"]`); an empty list allows every country.
pub fn country_allowed(phone: &str, codes: &[String]) -> bool {
    codes.is_empty() || codes.iter().any(|code| phone[1..].starts_with(code.as_str()))
}

/// How an invalid input is named in messages: masked and bounded, never the whole value.
fn describe(phone: &str) -> String {
    if phone.is_empty() {
        return "the phone number is empty:".to_owned();
    }
    format!("'{}'", mask_phone(phone).escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> Result<String, String> {
        phone_from_input(Some(&Payload::from_json(json).unwrap()))
    }

    #[test]
    fn only_e164_numbers_pass() {
        for ok in ["+14255550123", "+4930123456", "+12345678", "+123456789012345"] {
            assert_eq!(check_e164(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "+",
            "+1",
            "hello",
            "14255550123",
            "+1 425 555 0123",
            "+1-425-555-0123",
            "+1234567",
            "+1234567890123456",
            "+04255550123",
            "+1425555012a",
            "++14255550123",
            "+١٤٢٥٥٥٥٠١٢٣",
        ] {
            let e = check_e164(bad).unwrap_err();
            assert!(e.contains("E.164") && e.contains("+14255550123"), "{bad}: {e}");
        }
    }

    #[test]
    fn inputs_that_are_not_one_json_string_are_explained() {
        assert_eq!(input("\"+14255550123\"").unwrap(), "+14255550123");
        assert!(phone_from_input(None).unwrap_err().contains("a phone number is required"));
        assert!(input("14255550123").unwrap_err().contains("a number (put it in quotes"));
        assert!(input("null").unwrap_err().contains("got null"));
        assert!(input("{\"phone\":\"+14255550123\"}").unwrap_err().contains("got an object"));
        // What the Python SDK sends for "+14255550123": accepted, once unwrapped.
        assert_eq!(input(r#""\"+14255550123\"""#).unwrap(), "+14255550123");
        // A caller that encoded it itself too: refused, saying so.
        let twice = input(r#""\"\\\"+14255550123\\\"\"""#).unwrap_err();
        assert!(twice.contains("encoded twice"), "{twice}");
        assert!(input(r#""\"hello\"""#).unwrap_err().contains("does not start with '+'"));
        assert!(input("\"hello\"").unwrap_err().contains("does not start with '+'"));
        assert!(input("\"+1\"").unwrap_err().contains("has 1 digits"));
    }

    #[test]
    fn messages_never_echo_a_huge_or_full_input() {
        let huge = format!("\"+1{}\"", "9".repeat(1_000_000));
        let e = input(&huge).unwrap_err();
        assert!(e.len() < 600, "{} bytes", e.len());
        let e = input("\"+1987654321a\"").unwrap_err();
        assert!(!e.contains("98765432"), "{e}");
    }

    #[test]
    fn country_codes_filter_by_prefix() {
        let codes = vec!["1".to_owned(), "44".to_owned()];
        assert!(country_allowed("+14255550123", &codes));
        assert!(country_allowed("+447700900123", &codes));
        assert!(!country_allowed("+33612345678", &codes));
        assert!(country_allowed("+33612345678", &[]));
    }
}
