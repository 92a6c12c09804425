//! Teams, their members, projects and API keys.
//!
//! A team's owner count lives on the team item and changes only in the transaction that
//! changes an owner's membership, with the condition that at least one owner remains, so a
//! team never loses its last owner however many requests race.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, KeysAndAttributes, Put, ReturnValue, TransactWriteItem,
    Update,
};

use super::{
    Item, Store, TxOutcome, applied, dynamo_error, from_item, key_item, keys, n, s, to_item,
};
use crate::deadline::WithinDeadline;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{ApiKeyId, ProjectId, TeamId};
use crate::input::Page;
use crate::model::ApiKeyRecord;
use crate::model::{Membership, Project, Role, Team};

/// How a change to a membership ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleChange {
    /// Applied; the membership as it now is (as it was, for a removal).
    Done(Membership),
    NotFound,
    /// Refused: it would leave the team without an owner.
    LastOwner,
}

/// Attempts at a role change whose membership changed under it before giving up with 409.
const ROLE_CHANGE_ATTEMPTS: usize = 3;

fn role_value(role: Role) -> AttributeValue {
    s(role.as_str())
}

fn build<T, E: std::fmt::Display>(built: Result<T, E>) -> Result<T, ApiError> {
    built.map_err(ApiError::internal)
}

impl Store {
    fn put_item(&self, item: Item, condition: &str) -> Result<TransactWriteItem, ApiError> {
        let put = build(
            Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression(condition)
                .build(),
        )?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// The team's owner count moved by `delta` (±1); a decrement only while another owner
    /// remains.
    fn owner_count_change(
        &self,
        team_id: &TeamId,
        delta: i32,
    ) -> Result<TransactWriteItem, ApiError> {
        let mut update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::team(team_id))))
            .expression_attribute_values(":one", n(1));
        update = if delta > 0 {
            update
                .update_expression("SET ownerCount = if_not_exists(ownerCount, :zero) + :one")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":zero", n(0))
        } else {
            update
                .update_expression("SET ownerCount = ownerCount - :one")
                .condition_expression("ownerCount > :one")
        };
        Ok(TransactWriteItem::builder()
            .update(build(update.build())?)
            .build())
    }

    fn membership_item(&self, membership: &Membership) -> Result<Item, ApiError> {
        let mut item = to_item(
            membership,
            keys::member(&membership.team_id, &membership.user_id),
            "membership",
        )?;
        item.insert(
            keys::GSI1PK.to_owned(),
            s(keys::user_index(&membership.user_id)),
        );
        item.insert(
            keys::GSI1SK.to_owned(),
            s(keys::index_sort(keys::TEAM_INDEX, &membership.team_id)),
        );
        Ok(item)
    }

    /// Writes a new team (its owner count 1) and its first owner, in one transaction.
    pub async fn create_team_with_owner(
        &self,
        team: &Team,
        owner: &Membership,
    ) -> Result<(), ApiError> {
        let team_item = to_item(team, keys::team(&team.id), "team")?;
        let outcome = self
            .transact(vec![
                self.put_item(team_item, "attribute_not_exists(pk)")?,
                self.put_item(self.membership_item(owner)?, "attribute_not_exists(pk)")?,
            ])
            .await?;
        match outcome {
            TxOutcome::Applied => Ok(()),
            TxOutcome::ConditionFailed(_) => Err(ApiError::new(
                ErrorCode::TeamExists,
                format!("Team {} already exists", team.id),
            )),
        }
    }

    /// Writes a team with no members (operators' `billstack-admin team create`).
    pub async fn put_team(&self, team: &Team) -> Result<(), ApiError> {
        let item = to_item(team, keys::team(&team.id), "team")?;
        if self.put_new(item).await? {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::TeamExists,
                format!("Team {} already exists", team.id),
            ))
        }
    }

    pub async fn get_team(&self, team_id: &TeamId) -> Result<Option<Team>, ApiError> {
        self.get(keys::team(team_id)).await
    }

    /// Renames a team; `None` if it does not exist.
    pub async fn rename_team(
        &self,
        team_id: &TeamId,
        name: &str,
        now: i64,
    ) -> Result<Option<Team>, ApiError> {
        self.rename_item(keys::team(team_id), name, now, "attribute_exists(pk)", None)
            .await
    }

    /// Sets an item's `name` and `updatedAt` where `condition` (with the one extra value
    /// `extra`) holds; the item as written, or `None` if the condition failed.
    async fn rename_item<T: serde::de::DeserializeOwned>(
        &self,
        key: (String, String),
        name: &str,
        now: i64,
        condition: &str,
        extra: Option<(&str, AttributeValue)>,
    ) -> Result<Option<T>, ApiError> {
        let mut values =
            HashMap::from([(":name".to_owned(), s(name)), (":now".to_owned(), n(now))]);
        if let Some((placeholder, value)) = extra {
            values.insert(placeholder.to_owned(), value);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .update_expression("SET #name = :name, updatedAt = :now")
            .condition_expression(condition)
            .expression_attribute_names("#name", "name")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::AllNew)
            .send()
            .within_deadline()
            .await;
        match result {
            Ok(out) => out.attributes.map(from_item).transpose(),
            Err(err) if super::is_conditional_failure(&err) => Ok(None),
            Err(err) => Err(dynamo_error(err)),
        }
    }

    /// A strongly consistent read of one membership: what a session's access rests on.
    pub async fn get_membership(
        &self,
        team_id: &TeamId,
        user_id: &str,
    ) -> Result<Option<Membership>, ApiError> {
        self.get(keys::member(team_id, user_id)).await
    }

    /// Every member of a team, oldest first (a team has few).
    pub async fn list_members(&self, team_id: &TeamId) -> Result<Vec<Membership>, ApiError> {
        let every = Page {
            limit: None,
            offset: 0,
            starting_after: None,
        };
        let (mut members, _) = self
            .query_newest_first::<Membership>(
                None,
                (keys::PK, keys::team_index(team_id)),
                (keys::SK, keys::MEMBER.to_owned()),
                None,
                &every,
                None,
            )
            .await?;
        members.sort_by(|a, b| (a.created_at, &a.user_id).cmp(&(b.created_at, &b.user_id)));
        Ok(members)
    }

    /// One page of a user's memberships, newest team first, with the teams themselves.
    pub async fn teams_of_user(
        &self,
        user_id: &str,
        page: &Page,
    ) -> Result<(Vec<(Team, Role)>, bool), ApiError> {
        let (memberships, has_more) = self
            .query_newest_first::<Membership>(
                Some(keys::GSI1),
                (keys::GSI1PK, keys::user_index(user_id)),
                (keys::GSI1SK, keys::TEAM_INDEX.to_owned()),
                None,
                page,
                None,
            )
            .await?;
        let mut teams: HashMap<TeamId, Team> = self
            .batch_get::<Team>(memberships.iter().map(|m| keys::team(&m.team_id)).collect())
            .await?
            .into_iter()
            .map(|team| (team.id.clone(), team))
            .collect();
        let found = memberships
            .into_iter()
            .filter_map(|m| teams.remove(&m.team_id).map(|team| (team, m.role)))
            .collect();
        Ok((found, has_more))
    }

    /// Strongly consistent reads of up to 100 items by key, in no particular order.
    async fn batch_get<T: serde::de::DeserializeOwned>(
        &self,
        wanted: Vec<(String, String)>,
    ) -> Result<Vec<T>, ApiError> {
        let mut found = Vec::with_capacity(wanted.len());
        if wanted.is_empty() {
            return Ok(found);
        }
        let mut pending = Some(build(
            KeysAndAttributes::builder()
                .set_keys(Some(wanted.into_iter().map(key_item).collect()))
                .consistent_read(true)
                .build(),
        )?);
        // DynamoDB may leave some keys unprocessed under load; ask again for those.
        for _ in 0..5 {
            let Some(request) = pending.take() else { break };
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .within_deadline()
                .await
                .map_err(dynamo_error)?;
            if let Some(mut responses) = out.responses {
                for item in responses.remove(&self.table).unwrap_or_default() {
                    found.push(from_item(item)?);
                }
            }
            pending = out
                .unprocessed_keys
                .and_then(|mut rest| rest.remove(&self.table))
                .filter(|rest| !rest.keys().is_empty());
        }
        if pending.is_some() {
            return Err(ApiError::unavailable(
                "The database is busy; retry the request",
            ));
        }
        Ok(found)
    }

    /// Adds a member; an owner also counts toward the team's owners. `Ok(false)` if the
    /// user is a member already; 404 if the team does not exist.
    pub async fn add_member(&self, membership: &Membership) -> Result<bool, ApiError> {
        let put = self.put_item(
            self.membership_item(membership)?,
            "attribute_not_exists(pk)",
        )?;
        let team_item = match membership.role {
            Role::Owner => self.owner_count_change(&membership.team_id, 1)?,
            Role::Member => TransactWriteItem::builder()
                .condition_check(build(
                    ConditionCheck::builder()
                        .table_name(&self.table)
                        .set_key(Some(key_item(keys::team(&membership.team_id))))
                        .condition_expression("attribute_exists(pk)")
                        .build(),
                )?)
                .build(),
        };
        match self.transact(vec![put, team_item]).await? {
            TxOutcome::Applied => Ok(true),
            TxOutcome::ConditionFailed(failed) if failed.first() == Some(&true) => Ok(false),
            TxOutcome::ConditionFailed(_) => Err(ApiError::not_found("Team not found")),
        }
    }

    /// Gives a member another role, keeping the team's owner count in step.
    pub async fn change_role(
        &self,
        team_id: &TeamId,
        user_id: &str,
        to: Role,
    ) -> Result<RoleChange, ApiError> {
        for _ in 0..ROLE_CHANGE_ATTEMPTS {
            let Some(current) = self.get_membership(team_id, user_id).await? else {
                return Ok(RoleChange::NotFound);
            };
            if current.role == to {
                return Ok(RoleChange::Done(current));
            }
            let update = build(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_item(keys::member(team_id, user_id))))
                    .update_expression("SET #role = :to")
                    .condition_expression("#role = :from")
                    .expression_attribute_names("#role", "role")
                    .expression_attribute_values(":to", role_value(to))
                    .expression_attribute_values(":from", role_value(current.role))
                    .build(),
            )?;
            let delta = if to == Role::Owner { 1 } else { -1 };
            let items = vec![
                TransactWriteItem::builder().update(update).build(),
                self.owner_count_change(team_id, delta)?,
            ];
            match self.transact(items).await? {
                TxOutcome::Applied => {
                    return Ok(RoleChange::Done(Membership {
                        role: to,
                        ..current
                    }));
                }
                // The membership changed since we read it: read it again.
                TxOutcome::ConditionFailed(failed) if failed.first() == Some(&true) => continue,
                TxOutcome::ConditionFailed(_) => return Ok(RoleChange::LastOwner),
            }
        }
        Err(concurrent_change())
    }

    /// Removes a member; an owner only while another owner remains.
    pub async fn remove_member(
        &self,
        team_id: &TeamId,
        user_id: &str,
    ) -> Result<RoleChange, ApiError> {
        for _ in 0..ROLE_CHANGE_ATTEMPTS {
            let Some(current) = self.get_membership(team_id, user_id).await? else {
                return Ok(RoleChange::NotFound);
            };
            let delete = build(
                Delete::builder()
                    .table_name(&self.table)
                    .set_key(Some(key_item(keys::member(team_id, user_id))))
                    .condition_expression("#role = :role")
                    .expression_attribute_names("#role", "role")
                    .expression_attribute_values(":role", role_value(current.role))
                    .build(),
            )?;
            let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
            if current.role == Role::Owner {
                items.push(self.owner_count_change(team_id, -1)?);
            }
            match self.transact(items).await? {
                TxOutcome::Applied => return Ok(RoleChange::Done(current)),
                TxOutcome::ConditionFailed(failed) if failed.first() == Some(&true) => continue,
                TxOutcome::ConditionFailed(_) => return Ok(RoleChange::LastOwner),
            }
        }
        Err(concurrent_change())
    }

    /// Records the `email`/`name` a member's own token carries (best effort).
    pub async fn refresh_member_profile(&self, membership: &Membership) -> Result<(), ApiError> {
        let mut values = HashMap::new();
        let mut sets = Vec::new();
        let mut removes = Vec::new();
        for (attr, value) in [("email", &membership.email), ("name", &membership.name)] {
            match value {
                Some(v) => {
                    sets.push(format!("#{attr} = :{attr}"));
                    values.insert(format!(":{attr}"), s(v.clone()));
                }
                None => removes.push(format!("#{attr}")),
            }
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression.push_str(&format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::member(
                &membership.team_id,
                &membership.user_id,
            ))))
            .update_expression(expression.trim())
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#email", "email")
            .expression_attribute_names("#name", "name")
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .send()
            .within_deadline()
            .await;
        applied(result).map(|_| ())
    }

    pub async fn put_project(&self, project: &Project) -> Result<(), ApiError> {
        let mut item = to_item(project, keys::project(&project.id), "project")?;
        item.insert(
            keys::GSI1PK.to_owned(),
            s(keys::team_index(&project.team_id)),
        );
        item.insert(
            keys::GSI1SK.to_owned(),
            s(keys::index_sort(keys::PROJECT_INDEX, &project.id)),
        );
        if self.put_new(item).await? {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::ProjectExists,
                format!("Project {} already exists", project.id),
            ))
        }
    }

    pub async fn get_project(&self, project_id: &ProjectId) -> Result<Option<Project>, ApiError> {
        self.get(keys::project(project_id)).await
    }

    /// A project of `team_id`; `None` for a project of another team too.
    pub async fn get_team_project(
        &self,
        team_id: &TeamId,
        project_id: &ProjectId,
    ) -> Result<Option<Project>, ApiError> {
        Ok(self
            .get_project(project_id)
            .await?
            .filter(|project| project.team_id == team_id))
    }

    /// Renames a project of `team_id`; `None` if there is no such project in that team.
    pub async fn rename_project(
        &self,
        team_id: &TeamId,
        project_id: &ProjectId,
        name: &str,
        now: i64,
    ) -> Result<Option<Project>, ApiError> {
        self.rename_item(
            keys::project(project_id),
            name,
            now,
            "attribute_exists(pk) AND teamId = :team",
            Some((":team", s(team_id))),
        )
        .await
    }

    /// One page of a team's projects, newest first.
    pub async fn list_projects(
        &self,
        team_id: &TeamId,
        page: &Page,
    ) -> Result<(Vec<Project>, bool), ApiError> {
        self.query_newest_first(
            Some(keys::GSI1),
            (keys::GSI1PK, keys::team_index(team_id)),
            (keys::GSI1SK, keys::PROJECT_INDEX.to_owned()),
            None,
            page,
            None,
        )
        .await
    }

    /// Stores a key record under the hash of its secret, and its ID → hash entry in the
    /// team's partition, in one transaction.
    pub async fn put_api_key(&self, hash: &str, record: &ApiKeyRecord) -> Result<(), ApiError> {
        let mut item = to_item(record, keys::api_key(hash), "api_key")?;
        item.insert(
            keys::GSI1PK.to_owned(),
            s(keys::team_index(&record.team_id)),
        );
        item.insert(
            keys::GSI1SK.to_owned(),
            s(keys::index_sort(keys::APIKEY_INDEX, &record.id)),
        );
        let mut by_id = key_item(keys::api_key_by_id(&record.team_id, &record.id));
        by_id.insert(keys::ENTITY.to_owned(), s("api_key_id"));
        by_id.insert(KEY_HASH.to_owned(), s(hash));
        let outcome = self
            .transact(vec![
                self.put_item(item, "attribute_not_exists(pk)")?,
                self.put_item(by_id, "attribute_not_exists(pk)")?,
            ])
            .await?;
        match outcome {
            TxOutcome::Applied => Ok(()),
            TxOutcome::ConditionFailed(_) => Err(ApiError::new(
                ErrorCode::ApiKeyExists,
                "API key already exists",
            )),
        }
    }

    pub async fn get_api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKeyRecord>, ApiError> {
        self.get(keys::api_key(hash)).await
    }

    /// A key of `team_id` by its ID, with the hash it is stored under.
    pub async fn get_api_key(
        &self,
        team_id: &TeamId,
        key_id: &ApiKeyId,
    ) -> Result<Option<(String, ApiKeyRecord)>, ApiError> {
        let Some(by_id) = self
            .get::<HashMap<String, String>>(keys::api_key_by_id(team_id, key_id))
            .await?
        else {
            return Ok(None);
        };
        let Some(hash) = by_id.get(KEY_HASH) else {
            return Ok(None);
        };
        Ok(self
            .get_api_key_by_hash(hash)
            .await?
            .filter(|record| record.team_id == team_id)
            .map(|record| (hash.clone(), record)))
    }

    /// One page of a team's keys, newest first, revoked ones included.
    pub async fn list_api_keys(
        &self,
        team_id: &TeamId,
        page: &Page,
    ) -> Result<(Vec<ApiKeyRecord>, bool), ApiError> {
        self.query_newest_first(
            Some(keys::GSI1),
            (keys::GSI1PK, keys::team_index(team_id)),
            (keys::GSI1SK, keys::APIKEY_INDEX.to_owned()),
            None,
            page,
            None,
        )
        .await
    }

    /// Marks a key revoked at `at` (epoch seconds), keeping the first revocation's time;
    /// `false` if there is no such key.
    pub async fn revoke_api_key(&self, hash: &str, at: i64) -> Result<bool, ApiError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::api_key(hash))))
            .update_expression("SET revokedAt = :at")
            // serde_dynamo writes an absent Option as NULL.
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(revokedAt) OR attribute_type(revokedAt, :null))",
            )
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":null", s("NULL"))
            .send().within_deadline()
            .await;
        if applied(result)? {
            return Ok(true);
        }
        // Revoked already, or no such key.
        Ok(self.get_api_key_by_hash(hash).await?.is_some())
    }

    /// Records that a key was used at `now`, unless it was recorded after `since` already
    /// (by this container or another): at most one write per key per interval.
    pub async fn touch_api_key(&self, hash: &str, now: i64, since: i64) -> Result<bool, ApiError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::api_key(hash))))
            .update_expression("SET lastUsedAt = :now")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(lastUsedAt) OR attribute_type(lastUsedAt, :null) OR lastUsedAt < :since)",
            )
            .expression_attribute_values(":null", s("NULL"))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":since", n(since))
            .send().within_deadline()
            .await;
        applied(result)
    }
}

/// The attribute of a key's ID entry that holds the key's hash.
const KEY_HASH: &str = "keyHash";

fn concurrent_change() -> ApiError {
    let mut err = ApiError::new(
        ErrorCode::ConcurrentUpdate,
        "The membership was changed by another request meanwhile; fetch it and retry",
    );
    err.retry_after = Some(1);
    err
}
