//! Request budgets (GCRA): per client IP on `/api/v1/auth/*`, per user on
//! the rest of `/api/v1`. Byte-moving requests (tus PATCH/HEAD) spend
//! nothing, so a fast upload is never throttled mid-file. A refusal is 429
//! problem+json with `Retry-After`.
//!
//! On PostgreSQL the budgets live in the database (one upsert per counted
//! request), so they hold across every instance; on SQLite (one instance)
//! they live in memory, with the `governor` crate.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use stowage_actors::accounts::Accounts;
use stowage_actors::metrics::RATE_LIMITED_TOTAL;
use uuid::Uuid;

use super::auth::bearer_token;
use super::client_ip::ClientIp;
use super::error::ApiError;
use crate::config::Rate;

/// Whose budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    User(Uuid),
    Ip(IpAddr),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Auth,
    Api,
}

impl Scope {
    fn label(self) -> &'static str {
        match self {
            Scope::Auth => "auth",
            Scope::Api => "api",
        }
    }
}

/// Which budget, if any, a request spends. `path` is the path the router
/// matches routes against (`match_info().as_str()`: percent-escapes of
/// anything but `/`, `%` and `+` decoded), so that no spelling of a route's
/// path reaches the route without passing here under the same name.
pub fn scope_of(method: &Method, path: &str) -> Option<Scope> {
    // Anonymous work behind share links (unlocking, starting a drop-folder
    // upload) spends the client address's budget, as signing in does.
    if path.starts_with("/api/v1/auth/") || (path.starts_with("/s/") && method == Method::POST) {
        return Some(Scope::Auth);
    }
    let moves_bytes =
        path.starts_with("/api/v1/tus/") && (method == Method::PATCH || method == Method::HEAD);
    (path.starts_with("/api/v1/") && !moves_bytes).then_some(Scope::Api)
}

/// Password attempts on one share link, from anyone.
pub const LINK_PASSWORD_RATE: Rate = Rate {
    count: 10,
    per: Duration::from_secs(60),
};

pub struct RateLimits {
    auth: DefaultKeyedRateLimiter<IpAddr>,
    api: DefaultKeyedRateLimiter<Subject>,
    links: DefaultKeyedRateLimiter<Uuid>,
    clock: DefaultClock,
    rates: (Rate, Rate),
    /// PostgreSQL: the shared budgets.
    shared: Option<DatabaseConnection>,
}

impl RateLimits {
    /// Budgets in memory, or in `db` when it is PostgreSQL.
    pub fn new(auth: Rate, api: Rate, db: &DatabaseConnection) -> Self {
        let shared = (db.get_database_backend() == DbBackend::Postgres).then(|| db.clone());
        Self {
            auth: DefaultKeyedRateLimiter::keyed(quota(auth)),
            api: DefaultKeyedRateLimiter::keyed(quota(api)),
            links: DefaultKeyedRateLimiter::keyed(quota(LINK_PASSWORD_RATE)),
            clock: DefaultClock::default(),
            rates: (auth, api),
            shared,
        }
    }

    /// Spends one request of `subject`'s budget; `Err` holds the seconds to wait.
    async fn check(&self, scope: Scope, subject: Subject) -> Result<(), u64> {
        if matches!((scope, subject), (Scope::Auth, Subject::User(_))) {
            return Ok(());
        }
        if let Some(db) = &self.shared {
            let rate = match scope {
                Scope::Auth => self.rates.0,
                Scope::Api => self.rates.1,
            };
            let key = match subject {
                Subject::Ip(ip) => format!("{}:ip:{ip}", scope.label()),
                Subject::User(id) => format!("{}:user:{id}", scope.label()),
            };
            return match shared_check(db, &key, rate).await {
                Ok(verdict) => verdict,
                Err(e) => {
                    // Never turn a database hiccup into refusals: let it pass.
                    tracing::warn!(error = %e, "shared rate limit unavailable; request allowed");
                    Ok(())
                }
            };
        }
        let verdict = match (scope, subject) {
            (Scope::Api, subject) => self.api.check_key(&subject),
            (Scope::Auth, Subject::Ip(ip)) => self.auth.check_key(&ip),
            (Scope::Auth, Subject::User(_)) => Ok(()),
        };
        verdict.map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Spends one password attempt on `link` (whoever makes it, so that
    /// no number of addresses guesses faster); `Err` holds the seconds to wait.
    pub async fn link_attempt(&self, link: Uuid) -> Result<(), u64> {
        if let Some(db) = &self.shared {
            return match shared_check(db, &format!("link:{link}"), LINK_PASSWORD_RATE).await {
                Ok(verdict) => verdict,
                Err(e) => {
                    tracing::warn!(error = %e, "shared rate limit unavailable; attempt allowed");
                    Ok(())
                }
            };
        }
        self.links.check_key(&link).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets subjects whose budget is full again, bounding memory (and
    /// the shared table).
    pub async fn prune(&self) {
        self.auth.retain_recent();
        self.auth.shrink_to_fit();
        self.api.retain_recent();
        self.api.shrink_to_fit();
        self.links.retain_recent();
        self.links.shrink_to_fit();
        let Some(db) = &self.shared else {
            return;
        };
        if let Err(e) = db
            .execute_unprepared("DELETE FROM rate_limits WHERE tat < now()")
            .await
        {
            tracing::warn!(error = %e, "pruning shared rate limits failed");
        }
    }
}

/// GCRA in one statement: advance the holder's theoretical arrival time by
/// one emission interval unless that would put it more than a whole period
/// ahead of now. No row back means refused; then the wait is read.
async fn shared_check(
    db: &DatabaseConnection,
    key: &str,
    rate: Rate,
) -> Result<Result<(), u64>, sea_orm::DbErr> {
    let period = rate.per.as_secs_f64();
    let emission = period / f64::from(rate.count);
    let spent = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO rate_limits AS r (key, tat) VALUES ($1, now() + make_interval(secs => $2)) \
             ON CONFLICT (key) DO UPDATE SET tat = GREATEST(r.tat, now()) + make_interval(secs => $2) \
             WHERE GREATEST(r.tat, now()) + make_interval(secs => $2) <= now() + make_interval(secs => $3) \
             RETURNING tat",
            [key.into(), emission.into(), period.into()],
        ))
        .await?;
    if spent.is_some() {
        return Ok(Ok(()));
    }
    let wait = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT EXTRACT(EPOCH FROM (tat + make_interval(secs => $2) - make_interval(secs => $3) - now()))::float8 AS wait \
             FROM rate_limits WHERE key = $1",
            [key.into(), emission.into(), period.into()],
        ))
        .await?
        .and_then(|row| row.try_get::<f64>("", "wait").ok())
        .unwrap_or(1.0);
    Ok(Err(wait.ceil().max(1.0) as u64))
}

fn quota(rate: Rate) -> Quota {
    let period = (rate.per / rate.count).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(rate.count).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(burst))
        .allow_burst(burst)
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    // A POST on an upload is the method X-HTTP-Method-Override names.
    let overridden = (req.method() == Method::POST)
        .then(|| req.headers().get("x-http-method-override"))
        .flatten()
        .and_then(|v| {
            Method::from_bytes(v.as_bytes().trim_ascii().to_ascii_uppercase().as_slice()).ok()
        });
    let method = overridden.as_ref().unwrap_or(req.method());
    let (Some(scope), Some(limits)) = (
        scope_of(method, req.match_info().as_str()),
        req.app_data::<web::Data<RateLimits>>(),
    ) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let ip = ClientIp::of(req.request());
    let subject = match scope {
        Scope::Auth => Subject::Ip(ip),
        Scope::Api => bearer_token(req.request())
            .and_then(|t| req.app_data::<web::Data<Accounts>>()?.peek(&t))
            .map_or(Subject::Ip(ip), |p| Subject::User(p.user_id)),
    };
    match limits.check(scope, subject).await {
        Ok(()) => next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body),
        Err(wait) => {
            metrics::counter!(RATE_LIMITED_TOTAL, "scope" => scope.label()).increment(1);
            tracing::warn!(scope = scope.label(), retry_after = wait, "rate limited");
            Ok(req
                .error_response(ApiError::too_many_requests(wait.max(1)))
                .map_into_right_body())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(
            scope_of(&Method::POST, "/api/v1/auth/login"),
            Some(Scope::Auth)
        );
        assert_eq!(scope_of(&Method::GET, "/api/v1/me"), Some(Scope::Api));
        assert_eq!(scope_of(&Method::PATCH, "/api/v1/tus/abc"), None);
        assert_eq!(scope_of(&Method::HEAD, "/api/v1/tus/abc"), None);
        assert_eq!(scope_of(&Method::POST, "/api/v1/tus"), Some(Scope::Api));
        // Termination (also as an overridden POST) is counted.
        assert_eq!(
            scope_of(&Method::DELETE, "/api/v1/tus/abc"),
            Some(Scope::Api)
        );
        assert_eq!(scope_of(&Method::GET, "/healthz"), None);
    }

    #[tokio::test]
    async fn budgets_are_per_subject() {
        let db = sea_orm::Database::connect("sqlite::memory:").await.unwrap();
        let limits = RateLimits::new("2/min".parse().unwrap(), "1/h".parse().unwrap(), &db);
        let a = Subject::Ip("10.0.0.1".parse().unwrap());
        let b = Subject::Ip("10.0.0.2".parse().unwrap());
        assert!(limits.check(Scope::Auth, a).await.is_ok());
        assert!(limits.check(Scope::Auth, a).await.is_ok());
        let wait = limits.check(Scope::Auth, a).await.unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(limits.check(Scope::Auth, b).await.is_ok());
        let user = Subject::User(Uuid::now_v7());
        assert!(limits.check(Scope::Api, user).await.is_ok());
        assert!(limits.check(Scope::Api, user).await.unwrap_err() > 3000);
    }
}
