//! Reading client input: JSON bodies (strict, with errors that name the field), query
//! parameters, pagination and metadata, each validated beside its type.

use std::collections::{BTreeMap, HashMap};

use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::ids::IdKind;

/// Parses a JSON object body into `T` (which should `deny_unknown_fields`). Malformed JSON,
/// a wrong type or an unknown field is a 400 whose message and `param` name the field.
pub fn json_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(ApiError::bad_request(
            "Request body must be a JSON object (Content-Type: application/json)",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let detail = inner.to_string();
        // serde_json appends " at line L column C", which helps nobody calling an API.
        let detail = detail
            .split(" at line ")
            .next()
            .unwrap_or(&detail)
            .to_owned();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::bad_request(format!("Malformed JSON in request body: {detail}"));
        }
        if let Some(field) = detail
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            // The path already ends at the unknown field.
            let full = if path == "." {
                field.to_owned()
            } else {
                path.clone()
            };
            return ApiError::invalid(
                full.clone(),
                format!("Unknown field in request body: {full}"),
            );
        }
        if path == "." {
            ApiError::bad_request(format!("Invalid request body: {detail}"))
        } else {
            ApiError::invalid(path.clone(), format!("Invalid value for {path}: {detail}"))
        }
    })
}

/// Deserializes a field that may be absent, `null`, or a value: `None` when absent,
/// `Some(None)` for an explicit `null`. Use with `#[serde(default, deserialize_with = ...)]`.
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(deserializer).map(Some)
}

/// An integer that may be written with a zero fraction (`2999.0`), as JSON Schema counts
/// integers; `2999.5` is refused. Use with `#[serde(default, deserialize_with = ...)]` on an
/// `Option<i64>`.
pub fn whole_number<'de, D>(deserializer: D) -> Result<Option<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let number: Option<serde_json::Number> = serde::Deserialize::deserialize(deserializer)?;
    number
        .map(|n| {
            as_whole(&n).ok_or_else(|| {
                serde::de::Error::custom(format!("invalid value: {n}, expected an integer"))
            })
        })
        .transpose()
}

/// `n` as an integer, if it is one (`7` or `7.0`).
pub fn as_whole(n: &serde_json::Number) -> Option<i64> {
    // 2^63 as f64: every f64 below it (and at least -2^63) converts exactly.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (-LIMIT..LIMIT).contains(f))
            .map(|f| f as i64)
    })
}

/// Query string parameters, each named once.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parses the URL-encoded query string; only `allowed` names are accepted, each once.
    pub fn parse(raw: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let mut map = HashMap::new();
        for (name, value) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
            if !allowed.contains(&name.as_ref()) {
                let allowed = allowed.join(", ");
                return Err(ApiError::invalid(
                    name.as_ref(),
                    format!("Unknown query parameter: {name} (allowed: {allowed})"),
                ));
            }
            if map.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(ApiError::invalid(
                    name.as_ref(),
                    format!("Query parameter {name} is given more than once"),
                ));
            }
        }
        Ok(Self(map))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn integer(
        &self,
        name: &str,
        default: Option<u32>,
        min: u32,
        max: u32,
    ) -> Result<Option<u32>, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        raw.parse::<u32>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(
                    name,
                    format!("{name} must be an integer from {min} to {max}"),
                )
            })
    }

    /// `true` or `false`, or `default` when absent.
    pub fn boolean(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(_) => Err(ApiError::invalid(
                name,
                format!("{name} must be true or false"),
            )),
        }
    }
}

/// Offset pagination (with an optional cursor beside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// `None`: every match (only where the contract allows it).
    pub limit: Option<u32>,
    pub offset: u32,
    /// Return objects created before this ID (the cursor), newest first.
    pub starting_after: Option<String>,
}

pub const MAX_LIMIT: u32 = 100;
pub const DEFAULT_LIMIT: u32 = 50;
/// Beyond this an offset reads too much to be a sensible request; use the cursor.
pub const MAX_OFFSET: u32 = 10_000;

impl Page {
    /// Reads `limit` (1–100), `offset` (0–10000) and `startingAfter` (an ID of `kind`: the
    /// objects listed) from `query`.
    pub fn from_query(
        query: &Query,
        default_limit: Option<u32>,
        kind: IdKind,
    ) -> Result<Self, ApiError> {
        let limit = query.integer("limit", default_limit, 1, MAX_LIMIT)?;
        let offset = query
            .integer("offset", Some(0), 0, MAX_OFFSET)?
            .unwrap_or(0);
        let starting_after = query.get("startingAfter").map(str::to_owned);
        if let Some(cursor) = &starting_after
            && !kind.matches(cursor)
        {
            return Err(ApiError::invalid(
                "startingAfter",
                format!(
                    "startingAfter must be a {} ID ({}...)",
                    kind.noun(),
                    kind.prefix()
                ),
            ));
        }
        Ok(Self {
            limit,
            offset,
            starting_after,
        })
    }
}

/// User metadata: string keys to string values.
pub type Metadata = BTreeMap<String, String>;

/// Metadata keys BillStack itself sets on Stripe objects; clients may not use them.
pub const RESERVED_METADATA_KEYS: [&str; 2] = ["project_id", "billstack_id"];
/// Stripe allows 50 keys per object; ours take their share of them.
pub const MAX_METADATA_KEYS: usize = 50 - RESERVED_METADATA_KEYS.len();
pub const MAX_METADATA_KEY_LEN: usize = 40;
pub const MAX_METADATA_VALUE_LEN: usize = 500;

/// Checks metadata against Stripe's limits and our reserved keys.
pub fn validate_metadata(metadata: &Metadata) -> Result<(), ApiError> {
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(ApiError::invalid(
            "metadata",
            format!(
                "metadata can have at most {MAX_METADATA_KEYS} keys ({} of Stripe's 50 are reserved for BillStack)",
                RESERVED_METADATA_KEYS.len()
            ),
        ));
    }
    for (key, value) in metadata {
        let param = format!("metadata.{key}");
        if key.is_empty() {
            return Err(ApiError::invalid(
                "metadata",
                "metadata keys must not be empty",
            ));
        }
        if key.chars().count() > MAX_METADATA_KEY_LEN {
            return Err(ApiError::invalid(
                param,
                format!("metadata key \"{key}\" is longer than {MAX_METADATA_KEY_LEN} characters"),
            ));
        }
        if key.contains(['[', ']']) {
            return Err(ApiError::invalid(
                param,
                format!("metadata key \"{key}\" must not contain [ or ]"),
            ));
        }
        if RESERVED_METADATA_KEYS.contains(&key.as_str()) || key.starts_with("billstack_") {
            return Err(ApiError::invalid(
                param,
                format!("metadata key \"{key}\" is reserved for BillStack"),
            ));
        }
        if value.is_empty() {
            return Err(ApiError::invalid(
                param,
                format!(
                    "metadata value for \"{key}\" must not be empty (leave the key out instead)"
                ),
            ));
        }
        if value.chars().count() > MAX_METADATA_VALUE_LEN {
            return Err(ApiError::invalid(
                param,
                format!(
                    "metadata value for \"{key}\" is longer than {MAX_METADATA_VALUE_LEN} characters"
                ),
            ));
        }
    }
    Ok(())
}

/// The `metadata` parameter that makes a Stripe object hold exactly `new` plus `ours`:
/// every key in `stale` that is not kept is sent as `""`, which Stripe takes as "unset".
pub fn stripe_metadata_replacing<'a>(
    new: &Metadata,
    ours: &[(&str, &str)],
    stale: impl IntoIterator<Item = &'a String>,
) -> HashMap<String, String> {
    let mut params: HashMap<String, String> = stale
        .into_iter()
        .map(|key| (key.clone(), String::new()))
        .collect();
    params.extend(new.iter().map(|(k, v)| (k.clone(), v.clone())));
    params.extend(ours.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    params
}

/// Keys a Stripe object holds beyond `wanted` and ours (set in Stripe behind our back),
/// as the `""` values that unset them: what makes "metadata replaces" exact.
pub fn unwanted_stripe_keys(
    in_stripe: &HashMap<String, String>,
    wanted: &Metadata,
) -> HashMap<String, String> {
    in_stripe
        .keys()
        .filter(|k| !wanted.contains_key(*k) && !RESERVED_METADATA_KEYS.contains(&k.as_str()))
        .map(|k| (k.clone(), String::new()))
        .collect()
}

/// A PATCH's `isActive`: absent leaves it as it is; `null` is refused (it has no "none").
pub fn patch_active(value: Option<Option<bool>>) -> Result<Option<bool>, ApiError> {
    match value {
        None => Ok(None),
        Some(None) => Err(ApiError::invalid(
            "isActive",
            "isActive must be true or false",
        )),
        Some(active) => Ok(active),
    }
}

/// A PATCH's `metadata`: absent leaves it as it is; `null` means none; a map replaces it,
/// once valid.
pub fn patch_metadata(value: Option<Option<Metadata>>) -> Result<Option<Metadata>, ApiError> {
    let metadata = value.map(Option::unwrap_or_default);
    if let Some(metadata) = &metadata {
        validate_metadata(metadata)?;
    }
    Ok(metadata)
}

/// The longest email address mail allows (RFC 5321's path limit less its brackets).
pub const MAX_EMAIL_LEN: usize = 254;

fn too_long_email() -> ApiError {
    ApiError::invalid(
        "email",
        format!("email is longer than {MAX_EMAIL_LEN} characters"),
    )
}

/// One form per mailbox: the address trimmed, in Unicode compatibility form (NFKC, so a
/// full-width `ｊａｎｅ＠ｅｘａｍｐｌｅ.com` is `jane@example.com`), lowercased, and its domain in
/// its ASCII (IDNA, UTS #46) form, so `bücher.de` and `xn--bcher-kva.de` are one domain.
/// Then checks that it looks like an address: a local part and a dotted domain of letters,
/// digits and hyphens, within the lengths mail allows.
pub fn normalize_email(raw: &str) -> Result<String, ApiError> {
    use unicode_normalization::UnicodeNormalization;
    // As given, before any folding: what a client's own length check (and the OpenAPI
    // document's maxLength) counts.
    if raw.chars().count() > MAX_EMAIL_LEN {
        return Err(too_long_email());
    }
    let folded: String = raw.trim().nfkc().collect::<String>().to_lowercase();
    let invalid = || {
        ApiError::invalid(
            "email",
            format!("email is not a valid email address: {raw:?}"),
        )
    };
    let email = match folded.rsplit_once('@') {
        Some((local, domain)) => {
            let ascii = idna::domain_to_ascii(domain).map_err(|_| invalid())?;
            format!("{local}@{ascii}")
        }
        None => folded.clone(),
    };
    if email.is_empty() {
        return Err(ApiError::invalid("email", "email must not be empty"));
    }
    if email.len() > MAX_EMAIL_LEN {
        return Err(too_long_email());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(invalid)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && !tld.chars().all(|c| c.is_ascii_digit()));
    if local_ok && domain_ok {
        Ok(email)
    } else {
        Err(invalid())
    }
}

/// A display text: at most `max` characters as given, non-empty once trimmed, and stored
/// trimmed.
pub fn text(param: &str, raw: &str, max: usize) -> Result<String, ApiError> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(ApiError::invalid(
            param,
            format!("{param} must not be empty"),
        ));
    }
    if raw.chars().count() > max {
        return Err(ApiError::invalid(
            param,
            format!("{param} is longer than {max} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            param,
            format!("{param} must not contain control characters"),
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: Option<String>,
        metadata: Option<Metadata>,
    }

    #[test]
    fn json_errors_name_the_field() {
        let err = json_body::<Body>(br#"{"name": 5}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("name"));
        assert!(err.message.contains("name"), "{}", err.message);
        assert!(!err.message.contains("line 1"), "{}", err.message);

        let err = json_body::<Body>(br#"{"nmae": "x"}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("nmae"));
        assert!(err.message.contains("Unknown field"), "{}", err.message);

        let err = json_body::<Body>(br#"{"metadata": {"plan": 1}}"#).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("metadata.plan"));

        let err = json_body::<Body>(br#"{"name": "x""#).unwrap_err();
        assert!(err.message.starts_with("Malformed JSON"), "{}", err.message);
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);

        for bad in [&b""[..], b"[]", b"\"x\"", b"null"] {
            let err = json_body::<Body>(bad).unwrap_err();
            assert!(err.message.contains("JSON object"), "{}", err.message);
        }
    }

    #[test]
    fn query_is_strict() {
        let q = Query::parse(Some("limit=5&offset=10"), &["limit", "offset"]).unwrap();
        let page = Page::from_query(&q, Some(DEFAULT_LIMIT), IdKind::Customer).unwrap();
        assert_eq!((page.limit, page.offset), (Some(5), 10));

        let page =
            Page::from_query(&Query::default(), Some(DEFAULT_LIMIT), IdKind::Customer).unwrap();
        assert_eq!((page.limit, page.offset), (Some(50), 0));

        for (raw, param) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=abc", "limit"),
            ("limit=-1", "limit"),
            ("offset=-1", "offset"),
            ("offset=1.5", "offset"),
        ] {
            let q = Query::parse(Some(raw), &["limit", "offset"]).unwrap();
            let err = Page::from_query(&q, Some(50), IdKind::Customer).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{raw}");
        }
        let q = Query::parse(Some("startingAfter=pp_0190abcd"), &["startingAfter"]).unwrap();
        let page = Page::from_query(&q, None, IdKind::Product).unwrap();
        assert_eq!(page.starting_after.as_deref(), Some("pp_0190abcd"));
        for (kind, message) in [
            (
                IdKind::Customer,
                "startingAfter must be a customer ID (pc_...)",
            ),
            (IdKind::Price, "startingAfter must be a price ID (pri_...)"),
        ] {
            let err = Page::from_query(&q, None, kind).unwrap_err();
            assert_eq!(err.param.as_deref(), Some("startingAfter"));
            assert_eq!(err.message, message);
        }

        let err = Query::parse(Some("limt=5"), &["limit"]).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("limt"));
        let err = Query::parse(Some("limit=5&limit=6"), &["limit"]).unwrap_err();
        assert_eq!(err.param.as_deref(), Some("limit"));

        let q = Query::parse(Some("activeOnly=maybe"), &["activeOnly"]).unwrap();
        assert!(q.boolean("activeOnly", true).is_err());
        let q = Query::parse(Some("activeOnly=false"), &["activeOnly"]).unwrap();
        assert!(!q.boolean("activeOnly", true).unwrap());
    }

    #[test]
    fn metadata_limits_follow_stripe_and_reserve_ours() {
        let ok: Metadata = [("plan".to_owned(), "pro".to_owned())].into();
        assert!(validate_metadata(&ok).is_ok());

        let too_many: Metadata = (0..=MAX_METADATA_KEYS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        assert_eq!(
            validate_metadata(&too_many).unwrap_err().param.as_deref(),
            Some("metadata")
        );
        let max: Metadata = (0..MAX_METADATA_KEYS)
            .map(|i| (format!("k{i}"), "v".to_owned()))
            .collect();
        assert!(validate_metadata(&max).is_ok());

        for (k, v) in [
            ("a".repeat(41), "v".to_owned()),
            ("a[b]".to_owned(), "v".to_owned()),
            ("project_id".to_owned(), "v".to_owned()),
            ("billstack_id".to_owned(), "v".to_owned()),
            ("k".to_owned(), "v".repeat(501)),
            ("k".to_owned(), String::new()),
        ] {
            let m: Metadata = [(k.clone(), v)].into();
            assert!(validate_metadata(&m).is_err(), "{k} should be refused");
        }
        let m: Metadata = [("a".repeat(40), "v".repeat(500))].into();
        assert!(validate_metadata(&m).is_ok());
    }

    #[test]
    fn replacing_metadata_unsets_stale_keys_and_keeps_ours() {
        let new: Metadata = [("plan".to_owned(), "enterprise".to_owned())].into();
        let stale = ["plan".to_owned(), "old".to_owned()];
        let params = stripe_metadata_replacing(&new, &[("project_id", "proj_1")], &stale);
        assert_eq!(params.get("plan").map(String::as_str), Some("enterprise"));
        assert_eq!(params.get("old").map(String::as_str), Some(""));
        assert_eq!(params.get("project_id").map(String::as_str), Some("proj_1"));
        assert_eq!(params.len(), 3);
    }

    #[test]
    fn unwanted_keys_are_those_beyond_the_wanted_and_ours() {
        let in_stripe: HashMap<String, String> =
            [("plan", "pro"), ("external", "x"), ("project_id", "p")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
        let wanted: Metadata = [("plan".to_owned(), "pro".to_owned())].into();
        let unset = unwanted_stripe_keys(&in_stripe, &wanted);
        assert_eq!(
            unset,
            HashMap::from([("external".to_owned(), String::new())])
        );
    }

    #[test]
    fn emails_are_trimmed_lowercased_and_checked() {
        assert_eq!(
            normalize_email("  Jane@Example.COM ").unwrap(),
            "jane@example.com"
        );
        assert_eq!(
            normalize_email("a.b+tag@sub.example.co").unwrap(),
            "a.b+tag@sub.example.co"
        );
        // One form per mailbox: full-width and ASCII, Unicode and punycode domains.
        assert_eq!(
            normalize_email("ＪＡＮＥ＠ＥＸＡＭＰＬＥ.com").unwrap(),
            "jane@example.com"
        );
        assert_eq!(
            normalize_email("Jane@Bücher.de").unwrap(),
            normalize_email("jane@xn--bcher-kva.de").unwrap()
        );
        assert_eq!(
            normalize_email("jane@bücher.de").unwrap(),
            "jane@xn--bcher-kva.de"
        );
        assert_eq!(
            normalize_email("a.b+tag@sub.example.co").unwrap(),
            "a.b+tag@sub.example.co"
        );
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "jane@@example.com",
            "ja ne@example.com",
            "jane@exa mple.com",
            "jane@.example.com",
            "jane@example..com",
            ".jane@example.com",
            "jane.@example.com",
            "jane@-example.com",
            "jane@example.1",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(normalize_email(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded() {
        assert_eq!(text("name", "  Jane  ", 256).unwrap(), "Jane");
        assert!(text("name", "   ", 256).is_err());
        assert!(text("name", &"é".repeat(257), 256).is_err());
        assert!(text("name", &"é".repeat(256), 256).is_ok());
        assert!(text("name", "a\u{0}b", 256).is_err());
    }
}
