//! Just enough GAQL for the three queries of GOOGLE_ADS.md, parsed properly rather than matched
//! as strings: `SELECT fields FROM resource [WHERE cond AND …] [LIMIT n]`, with conditions
//! `field = v`, `!=`, `IN (…)` and `NOT IN (…)`, values quoted ('…' or "…"), numeric or bare
//! enum constants. Resources are `ad_group`, `ad_group_ad` (which may also select `ad_group.*`)
//! and `label`; fields must be in the catalogue below. Anything else is refused with the
//! `queryError` Google would give, which the search answers 400 INVALID_ARGUMENT.
//!
//! Rows are evaluated as the full JSON a row would have (camelCase, ids as strings), so a
//! condition is a lookup by path, and [`project`] keeps just the selected fields plus the
//! `resourceName` of every resource on their way, as Google's responses do.

use serde_json::{Map, Value};

use super::error::{GoogleAdsError, code};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    AdGroup,
    AdGroupAd,
    Label,
}

impl Resource {
    fn parse(name: &str) -> Option<Resource> {
        match name {
            "ad_group" => Some(Resource::AdGroup),
            "ad_group_ad" => Some(Resource::AdGroupAd),
            "label" => Some(Resource::Label),
            _ => None,
        }
    }

    /// The field groups a query FROM this resource may use.
    fn fields(self) -> &'static [&'static [&'static str]] {
        match self {
            Resource::AdGroup => &[AD_GROUP_FIELDS],
            Resource::AdGroupAd => &[AD_GROUP_AD_FIELDS, AD_GROUP_FIELDS],
            Resource::Label => &[LABEL_FIELDS],
        }
    }
}

const AD_GROUP_FIELDS: &[&str] = &[
    "ad_group.resource_name",
    "ad_group.id",
    "ad_group.name",
    "ad_group.status",
];
const AD_GROUP_AD_FIELDS: &[&str] = &[
    "ad_group_ad.resource_name",
    "ad_group_ad.status",
    "ad_group_ad.ad_group",
    "ad_group_ad.labels",
    "ad_group_ad.ad.resource_name",
    "ad_group_ad.ad.id",
    "ad_group_ad.ad.type",
    "ad_group_ad.ad.final_urls",
    "ad_group_ad.ad.responsive_search_ad.headlines",
    "ad_group_ad.ad.responsive_search_ad.descriptions",
    "ad_group_ad.ad.responsive_search_ad.path1",
    "ad_group_ad.ad.responsive_search_ad.path2",
];
const LABEL_FIELDS: &[&str] = &[
    "label.resource_name",
    "label.id",
    "label.name",
    "label.status",
];
/// Repeated fields cannot be compared with =, IN….
const REPEATED_FIELDS: &[&str] = &[
    "ad_group_ad.labels",
    "ad_group_ad.ad.final_urls",
    "ad_group_ad.ad.responsive_search_ad.headlines",
    "ad_group_ad.ad.responsive_search_ad.descriptions",
];
const STATUS_FIELDS: &[&str] = &["ad_group.status", "ad_group_ad.status", "label.status"];
const STATUSES: &[&str] = &["ENABLED", "PAUSED", "REMOVED", "UNKNOWN", "UNSPECIFIED"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    In,
    NotIn,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Condition {
    /// Whether a full row satisfies the condition (a missing field equals nothing).
    pub fn matches(&self, row: &Value) -> bool {
        let actual = lookup(row, &self.field).and_then(scalar);
        let listed = actual
            .as_ref()
            .is_some_and(|actual| self.values.iter().any(|v| v == actual));
        match self.op {
            Op::Eq | Op::In => listed,
            Op::Ne | Op::NotIn => !listed,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub resource: Resource,
    /// Selected fields, snake_case, without repeats, in query order.
    pub fields: Vec<String>,
    pub conditions: Vec<Condition>,
    pub limit: Option<u64>,
}

impl Query {
    pub fn matches(&self, row: &Value) -> bool {
        self.conditions.iter().all(|c| c.matches(row))
    }

    /// `fieldMask` of the answer: the selected fields in camelCase.
    pub fn field_mask(&self) -> String {
        self.fields
            .iter()
            .map(|f| camel_path(f).join("."))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn query_error(value: &'static str, message: impl Into<String>) -> GoogleAdsError {
    GoogleAdsError::new(code("queryError", value), message)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Num(String),
    Sym(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, GoogleAdsError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_.".contains(chars[i])) {
                i += 1;
            }
            tokens.push(Token::Word(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            tokens.push(Token::Num(chars[start..i].iter().collect()));
        } else if c == '\'' || c == '"' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(query_error(
                            "STRING_NOT_TERMINATED",
                            "A string literal is not terminated.",
                        ));
                    }
                    Some('\\') => {
                        let Some(escaped) = chars.get(i + 1) else {
                            return Err(query_error(
                                "BAD_ESCAPE_SEQUENCE",
                                "A string ends with a backslash.",
                            ));
                        };
                        value.push(*escaped);
                        i += 2;
                    }
                    Some(q) if *q == c => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        value.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Str(value));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            let symbol = match (two.as_str(), c) {
                ("!=", _) => "!=",
                ("<=", _) => "<=",
                (">=", _) => ">=",
                (_, ',') => ",",
                (_, '(') => "(",
                (_, ')') => ")",
                (_, '=') => "=",
                (_, '<') => "<",
                (_, '>') => ">",
                _ => {
                    return Err(
                        query_error("BAD_SYMBOL", format!("Unexpected symbol '{c}'."))
                            .trigger(c.to_string()),
                    );
                }
            };
            i += symbol.len();
            tokens.push(Token::Sym(symbol));
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Result<Token, GoogleAdsError> {
        let token = self.tokens.get(self.at).cloned().ok_or_else(|| {
            query_error("UNEXPECTED_END_OF_QUERY", "The query ends unexpectedly.")
        })?;
        self.at += 1;
        Ok(token)
    }

    fn keyword(&mut self, keyword: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword));
        if found {
            self.at += 1;
        }
        found
    }

    fn symbol(&mut self, symbol: &str) -> bool {
        let found = matches!(self.peek(), Some(Token::Sym(s)) if *s == symbol);
        if found {
            self.at += 1;
        }
        found
    }

    /// One or more `item`s separated by commas (the fields of SELECT, the values of IN).
    fn comma_list(
        &mut self,
        item: fn(&mut Parser) -> Result<String, GoogleAdsError>,
    ) -> Result<Vec<String>, GoogleAdsError> {
        let mut items = vec![item(self)?];
        while self.symbol(",") {
            items.push(item(self)?);
        }
        Ok(items)
    }

    fn word(&mut self) -> Result<String, GoogleAdsError> {
        match self.next()? {
            Token::Word(word) => Ok(word),
            other => Err(unexpected(&other)),
        }
    }

    fn value(&mut self) -> Result<String, GoogleAdsError> {
        match self.next()? {
            Token::Str(v) | Token::Num(v) | Token::Word(v) => Ok(v),
            other => Err(query_error(
                "BAD_VALUE",
                format!("Expected a value, found {}.", describe(&other)),
            )),
        }
    }
}

/// `found`: whether the parser consumed the keyword or symbol the grammar needs here; if not,
/// queryError `code`.
fn expected(found: bool, code: &'static str, message: &'static str) -> Result<(), GoogleAdsError> {
    if found {
        Ok(())
    } else {
        Err(query_error(code, message))
    }
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word(w) | Token::Num(w) => format!("'{w}'"),
        Token::Str(s) => format!("'{s}'"),
        Token::Sym(s) => format!("'{s}'"),
    }
}

fn unexpected(token: &Token) -> GoogleAdsError {
    query_error(
        "UNEXPECTED_INPUT",
        format!("Unexpected input {}.", describe(token)),
    )
    .trigger(describe(token))
}

/// Parses a query; errors are the `queryError` Google would answer.
pub fn parse(text: &str) -> Result<Query, GoogleAdsError> {
    let mut parser = Parser {
        tokens: tokenize(text)?,
        at: 0,
    };
    expected(
        parser.keyword("SELECT"),
        "EXPECTED_SELECT",
        "The query must start with SELECT.",
    )?;
    let fields = parser.comma_list(Parser::word)?;
    expected(
        parser.keyword("FROM"),
        "EXPECTED_FROM",
        "Expected FROM after the fields.",
    )?;
    let from = parser.word()?;
    let resource = Resource::parse(&from).ok_or_else(|| {
        query_error(
            "BAD_RESOURCE_TYPE_IN_FROM_CLAUSE",
            format!("The simulator answers FROM ad_group, ad_group_ad and label, not {from}."),
        )
        .trigger(from.clone())
    })?;
    let mut unique: Vec<String> = Vec::new();
    for field in fields {
        check_field(resource, &field, "SELECT")?;
        if !unique.contains(&field) {
            unique.push(field);
        }
    }
    let mut conditions = Vec::new();
    if parser.keyword("WHERE") {
        conditions.push(condition(&mut parser, resource)?);
        while parser.keyword("AND") {
            conditions.push(condition(&mut parser, resource)?);
        }
    }
    let mut limit = None;
    if parser.keyword("LIMIT") {
        let value = parser.value()?;
        let n: u64 = value.parse().map_err(|_| {
            query_error("BAD_LIMIT_VALUE", format!("Bad LIMIT value {value}.")).trigger(value)
        })?;
        if n == 0 {
            return Err(query_error(
                "LIMIT_VALUE_TOO_LOW",
                "LIMIT must be at least 1.",
            ));
        }
        limit = Some(n);
    }
    if let Some(token) = parser.peek() {
        return Err(unexpected(token));
    }
    Ok(Query {
        resource,
        fields: unique,
        conditions,
        limit,
    })
}

fn check_field(resource: Resource, field: &str, clause: &str) -> Result<(), GoogleAdsError> {
    let known = [AD_GROUP_FIELDS, AD_GROUP_AD_FIELDS, LABEL_FIELDS]
        .iter()
        .any(|group| group.contains(&field));
    if !known {
        return Err(query_error(
            "UNRECOGNIZED_FIELD",
            format!("Unrecognized field '{field}'."),
        )
        .trigger(field));
    }
    if !resource.fields().iter().any(|group| group.contains(&field)) {
        return Err(query_error(
            "PROHIBITED_RESOURCE_TYPE_IN_SELECT_CLAUSE",
            format!("Field '{field}' cannot be used in {clause} with this FROM resource."),
        )
        .trigger(field));
    }
    Ok(())
}

fn condition(parser: &mut Parser, resource: Resource) -> Result<Condition, GoogleAdsError> {
    let field = parser.word()?;
    check_field(resource, &field, "WHERE")?;
    if REPEATED_FIELDS.contains(&field.as_str()) {
        return Err(query_error(
            "PROHIBITED_FIELD_IN_WHERE_CLAUSE",
            format!("The simulator cannot filter on the repeated field '{field}'."),
        )
        .trigger(field));
    }
    let (op, values) = if parser.symbol("=") {
        (Op::Eq, vec![parser.value()?])
    } else if parser.symbol("!=") {
        (Op::Ne, vec![parser.value()?])
    } else if parser.keyword("IN") {
        (Op::In, list(parser)?)
    } else if parser.keyword("NOT") && parser.keyword("IN") {
        (Op::NotIn, list(parser)?)
    } else {
        let found = parser.peek().map_or("the end".into(), describe);
        return Err(query_error(
            "BAD_OPERATOR",
            format!("The simulator supports =, !=, IN and NOT IN; found {found}."),
        ));
    };
    if STATUS_FIELDS.contains(&field.as_str())
        && let Some(bad) = values.iter().find(|v| !STATUSES.contains(&v.as_str()))
    {
        return Err(
            query_error("BAD_ENUM_CONSTANT", format!("'{bad}' is not a status."))
                .trigger(bad.clone()),
        );
    }
    Ok(Condition { field, op, values })
}

fn list(parser: &mut Parser) -> Result<Vec<String>, GoogleAdsError> {
    expected(
        parser.symbol("("),
        "EXPECTED_LIST",
        "Expected a list in parentheses.",
    )?;
    if parser.symbol(")") {
        return Err(query_error(
            "PROHIBITED_EMPTY_LIST_IN_CONDITION",
            "A list must not be empty.",
        ));
    }
    let values = parser.comma_list(Parser::value)?;
    expected(
        parser.symbol(")"),
        "EXPECTED_LIST",
        "Expected ')' after the list.",
    )?;
    Ok(values)
}

/// `ad_group_ad.ad.final_urls` → `["adGroupAd", "ad", "finalUrls"]`.
pub fn camel_path(field: &str) -> Vec<String> {
    field
        .split('.')
        .map(|segment| {
            let mut out = String::with_capacity(segment.len());
            let mut upper = false;
            for c in segment.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    out.extend(c.to_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            out
        })
        .collect()
}

/// The value at a snake_case field path of a full row.
pub fn lookup<'a>(row: &'a Value, field: &str) -> Option<&'a Value> {
    camel_path(field)
        .iter()
        .try_fold(row, |value, segment| value.get(segment))
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The selected fields of a full row, plus the `resourceName` of each resource on their way.
pub fn project(row: &Value, fields: &[String]) -> Value {
    let mut out = Map::new();
    for field in fields {
        let path = camel_path(field);
        copy_path(row, &mut out, &path);
    }
    Value::Object(out)
}

fn copy_path(source: &Value, target: &mut Map<String, Value>, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Some(value) = source.get(first) else {
        return;
    };
    if rest.is_empty() {
        target.insert(first.clone(), value.clone());
        return;
    }
    let entry = target.entry(first.clone()).or_insert_with(|| {
        let mut object = Map::new();
        if let Some(name) = value.get("resourceName") {
            object.insert("resourceName".into(), name.clone());
        }
        Value::Object(object)
    });
    if let Value::Object(child) = entry {
        copy_path(value, child, rest);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ADS_QUERY: &str = "SELECT ad_group.id, ad_group_ad.ad.id, ad_group_ad.ad.final_urls,
       ad_group_ad.ad.responsive_search_ad.headlines, ad_group_ad.ad.responsive_search_ad.descriptions,
       ad_group_ad.ad.responsive_search_ad.path1, ad_group_ad.ad.responsive_search_ad.path2,
       ad_group_ad.labels, ad_group_ad.status
FROM ad_group_ad
WHERE ad_group_ad.ad.type = 'RESPONSIVE_SEARCH_AD' AND ad_group_ad.status != 'REMOVED'";

    #[test]
    fn parses_the_three_queries_of_the_contract() {
        let groups = parse(
            "SELECT ad_group.id, ad_group.name, ad_group.status FROM ad_group \
             WHERE ad_group.status != 'REMOVED'",
        )
        .expect("ad groups");
        assert_eq!(groups.resource, Resource::AdGroup);
        assert_eq!(groups.conditions[0].op, Op::Ne);

        let ads = parse(ADS_QUERY).expect("ads");
        assert_eq!(ads.resource, Resource::AdGroupAd);
        assert_eq!(ads.fields.len(), 9);
        assert_eq!(ads.conditions.len(), 2);

        let label = parse(
            "select label.id, label.name, label.resource_name from label \
             where label.name = \"THEME_BLACK_FRIDAY\"",
        )
        .expect("label");
        assert_eq!(label.conditions[0].values, ["THEME_BLACK_FRIDAY"]);
    }

    #[test]
    fn refuses_what_the_simulator_does_not_know() {
        let cases = [
            ("SELECT ad_group.budget FROM ad_group", "UNRECOGNIZED_FIELD"),
            (
                "SELECT ad_group.id FROM campaign",
                "BAD_RESOURCE_TYPE_IN_FROM_CLAUSE",
            ),
            (
                "SELECT label.id FROM ad_group",
                "PROHIBITED_RESOURCE_TYPE_IN_SELECT_CLAUSE",
            ),
            (
                "SELECT ad_group.id FROM ad_group WHERE ad_group.id > 3",
                "BAD_OPERATOR",
            ),
            (
                "SELECT label.id FROM label WHERE label.name = 'x",
                "STRING_NOT_TERMINATED",
            ),
            (
                "SELECT ad_group.id FROM ad_group ORDER BY ad_group.id",
                "UNEXPECTED_INPUT",
            ),
            ("ad_group.id FROM ad_group", "EXPECTED_SELECT"),
            ("SELECT ad_group.id ad_group", "EXPECTED_FROM"),
            (
                "SELECT ad_group.id FROM ad_group WHERE ad_group.id IN 7",
                "EXPECTED_LIST",
            ),
            (
                "SELECT ad_group.id FROM ad_group WHERE ad_group.id IN (7, 8",
                "EXPECTED_LIST",
            ),
            (
                "SELECT ad_group.id FROM ad_group WHERE ad_group.id IN ()",
                "PROHIBITED_EMPTY_LIST_IN_CONDITION",
            ),
            (
                "SELECT ad_group.id FROM ad_group WHERE ad_group.status = 'LIVE'",
                "BAD_ENUM_CONSTANT",
            ),
        ];
        for (query, code) in cases {
            let error = parse(query).expect_err(query);
            assert_eq!(error.code.value, code, "{query}");
        }
    }

    #[test]
    fn conditions_and_projection_work_on_full_rows() {
        let row = json!({
            "adGroup": {"resourceName": "customers/1/adGroups/5", "id": "5", "name": "n", "status": "ENABLED"},
            "adGroupAd": {"resourceName": "customers/1/adGroupAds/5~9", "status": "ENABLED",
                "ad": {"resourceName": "customers/1/ads/9", "id": "9", "type": "RESPONSIVE_SEARCH_AD",
                       "finalUrls": ["https://x"]}}
        });
        let query = parse(
            "SELECT ad_group.id, ad_group_ad.ad.id FROM ad_group_ad \
             WHERE ad_group_ad.status IN ('ENABLED', 'PAUSED') AND ad_group.id NOT IN (7)",
        )
        .expect("query");
        assert!(query.matches(&row));
        assert_eq!(
            project(&row, &query.fields),
            json!({
                "adGroup": {"resourceName": "customers/1/adGroups/5", "id": "5"},
                "adGroupAd": {"resourceName": "customers/1/adGroupAds/5~9",
                    "ad": {"resourceName": "customers/1/ads/9", "id": "9"}}
            })
        );
        assert_eq!(query.field_mask(), "adGroup.id,adGroupAd.ad.id");
    }
}
