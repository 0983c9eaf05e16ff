//! Webhooks: signed HTTP deliveries of the domain events.
//!
//! A user's webhook receives the events of what they own; one made with an
//! admin key, everyone's. The outbox relay writes one delivery row per
//! event and matching webhook in the transaction that marks the event
//! sent ([`fan_out`]), so an event is handed on exactly once, whatever
//! crashes. The [`sender`] sends them: at least once, in order per webhook
//! and file, by one instance at a time, retried with growing back-off for
//! [`RETRY_WINDOW`], signed as Standard Webhooks says.

pub mod guard;
pub mod sender;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use stowage_entity::webhook_deliveries::{self, DeliveryStatus};
use stowage_entity::webhooks;
use uuid::Uuid;

pub use sender::{Sender, WebhookActor};

use crate::accounts::Caller;
use crate::domain::ValidationError;
use crate::events::DomainEvent;
use crate::time::now;

/// How long a delivery is retried before it is `failed`.
pub const RETRY_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The event types a webhook can ask for (or `*`).
pub const EVENT_TYPES: &[&str] = &[
    "file.available",
    "file.renamed",
    "file.moved",
    "file.deleted",
    "file.restored",
    "file.purged",
    "file.shared",
    "file.unshared",
    "file.revised",
    "folder.created",
    "folder.renamed",
    "folder.moved",
    "folder.deleted",
    "folder.restored",
    "folder.purged",
    "folder.shared",
    "folder.unshared",
    "upload.expired",
];

/// What went wrong with webhooks.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error("the url {0}")]
    Url(#[from] guard::UrlError),
    #[error("webhook {0} does not exist")]
    NotFound(Uuid),
    #[error("delivery {0} does not exist")]
    DeliveryNotFound(Uuid),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<DbErr> for WebhookError {
    fn from(e: DbErr) -> Self {
        Self::Unexpected(anyhow::Error::new(e).context("database"))
    }
}

/// A webhook to register.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
}

/// A change to a webhook.
#[derive(Debug, Clone, Default)]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Checks event types: known ones, or `*` alone.
pub fn event_list(events: &[String]) -> Result<String, ValidationError> {
    if events.is_empty() {
        return Err(ValidationError::new(
            "events",
            "name at least one event type, or [\"*\"] for all",
        ));
    }
    if events.iter().any(|e| e == "*") {
        return if events.len() == 1 {
            Ok("*".to_owned())
        } else {
            Err(ValidationError::new("events", "\"*\" stands alone"))
        };
    }
    for e in events {
        if !EVENT_TYPES.contains(&e.as_str()) {
            return Err(ValidationError::new(
                "events",
                format!(
                    "{e:?} is not an event type; one of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
    }
    let mut list = events.to_vec();
    list.sort();
    list.dedup();
    Ok(list.join(" "))
}

fn description(raw: Option<String>) -> Result<Option<String>, ValidationError> {
    match raw {
        Some(d) if d.chars().count() > 500 || d.chars().any(char::is_control) => {
            Err(ValidationError::new(
                "description",
                "at most 500 characters, no control characters",
            ))
        }
        other => Ok(other),
    }
}

/// `whsec_` and 24 random bytes in base64, as Standard Webhooks spells a secret.
fn new_secret() -> String {
    let mut raw = [0u8; 24];
    rand::fill(&mut raw);
    format!("whsec_{}", STANDARD.encode(raw))
}

#[derive(Clone)]
pub struct Webhooks {
    db: DatabaseConnection,
    allow_private: bool,
}

impl Webhooks {
    pub fn new(db: DatabaseConnection, allow_private: bool) -> Self {
        Self { db, allow_private }
    }

    /// Registers a webhook for the caller (everyone's events when the
    /// caller is an admin key acting as itself).
    pub async fn create(
        &self,
        caller: &Caller,
        new: NewWebhook,
    ) -> Result<webhooks::Model, WebhookError> {
        let events = event_list(&new.events)?;
        let description = description(new.description)?;
        let url = guard::check_url(&new.url, self.allow_private).await?;
        let all_users = caller.is_admin() && caller.as_itself();
        let at = now();
        Ok(webhooks::ActiveModel {
            id: Set(Uuid::now_v7()),
            owner_id: Set(caller.user_id),
            all_users: Set(all_users),
            url: Set(url.to_string()),
            events: Set(events),
            description: Set(description),
            secret: Set(new_secret()),
            enabled: Set(true),
            created_at: Set(at),
            updated_at: Set(at),
        }
        .insert(&self.db)
        .await?)
    }

    pub async fn list(&self, caller: &Caller) -> Result<Vec<webhooks::Model>, WebhookError> {
        Ok(webhooks::Entity::find()
            .filter(webhooks::Column::OwnerId.eq(caller.user_id))
            .order_by_desc(webhooks::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// One of the caller's webhooks; `NotFound` for anyone else's.
    pub async fn get(&self, caller: &Caller, id: Uuid) -> Result<webhooks::Model, WebhookError> {
        webhooks::Entity::find_by_id(id)
            .filter(webhooks::Column::OwnerId.eq(caller.user_id))
            .one(&self.db)
            .await?
            .ok_or(WebhookError::NotFound(id))
    }

    pub async fn update(
        &self,
        caller: &Caller,
        id: Uuid,
        patch: WebhookPatch,
    ) -> Result<webhooks::Model, WebhookError> {
        let hook = self.get(caller, id).await?;
        let mut active: webhooks::ActiveModel = hook.into();
        if let Some(url) = patch.url {
            active.url = Set(guard::check_url(&url, self.allow_private)
                .await?
                .to_string());
        }
        if let Some(events) = patch.events {
            active.events = Set(event_list(&events)?);
        }
        if let Some(enabled) = patch.enabled {
            active.enabled = Set(enabled);
        }
        active.updated_at = Set(now());
        Ok(active.update(&self.db).await?)
    }

    /// Deletes a webhook and its deliveries (none is sent after).
    pub async fn delete(&self, caller: &Caller, id: Uuid) -> Result<(), WebhookError> {
        self.get(caller, id).await?;
        webhooks::Entity::delete_by_id(id).exec(&self.db).await?;
        Ok(())
    }

    /// The webhook's latest deliveries, newest first (at most 100).
    pub async fn deliveries(
        &self,
        caller: &Caller,
        id: Uuid,
    ) -> Result<Vec<webhook_deliveries::Model>, WebhookError> {
        self.get(caller, id).await?;
        Ok(webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::WebhookId.eq(id))
            .order_by_desc(webhook_deliveries::Column::Id)
            .limit(100)
            .all(&self.db)
            .await?)
    }

    /// Sends a delivery again as soon as it is its file's turn (a failed
    /// one gets one more attempt; a delivered one is sent once more).
    pub async fn retry(
        &self,
        caller: &Caller,
        id: Uuid,
        delivery: Uuid,
    ) -> Result<(), WebhookError> {
        self.get(caller, id).await?;
        let updated = webhook_deliveries::Entity::update_many()
            .col_expr(
                webhook_deliveries::Column::Status,
                Expr::value(DeliveryStatus::Pending),
            )
            .col_expr(
                webhook_deliveries::Column::NextAttemptAt,
                Expr::value(now()),
            )
            .filter(webhook_deliveries::Column::Id.eq(delivery))
            .filter(webhook_deliveries::Column::WebhookId.eq(id))
            .exec(&self.db)
            .await?;
        if updated.rows_affected == 0 {
            return Err(WebhookError::DeliveryNotFound(delivery));
        }
        Ok(())
    }
}

/// In the relay's transaction that marks `events` sent: one delivery per
/// event and enabled webhook that wants it.
pub async fn fan_out(db: &impl ConnectionTrait, events: &[DomainEvent]) -> Result<usize, DbErr> {
    if events.is_empty() {
        return Ok(0);
    }
    let hooks = webhooks::Entity::find()
        .filter(webhooks::Column::Enabled.eq(true))
        .all(db)
        .await?;
    if hooks.is_empty() {
        return Ok(0);
    }
    let at = now();
    let mut rows = Vec::new();
    for event in events {
        for hook in hooks.iter().filter(|h| wants(h, event)) {
            rows.push(webhook_deliveries::ActiveModel {
                id: Set(Uuid::now_v7()),
                webhook_id: Set(hook.id),
                event_id: Set(event.event_id),
                event_type: Set(event.kind.clone()),
                file_id: Set(event.file_id),
                body: Set(serde_json::to_string(event)
                    .map_err(|e| DbErr::Custom(format!("event not serialisable: {e}")))?),
                status: Set(DeliveryStatus::Pending),
                attempts: Set(0),
                last_status_code: Set(None),
                next_attempt_at: Set(at),
                lease_until: Set(None),
                created_at: Set(at),
                trace_parent: Set(event.trace.as_ref().map(|t| t.as_str().to_owned())),
            });
        }
    }
    let n = rows.len();
    for chunk in rows.chunks(500) {
        webhook_deliveries::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await?;
    }
    Ok(n)
}

fn wants(hook: &webhooks::Model, event: &DomainEvent) -> bool {
    (hook.all_users || hook.owner_id == event.owner_id)
        && (hook.events == "*" || hook.events.split(' ').any(|e| e == event.kind))
}

/// The `webhook-signature` of a delivery: `v1,` and the base64 HMAC-SHA256
/// of `id.timestamp.body` under the secret's bytes.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Option<String> {
    use hmac::{Hmac, KeyInit, Mac};
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()?;
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&key).ok()?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Some(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// When the next attempt after `attempts` failed ones goes: `base` doubled
/// each time, at most an hour apart.
pub fn next_attempt(base: std::time::Duration, attempts: i32, at: DateTime<Utc>) -> DateTime<Utc> {
    let factor = 1u32 << attempts.clamp(1, 16).saturating_sub(1);
    let delay = (base * factor).min(std::time::Duration::from_secs(3600));
    at + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lists_are_checked() {
        assert_eq!(event_list(&["*".into()]).unwrap(), "*");
        assert_eq!(
            event_list(&[
                "file.deleted".into(),
                "file.available".into(),
                "file.deleted".into()
            ])
            .unwrap(),
            "file.available file.deleted"
        );
        assert!(event_list(&[]).is_err());
        assert!(event_list(&["file.exploded".into()]).is_err());
        assert!(event_list(&["*".into(), "file.available".into()]).is_err());
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        let at = Utc::now();
        let base = std::time::Duration::from_secs(5);
        assert_eq!((next_attempt(base, 1, at) - at).num_seconds(), 5);
        assert_eq!((next_attempt(base, 3, at) - at).num_seconds(), 20);
        assert_eq!((next_attempt(base, 40, at) - at).num_seconds(), 3600);
    }

    #[test]
    fn signatures_follow_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let sig = signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#,
        );
        assert_eq!(
            sig.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }
}
