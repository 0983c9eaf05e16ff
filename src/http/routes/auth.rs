//! `/api/v1/auth/*`: signup, login, refresh, logout.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_actors::accounts::{Accounts, AuthError, IssuedSession, NewAccount, Principal, Via};
use stowage_actors::domain::{DisplayName, Email, Password};
use stowage_entity::users;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::http::auth::Authenticated;
use crate::http::error::{ApiError, Problem};
use crate::http::json::JsonObject;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    #[schema(example = "ada@example.com", format = Email, max_length = 254)]
    pub email: String,
    /// 8 to 1024 characters.
    #[schema(
        example = "correct horse battery staple",
        min_length = 8,
        max_length = 1024
    )]
    pub password: String,
    /// Defaults to the part of the email before the '@'.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*\\S[^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub display_name: Option<String>,
}

impl TryFrom<SignupRequest> for NewAccount {
    type Error = ApiError;

    fn try_from(r: SignupRequest) -> Result<Self, ApiError> {
        Ok(NewAccount {
            email: Email::parse(&r.email)?,
            password: Password::parse(r.password)?,
            display_name: r
                .display_name
                .as_deref()
                .map(DisplayName::parse)
                .transpose()?,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenRequest {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    pub id: Uuid,
    pub email: String,
    pub display_name: String,
    pub created_at: DateTime<Utc>,
}

impl From<users::Model> for UserBody {
    fn from(u: users::Model) -> Self {
        Self {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            created_at: u.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    pub user: UserBody,
    /// Send as `Authorization: Bearer <access_token>`; lives `expires_in` seconds.
    pub access_token: String,
    /// Single use: exchange it at `/api/v1/auth/refresh` for a new pair.
    pub refresh_token: String,
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    #[schema(example = 900)]
    pub expires_in: u64,
}

impl From<IssuedSession> for SessionBody {
    fn from(s: IssuedSession) -> Self {
        Self {
            user: s.user.into(),
            access_token: s.access_token,
            refresh_token: s.refresh_token,
            token_type: "Bearer",
            expires_in: s.expires_in,
        }
    }
}

/// Create an account and log in.
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = SignupRequest,
    responses(
        (status = 201, body = SessionBody),
        (status = 400, body = Problem, description = "malformed body or invalid field"),
        (status = 409, body = Problem, description = "`email_taken`"),
        (status = 429, body = Problem),
    ))]
pub async fn signup(
    accounts: web::Data<Accounts>,
    body: JsonObject<SignupRequest>,
) -> Result<HttpResponse, ApiError> {
    let new = NewAccount::try_from(body.into_inner())?;
    let session = accounts.signup(new).await?;
    Ok(HttpResponse::Created().json(SessionBody::from(session)))
}

/// Log in with email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = SessionBody),
        (status = 401, body = Problem, description = "`invalid_credentials`"),
        (status = 429, body = Problem),
    ))]
pub async fn login(
    accounts: web::Data<Accounts>,
    body: JsonObject<LoginRequest>,
) -> Result<web::Json<SessionBody>, ApiError> {
    let LoginRequest { email, password } = body.into_inner();
    let session = accounts.login(&email, password).await?;
    Ok(web::Json(session.into()))
}

/// Exchange a refresh token for a new access and refresh token. The old
/// refresh token is spent; presenting it again revokes the whole login.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshTokenRequest,
    responses(
        (status = 200, body = SessionBody),
        (status = 401, body = Problem, description = "`invalid_refresh_token`, `refresh_token_expired` or `refresh_token_reused`"),
    ))]
pub async fn refresh(
    accounts: web::Data<Accounts>,
    body: JsonObject<RefreshTokenRequest>,
) -> Result<web::Json<SessionBody>, ApiError> {
    let session = accounts.refresh(&body.refresh_token).await?;
    Ok(web::Json(session.into()))
}

/// End the login the refresh token belongs to: its refresh and access tokens stop working.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshTokenRequest,
    security(("bearer" = [])),
    responses(
        (status = 204),
        (status = 401, body = Problem),
    ))]
pub async fn logout(
    caller: Authenticated,
    accounts: web::Data<Accounts>,
    body: JsonObject<RefreshTokenRequest>,
) -> Result<HttpResponse, ApiError> {
    let Via::Session { session_id } = caller.0.via else {
        return Err(AuthError::LoginRequired.into());
    };
    let principal = Principal {
        user_id: caller.0.user_id,
        session_id,
    };
    accounts.logout(principal, &body.refresh_token).await?;
    Ok(HttpResponse::NoContent().finish())
}
