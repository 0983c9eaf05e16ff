//! JSON request bodies as the OpenAPI document describes them: an object
//! (serde would also take a struct's fields as an array, `[null, null]`),
//! in which a number with no fractional part is a whole number wherever an
//! integer is expected (JSON Schema's `integer` includes `2.0`). Size
//! limits and errors are those of the route's [`actix_web::web::JsonConfig`].

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};

use super::error::ApiError;

/// A JSON object body deserialized into `T`.
#[derive(Debug)]
pub struct JsonObject<T>(pub T);

impl<T> JsonObject<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for JsonObject<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonObject<T> {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let object = web::Json::<Map<String, Value>>::from_request(req, payload);
        Box::pin(async move {
            let mut value = Value::Object(object.await?.into_inner());
            whole_numbers(&mut value);
            serde_json::from_value(value).map(JsonObject).map_err(|e| {
                ApiError::bad_request(
                    "invalid_body",
                    format!("the JSON does not fit this route: {e}"),
                )
                .into()
            })
        })
    }
}

/// Rewrites every number with no fractional part that fits an integer
/// (`2.0`) as that integer.
fn whole_numbers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64().filter(|f| f.fract() == 0.0) {
                let whole = if f >= 0.0 && f <= u64::MAX as f64 {
                    Some(Number::from(f as u64))
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    Some(Number::from(f as i64))
                } else {
                    None
                };
                if let Some(whole) = whole {
                    *n = whole;
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(whole_numbers),
        Value::Object(map) => map.values_mut().for_each(whole_numbers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_floats_become_integers_and_others_stay() {
        let mut v =
            serde_json::json!({"a": 2.0, "b": [3.0, 1.5], "c": -4.0, "d": 1e300, "e": "2.0"});
        whole_numbers(&mut v);
        assert_eq!(v["a"], serde_json::json!(2));
        assert_eq!(v["b"], serde_json::json!([3, 1.5]));
        assert_eq!(v["c"], serde_json::json!(-4));
        assert!(v["d"].is_f64());
        assert_eq!(v["e"], "2.0");
        #[derive(serde::Deserialize)]
        struct Part {
            n: u32,
        }
        let part: Part = serde_json::from_value(serde_json::json!({"n": 197247})).unwrap();
        assert_eq!(part.n, 197247);
    }
}
