//! The limits of a responsive search ad, as GOOGLE_ADS.md lists them from Google's reference:
//! 3–15 headlines of at most 30 characters, no headline twice (DUPLICATE_ASSET), 2–4
//! descriptions of at most 90, path1/path2 at most 15 characters and path2 only with path1,
//! and at least one http(s) final URL. Lengths count characters, not bytes. Every broken rule
//! is reported (not just the first), located within the operation's `create`.

use std::collections::HashSet;

use serde::Deserialize;

use super::error::{GoogleAdsError, PathElement, code, field, indexed};

pub const MIN_HEADLINES: usize = 3;
pub const MAX_HEADLINES: usize = 15;
pub const MAX_HEADLINE_CHARS: usize = 30;
pub const MIN_DESCRIPTIONS: usize = 2;
pub const MAX_DESCRIPTIONS: usize = 4;
pub const MAX_DESCRIPTION_CHARS: usize = 90;
pub const MAX_PATH_CHARS: usize = 15;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AdInput {
    #[serde(default, alias = "final_urls")]
    pub final_urls: Vec<String>,
    #[serde(alias = "responsive_search_ad")]
    pub responsive_search_ad: Option<RsaInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsaInput {
    #[serde(default)]
    pub headlines: Vec<TextAsset>,
    #[serde(default)]
    pub descriptions: Vec<TextAsset>,
    pub path1: Option<String>,
    pub path2: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TextAsset {
    pub text: Option<String>,
    /// Where the asset is pinned (`ServedAssetFieldType`); accepted, not modelled.
    #[serde(alias = "pinned_field")]
    #[allow(dead_code)]
    pub pinned_field: Option<super::proto_json::EnumValue>,
}

/// A valid ad's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Rsa {
    pub final_urls: Vec<String>,
    pub headlines: Vec<String>,
    pub descriptions: Vec<String>,
    pub path1: Option<String>,
    pub path2: Option<String>,
}

/// Checks `ad` (at `create.ad`); the content when valid, else every error.
pub fn validate(ad: Option<AdInput>) -> Result<Rsa, Vec<GoogleAdsError>> {
    let base = [field("create"), field("ad")];
    let Some(ad) = ad else {
        return Err(vec![required(&base[..1], "ad")]);
    };
    let mut errors = Vec::new();
    if ad.final_urls.is_empty() {
        errors.push(required(&base, "final_urls"));
    }
    for (i, url) in ad.final_urls.iter().enumerate() {
        if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
            errors.push(
                GoogleAdsError::new(code("adError", "URL_INVALID_SCHEME"), "Invalid URL scheme.")
                    .trigger(url.clone())
                    .at([&base[..], &[indexed("final_urls", i)]].concat()),
            );
        }
    }
    let Some(rsa) = ad.responsive_search_ad else {
        errors.push(required(&base, "responsive_search_ad"));
        return Err(errors);
    };
    let rsa_path = [field("create"), field("ad"), field("responsive_search_ad")];
    let headlines = texts(
        &rsa.headlines,
        &rsa_path,
        "headlines",
        (MIN_HEADLINES, MAX_HEADLINES),
        MAX_HEADLINE_CHARS,
        &mut errors,
    );
    let descriptions = texts(
        &rsa.descriptions,
        &rsa_path,
        "descriptions",
        (MIN_DESCRIPTIONS, MAX_DESCRIPTIONS),
        MAX_DESCRIPTION_CHARS,
        &mut errors,
    );
    let path1 = rsa.path1.filter(|p| !p.is_empty());
    let path2 = rsa.path2.filter(|p| !p.is_empty());
    for (name, path) in [("path1", &path1), ("path2", &path2)] {
        if let Some(path) = path
            && path.chars().count() > MAX_PATH_CHARS
        {
            errors.push(too_long(path, [&rsa_path[..], &[field(name)]].concat()));
        }
    }
    if path2.is_some() && path1.is_none() {
        errors.push(
            GoogleAdsError::new(
                code("adError", "CANNOT_SET_PATH2_WITHOUT_PATH1"),
                "Cannot set path2 without path1.",
            )
            .at([&rsa_path[..], &[field("path2")]].concat()),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Rsa {
        final_urls: ad.final_urls,
        headlines,
        descriptions,
        path1,
        path2,
    })
}

fn required(path: &[PathElement], name: &'static str) -> GoogleAdsError {
    GoogleAdsError::required([path, &[field(name)]].concat())
}

fn too_long(text: &str, path: Vec<PathElement>) -> GoogleAdsError {
    GoogleAdsError::new(code("stringLengthError", "TOO_LONG"), "Too long.")
        .trigger(text)
        .at(path)
}

/// Checks a list of text assets: count, empty, length, repeats.
fn texts(
    assets: &[TextAsset],
    parent: &[PathElement],
    name: &'static str,
    (min, max): (usize, usize),
    max_chars: usize,
    errors: &mut Vec<GoogleAdsError>,
) -> Vec<String> {
    let list_path = [parent, &[field(name)]].concat();
    if assets.len() < min {
        errors.push(
            GoogleAdsError::new(
                code("collectionSizeError", "TOO_FEW"),
                format!("Too few {name}: at least {min}."),
            )
            .at(list_path.clone()),
        );
    } else if assets.len() > max {
        errors.push(
            GoogleAdsError::new(
                code("collectionSizeError", "TOO_MANY"),
                format!("Too many {name}: at most {max}."),
            )
            .at(list_path.clone()),
        );
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(assets.len());
    for (i, asset) in assets.iter().enumerate() {
        let path = [parent, &[indexed(name, i), field("text")]].concat();
        let text = asset.text.clone().unwrap_or_default();
        if text.trim().is_empty() {
            errors.push(
                GoogleAdsError::new(code("stringLengthError", "EMPTY"), "Empty text.").at(path),
            );
        } else if text.chars().count() > max_chars {
            errors.push(too_long(&text, path));
        } else if !seen.insert(text.clone()) {
            errors.push(
                GoogleAdsError::new(
                    code("assetError", "DUPLICATE_ASSET"),
                    "Duplicate asset: the same text appears twice.",
                )
                .trigger(text.clone())
                .at(path),
            );
        }
        out.push(text);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(ad: serde_json::Value) -> Result<Rsa, Vec<&'static str>> {
        let ad: AdInput = serde_json::from_value(ad).expect("ad");
        validate(Some(ad)).map_err(|errors| errors.iter().map(|e| e.code.value).collect())
    }

    fn ad(
        headlines: &[&str],
        descriptions: &[&str],
        path1: &str,
        path2: &str,
    ) -> serde_json::Value {
        let texts = |t: &[&str]| t.iter().map(|s| json!({"text": s})).collect::<Vec<_>>();
        json!({"finalUrls": ["https://example.com/x"], "responsiveSearchAd": {
            "headlines": texts(headlines), "descriptions": texts(descriptions),
            "path1": path1, "path2": path2}})
    }

    const H: [&str; 3] = ["One", "Two", "Three"];
    const D: [&str; 2] = ["First description.", "Second description."];

    #[test]
    fn a_valid_ad_passes() {
        let rsa = check(ad(&H, &D, "deals", "shoes")).expect("valid");
        assert_eq!(rsa.headlines, H);
        assert_eq!(rsa.path2.as_deref(), Some("shoes"));
    }

    #[test]
    fn limits_are_enforced() {
        let long = "x".repeat(31);
        assert_eq!(check(ad(&["a", "b"], &D, "", "")), Err(vec!["TOO_FEW"]));
        assert_eq!(
            check(ad(&["a", "b", &long], &D, "", "")),
            Err(vec!["TOO_LONG"])
        );
        assert_eq!(
            check(ad(&["a", "b", "a"], &D, "", "")),
            Err(vec!["DUPLICATE_ASSET"])
        );
        assert_eq!(check(ad(&H, &["only one"], "", "")), Err(vec!["TOO_FEW"]));
        assert_eq!(
            check(ad(&H, &D, "", "shoes")),
            Err(vec!["CANNOT_SET_PATH2_WITHOUT_PATH1"])
        );
        assert_eq!(
            check(ad(&H, &D, "sixteen-chars-xx", "")),
            Err(vec!["TOO_LONG"])
        );
        // 30 characters of multi-byte text is fine.
        let thirty = "é".repeat(30);
        assert!(check(ad(&["a", "b", &thirty], &D, "", "")).is_ok());
    }
}
