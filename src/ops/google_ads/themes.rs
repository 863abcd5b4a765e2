//! Themes: the texts of the Responsive Search Ad that `google_ads.theme_rsa` adds. A few are
//! built in; a job may bring its own `headlines` / `descriptions` in `params`, and an item may
//! override them in its payload. Every text is checked against the RSA limits before any call
//! (at submission for params, before the create for item overrides), so Google never has to
//! reject a theme.

use std::collections::HashSet;

use serde_json::Value;

pub const MIN_HEADLINES: usize = 3;
pub const MAX_HEADLINES: usize = 15;
pub const MAX_HEADLINE_CHARS: usize = 30;
pub const MIN_DESCRIPTIONS: usize = 2;
pub const MAX_DESCRIPTIONS: usize = 4;
pub const MAX_DESCRIPTION_CHARS: usize = 90;
/// Label names are written into GAQL string literals, so they keep to a safe alphabet.
pub const MAX_LABEL_CHARS: usize = 80;

/// Headlines and descriptions of one ad.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThemeTexts {
    pub headlines: Vec<String>,
    pub descriptions: Vec<String>,
}

impl ThemeTexts {
    /// True when an ad's headlines are exactly these (in any order): how an ad we created is
    /// recognised when its label never got attached.
    pub fn matches_headlines(&self, headlines: &[String]) -> bool {
        let ours: HashSet<&str> = self.headlines.iter().map(String::as_str).collect();
        let theirs: HashSet<&str> = headlines.iter().map(String::as_str).collect();
        ours == theirs && headlines.len() == self.headlines.len()
    }
}

fn texts(headlines: &[&str], descriptions: &[&str]) -> ThemeTexts {
    ThemeTexts {
        headlines: headlines.iter().map(|s| s.to_string()).collect(),
        descriptions: descriptions.iter().map(|s| s.to_string()).collect(),
    }
}

/// The built-in themes by key.
pub fn builtin(key: &str) -> Option<ThemeTexts> {
    Some(match key {
        "black_friday" => texts(
            &[
                "Black Friday Deals",
                "Up to 50% Off Today",
                "Shop Black Friday Now",
                "Limited Time Offers",
            ],
            &[
                "Our biggest sale of the year. Shop now while stocks last.",
                "Free shipping on all Black Friday orders.",
            ],
        ),
        "cyber_monday" => texts(
            &[
                "Cyber Monday Deals",
                "Online Only Savings",
                "Shop Cyber Monday",
                "Deals End at Midnight",
            ],
            &[
                "Exclusive online prices for Cyber Monday only.",
                "Order today and save on every purchase.",
            ],
        ),
        "christmas" => texts(
            &[
                "Christmas Gift Ideas",
                "Holiday Deals Are Here",
                "Shop Christmas Gifts",
                "Delivered Before Xmas",
            ],
            &[
                "Find the perfect gift for everyone on your list.",
                "Order by December 20 for delivery before Christmas.",
            ],
        ),
        "summer_sale" => texts(
            &[
                "Summer Sale Now On",
                "Hot Deals This Summer",
                "Save Big This Season",
                "Summer Favourites",
            ],
            &[
                "Refresh your summer with our best prices of the season.",
                "Free returns on all summer sale orders.",
            ],
        ),
        _ => return None,
    })
}

pub const BUILTIN_KEYS: [&str; 4] = ["black_friday", "cyber_monday", "christmas", "summer_sale"];

/// Problems with a set of texts against the RSA limits, each as (field, problem) naming the
/// text that breaks a limit. `prefix` names where they came from (`params`, `payload`).
pub fn check(texts: &ThemeTexts) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    check_list(
        "headlines",
        &texts.headlines,
        MIN_HEADLINES..=MAX_HEADLINES,
        MAX_HEADLINE_CHARS,
        &mut problems,
    );
    check_list(
        "descriptions",
        &texts.descriptions,
        MIN_DESCRIPTIONS..=MAX_DESCRIPTIONS,
        MAX_DESCRIPTION_CHARS,
        &mut problems,
    );
    problems
}

fn check_list(
    field: &str,
    list: &[String],
    count: std::ops::RangeInclusive<usize>,
    max_chars: usize,
    problems: &mut Vec<(String, String)>,
) {
    if !count.contains(&list.len()) {
        problems.push((
            field.to_string(),
            format!(
                "has {} entries; a responsive search ad needs {} to {}",
                list.len(),
                count.start(),
                count.end()
            ),
        ));
    }
    let mut seen = HashSet::new();
    for (i, text) in list.iter().enumerate() {
        let chars = text.chars().count();
        if text.trim().is_empty() {
            problems.push((format!("{field}[{i}]"), "is empty".into()));
        } else if chars > max_chars {
            problems.push((
                format!("{field}[{i}]"),
                format!("{text:?} is {chars} characters; at most {max_chars} allowed"),
            ));
        }
        if !seen.insert(text.as_str()) {
            problems.push((
                format!("{field}[{i}]"),
                format!("{text:?} repeats an earlier entry (Google rejects duplicate assets)"),
            ));
        }
    }
}

/// Reads a list of texts from JSON: an array of strings, or one string with `|` between texts
/// (how a CSV column carries a list).
pub fn text_list(value: &Value) -> Option<Vec<String>> {
    match value {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => Some(s.split('|').map(|t| t.trim().to_string()).collect()),
        _ => None,
    }
}

/// Checks a label name: letters, digits, `_`, `-` and spaces.
pub fn check_label(label: &str) -> Option<String> {
    if label.is_empty() || label.chars().count() > MAX_LABEL_CHARS {
        return Some(format!("must be 1 to {MAX_LABEL_CHARS} characters"));
    }
    if !label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' '))
    {
        return Some(format!(
            "{label:?} may hold only letters, digits, '_', '-' and spaces"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_themes_satisfy_the_limits() {
        for key in BUILTIN_KEYS {
            let theme = builtin(key).expect("built in");
            assert_eq!(check(&theme), Vec::<(String, String)>::new(), "{key}");
        }
    }

    #[test]
    fn a_text_over_the_limit_is_named() {
        let mut theme = builtin("black_friday").expect("built in");
        theme.headlines[1] = "x".repeat(31);
        let problems = check(&theme);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "headlines[1]");
        assert!(problems[0].1.contains("31 characters"));
    }

    #[test]
    fn headline_match_ignores_order_only() {
        let theme = builtin("christmas").expect("built in");
        let mut reversed = theme.headlines.clone();
        reversed.reverse();
        assert!(theme.matches_headlines(&reversed));
        assert!(!theme.matches_headlines(&reversed[1..]));
    }
}
