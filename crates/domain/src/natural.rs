//! Natural order for names people number: "4号楼" before "34号楼",
//! "Room 9" before "Room 10". Building, room and area lists use it
//! (`dormwatt status`, the student pages, later the staff console), since
//! plain string order puts "34号楼" first.

use std::cmp::Ordering;

/// Compares two names with runs of ASCII digits taken as numbers (leading
/// zeros ignored, then the shorter run first so "07" and "7" still differ)
/// and everything else character by character. A total order: equal only
/// for equal strings.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    loop {
        match (a.chars().next(), b.chars().next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (run_a, rest_a) = split_digits(a);
                let (run_b, rest_b) = split_digits(b);
                let (num_a, num_b) = (run_a.trim_start_matches('0'), run_b.trim_start_matches('0'));
                let by_value = num_a
                    .len()
                    .cmp(&num_b.len())
                    .then_with(|| num_a.cmp(num_b))
                    .then_with(|| run_a.len().cmp(&run_b.len()));
                if by_value != Ordering::Equal {
                    return by_value;
                }
                (a, b) = (rest_a, rest_b);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(&y);
                }
                (a, b) = (&a[x.len_utf8()..], &b[y.len_utf8()..]);
            }
        }
    }
}

fn split_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// Sorts names (or anything with a name) in natural order.
pub fn sort_natural_by_key<T>(items: &mut [T], key: impl Fn(&T) -> &str) {
    items.sort_by(|x, y| natural_cmp(key(x), key(y)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_inside_names_compare_as_numbers() {
        let mut names = vec![
            "47号楼",
            "4号楼",
            "34号楼",
            "中蓝二期",
            "8号楼",
            "中蓝一期A区",
            "7号楼",
            "36号楼",
        ];
        sort_natural_by_key(&mut names, |s| s);
        assert_eq!(
            names,
            [
                "4号楼",
                "7号楼",
                "8号楼",
                "34号楼",
                "36号楼",
                "47号楼",
                "中蓝一期A区",
                "中蓝二期"
            ]
        );
        assert_eq!(natural_cmp("Room 9", "Room 10"), Ordering::Less);
        assert_eq!(natural_cmp("A2-10", "A2-9"), Ordering::Greater);
        assert_eq!(natural_cmp("x", "x1"), Ordering::Less);
    }

    #[test]
    fn it_is_a_total_order() {
        assert_eq!(natural_cmp("7", "07"), Ordering::Less);
        assert_eq!(natural_cmp("07", "7"), Ordering::Greater);
        assert_eq!(natural_cmp("4号楼", "4号楼"), Ordering::Equal);
        assert_eq!(natural_cmp("", ""), Ordering::Equal);
        // Huge digit runs do not overflow.
        assert_eq!(
            natural_cmp("9".repeat(40).as_str(), "1".repeat(41).as_str()),
            Ordering::Less
        );
    }
}
