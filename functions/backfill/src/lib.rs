//! A team's backfill from Stripe (`POST /stripe/backfill`): pages through the team's Stripe
//! customers, products (active and archived) and prices, a hundred at a time, and repairs
//! our records to match, as a `*.updated` event of each object would (orphans with our
//! metadata adopted, changed fields applied), counting what it did per object type.
//!
//! It works for an account of any size: the job keeps its cursor in DynamoDB and runs in
//! steps of one page; an invocation runs steps until its time budget is spent and hands the
//! job on ([`billstack::jobs`]). Each step's save is conditional on the step count it read,
//! so a redelivered message never runs a page twice. `syncStatus` moves `syncing` → `ready`.

use std::time::{Duration, Instant};

use billstack::App;
use billstack::clock;
use billstack::error::{ApiError, ErrorCode};
use billstack::ids::{JobId, ProjectId, TeamId};
use billstack::input::Page;
use billstack::jobs::JobMessage;
use billstack::model::{BackfillJob, JobState, SyncCounts, SyncObject, SyncStatus};
use serde_json::Value;
use webhooks::Outcome;

/// Objects per step (Stripe's largest page).
pub const PAGE: usize = 100;
/// A running job whose runner has been quiet this long may be started over.
pub const STALE_SECS: i64 = 15 * 60;

/// What a backfill request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRequest {
    pub objects: Vec<SyncObject>,
    pub created_after: Option<i64>,
}

/// Starts a backfill of `team_id` (or answers the one running), and hands it on to run.
pub async fn start(
    app: &App,
    team_id: &TeamId,
    request: &BackfillRequest,
) -> Result<BackfillJob, ApiError> {
    if app.store.get_stripe_connection(team_id).await?.is_none() {
        return Err(billstack::stripe::not_connected(
            "This team has not connected a Stripe account; connect one before a backfill",
        ));
    }
    let now = clock::now_epoch();
    let job = BackfillJob {
        team_id: team_id.clone(),
        job_id: JobId::generate(),
        objects: request.objects.clone(),
        created_after: request.created_after,
        phase: 0,
        cursor: None,
        projects: None,
        project_index: 0,
        counts: request
            .objects
            .iter()
            .map(|o| (*o, SyncCounts::default()))
            .collect(),
        job_state: JobState::Running,
        steps: 0,
        started_at: now,
        updated_at: now,
    };
    if !app.store.put_backfill_job(&job, None, STALE_SECS).await? {
        // One is running: that is the answer.
        if let Some(running) = app.store.get_backfill_job(team_id).await? {
            return Ok(running);
        }
        return Err(ApiError::new(
            ErrorCode::BackfillInProgress,
            "A backfill of this team is starting; retry shortly",
        ));
    }
    app.store
        .set_sync_status(team_id, SyncStatus::Syncing)
        .await?;
    app.jobs
        .send(&JobMessage {
            team_id: team_id.clone(),
            job_id: job.job_id.clone(),
        })
        .await?;
    tracing::info!(team_id = team_id.as_str(), job_id = %job.job_id, "backfill started");
    Ok(job)
}

/// Runs steps of the job of `message` until it is done or `deadline` is near; `true` when
/// nothing is left to do (done, replaced by another job, or gone).
pub async fn run(app: &App, message: &JobMessage, deadline: Instant) -> Result<bool, ApiError> {
    // A step is one Stripe page and up to a hundred repairs: leave it room to finish.
    let margin = Duration::from_secs(10);
    loop {
        if step(app, message).await? {
            return Ok(true);
        }
        if Instant::now() + margin >= deadline {
            return Ok(false);
        }
    }
}

/// One page of the job; `true` when nothing is left to do.
pub async fn step(app: &App, message: &JobMessage) -> Result<bool, ApiError> {
    let team_id = &message.team_id;
    let Some(mut job) = app.store.get_backfill_job(team_id).await? else {
        return Ok(true);
    };
    if job.job_id != message.job_id || job.job_state != JobState::Running {
        return Ok(true);
    }
    let kinds = job.objects.len();
    if job.phase >= 2 * kinds {
        return finish(app, job).await;
    }
    let stripe = app.stripe_for(team_id).await?;
    if job.phase >= kinds {
        check_ours(app, &stripe, &mut job).await?;
        return save(app, job).await;
    }
    let object_type = job.objects[job.phase];
    let mut params = vec![("limit", PAGE.to_string())];
    if let Some(cursor) = &job.cursor {
        params.push(("starting_after", cursor.clone()));
    }
    if let Some(after) = job.created_after {
        params.push(("created[gt]", after.to_string()));
    }
    let page = stripe
        .list_json(&format!("/{}", object_type.as_str()), &params)
        .await?;
    let data = page["data"].as_array().cloned().unwrap_or_default();
    let mut counts = job.counts.get(&object_type).copied().unwrap_or_default();
    for object in &data {
        counts.scanned += 1;
        match webhooks::reconcile(app, team_id, object_type, object).await? {
            Outcome::Adopted => counts.created += 1,
            Outcome::Applied | Outcome::EmailConflict | Outcome::Deleted => counts.updated += 1,
            Outcome::Unchanged | Outcome::Stale => counts.unchanged += 1,
            Outcome::Ignored(_) => counts.ignored += 1,
        }
    }
    job.counts.insert(object_type, counts);
    let has_more = page["has_more"] == Value::Bool(true) && !data.is_empty();
    if has_more {
        job.cursor = data
            .last()
            .and_then(|o| o["id"].as_str())
            .map(str::to_owned);
    } else {
        job.phase += 1;
        job.cursor = None;
    }
    save(app, job).await
}

/// Saves a step's progress (if no other runner advanced the job meanwhile); `true` when
/// nothing is left to do.
async fn save(app: &App, mut job: BackfillJob) -> Result<bool, ApiError> {
    let read_at = job.steps;
    job.steps += 1;
    job.updated_at = clock::now_epoch();
    if !app
        .store
        .put_backfill_job(&job, Some(read_at), STALE_SECS)
        .await?
    {
        // Another runner advanced it (a redelivered message): leave the job to it.
        return Ok(true);
    }
    if job.phase >= 2 * job.objects.len() {
        return finish(app, job).await;
    }
    Ok(false)
}

/// One page of our own records of the phase's kind, in one project: each whose Stripe
/// object is gone is marked deleted (a customer) or removed (a product with its prices, a
/// price). Stripe's lists do not show deleted objects, so only this finds them.
async fn check_ours(
    app: &App,
    stripe: &billstack::stripe::StripeGateway,
    job: &mut BackfillJob,
) -> Result<(), ApiError> {
    let object_type = job.objects[job.phase - job.objects.len()];
    let store = &app.store;
    let projects = match &job.projects {
        Some(projects) => projects.clone(),
        None => {
            let all = Page {
                limit: None,
                offset: 0,
                starting_after: None,
            };
            let (projects, _) = store.list_projects(&job.team_id, &all).await?;
            let ids: Vec<ProjectId> = projects.into_iter().map(|p| p.id).collect();
            job.projects = Some(ids.clone());
            ids
        }
    };
    let Some(project_id) = projects.get(job.project_index) else {
        job.phase += 1;
        job.project_index = 0;
        job.cursor = None;
        return Ok(());
    };
    let page = Page {
        limit: Some(PAGE as u32),
        offset: 0,
        starting_after: job.cursor.clone(),
    };
    let mut counts = job.counts.get(&object_type).copied().unwrap_or_default();
    let (last, has_more) = match object_type {
        SyncObject::Customers => {
            let (records, more) = store.list_customers(project_id, &page).await?;
            for record in &records {
                let path = format!("/customers/{}", record.stripe_customer_id);
                if stripe.retrieve_json(&path).await?.is_none()
                    && store
                        .mark_customer_deleted(record, clock::now_epoch())
                        .await?
                {
                    counts.deleted += 1;
                }
            }
            (records.last().map(|r| r.id.to_string()), more)
        }
        SyncObject::Products => {
            let (records, more) = store.list_products(project_id, &page, false).await?;
            for record in &records {
                let path = format!("/products/{}", record.stripe_product_id);
                if stripe.retrieve_json(&path).await?.is_none() {
                    let prices = store.prices_of_product(project_id, &record.id).await?;
                    store.delete_product_with_prices(record, &prices).await?;
                    counts.deleted += 1;
                }
            }
            (records.last().map(|r| r.id.to_string()), more)
        }
        SyncObject::Prices => {
            let (records, more) = store.list_prices(project_id, &page, false, None).await?;
            for record in &records {
                let path = format!("/prices/{}", record.stripe_price_id);
                if stripe.retrieve_json(&path).await?.is_none()
                    && store.delete_price(record).await?
                {
                    counts.deleted += 1;
                }
            }
            (records.last().map(|r| r.id.to_string()), more)
        }
    };
    job.counts.insert(object_type, counts);
    if has_more && last.is_some() {
        job.cursor = last;
    } else {
        job.project_index += 1;
        job.cursor = None;
    }
    Ok(())
}

async fn finish(app: &App, mut job: BackfillJob) -> Result<bool, ApiError> {
    let read_at = job.steps;
    job.job_state = JobState::Done;
    job.steps += 1;
    job.updated_at = clock::now_epoch();
    if app
        .store
        .put_backfill_job(&job, Some(read_at), STALE_SECS)
        .await?
    {
        app.store
            .set_sync_status(&job.team_id, SyncStatus::Ready)
            .await?;
        tracing::info!(team_id = %job.team_id, job_id = %job.job_id, steps = job.steps, "backfill done");
    }
    Ok(true)
}

/// Runs `message`'s job to its end in this process, `budget` per "invocation", handing it
/// on to itself between them: the local API's and the tests' job runner.
pub async fn run_locally(app: &App, message: &JobMessage, budget: Duration) {
    loop {
        match run(app, message, Instant::now() + budget).await {
            Ok(true) => return,
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(team_id = %message.team_id, code = err.code.as_str(), "backfill step failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}
