//! `x-request-id`: honoured when the client sends a sane one, generated
//! otherwise, echoed on every response and carried by every log line.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};

pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Debug, Clone)]
pub struct RequestId(String);

impl RequestId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The client's id if it is 1 to 128 visible ASCII characters.
    fn from_client(value: &HeaderValue) -> Option<Self> {
        let s = value.to_str().ok()?;
        let ok = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(s.to_owned()))
    }

    fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate);
    let value = HeaderValue::from_str(id.as_str()).ok();
    req.extensions_mut().insert(id);
    let mut res = next.call(req).await?;
    if let Some(value) = value {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(res)
}
