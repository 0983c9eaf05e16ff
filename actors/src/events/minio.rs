//! MinIO bucket notifications, as its NATS target publishes them (see
//! `shared/fixtures/`): read them, and write the same shape for the local store.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;

use crate::storage::ObjectMeta;

/// One record of a notification, reduced to what ingest needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    pub kind: ObjectEventKind,
    pub bucket: String,
    /// The object key, query-unescaped.
    pub key: String,
    /// Absent on delete events.
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub event_time: Option<DateTime<Utc>>,
    /// The span ingest handles it under (set by ingest, not the payload).
    pub trace: Option<crate::trace::TraceParent>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectEventKind {
    Created,
    Removed,
    Other,
}

/// Why a payload is not a usable notification.
#[derive(Debug, thiserror::Error)]
#[error("not a MinIO bucket notification: {0}")]
pub struct MalformedEvent(pub String);

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Records")]
    records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Record {
    event_name: String,
    event_time: Option<String>,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: BucketEntity,
    object: ObjectEntity,
}

#[derive(Deserialize)]
struct BucketEntity {
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectEntity {
    key: String,
    size: Option<u64>,
    e_tag: Option<String>,
}

/// Parses a notification into its records.
pub fn parse(payload: &[u8]) -> Result<Vec<ObjectEvent>, MalformedEvent> {
    let envelope: Envelope =
        serde_json::from_slice(payload).map_err(|e| MalformedEvent(e.to_string()))?;
    if envelope.records.is_empty() {
        return Err(MalformedEvent("no records".into()));
    }
    envelope
        .records
        .into_iter()
        .map(|r| {
            let kind = if r.event_name.starts_with("s3:ObjectCreated:") {
                ObjectEventKind::Created
            } else if r.event_name.starts_with("s3:ObjectRemoved:") {
                ObjectEventKind::Removed
            } else {
                ObjectEventKind::Other
            };
            Ok(ObjectEvent {
                kind,
                bucket: r.s3.bucket.name,
                key: query_unescape(&r.s3.object.key),
                size: r.s3.object.size,
                etag: r.s3.object.e_tag,
                event_time: r
                    .event_time
                    .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                    .map(|t| t.with_timezone(&Utc)),
                trace: None,
            })
        })
        .collect()
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte.
fn query_unescape(s: &str) -> String {
    form_urlencoded::parse(format!("k={}", s.replace('&', "%26").replace('=', "%3D")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// How an object came to be, in MinIO's event names.
pub const PUT: &str = "s3:ObjectCreated:Put";
pub const COMPLETE_MULTIPART: &str = "s3:ObjectCreated:CompleteMultipartUpload";

/// The notification MinIO would publish after a PutObject or a
/// CompleteMultipartUpload (`event_name`).
pub fn object_created_event(
    event_name: &str,
    bucket: &str,
    key: &str,
    object: &ObjectMeta,
    source_ip: &str,
    user_agent: &str,
) -> Vec<u8> {
    let now = Utc::now();
    let escaped: String = form_urlencoded::byte_serialize(key.as_bytes()).collect();
    let nanos = now.timestamp_nanos_opt().unwrap_or_default();
    let mut user_metadata = serde_json::Map::new();
    if let Some(ct) = &object.content_type {
        user_metadata.insert("content-type".into(), json!(ct));
    }
    let record = json!({
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": now.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "eventName": event_name,
        "userIdentity": {"principalId": "stowage"},
        "requestParameters": {"principalId": "stowage", "region": "", "sourceIPAddress": source_ip},
        "responseElements": {
            "x-amz-request-id": format!("{nanos:X}"),
            "x-minio-origin-endpoint": "stowage-local",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "stowage"},
                "arn": format!("arn:aws:s3:::{bucket}"),
            },
            "object": {
                "key": escaped,
                "size": object.size,
                "eTag": object.etag,
                "contentType": object.content_type,
                "userMetadata": user_metadata,
                "sequencer": format!("{nanos:X}"),
            },
        },
        "source": {"host": source_ip, "port": "", "userAgent": user_agent},
    });
    serde_json::to_vec(&json!({
        "EventName": event_name,
        "Key": format!("{bucket}/{key}"),
        "Records": [record],
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUT_FIXTURE: &str = include_str!("../../../tests/fixtures/minio-put.json");
    const MULTIPART_FIXTURE: &str =
        include_str!("../../../tests/fixtures/minio-complete-multipart.json");
    const DELETE_FIXTURE: &str = include_str!("../../../tests/fixtures/minio-delete.json");

    #[test]
    fn reads_the_three_fixtures() {
        let put = parse(PUT_FIXTURE.as_bytes()).unwrap();
        assert_eq!(put.len(), 1);
        assert_eq!(put[0].kind, ObjectEventKind::Created);
        assert_eq!(put[0].bucket, "drive");
        assert_eq!(
            put[0].key,
            "users/3f6c2a9e-8d1b-4c47-9a55-0e1f2b7c9d10/files/8b1e4f02-6a7d-4c3e-b1a9-2d5f7e9c0a41/Quarterly Report (final).pdf"
        );
        assert_eq!(put[0].size, Some(2_483_917));
        assert_eq!(
            put[0].etag.as_deref(),
            Some("9b2cf535f27731c974343645a3985328")
        );
        assert!(put[0].event_time.is_some());

        let mp = parse(MULTIPART_FIXTURE.as_bytes()).unwrap();
        assert_eq!(mp[0].kind, ObjectEventKind::Created);
        assert_eq!(mp[0].size, Some(157_286_400));

        let del = parse(DELETE_FIXTURE.as_bytes()).unwrap();
        assert_eq!(del[0].kind, ObjectEventKind::Removed);
        assert_eq!(del[0].size, None);
    }

    #[test]
    fn refuses_what_is_not_a_notification() {
        for bad in [
            &b""[..],
            b"not json",
            b"{}",
            b"{\"Records\": []}",
            b"{\"Records\": [{}]}",
            b"[1,2]",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn what_the_local_store_writes_reads_back() {
        let key = "users/a/files/b c+d&e=f%";
        let meta = ObjectMeta {
            size: 42,
            etag: Some("abc".into()),
            content_type: Some("text/plain".into()),
            sha256: None,
        };
        let payload = object_created_event(PUT, "stowage", key, &meta, "127.0.0.1", "curl");
        let events = parse(&payload).unwrap();
        assert_eq!(events[0].key, key);
        assert_eq!(events[0].size, Some(42));
        assert_eq!(events[0].bucket, "stowage");
        let raw: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(raw["Key"], format!("stowage/{key}"));
        assert_eq!(raw["EventName"], "s3:ObjectCreated:Put");
    }
}
