//! BillStack IDs: a type prefix over a UUIDv7 in lowercase hex, so IDs sort by creation
//! time and a DynamoDB `Query` returns objects in creation order without a sort step.
//!
//! Each kind of ID is its own type ([`TeamId`], [`ProjectId`], [`CustomerId`], …): a
//! customer's ID cannot be passed where a project's is wanted. An [`Id`] reads as the
//! `str` it is (`Deref`), and is one JSON string and one DynamoDB string.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Team,
    Project,
    Customer,
    Product,
    Price,
    ApiKey,
    /// A background job (a backfill).
    Job,
}

impl IdKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::Team => "team_",
            IdKind::Project => "proj_",
            IdKind::Customer => "pc_",
            IdKind::Product => "pp_",
            IdKind::Price => "pri_",
            IdKind::ApiKey => "key_",
            IdKind::Job => "job_",
        }
    }

    /// What an ID of this kind names, as error messages say it.
    pub const fn noun(self) -> &'static str {
        match self {
            IdKind::Team => "team",
            IdKind::Project => "project",
            IdKind::Customer => "customer",
            IdKind::Product => "product",
            IdKind::Price => "price",
            IdKind::ApiKey => "API key",
            IdKind::Job => "job",
        }
    }

    /// A new, time-ordered ID of this kind.
    pub fn generate(self) -> String {
        format!("{}{}", self.prefix(), Uuid::now_v7().simple())
    }

    /// Whether `id` could be an ID of this kind: its prefix, then 1 to 64 characters of
    /// `[a-z0-9_-]`. IDs made elsewhere (seeded or imported) may be shorter than ours.
    pub fn matches(self, id: &str) -> bool {
        id.strip_prefix(self.prefix()).is_some_and(|rest| {
            !rest.is_empty()
                && rest.len() <= 64
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
    }
}

/// What kind of ID an [`Id`] is.
pub trait Kind: 'static {
    const KIND: IdKind;
}

/// The ID of one kind of object. It names the object; it does not say the object exists,
/// and one read from a path may be of another form than ours ([`Id::is_well_formed`]),
/// which names nothing. What our table and our Stripe metadata hold is taken as it is.
pub struct Id<K>(String, PhantomData<fn() -> K>);

macro_rules! id_kinds {
    ($($marker:ident => $alias:ident ($kind:ident);)*) => {$(
        #[doc = concat!("The kind of a [`", stringify!($alias), "`].")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $marker {}
        impl Kind for $marker {
            const KIND: IdKind = IdKind::$kind;
        }
        pub type $alias = Id<$marker>;
    )*};
}

id_kinds! {
    TeamKind => TeamId (Team);
    ProjectKind => ProjectId (Project);
    CustomerKind => CustomerId (Customer);
    ProductKind => ProductId (Product);
    PriceKind => PriceId (Price);
    ApiKeyKind => ApiKeyId (ApiKey);
    JobKind => JobId (Job);
}

impl<K: Kind> Id<K> {
    /// A new, time-ordered ID.
    pub fn generate() -> Self {
        Self::from(K::KIND.generate())
    }

    /// `text` as an ID of this kind, if it has this kind's form.
    pub fn parse(text: &str) -> Option<Self> {
        K::KIND.matches(text).then(|| Self::from(text))
    }

    /// Whether this has the form of our IDs of its kind ([`IdKind::matches`]).
    pub fn is_well_formed(&self) -> bool {
        K::KIND.matches(&self.0)
    }
}

impl<K> Id<K> {
    /// The empty ID, which names nothing.
    pub const fn none() -> Self {
        Id(String::new(), PhantomData)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// As it is: an ID our table or our Stripe metadata holds, or a path names.
impl<K> From<String> for Id<K> {
    fn from(id: String) -> Self {
        Id(id, PhantomData)
    }
}

impl<K> From<&str> for Id<K> {
    fn from(id: &str) -> Self {
        Id(id.to_owned(), PhantomData)
    }
}

impl<K> From<&String> for Id<K> {
    fn from(id: &String) -> Self {
        Id(id.clone(), PhantomData)
    }
}

impl<K> From<Id<K>> for String {
    fn from(id: Id<K>) -> Self {
        id.0
    }
}

impl<K> From<&Id<K>> for String {
    fn from(id: &Id<K>) -> Self {
        id.0.clone()
    }
}

impl<K> Deref for Id<K> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<K> AsRef<str> for Id<K> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<K> Borrow<str> for Id<K> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<K> Clone for Id<K> {
    fn clone(&self) -> Self {
        Id(self.0.clone(), PhantomData)
    }
}

impl<K> fmt::Debug for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<K> fmt::Display for Id<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<K> PartialEq for Id<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<K> Eq for Id<K> {}

impl<K> PartialEq<&Id<K>> for Id<K> {
    fn eq(&self, other: &&Id<K>) -> bool {
        self.0 == other.0
    }
}

impl<K> std::hash::Hash for Id<K> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl<K> PartialOrd for Id<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<K> Ord for Id<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.cmp(&other.0)
    }
}

impl<K> PartialEq<str> for Id<K> {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl<K> PartialEq<&str> for Id<K> {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl<K> PartialEq<String> for Id<K> {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl<K> PartialEq<Id<K>> for str {
    fn eq(&self, other: &Id<K>) -> bool {
        self == other.0
    }
}

impl<K> PartialEq<Id<K>> for &str {
    fn eq(&self, other: &Id<K>) -> bool {
        *self == other.0
    }
}

impl<K> PartialEq<Id<K>> for String {
    fn eq(&self, other: &Id<K>) -> bool {
        *self == other.0
    }
}

impl<K> Serialize for Id<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de, K> Deserialize<'de> for Id<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_ids_are_their_kinds_and_read_as_strings() {
        let id = CustomerId::generate();
        assert!(id.starts_with("pc_") && id.is_well_formed(), "{id}");
        assert_eq!(CustomerId::parse(&id), Some(id.clone()));
        assert_eq!(ProductId::parse(&id), None);
        assert!(!ProjectId::from("proj_A").is_well_formed());
        let json = serde_json::to_value(&id).unwrap();
        assert_eq!(json, serde_json::Value::String(id.to_string()));
        assert_eq!(serde_json::from_value::<CustomerId>(json).unwrap(), id);
        assert_eq!(ProjectId::from("proj_x"), "proj_x");
    }

    #[test]
    fn generated_ids_carry_their_prefix_and_sort_by_time() {
        let a = IdKind::Customer.generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = IdKind::Customer.generate();
        assert!(a.starts_with("pc_") && a.len() == 3 + 32, "{a}");
        assert!(a < b, "{a} should sort before {b}");
        assert!(IdKind::Customer.matches(&a));
        assert!(!IdKind::Product.matches(&a));
    }

    #[test]
    fn matches_rejects_foreign_shapes() {
        assert!(IdKind::Project.matches("proj_abc123"));
        assert!(!IdKind::Project.matches("proj_"));
        assert!(!IdKind::Project.matches("proj_ABC"));
        assert!(!IdKind::Project.matches("proj_a/b"));
        assert!(!IdKind::Project.matches("team_abc"));
        assert!(!IdKind::Project.matches(&format!("proj_{}", "a".repeat(65))));
    }
}
