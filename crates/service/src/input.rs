//! What students type, parsed once for every use case that takes it: a
//! Chinese input method's full-width digits are the ASCII ones, and a meter
//! number is 12 digits whether it is typed to bind a meter or to buy for
//! someone else (issue 11 items 8 and 11).

/// Full-width digits, spaces and signs (a Chinese input method's `３０`)
/// as ASCII, trimmed.
pub fn normalise_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '０'..='９' => {
                char::from_u32(u32::from(c) - u32::from('０') + u32::from('0')).unwrap_or(c)
            }
            '　' => ' ',
            '＋' => '+',
            '－' => '-',
            '．' => '.',
            _ => c,
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// A typed meter number that is not 12 digits (letters, too short, too
/// long): the student gets the 12-digit hint, never "not found".
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a meter number has 12 digits")]
pub struct NotTwelveDigits;

/// A typed meter number: full-width digits normalised, spaces ignored,
/// then exactly 12 digits.
pub fn meter_number(typed: &str) -> Result<domain::MeterAddress, NotTwelveDigits> {
    domain::MeterAddress::parse(&normalise_digits(typed)).map_err(|_| NotTwelveDigits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_width_digits_are_normalised() {
        assert_eq!(normalise_digits(" ３０　"), "30");
        assert_eq!(normalise_digits("２.５"), "2.5");
    }

    #[test]
    fn meter_numbers_are_twelve_digits() {
        assert_eq!(
            meter_number("２０１７ ０１０１ ０００１").map(|a| a.as_str().to_owned()),
            Ok("201701010001".to_owned())
        );
        assert_eq!(meter_number("20170101000"), Err(NotTwelveDigits));
        assert_eq!(meter_number("20170101000a"), Err(NotTwelveDigits));
        assert_eq!(meter_number("2017010100011"), Err(NotTwelveDigits));
        assert_eq!(meter_number(""), Err(NotTwelveDigits));
    }
}
