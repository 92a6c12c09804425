//! Stripe's form encoding: `a=1`, `metadata[k]=v`, `expand[]=x`, `expand[0]=x`,
//! `recurring[interval]=month`, in a query string or an
//! `application/x-www-form-urlencoded` body.

use std::collections::BTreeMap;

use crate::error::ApiError;

/// One `key=value` pair, with the key split into its base name and bracket segments.
#[derive(Debug, Clone)]
pub(crate) struct Param {
    pub key: String,
    pub base: String,
    pub sub: Vec<String>,
    pub value: String,
}

/// How a parameter may be shaped.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// `name=value`
    Scalar,
    /// `metadata[k]=v`, or `metadata=` to clear every key
    Metadata,
    /// `expand[]=a` / `expand[0]=a`
    List,
    /// `name[sub]=value` with the given sub-keys
    Hash(&'static [&'static str]),
}

/// What a request asks of an object's metadata, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MetaOp {
    Clear,
    Set(String, String),
    Unset(String),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Form {
    params: Vec<Param>,
}

fn split_key(key: &str) -> (String, Vec<String>) {
    let Some(open) = key.find('[') else {
        return (key.to_string(), Vec::new());
    };
    let base = &key[..open];
    let mut rest = &key[open..];
    let mut sub = Vec::new();
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            // Malformed brackets: keep the whole key as the name, so it is reported as unknown.
            return (key.to_string(), Vec::new());
        };
        sub.push(stripped[..close].to_string());
        rest = &stripped[close + 1..];
    }
    if !rest.is_empty() {
        return (key.to_string(), Vec::new());
    }
    (base.to_string(), sub)
}

impl Form {
    /// Parses a query string and a body (either may be empty); query pairs come first.
    pub fn parse(query: &[u8], body: &[u8]) -> Form {
        let params = form_urlencoded::parse(query)
            .chain(form_urlencoded::parse(body))
            .map(|(k, v)| {
                let key = k.into_owned();
                let (base, sub) = split_key(&key);
                Param {
                    key,
                    base,
                    sub,
                    value: v.into_owned(),
                }
            })
            .collect();
        Form { params }
    }

    /// Every pair, sorted: two requests with the same parameters in another order compare equal.
    pub fn canonical(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .params
            .iter()
            .map(|p| (p.key.clone(), p.value.clone()))
            .collect();
        pairs.sort();
        pairs
    }

    /// Refuses the first parameter the endpoint does not accept, as Stripe does.
    pub fn check_known(&self, spec: &[(&str, Kind)]) -> Result<(), ApiError> {
        for p in &self.params {
            let Some((_, kind)) = spec.iter().find(|(name, _)| *name == p.base) else {
                return Err(ApiError::unknown_param(&p.base));
            };
            if let Kind::Hash(allowed) = kind
                && let Some(first) = p.sub.first()
                && !allowed.contains(&first.as_str())
            {
                return Err(ApiError::unknown_param(&format!("{}[{}]", p.base, first)));
            }
        }
        Ok(())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Param> + 'a {
        self.params.iter().filter(move |p| p.base == name)
    }

    /// The last value given for a scalar parameter.
    pub fn scalar(&self, name: &str) -> Result<Option<String>, ApiError> {
        let mut out = None;
        for p in self.all(name) {
            if !p.sub.is_empty() {
                return Err(ApiError::invalid(format!(
                    "Invalid string: {name} must be a string, not an object or array."
                ))
                .param(name));
            }
            out = Some(p.value.clone());
        }
        Ok(out)
    }

    /// A string field where the empty string means "unset" (`Some(None)`).
    pub fn optional_string(&self, name: &str) -> Result<Option<Option<String>>, ApiError> {
        Ok(self
            .scalar(name)?
            .map(|v| if v.is_empty() { None } else { Some(v) }))
    }

    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.scalar(name)?.as_deref() {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(ApiError::invalid(format!("Invalid boolean: {other}")).param(name)),
        }
    }

    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.scalar(name)? {
            None => Ok(None),
            Some(v) => v.parse::<i64>().map(Some).map_err(|_| {
                ApiError::invalid(format!("Invalid integer: {v}"))
                    .code("parameter_invalid_integer")
                    .param(name)
            }),
        }
    }

    /// `name[]=a&name[]=b` or `name[0]=a&name[1]=b`, in the order given.
    pub fn list(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        for p in self.all(name) {
            match p.sub.as_slice() {
                [] if p.value.is_empty() => {}
                [idx] if idx.is_empty() || idx.chars().all(|c| c.is_ascii_digit()) => {
                    out.push(p.value.clone())
                }
                _ => return Err(ApiError::invalid(format!("Invalid array: {}", p.key)).param(name)),
            }
        }
        Ok(out)
    }

    /// `name[sub]=value` pairs; `None` when the parameter is absent or only given as `name=`.
    pub fn hash(&self, name: &str) -> Result<Option<BTreeMap<String, String>>, ApiError> {
        let mut out: Option<BTreeMap<String, String>> = None;
        for p in self.all(name) {
            match p.sub.as_slice() {
                [] if p.value.is_empty() => {}
                [] => return Err(ApiError::invalid("Invalid object").param(name)),
                [k] => {
                    out.get_or_insert_with(BTreeMap::new)
                        .insert(k.clone(), p.value.clone());
                }
                _ => {
                    return Err(
                        ApiError::invalid(format!("Invalid string: {}", p.key)).param(&p.key)
                    );
                }
            }
        }
        Ok(out)
    }

    /// The metadata operations of the request, in order, or `None` when `metadata` is absent.
    pub fn metadata(&self) -> Result<Option<Vec<MetaOp>>, ApiError> {
        let mut ops: Option<Vec<MetaOp>> = None;
        for p in self.all("metadata") {
            let op = match p.sub.as_slice() {
                [] if p.value.is_empty() => MetaOp::Clear,
                [] => return Err(ApiError::invalid("Invalid object").param("metadata")),
                [k] if k.is_empty() => {
                    return Err(
                        ApiError::invalid("Metadata keys must not be empty.").param("metadata")
                    );
                }
                [k] if p.value.is_empty() => MetaOp::Unset(k.clone()),
                [k] => MetaOp::Set(k.clone(), p.value.clone()),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "Invalid string: metadata values must be strings ({})",
                        p.key
                    ))
                    .param(p.key.clone()));
                }
            };
            ops.get_or_insert_with(Vec::new).push(op);
        }
        Ok(ops)
    }
}

pub(crate) const METADATA_MAX_KEYS: usize = 50;
pub(crate) const METADATA_MAX_KEY_LEN: usize = 40;
pub(crate) const METADATA_MAX_VALUE_LEN: usize = 500;

/// Applies metadata operations to `current` with Stripe's limits; `current` is untouched on error.
pub(crate) fn apply_metadata(
    current: &BTreeMap<String, String>,
    ops: &[MetaOp],
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut next = current.clone();
    for op in ops {
        match op {
            MetaOp::Clear => next.clear(),
            MetaOp::Unset(k) => {
                next.remove(k);
            }
            MetaOp::Set(k, v) => {
                let key_len = k.chars().count();
                if key_len > METADATA_MAX_KEY_LEN {
                    return Err(ApiError::invalid(format!(
                        "Metadata keys can have up to {METADATA_MAX_KEY_LEN} characters, but you \
                         passed in a key that is {key_len} characters: '{k}'"
                    ))
                    .param(format!("metadata[{k}]")));
                }
                let value_len = v.chars().count();
                if value_len > METADATA_MAX_VALUE_LEN {
                    return Err(ApiError::invalid(format!(
                        "Metadata values can have up to {METADATA_MAX_VALUE_LEN} characters, but \
                         you passed in a value that is {value_len} characters."
                    ))
                    .param(format!("metadata[{k}]")));
                }
                next.insert(k.clone(), v.clone());
            }
        }
    }
    if next.len() > METADATA_MAX_KEYS {
        return Err(ApiError::invalid(format!(
            "You can have up to {METADATA_MAX_KEYS} metadata keys, but this request would leave \
             {} keys.",
            next.len()
        ))
        .param("metadata"));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_bracket_keys() {
        assert_eq!(split_key("email"), ("email".into(), vec![]));
        assert_eq!(
            split_key("metadata[plan]"),
            ("metadata".into(), vec!["plan".into()])
        );
        assert_eq!(
            split_key("expand[]"),
            ("expand".into(), vec![String::new()])
        );
        assert_eq!(
            split_key("a[b][c]"),
            ("a".into(), vec!["b".into(), "c".into()])
        );
        assert_eq!(split_key("a[b"), ("a[b".into(), vec![]));
        assert_eq!(split_key("a[b]c"), ("a[b]c".into(), vec![]));
    }

    #[test]
    fn parses_percent_encoded_brackets_and_metadata_ops() {
        let form = Form::parse(b"", b"metadata%5Bplan%5D=pro&metadata%5Bold%5D=&name=A+B");
        assert_eq!(form.scalar("name").ok().flatten().as_deref(), Some("A B"));
        let ops = form.metadata().ok().flatten();
        assert_eq!(
            ops,
            Some(vec![
                MetaOp::Set("plan".into(), "pro".into()),
                MetaOp::Unset("old".into())
            ])
        );
        let cleared = Form::parse(b"", b"metadata=").metadata().ok().flatten();
        assert_eq!(cleared, Some(vec![MetaOp::Clear]));
    }

    #[test]
    fn canonical_ignores_order() {
        let a = Form::parse(b"", b"metadata[a]=1&metadata[b]=2");
        let b = Form::parse(b"", b"metadata[b]=2&metadata[a]=1");
        let c = Form::parse(b"", b"metadata[b]=3&metadata[a]=1");
        assert_eq!(a.canonical(), b.canonical());
        assert_ne!(a.canonical(), c.canonical());
    }

    #[test]
    fn unknown_params_are_named() {
        let spec = [
            ("name", Kind::Scalar),
            ("recurring", Kind::Hash(&["interval"])),
        ];
        let err = Form::parse(b"", b"name=x&foo[bar]=1")
            .check_known(&spec)
            .err();
        assert_eq!(
            err.map(|e| e.message),
            Some("Received unknown parameter: foo".into())
        );
        let err = Form::parse(b"", b"recurring[nope]=1")
            .check_known(&spec)
            .err();
        assert_eq!(err.and_then(|e| e.param), Some("recurring[nope]".into()));
        assert!(
            Form::parse(b"", b"recurring[interval]=month")
                .check_known(&spec)
                .is_ok()
        );
    }

    #[test]
    fn metadata_limits() {
        let base = BTreeMap::new();
        let long_key = "k".repeat(41);
        assert!(apply_metadata(&base, &[MetaOp::Set(long_key, "v".into())]).is_err());
        assert!(apply_metadata(&base, &[MetaOp::Set("k".repeat(40), "v".repeat(500))]).is_ok());
        assert!(apply_metadata(&base, &[MetaOp::Set("k".into(), "v".repeat(501))]).is_err());
        let fifty: Vec<MetaOp> = (0..50)
            .map(|i| MetaOp::Set(format!("k{i}"), "v".into()))
            .collect();
        let full = apply_metadata(&base, &fifty).unwrap_or_default();
        assert_eq!(full.len(), 50);
        assert!(apply_metadata(&full, &[MetaOp::Set("one_more".into(), "v".into())]).is_err());
        // Removing one key first makes room.
        let ops = [
            MetaOp::Unset("k0".into()),
            MetaOp::Set("one_more".into(), "v".into()),
        ];
        assert_eq!(apply_metadata(&full, &ops).map(|m| m.len()).ok(), Some(50));
    }
}
