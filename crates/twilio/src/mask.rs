//! Masking phone numbers for logs.

/// Inputs longer than this (after any channel prefix and `+`) are summarised, not masked.
pub const MAX_MASKED_CHARS: usize = 32;

/// Longest channel name kept (`whatsapp`, `messenger`); longer prefixes are part of the number.
const MAX_CHANNEL_CHARS: usize = 16;

/// Masks a phone number for logs and diagnostics, keeping just enough to tell numbers apart:
/// the channel prefix, the `+`, the first digit and the last four of a full number
/// (`+14155551234` → `+1******1234`). Shorter inputs keep less (5–7 characters keep the last two,
/// fewer keep nothing), so short codes and garbage input are not revealed either. The length is
/// kept, which helps spot a truncated number. The output is bounded: an input longer than
/// [`MAX_MASKED_CHARS`] characters keeps only its first character and its length
/// (`h…[1000000 characters]`), so a megabyte of "phone number" never fills a log line.
///
/// ```
/// use durable_twilio::mask_phone;
/// assert_eq!(mask_phone("+14155551234"), "+1******1234");
/// assert_eq!(mask_phone("whatsapp:+14155551234"), "whatsapp:+1******1234");
/// assert_eq!(mask_phone("4321"), "****");
/// ```
pub fn mask_phone(phone: &str) -> String {
    // Channel addresses (`whatsapp:+1…`, `messenger:…`) keep their channel name: it is not
    // personal and says which route a message took.
    let (channel, rest) = match phone.split_once(':') {
        Some((c, r))
            if !c.is_empty()
                && c.len() <= MAX_CHANNEL_CHARS
                && c.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            (&phone[..=c.len()], r)
        }
        _ => ("", phone),
    };
    let (plus, number) = match rest.strip_prefix('+') {
        Some(n) => ("+", n),
        None => ("", rest),
    };
    let n = number.chars().count();
    if n > MAX_MASKED_CHARS {
        let first: String = number.chars().take(1).map(printable).collect();
        return format!("{channel}{plus}{first}…[{n} characters]");
    }
    let chars: Vec<char> = number.chars().collect();
    let (keep_head, keep_tail) = match n {
        8.. => (1, 4),
        5..=7 => (0, 2),
        _ => (0, 0),
    };
    let mut out = String::with_capacity(phone.len());
    out.push_str(channel);
    out.push_str(plus);
    out.extend(chars[..keep_head].iter().copied().map(printable));
    out.extend(std::iter::repeat_n('*', n - keep_head - keep_tail));
    out.extend(chars[n - keep_tail..].iter().copied().map(printable));
    out
}

/// Kept characters go to logs: control and bidirectional characters become `?`, so a
/// "number" cannot break a log line or reorder its text.
fn printable(c: char) -> char {
    if c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    {
        '?'
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::mask_phone;

    #[test]
    fn masks_like_the_docs_say() {
        let cases = [
            ("+14155551234", "+1******1234"),
            ("+447700900123", "+4*******0123"),
            ("14155551234", "1******1234"),
            ("+15005550006", "+1******0006"),
            ("whatsapp:+14155551234", "whatsapp:+1******1234"),
            ("+12345678", "+1***5678"),
            ("1234567", "*****67"),
            ("12345", "***45"),
            ("1234", "****"),
            ("+1", "+*"),
            ("+", "+"),
            ("", ""),
            ("not a number at all", "n************** all"),
            ("+1:5551234", "+1****1234"),
            ("ünïcödé-num", "ü******-num"),
        ];
        for (input, want) in cases {
            assert_eq!(mask_phone(input), want, "input {input:?}");
        }
    }

    #[test]
    fn output_is_bounded_and_printable() {
        let huge = format!("+1{}", "9".repeat(1_000_000));
        assert_eq!(mask_phone(&huge), "+1…[1000001 characters]");
        let channel = format!("{}:+14155551234", "a".repeat(1000));
        assert!(mask_phone(&channel).chars().count() < 64, "{}", mask_phone(&channel));
        assert_eq!(mask_phone("\n1234567890\u{202e}"), "?*******890?");
    }

    #[test]
    fn never_reveals_the_middle_digits() {
        let masked = mask_phone("+14155559876");
        assert!(!masked.contains("555"), "{masked}");
    }
}
