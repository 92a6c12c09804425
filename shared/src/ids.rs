//! BillStack IDs: a type prefix over a UUIDv7 in lowercase hex, so IDs sort by creation
//! time and a DynamoDB `Query` returns objects in creation order without a sort step.

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

#[cfg(test)]
mod tests {
    use super::*;

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
