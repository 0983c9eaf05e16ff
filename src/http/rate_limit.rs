//! Request budgets (GCRA, from the `governor` crate): per client IP on
//! `/api/v1/auth/*`, per user on the rest of `/api/v1`. Byte-moving requests
//! (tus PATCH/HEAD) spend nothing, so a fast upload is never throttled
//! mid-file. A refusal is 429 problem+json with `Retry-After`.

use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{Error, web};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use stowage_actors::accounts::Accounts;
use stowage_actors::metrics::RATE_LIMITED_TOTAL;
use uuid::Uuid;

use super::auth::bearer_token;
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

/// Which budget, if any, a request spends.
pub fn scope_of(method: &Method, path: &str) -> Option<Scope> {
    if path.starts_with("/api/v1/auth/") {
        return Some(Scope::Auth);
    }
    let moves_bytes =
        path.starts_with("/api/v1/tus/") && (method == Method::PATCH || method == Method::HEAD);
    (path.starts_with("/api/v1/") && !moves_bytes).then_some(Scope::Api)
}

pub struct RateLimits {
    auth: DefaultKeyedRateLimiter<IpAddr>,
    api: DefaultKeyedRateLimiter<Subject>,
    clock: DefaultClock,
}

impl RateLimits {
    pub fn new(auth: Rate, api: Rate) -> Self {
        Self {
            auth: DefaultKeyedRateLimiter::keyed(quota(auth)),
            api: DefaultKeyedRateLimiter::keyed(quota(api)),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one request of `subject`'s budget; `Err` holds the seconds to wait.
    fn check(&self, scope: Scope, subject: Subject) -> Result<(), u64> {
        let verdict = match (scope, subject) {
            (Scope::Auth, Subject::Ip(ip)) => self.auth.check_key(&ip),
            (Scope::Auth, Subject::User(_)) => Ok(()),
            (Scope::Api, subject) => self.api.check_key(&subject),
        };
        verdict.map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Forgets subjects whose budget is full again, bounding memory.
    pub fn prune(&self) {
        self.auth.retain_recent();
        self.auth.shrink_to_fit();
        self.api.retain_recent();
        self.api.shrink_to_fit();
    }
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
    let (Some(scope), Some(limits)) = (
        scope_of(req.method(), req.path()),
        req.app_data::<web::Data<RateLimits>>(),
    ) else {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_left_body);
    };
    let ip = req
        .peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip());
    let subject = match scope {
        Scope::Auth => Subject::Ip(ip),
        Scope::Api => bearer_token(req.request())
            .and_then(|t| req.app_data::<web::Data<Accounts>>()?.peek(&t))
            .map_or(Subject::Ip(ip), |p| Subject::User(p.user_id)),
    };
    match limits.check(scope, subject) {
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
        assert_eq!(scope_of(&Method::GET, "/healthz"), None);
    }

    #[test]
    fn budgets_are_per_subject() {
        let limits = RateLimits::new("2/min".parse().unwrap(), "1/h".parse().unwrap());
        let a = Subject::Ip("10.0.0.1".parse().unwrap());
        let b = Subject::Ip("10.0.0.2".parse().unwrap());
        assert!(limits.check(Scope::Auth, a).is_ok());
        assert!(limits.check(Scope::Auth, a).is_ok());
        let wait = limits.check(Scope::Auth, a).unwrap_err();
        assert!((1..=30).contains(&wait), "{wait}");
        assert!(limits.check(Scope::Auth, b).is_ok());
        let user = Subject::User(Uuid::now_v7());
        assert!(limits.check(Scope::Api, user).is_ok());
        assert!(limits.check(Scope::Api, user).unwrap_err() > 3000);
    }
}
