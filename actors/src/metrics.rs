//! Every metric name Stowage exports, in one place, each described once at
//! start-up. Labels come only from small closed sets (a route pattern, a
//! kind, a result), never from user input or error text.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

pub const HTTP_REQUESTS_TOTAL: &str = "stowage_http_requests_total";
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "stowage_http_request_duration_seconds";
pub const AUTH_ATTEMPTS_TOTAL: &str = "stowage_auth_attempts_total";
pub const RATE_LIMITED_TOTAL: &str = "stowage_rate_limited_total";
pub const INGEST_EVENTS_TOTAL: &str = "stowage_ingest_events_total";
pub const INGEST_LAG_SECONDS: &str = "stowage_ingest_lag_seconds";
pub const ACTOR_RESTARTS_TOTAL: &str = "stowage_actor_restarts_total";
pub const JANITOR_SWEEPS_TOTAL: &str = "stowage_janitor_sweeps_total";
pub const JANITOR_ITEMS_TOTAL: &str = "stowage_janitor_items_total";
pub const JANITOR_BACKLOG: &str = "stowage_janitor_backlog";
pub const UPLOAD_BYTES_TOTAL: &str = "stowage_upload_bytes_total";
pub const UPLOADS_ACTIVE: &str = "stowage_uploads_active";
pub const UPLOADS_COMPLETED_TOTAL: &str = "stowage_uploads_completed_total";
pub const UPLOADS_FAILED_TOTAL: &str = "stowage_uploads_failed_total";
pub const STORAGE_REQUESTS_TOTAL: &str = "stowage_storage_requests_total";
pub const STORAGE_REQUEST_DURATION_SECONDS: &str = "stowage_storage_request_duration_seconds";
pub const CIRCUIT_OPEN: &str = "stowage_circuit_open";
pub const OUTBOX_BACKLOG: &str = "stowage_outbox_backlog";
pub const QUOTA_REJECTIONS_TOTAL: &str = "stowage_quota_rejections_total";
pub const LINK_DOWNLOADS_TOTAL: &str = "stowage_link_downloads_total";
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "stowage_webhook_deliveries_total";
pub const WEBHOOK_BACKLOG: &str = "stowage_webhook_backlog";

/// Registers the help text of every metric with the installed recorder.
pub fn describe() {
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        Unit::Count,
        "HTTP requests answered, by method, route pattern and status code"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time to answer an HTTP request, by method and route pattern"
    );
    describe_counter!(
        AUTH_ATTEMPTS_TOTAL,
        Unit::Count,
        "Authentication attempts (signup, login, refresh, logout, access_token) by result"
    );
    describe_counter!(
        RATE_LIMITED_TOTAL,
        Unit::Count,
        "Requests refused with 429 by the rate limiter, by scope (auth, api)"
    );
    describe_counter!(
        INGEST_EVENTS_TOTAL,
        Unit::Count,
        "Object-store events handled by ingest, by result"
    );
    describe_histogram!(
        INGEST_LAG_SECONDS,
        Unit::Seconds,
        "Time from an object-store event to the commit that recorded it"
    );
    describe_counter!(
        ACTOR_RESTARTS_TOTAL,
        Unit::Count,
        "Restarts of supervised actors, by actor"
    );
    describe_counter!(
        JANITOR_SWEEPS_TOTAL,
        Unit::Count,
        "Janitor sweeps run, by sweep (expire, purge, reconcile, stale_uploads)"
    );
    describe_counter!(
        JANITOR_ITEMS_TOTAL,
        Unit::Count,
        "Items the janitor handled, by sweep and result"
    );
    describe_gauge!(
        JANITOR_BACKLOG,
        Unit::Count,
        "Items due for a sweep when it last started, by sweep"
    );
    describe_counter!(
        UPLOAD_BYTES_TOTAL,
        Unit::Bytes,
        "Bytes received by uploads, by kind (direct, multipart: when finished; tus: as each offset is acknowledged)"
    );
    describe_gauge!(
        UPLOADS_ACTIVE,
        Unit::Count,
        "Unfinished upload sessions, by kind (as of the janitor's last sweep)"
    );
    describe_counter!(
        UPLOADS_COMPLETED_TOTAL,
        Unit::Count,
        "Uploads that became available files, by kind"
    );
    describe_counter!(
        UPLOADS_FAILED_TOTAL,
        Unit::Count,
        "Uploads that failed, by kind and reason"
    );
    describe_counter!(
        STORAGE_REQUESTS_TOTAL,
        Unit::Count,
        "Calls to the object store, by operation and result"
    );
    describe_histogram!(
        STORAGE_REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of object-store calls, by operation"
    );
    describe_gauge!(
        CIRCUIT_OPEN,
        Unit::Count,
        "1 while the circuit breaker to a dependency (s3, nats) is open, else 0"
    );
    describe_gauge!(
        OUTBOX_BACKLOG,
        Unit::Count,
        "Domain events written but not yet published (as of the outbox relay's last pass)"
    );
    metrics::gauge!(OUTBOX_BACKLOG).set(0.0);
    describe_counter!(
        QUOTA_REJECTIONS_TOTAL,
        Unit::Count,
        "Uploads refused with 413 quota_exceeded, by kind (direct, multipart, tus)"
    );
    describe_counter!(
        LINK_DOWNLOADS_TOTAL,
        Unit::Count,
        "Downloads through share links (each redirect to a signed URL)"
    );
    metrics::counter!(LINK_DOWNLOADS_TOTAL).increment(0);
    describe_counter!(
        WEBHOOK_DELIVERIES_TOTAL,
        Unit::Count,
        "Webhook delivery attempts, by result (delivered, retry, failed)"
    );
    for result in ["delivered", "retry", "failed"] {
        metrics::counter!(WEBHOOK_DELIVERIES_TOTAL, "result" => result).increment(0);
    }
    describe_gauge!(
        WEBHOOK_BACKLOG,
        Unit::Count,
        "Webhook deliveries still pending (waiting for a first try or a retry)"
    );
    metrics::gauge!(WEBHOOK_BACKLOG).set(0.0);
    // Closed label sets start at zero, so dashboards and alerts see every
    // series before the first event happens.
    for actor in ["ingest", "janitor", "outbox", "upload_session", "webhooks"] {
        metrics::counter!(ACTOR_RESTARTS_TOTAL, "actor" => actor).increment(0);
    }
    for (sweep, result) in [
        ("expire", "trashed"),
        ("purge", "purged"),
        ("purge", "failed"),
        ("reconcile", "confirmed"),
        ("stale_uploads", "expired"),
        ("stale_uploads", "failed"),
        ("orphans", "deleted"),
        ("orphans", "failed"),
        ("revisions", "deleted"),
    ] {
        metrics::counter!(JANITOR_ITEMS_TOTAL, "sweep" => sweep, "result" => result).increment(0);
    }
    for dependency in ["s3", "nats"] {
        metrics::gauge!(CIRCUIT_OPEN, "dependency" => dependency).set(0.0);
    }
    for scope in ["auth", "api"] {
        metrics::counter!(RATE_LIMITED_TOTAL, "scope" => scope).increment(0);
    }
    for kind in ["direct", "multipart", "tus"] {
        metrics::counter!(QUOTA_REJECTIONS_TOTAL, "kind" => kind).increment(0);
        metrics::counter!(UPLOAD_BYTES_TOTAL, "kind" => kind).increment(0);
        metrics::counter!(UPLOADS_COMPLETED_TOTAL, "kind" => kind).increment(0);
    }
}

/// Counts a finished upload of `bytes` bytes.
pub fn upload_completed(kind: &'static str, bytes: u64) {
    metrics::counter!(UPLOADS_COMPLETED_TOTAL, "kind" => kind).increment(1);
    metrics::counter!(UPLOAD_BYTES_TOTAL, "kind" => kind).increment(bytes);
}

/// Counts a failed upload. `reason` is one of a closed set:
/// `expired`, `aborted`, `size_mismatch`, `checksum_mismatch`, `parts_mismatch`.
pub fn upload_failed(kind: &'static str, reason: &'static str) {
    metrics::counter!(UPLOADS_FAILED_TOTAL, "kind" => kind, "reason" => reason).increment(1);
}

/// Counts one authentication attempt.
pub fn auth_attempt(kind: &'static str, result: &'static str) {
    metrics::counter!(AUTH_ATTEMPTS_TOTAL, "kind" => kind, "result" => result).increment(1);
}
