//! S3, MinIO, SeaweedFS and the like, path-style, through rust-s3.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use s3::creds::Credentials;
use s3::error::S3Error;
use s3::serde_types::ObjectIdentifier;
use s3::{Bucket, BucketConfiguration, Region};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

mod schedule;
mod sink;
mod stream;

pub use self::sink::{S3Sink, upload_prefix};

use super::{
    DeleteReport, ListedObject, ObjectMeta, PresignedRequest, StorageError, expiry_secs, guarded,
};

/// DeleteObjects takes at most this many keys a request.
const DELETE_BATCH: usize = 1000;

/// Where and how to reach the bucket.
#[derive(Clone)]
pub struct S3Config {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key: SecretString,
    pub secret_key: SecretString,
    /// Server-side encryption asked of every write (`STOWAGE_S3_SSE`).
    pub sse: Option<Sse>,
}

/// Server-side encryption of stored objects: the value of
/// `x-amz-server-side-encryption` on every write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sse {
    /// SSE-S3: the store's own keys.
    Aes256,
    /// SSE-KMS with the bucket's default key.
    Kms,
}

impl Sse {
    pub const HEADER: &'static str = "x-amz-server-side-encryption";

    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "AES256" => Ok(Self::Aes256),
            "aws:kms" => Ok(Self::Kms),
            _ => Err("must be AES256 or aws:kms".to_owned()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Aes256 => "AES256",
            Self::Kms => "aws:kms",
        }
    }
}

pub struct S3Store {
    bucket: Box<Bucket>,
    /// The bucket whose requests carry the SSE header (for the writes
    /// rust-s3 makes itself: CreateMultipartUpload); only writes may.
    writer: Box<Bucket>,
    sse: Option<Sse>,
    pub(crate) circuit: crate::circuit::Circuit,
}

impl S3Store {
    /// Connects and makes sure the bucket exists (creating it if it does not).
    pub async fn connect(config: &S3Config) -> anyhow::Result<Self> {
        let region = Region::Custom {
            region: config.region.clone(),
            endpoint: config.endpoint.trim_end_matches('/').to_owned(),
        };
        let credentials = Credentials::new(
            Some(config.access_key.expose_secret()),
            Some(config.secret_key.expose_secret()),
            None,
            None,
            None,
        )
        .context("S3 credentials")?;
        let bucket = Bucket::new(&config.bucket, region.clone(), credentials.clone())
            .context("S3 bucket configuration")?
            .with_path_style()
            .with_request_timeout(Duration::from_secs(30))
            .context("S3 request timeout")?;
        let writer = match config.sse {
            Some(sse) => {
                let mut headers = http::HeaderMap::new();
                headers.insert(Sse::HEADER, http::HeaderValue::from_static(sse.as_str()));
                Box::new(
                    bucket
                        .with_extra_headers(headers)
                        .context("S3 bucket with server-side encryption")?,
                )
            }
            None => bucket.clone(),
        };
        let store = Self {
            bucket,
            writer,
            sse: config.sse,
            circuit: crate::circuit::Circuit::new("s3"),
        };
        if store.ping().await.is_err() {
            Bucket::create_with_path_style(
                &config.bucket,
                region,
                credentials,
                BucketConfiguration::default(),
            )
            .await
            .with_context(|| {
                format!(
                    "the S3 bucket `{}` is not reachable and could not be created",
                    config.bucket
                )
            })?;
            tracing::info!(bucket = %config.bucket, "created the S3 bucket");
        }
        Ok(store)
    }

    pub async fn presign_put(
        &self,
        key: &str,
        size: u64,
        content_type: &str,
        ttl: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        // Every header is signed: a PUT with another length or type fails
        // SigV4, and so does one without `If-None-Match: *`, which makes the
        // store refuse (412) a PUT over an object that exists: the URL
        // stores once, and a confirmed file's bytes never change under it.
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            content_type.parse().map_err(|_| {
                StorageError::rejected(
                    "invalid_content_type",
                    "the content type is not a valid header value",
                )
            })?,
        );
        headers.insert(http::header::CONTENT_LENGTH, size.into());
        headers.insert(
            http::header::IF_NONE_MATCH,
            http::HeaderValue::from_static("*"),
        );
        let mut sent = BTreeMap::from([
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("Content-Length".to_owned(), size.to_string()),
            ("If-None-Match".to_owned(), "*".to_owned()),
        ]);
        // Signed too: a PUT without it fails, so every object is encrypted.
        if let Some(sse) = self.sse {
            headers.insert(Sse::HEADER, http::HeaderValue::from_static(sse.as_str()));
            sent.insert(Sse::HEADER.to_owned(), sse.as_str().to_owned());
        }
        let secs = expiry_secs(ttl);
        let url = self
            .bucket
            .presign_put(key, secs, Some(headers), None)
            .await
            .map_err(classify)?;
        Ok(PresignedRequest {
            method: "PUT",
            url,
            headers: sent,
            expires_at: Utc::now() + Duration::from_secs(u64::from(secs)),
        })
    }

    pub async fn presign_get(
        &self,
        key: &str,
        ttl: Duration,
        content_disposition: &str,
        content_type: &str,
    ) -> Result<(String, DateTime<Utc>), StorageError> {
        let secs = expiry_secs(ttl);
        let queries = HashMap::from([
            (
                "response-content-disposition".to_owned(),
                content_disposition.to_owned(),
            ),
            ("response-content-type".to_owned(), content_type.to_owned()),
        ]);
        let url = self
            .bucket
            .presign_get(key, secs, Some(queries))
            .await
            .map_err(classify)?;
        Ok((url, Utc::now() + Duration::from_secs(u64::from(secs))))
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        match self.bucket.head_object(key).await {
            Ok((head, _)) => Ok(Some(ObjectMeta {
                size: head.content_length.unwrap_or(0).max(0) as u64,
                etag: head.e_tag.map(|e| e.trim_matches('"').to_owned()),
                content_type: head.content_type,
                sha256: None,
            })),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(classify(e)),
        }
    }

    /// Streams the object through SHA-256.
    pub async fn sha256(&self, key: &str) -> Result<Option<String>, StorageError> {
        let mut stream = match self.bucket.get_object_stream(key).await {
            Ok(s) => s,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(classify(e)),
        };
        let mut sha = Sha256::new();
        while let Some(chunk) = stream.bytes().next().await {
            sha.update(chunk.map_err(StorageError::unavailable)?);
        }
        Ok(Some(hex::encode(sha.finalize())))
    }

    pub async fn delete(&self, key: &str) -> Result<(), StorageError> {
        match self.bucket.delete_object(key).await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }

    /// DeleteObjects, 1,000 keys a request, up to four requests in flight.
    pub async fn delete_many(&self, keys: &[String]) -> Result<DeleteReport, StorageError> {
        let results: Vec<_> = futures_util::stream::iter(keys.chunks(DELETE_BATCH))
            .map(|chunk| {
                let ids: Vec<ObjectIdentifier> = chunk
                    .iter()
                    .map(|k| ObjectIdentifier {
                        key: k.clone(),
                        version_id: None,
                    })
                    .collect();
                self.bucket.delete_objects(ids)
            })
            .buffer_unordered(4)
            .collect()
            .await;
        let mut report = DeleteReport::default();
        for result in results {
            let result = result.map_err(classify)?;
            report
                .failed
                .extend(result.errors.into_iter().map(|e| e.key));
        }
        Ok(report)
    }

    pub async fn list_page(
        &self,
        prefix: &str,
        token: Option<String>,
    ) -> Result<(Vec<ListedObject>, Option<String>), StorageError> {
        let (page, _) = self
            .bucket
            .list_page(prefix.to_owned(), None, token, None, Some(1000))
            .await
            .map_err(classify)?;
        let objects = page
            .contents
            .into_iter()
            .filter_map(|o| {
                let last_modified = DateTime::parse_from_rfc3339(&o.last_modified)
                    .ok()?
                    .with_timezone(&Utc);
                Some(ListedObject {
                    key: o.key,
                    last_modified,
                })
            })
            .collect();
        let next = page
            .is_truncated
            .then_some(page.next_continuation_token)
            .flatten();
        Ok((objects, next))
    }

    /// Deletes every object under `prefix` (one listing page: an upload's
    /// few tails); failures are logged, not returned.
    pub(crate) async fn delete_prefix(&self, prefix: &str) {
        let deleted = async {
            let (objects, _) = self.list_page(prefix, None).await?;
            let keys: Vec<String> = objects.into_iter().map(|o| o.key).collect();
            if !keys.is_empty() {
                self.delete_many(&keys).await?;
            }
            Ok::<_, StorageError>(())
        };
        if let Err(e) = guarded(Some(&self.circuit), "delete_many", deleted).await {
            tracing::warn!(prefix, error = %e, "objects under an upload's prefix were not deleted");
        }
    }

    pub async fn ping(&self) -> Result<(), StorageError> {
        self.bucket
            .list_page(String::new(), None, None, None, Some(1))
            .await
            .map(|_| ())
            .map_err(StorageError::unavailable)
    }
}

fn is_not_found(e: &S3Error) -> bool {
    matches!(e, S3Error::HttpFailWithBody(404, _))
}

/// An S3 failure by class. A 4xx about the request (no such key or upload,
/// a failed precondition, parts too small) is the caller's to mend and says
/// S3's own error code; authorisation failures, throttling, 5xx and network
/// errors are the store failing.
pub(super) fn classify(e: S3Error) -> StorageError {
    let S3Error::HttpFailWithBody(status, body) = &e else {
        return StorageError::unavailable(e);
    };
    let code = s3_error_code(body).unwrap_or("unknown");
    match *status {
        404 => StorageError::not_found(
            "object_not_found",
            format!("the object store has no such object or upload ({code})"),
        ),
        409 | 412 => StorageError::conflict(
            "object_conflict",
            format!("the object store refused the call as conflicting with what it holds ({code})"),
        ),
        400 | 411 | 413 | 416 => StorageError::rejected(
            "storage_rejected",
            format!("the object store refused the request ({code}); check sizes and parts"),
        ),
        _ => StorageError::unavailable(e),
    }
}

/// `<Code>…</Code>` of an S3 error document: short, and S3's, not the client's.
fn s3_error_code(body: &str) -> Option<&str> {
    let start = body.find("<Code>")? + "<Code>".len();
    let len = body[start..].find("</Code>")?;
    let code = &body[start..start + len];
    (code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(code)
}

/// The parts of a `ListPartsResult` that matter here.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPartsResult {
    #[serde(default)]
    is_truncated: bool,
    next_part_number_marker: Option<u32>,
    #[serde(default, rename = "Part")]
    parts: Vec<ListedPart>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListedPart {
    part_number: u32,
    #[serde(rename = "ETag")]
    etag: String,
    size: u64,
}

impl S3Store {
    pub async fn create_multipart(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<String, StorageError> {
        self.writer
            .initiate_multipart_upload(key, content_type)
            .await
            .map(|r| r.upload_id)
            .map_err(classify)
    }

    /// A presigned UploadPart whose length is signed: S3 refuses any other.
    pub async fn presign_part(
        &self,
        key: &str,
        upload_id: &str,
        part: u32,
        size: u64,
        ttl: Duration,
    ) -> Result<PresignedRequest, StorageError> {
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::CONTENT_LENGTH, size.into());
        let queries = HashMap::from([
            ("partNumber".to_owned(), part.to_string()),
            ("uploadId".to_owned(), upload_id.to_owned()),
        ]);
        let secs = expiry_secs(ttl);
        let url = self
            .bucket
            .presign_put(key, secs, Some(headers), Some(queries))
            .await
            .map_err(classify)?;
        Ok(PresignedRequest {
            method: "PUT",
            url,
            headers: BTreeMap::from([("Content-Length".to_owned(), size.to_string())]),
            expires_at: Utc::now() + Duration::from_secs(u64::from(secs)),
        })
    }

    /// ListParts, page by page. rust-s3 has no call for it, so this signs
    /// the GET with the bucket's own presigner and reads the XML.
    pub async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Option<Vec<super::StoredPart>>, StorageError> {
        let mut parts = Vec::new();
        let mut marker: Option<u32> = None;
        loop {
            let mut queries = HashMap::from([("uploadId".to_owned(), upload_id.to_owned())]);
            if let Some(m) = marker {
                queries.insert("part-number-marker".to_owned(), m.to_string());
            }
            let url = self
                .bucket
                .presign_get(key, 60, Some(queries))
                .await
                .map_err(StorageError::unavailable)?;
            let res = self
                .bucket
                .http_client()
                .get(url)
                .send()
                .await
                // The URL carries a signature: keep it out of errors and logs.
                .map_err(|e| StorageError::unavailable(e.without_url()))?;
            let status = res.status().as_u16();
            let body = res
                .text()
                .await
                .map_err(|e| StorageError::unavailable(e.without_url()))?;
            if status == 404 {
                return Ok(None);
            }
            if status != 200 {
                return Err(StorageError::unavailable(anyhow::anyhow!(
                    "ListParts answered {status}: {body}"
                )));
            }
            let page: ListPartsResult =
                quick_xml::de::from_str(&body).map_err(StorageError::unavailable)?;
            parts.extend(page.parts.into_iter().map(|p| super::StoredPart {
                part_number: p.part_number,
                size: p.size,
                etag: p.etag.trim_matches('"').to_owned(),
            }));
            match (page.is_truncated, page.next_part_number_marker) {
                (true, Some(next)) => marker = Some(next),
                _ => break,
            }
        }
        parts.sort_by_key(|p| p.part_number);
        Ok(Some(parts))
    }

    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[super::StoredPart],
    ) -> Result<(), StorageError> {
        let parts = parts
            .iter()
            .map(|p| s3::serde_types::Part {
                part_number: p.part_number,
                etag: format!("\"{}\"", p.etag),
            })
            .collect();
        self.bucket
            .complete_multipart_upload(key, upload_id, parts)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), StorageError> {
        match self.bucket.abort_upload(key, upload_id).await {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(classify(e)),
        }
    }
}
