//! The one error type of the HTTP layer. Every domain error is mapped onto it
//! exactly once (the `From` impls below), and it renders as RFC 9457
//! problem+json with a stable `code`. The cause of a 5xx is logged with its
//! chain and never sent.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use stowage_actors::accounts::{AccountError, AuthError};
use stowage_actors::domain::ValidationError;
use stowage_actors::files::FileError;
use stowage_actors::keys::KeyError;
use stowage_actors::links::LinkError;
use stowage_actors::storage::StorageError;
use stowage_actors::tus::TusError;
use stowage_actors::uploads::UploadError;
use stowage_actors::webhooks::WebhookError;
use utoipa::ToSchema;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: &'static str,
    #[schema(example = "Not Found")]
    pub title: String,
    #[schema(example = 404)]
    pub status: u16,
    /// What went wrong and what to do about it.
    pub detail: String,
    /// Stable, machine-readable.
    #[schema(example = "file_not_found")]
    pub code: String,
    /// The request's `x-request-id`, to quote in a report.
    pub request_id: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, code: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.into(),
            request_id: None,
        }
    }

    /// The problem for an error response that did not come from `ApiError`
    /// (actix's own 404/405, a payload error, a CORS refusal).
    pub fn for_status(status: StatusCode, method: &str, path: &str) -> Self {
        let (code, detail) = match status.as_u16() {
            400 => ("bad_request", "the request is malformed".to_owned()),
            401 => ("unauthorized", "authentication is required".to_owned()),
            403 => ("forbidden", "this request is not allowed".to_owned()),
            404 => (
                "route_not_found",
                format!("no route matches {path}; /api/v1/openapi.json lists the routes"),
            ),
            405 => (
                "method_not_allowed",
                format!(
                    "{method} is not allowed on {path}; /api/v1/openapi.json lists the methods"
                ),
            ),
            408 => (
                "request_timeout",
                "the request took too long to arrive".to_owned(),
            ),
            411 => ("length_required", "send a Content-Length header".to_owned()),
            413 => (
                "payload_too_large",
                "the request body is larger than this route accepts".to_owned(),
            ),
            414 => ("uri_too_long", "the URL is too long".to_owned()),
            415 => (
                "unsupported_media_type",
                "send the body as application/json".to_owned(),
            ),
            429 => (
                "rate_limited",
                "too many requests; wait for Retry-After seconds".to_owned(),
            ),
            431 => (
                "headers_too_large",
                "the request headers are too large".to_owned(),
            ),
            503 => (
                "unavailable",
                "the service is unavailable; try again shortly".to_owned(),
            ),
            s if s >= 500 => (
                "internal_error",
                "an unexpected error occurred; try again, and quote the request id if it persists"
                    .to_owned(),
            ),
            _ => ("client_error", "the request cannot be served".to_owned()),
        };
        Self::new(status, code, detail)
    }
}

/// An error answered to a client.
pub struct ApiError {
    problem: Box<Problem>,
    retry_after: Option<u64>,
    bearer_challenge: bool,
    cause: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            problem: Box::new(Problem::new(status, code, detail)),
            retry_after: None,
            bearer_challenge: false,
            cause: None,
        }
    }

    pub fn bad_request(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(code: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, detail)
    }

    pub fn unauthorized(code: &str, detail: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, code, detail);
        e.bearer_challenge = true;
        e
    }

    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; try again in {retry_after_secs} s"),
        );
        e.retry_after = Some(retry_after_secs);
        e
    }

    /// A failure that is ours, not the client's: logged in full, answered
    /// with a generic 500.
    pub fn internal(cause: anyhow::Error) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "an unexpected error occurred; try again, and quote the request id if it persists",
        );
        e.cause = Some(cause);
        e
    }

    /// For statuses without a standard reason phrase (tus's 460).
    pub fn titled(mut self, title: &str) -> Self {
        title.clone_into(&mut self.problem.title);
        self
    }

    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.problem.status, self.problem.code, self.problem.detail
        )?;
        if let Some(cause) = &self.cause {
            write!(f, "\nCaused by: {cause:?}")?;
        }
        Ok(())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.cause {
            tracing::error!(error = ?cause, "request failed");
        }
        let mut res = HttpResponse::build(self.status_code());
        res.content_type(PROBLEM_JSON);
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.bearer_challenge {
            let challenge = format!(
                "Bearer realm=\"stowage\", error=\"invalid_token\", error_description=\"{}\"",
                self.problem.code
            );
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                res.insert_header((header::WWW_AUTHENTICATE, v));
            }
        }
        res.json(&self.problem)
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            format!("`{}` {}", e.field, e.message),
        )
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Validation(v) => v.into(),
            AccountError::EmailTaken => Self::new(
                StatusCode::CONFLICT,
                "email_taken",
                "an account with this email already exists; log in instead",
            ),
            AccountError::InvalidCredentials => {
                Self::unauthorized("invalid_credentials", "the email or password is wrong")
            }
            AccountError::InvalidRefreshToken => Self::unauthorized(
                "invalid_refresh_token",
                "the refresh token is not valid; log in again",
            ),
            AccountError::RefreshTokenExpired => Self::unauthorized(
                "refresh_token_expired",
                "the refresh token has expired; log in again",
            ),
            AccountError::RefreshTokenReused => Self::unauthorized(
                "refresh_token_reused",
                "this refresh token was already used, so every token of this login has been revoked; log in again",
            ),
            AccountError::UserGone => {
                Self::unauthorized("account_gone", "the account no longer exists")
            }
            AccountError::Disabled => Self::unauthorized(
                "account_disabled",
                "this account is disabled; an admin can enable it again",
            ),
            AccountError::ExternalIdTaken => Self::new(
                StatusCode::CONFLICT,
                "external_id_taken",
                "a user with this external_id already exists; find it with GET /api/v1/admin/users?external_id=",
            ),
            AccountError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing => Self::unauthorized(
                "missing_token",
                "send `Authorization: Bearer <access_token>`; POST /api/v1/auth/login gives one",
            ),
            AuthError::Invalid => Self::unauthorized(
                "invalid_token",
                "the access token is malformed or not signed by this service; log in again",
            ),
            AuthError::Expired => Self::unauthorized(
                "token_expired",
                "the access token has expired; exchange the refresh token at POST /api/v1/auth/refresh",
            ),
            AuthError::Revoked => Self::unauthorized(
                "session_revoked",
                "this login has ended (logout, a reused refresh token, or the account was disabled); log in again",
            ),
            AuthError::UnknownKey => Self::unauthorized(
                "invalid_key",
                "this key does not exist or was revoked; create a new one at POST /api/v1/keys",
            ),
            AuthError::KeyExpired => Self::unauthorized(
                "key_expired",
                "this key has expired; create a new one at POST /api/v1/keys",
            ),
            AuthError::Disabled => Self::unauthorized(
                "account_disabled",
                "this account is disabled; an admin can enable it again",
            ),
            AuthError::InsufficientScope(scope) => Self::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!(
                    "this needs a key with the {scope} scope (or a login); use a key that has it"
                ),
            ),
            AuthError::LoginRequired => Self::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "keys are managed with a login or an admin key, and only a login logs out; this key may not",
            ),
            AuthError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        let detail = e.to_string();
        match e {
            KeyError::Validation(v) => v.into(),
            KeyError::Auth(a) => a.into(),
            KeyError::NotFound(_) => Self::not_found("key_not_found", detail),
            KeyError::UserNotFound(_) => Self::not_found(
                "user_not_found",
                format!(
                    "{detail}: Stowage-On-Behalf-Of must name a user (GET /api/v1/admin/users finds them)"
                ),
            ),
            KeyError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(e: WebhookError) -> Self {
        let detail = e.to_string();
        match e {
            WebhookError::Validation(v) => v.into(),
            WebhookError::Url(stowage_actors::webhooks::guard::UrlError::Forbidden { .. }) => {
                Self::bad_request(
                    "webhook_url_forbidden",
                    format!(
                        "{detail}; use a public address (or set STOWAGE_WEBHOOK_ALLOW_PRIVATE=true on a trusted network)"
                    ),
                )
            }
            WebhookError::Url(_) => Self::bad_request("invalid_field", format!("`url`: {detail}")),
            WebhookError::NotFound(_) => Self::not_found("webhook_not_found", detail),
            WebhookError::DeliveryNotFound(_) => Self::not_found("delivery_not_found", detail),
            WebhookError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<FileError> for ApiError {
    fn from(e: FileError) -> Self {
        let detail = e.to_string();
        match e {
            FileError::Validation(v) => v.into(),
            FileError::NotFound(_) => Self::not_found("file_not_found", detail),
            FileError::FolderNotFound(_) => Self::not_found("folder_not_found", detail),
            FileError::PathNotFound => Self::not_found("path_not_found", detail),
            FileError::NameTaken(_) => Self::new(
                StatusCode::CONFLICT,
                "name_taken",
                format!(
                    "{detail}; choose another name, or upload with on_conflict rename (a free name) or revision (a new revision of that file)"
                ),
            ),
            FileError::RevisionConflict { .. } => {
                Self::new(StatusCode::PRECONDITION_FAILED, "revision_conflict", detail)
            }
            FileError::CurrentRevision(_) => {
                Self::new(StatusCode::CONFLICT, "current_revision", detail)
            }
            FileError::RevisionNotFound(_) => Self::not_found("revision_not_found", detail),
            FileError::FolderCycle => Self::new(
                StatusCode::CONFLICT,
                "folder_cycle",
                format!("{detail}; choose a parent outside the folder"),
            ),
            FileError::CrossOwnerMove => Self::new(
                StatusCode::CONFLICT,
                "cross_owner_move",
                format!("{detail}; the target folder belongs to someone else"),
            ),
            FileError::ParentGone => Self::new(StatusCode::CONFLICT, "parent_in_trash", detail),
            FileError::TrashedWithFolder(_) => {
                Self::new(StatusCode::CONFLICT, "trashed_with_folder", detail)
            }
            FileError::QuotaExceeded { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "quota_exceeded",
                format!("{detail}; delete files (and empty the trash) or ask for a larger quota"),
            ),
            FileError::TooLarge { .. } => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "file_too_large",
                format!("{detail}; files over 5 GiB go through multipart or tus uploads"),
            ),
            FileError::Forbidden { .. } => Self::new(StatusCode::FORBIDDEN, "forbidden", detail),
            FileError::VersionMismatch { .. } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "version_mismatch",
                format!("{detail}; fetch the file again and retry with its current ETag"),
            ),
            FileError::Conflict => Self::new(StatusCode::CONFLICT, "concurrent_update", detail),
            FileError::NotDeleted => Self::new(StatusCode::CONFLICT, "not_in_trash", detail),
            FileError::ShortcutExists => Self::new(StatusCode::CONFLICT, "shortcut_exists", detail),
            FileError::ShortcutNotFound(_) => Self::not_found("shortcut_not_found", detail),
            FileError::UserNotFound(_) => Self::not_found(
                "user_not_found",
                format!("{detail}; they need to sign up before a file can be shared with them"),
            ),
            FileError::ShareNotFound(_) => Self::not_found("share_not_found", detail),
            FileError::ShareWithOwner => Self::bad_request("invalid_share", detail),
            FileError::Expired => Self::new(
                StatusCode::GONE,
                "file_expired",
                format!(
                    "{detail}; its owner can PATCH expires_at to a later time, or null, to serve it again"
                ),
            ),
            FileError::Pending => Self::new(
                StatusCode::CONFLICT,
                "file_pending",
                format!("{detail}: it has no content yet"),
            ),
            FileError::UploadIncomplete => Self::new(
                StatusCode::CONFLICT,
                "upload_incomplete",
                format!("{detail}; PUT the bytes to the upload URL first"),
            ),
            FileError::UploadMismatch(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "upload_mismatch",
                format!("{detail}; upload the right bytes again to the same URL"),
            ),
            FileError::Storage(e) => e.into(),
            FileError::Unexpected(cause) => Self::internal(cause),
        }
    }
}

impl From<LinkError> for ApiError {
    fn from(e: LinkError) -> Self {
        let detail = e.to_string();
        match e {
            LinkError::NotFound => Self::not_found("link_not_found", detail),
            LinkError::Expired => Self::new(StatusCode::GONE, "link_expired", detail),
            LinkError::Exhausted => Self::new(StatusCode::GONE, "link_exhausted", detail),
            LinkError::PasswordRequired => Self::new(
                StatusCode::UNAUTHORIZED,
                "link_password_required",
                format!(
                    "{detail}: send it as the Link-Password header, or POST it to /s/{{token}}/unlock"
                ),
            ),
            LinkError::PasswordInvalid => {
                Self::new(StatusCode::UNAUTHORIZED, "link_password_invalid", detail)
            }
            LinkError::UploadOnly => Self::not_found(
                "link_upload_only",
                format!("{detail}; upload through /s/{{token}}/tus"),
            ),
            LinkError::File(e) => e.into(),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        let detail = e.to_string();
        match e {
            UploadError::NotFound(_) => Self::not_found("upload_not_found", detail),
            UploadError::Expired(_) => Self::new(StatusCode::GONE, "upload_expired", detail),
            UploadError::Completed(_) => {
                Self::new(StatusCode::CONFLICT, "upload_completed", detail)
            }
            UploadError::PartOutOfRange { .. } => Self::bad_request("invalid_part_number", detail),
            UploadError::PartsMismatch(_) => Self::bad_request(
                "parts_mismatch",
                format!("{detail}; GET …/parts shows what the store holds"),
            ),
            UploadError::File(f) => f.into(),
        }
    }
}

impl From<TusError> for ApiError {
    fn from(e: TusError) -> Self {
        let detail = e.to_string();
        let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
        match e {
            TusError::NotFound(_) => Self::not_found("upload_not_found", detail),
            TusError::Gone(_) => Self::new(StatusCode::GONE, "upload_expired", detail),
            TusError::Locked(_) => {
                let mut e = Self::new(status(423), "upload_locked", detail);
                e.retry_after = Some(1);
                e
            }
            TusError::OffsetMismatch { .. } | TusError::Moved(_) => {
                Self::new(StatusCode::CONFLICT, "offset_mismatch", detail)
            }
            TusError::BadHeader(..) | TusError::MissingHeader(_) => {
                Self::bad_request("invalid_header", detail)
            }
            TusError::UnsupportedChecksum(_) => Self::bad_request("unsupported_checksum", detail),
            TusError::ChecksumMismatch => {
                Self::new(status(460), "checksum_mismatch", detail).titled("Checksum Mismatch")
            }
            TusError::TooLarge { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "upload_too_large", detail)
            }
            TusError::PastLength { .. } => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "past_upload_length", detail)
            }
            TusError::LengthMismatch { .. } => Self::bad_request("length_mismatch", detail),
            TusError::Completed(_) => Self::new(StatusCode::CONFLICT, "upload_completed", detail),
            TusError::Interrupted(_) => Self::bad_request(
                "body_interrupted",
                format!("{detail}; HEAD the upload and resume from its offset"),
            ),
            TusError::File(f) => f.into(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        if let StorageError::CircuitOpen(open) = &e {
            let mut err = Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                format!(
                    "the object store has been failing, so this call was not tried; retry in {} s",
                    open.retry_after.as_secs()
                ),
            );
            err.retry_after = Some(open.retry_after.as_secs());
            return err;
        }
        let client_side = match &e {
            StorageError::NotFound { code, detail } => Some((StatusCode::NOT_FOUND, *code, detail)),
            StorageError::Conflict { code, detail } => Some((StatusCode::CONFLICT, *code, detail)),
            StorageError::Rejected { code, detail } => {
                Some((StatusCode::BAD_REQUEST, *code, detail))
            }
            StorageError::Unavailable(_) | StorageError::CircuitOpen(_) => None,
        };
        if let Some((status, code, detail)) = client_side {
            return Self::new(status, code, detail.clone());
        }
        tracing::error!(error = %e, "object store call failed");
        let mut err = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_unavailable",
            "the object store is not answering; try again shortly",
        );
        err.retry_after = Some(5);
        err
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(e)
    }
}
