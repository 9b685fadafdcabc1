//! S3 in: credentials and settings as the AWS CLI has them, listing, and streaming reads.
//!
//! The client comes from aws-config's default chain (environment, shared config and
//! credential files with `--profile`, SSO, web identity, ECS/Batch task roles, EC2/Glue
//! instance metadata), with `--region`, `--endpoint-url` (or `AWS_ENDPOINT_URL`) and
//! `--s3-path-style` for S3-compatible stores.
//!
//! Objects are read as a stream: large ones as concurrent ranged GETs (parts of
//! `part_size`, a few in flight), handed on in order. A part whose request fails, or whose
//! body stops short, is requested again from the exact byte already received, so no byte
//! is read twice or skipped. Nothing is written to local disk.

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use std::io::Read;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How to reach S3.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    pub path_style: bool,
    /// Size of a ranged GET.
    pub part_size: u64,
    /// Ranged GETs in flight per object.
    pub parts_in_flight: usize,
    /// Attempts per part (each resumes where the last stopped).
    pub attempts: u32,
}

impl S3Options {
    pub fn with_defaults(mut self) -> Self {
        if self.part_size == 0 {
            self.part_size = 8 << 20;
        }
        if self.parts_in_flight == 0 {
            self.parts_in_flight = 4;
        }
        if self.attempts == 0 {
            self.attempts = 8;
        }
        self
    }
}

impl S3Options {
    /// Shrink the read-ahead so that `objects` objects read at once hold no more than
    /// `budget` bytes: fewer parts in flight first, then smaller parts (not under 1 MiB).
    pub fn fit_read_ahead(mut self, budget: u64, objects: usize) -> Self {
        self = self.with_defaults();
        let per_object = budget / objects.max(1) as u64;
        // A reader holds the part it reads plus those in flight behind it.
        let parts = (per_object / self.part_size.max(1)).saturating_sub(1);
        self.parts_in_flight = self.parts_in_flight.min(parts as usize).max(1);
        if 2 * self.part_size > per_object {
            self.part_size = (per_object / 2).max(1 << 20);
        }
        self
    }
}

/// `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    pub fn parse(url: &str) -> Option<S3Url> {
        let rest = url.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return None;
        }
        Some(S3Url {
            bucket: bucket.to_string(),
            key: key.to_string(),
        })
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// What went wrong, said so that a user can fix it. Never holds secrets or signed URLs.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// Credentials, permissions, region, a missing bucket or key: the user's to fix.
    #[error("{0}")]
    Access(String),
    /// Anything else, after retries.
    #[error("{0}")]
    Failed(String),
}

impl S3Error {
    pub fn is_user_error(&self) -> bool {
        matches!(self, S3Error::Access(_))
    }
}

/// What a request was doing, for the permissions an access-denied message names.
#[derive(Clone, Copy)]
enum Op {
    Read,
    Write,
}

impl Op {
    fn permissions(self) -> &'static str {
        match self {
            Op::Read => "s3:GetObject and s3:ListBucket (and kms:Decrypt for KMS-encrypted objects)",
            Op::Write => "s3:PutObject, s3:DeleteObject and s3:ListBucket (and kms:GenerateDataKey for --sse-kms-key-id)",
        }
    }
}

/// Turn an SDK error into a one-line message naming the object and what to do.
fn describe<E>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    what: &str,
    op: Op,
) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let code = err.code().unwrap_or_default().to_string();
    let status = match err {
        SdkError::ServiceError(e) => Some(e.raw().status().as_u16()),
        _ => None,
    };
    let context = DisplayErrorContext(err).to_string();
    let lower = context.to_lowercase();
    if lower.contains("no credentials")
        || lower.contains("credentials provider")
        || lower.contains("failed to load credentials")
    {
        return S3Error::Access(format!(
            "no AWS credentials for {what}: set AWS_PROFILE or --profile, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an IAM role"
        ));
    }
    match (code.as_str(), status) {
        ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AllAccessDisabled", _) | (_, Some(403)) => {
            S3Error::Access(format!(
                "access denied to {what} ({}): check the credentials in use and that their policy allows {} there",
                if code.is_empty() { "403" } else { &code },
                op.permissions()
            ))
        }
        ("PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException", _) | (_, Some(301)) => {
            S3Error::Access(format!("{what} is in another region: pass --region with the bucket's region"))
        }
        ("NoSuchBucket", _) => S3Error::Access(format!("{what}: no such bucket; check the bucket name")),
        ("NoSuchKey" | "NotFound", _) | (_, Some(404)) => S3Error::Access(format!("{what}: no such object; check the path")),
        _ => {
            // Keep the message short and free of request details such as signed URLs.
            let mut first = context.lines().next().unwrap_or("").to_string();
            for marker in [" (DispatchFailure", " (ServiceError", " (ResponseError", " (TimeoutError", " (ConstructionFailure"] {
                if let Some(at) = first.find(marker) {
                    first.truncate(at);
                }
            }
            let first: String = first.chars().take(300).collect();
            S3Error::Failed(format!("S3 request for {what} failed: {first}"))
        }
    }
}

/// A connected S3 client with the runtime its requests run on.
pub struct S3 {
    rt: tokio::runtime::Runtime,
    client: aws_sdk_s3::Client,
    opts: S3Options,
}

impl S3 {
    pub fn connect(opts: &S3Options) -> Result<S3, S3Error> {
        let opts = opts.clone().with_defaults();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fhirlake-s3")
            .enable_all()
            .build()
            .map_err(|e| S3Error::Failed(format!("cannot start the S3 runtime: {e}")))?;
        let client = rt.block_on(async {
            let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
            if let Some(p) = &opts.profile {
                loader = loader.profile_name(p);
            }
            if let Some(r) = &opts.region {
                loader = loader.region(aws_config::Region::new(r.clone()));
            }
            if let Some(e) = &opts.endpoint_url {
                loader = loader.endpoint_url(e);
            }
            let shared = loader.load().await;
            let mut conf = aws_sdk_s3::config::Builder::from(&shared);
            if shared.region().is_none() {
                conf = conf.region(aws_config::Region::new("us-east-1"));
            }
            if opts.path_style {
                conf = conf.force_path_style(true);
            }
            // The SDK's own retries (throttling, 5xx, connection errors) for every request,
            // writes included; reads also resume mid-body on their own (`fetch_range`).
            conf = conf.retry_config(
                aws_config::retry::RetryConfig::standard().with_max_attempts(opts.attempts),
            );
            aws_sdk_s3::Client::from_conf(conf.build())
        });
        Ok(S3 { rt, client, opts })
    }

    /// A whole (small) object, such as a manifest.
    pub fn get_bytes(&self, url: &S3Url) -> Result<Vec<u8>, S3Error> {
        let mut out = Vec::new();
        self.open(url, None)?
            .read_to_end(&mut out)
            .map_err(|e| S3Error::Failed(e.to_string()))?;
        Ok(out)
    }

    /// Every object under `prefix`, with its size, in key order.
    pub fn list(&self, prefix: &S3Url) -> Result<Vec<(S3Url, u64)>, S3Error> {
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&prefix.bucket)
                .prefix(&prefix.key)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| describe(&e, &prefix.to_string(), Op::Read))?;
                for o in page.contents() {
                    if let Some(k) = o.key() {
                        out.push((
                            S3Url {
                                bucket: prefix.bucket.clone(),
                                key: k.to_string(),
                            },
                            o.size().unwrap_or(0).max(0) as u64,
                        ));
                    }
                }
            }
            out.sort();
            Ok(out)
        })
    }

    /// The size of an object.
    pub fn size(&self, url: &S3Url) -> Result<u64, S3Error> {
        self.rt.block_on(async {
            let head = self
                .client
                .head_object()
                .bucket(&url.bucket)
                .key(&url.key)
                .send()
                .await
                .map_err(|e| describe(&e, &url.to_string(), Op::Read))?;
            Ok(head.content_length().unwrap_or(0).max(0) as u64)
        })
    }

    /// Read an object as a stream of its bytes, in order.
    ///
    /// The object is fetched as ranged GETs of `part_size`, up to `parts_in_flight` of them
    /// at once. The part being read is handed on chunk by chunk as its body arrives; the
    /// parts after it fill their own buffers meanwhile, so memory per object stays under
    /// `(parts_in_flight + 1) × part_size` and the head part is never waited for whole.
    pub fn open(&self, url: &S3Url, size: Option<u64>) -> Result<S3Reader, S3Error> {
        let size = match size {
            Some(s) => s,
            None => self.size(url)?,
        };
        let part = self.opts.part_size.max(1);
        let parts = size.div_ceil(part);
        let in_flight = self.opts.parts_in_flight.max(1);
        // Parts started but not yet reached by the reader; the head part is one more.
        let (tx, rx) = tokio::sync::mpsc::channel::<PartBody>(in_flight.saturating_sub(1).max(1));
        let client = self.client.clone();
        let url2 = url.clone();
        let attempts = self.opts.attempts.max(1);
        self.rt.spawn(async move {
            for next in 0..parts {
                let start = next * part;
                let end = ((next + 1) * part).min(size) - 1;
                // Unbounded per part, but a part holds at most `part` bytes.
                let (part_tx, part_rx) = tokio::sync::mpsc::unbounded_channel();
                let (c, u) = (client.clone(), url2.clone());
                let task = tokio::spawn(async move {
                    fetch_range(&c, &u, start, end, attempts, &part_tx).await;
                });
                if tx.send(part_rx).await.is_err() {
                    // The reader is gone: stop fetching.
                    task.abort();
                    return;
                }
            }
        });
        Ok(S3Reader {
            parts: rx,
            part: None,
            current: bytes::Bytes::new(),
        })
    }
}

/// The body of one part, as it arrives; an error ends it.
type PartBody = tokio::sync::mpsc::UnboundedReceiver<Result<bytes::Bytes, std::io::Error>>;

/// A read that failed for good: which object, at which byte, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("reading {url} failed at byte {offset} after {attempts} attempts: {reason}")]
pub struct ReadFailure {
    pub url: String,
    pub offset: u64,
    pub attempts: u32,
    pub reason: String,
}

impl ReadFailure {
    /// The failure inside an I/O error from [`S3Reader`], if that is what it holds.
    pub fn find(err: &std::io::Error) -> Option<&ReadFailure> {
        err.get_ref()?.downcast_ref::<ReadFailure>()
    }
}

/// Fetch `[start, end]` of an object into `out` as it arrives, resuming after failures
/// from the byte reached, so that no byte is sent twice or skipped.
async fn fetch_range(
    client: &aws_sdk_s3::Client,
    url: &S3Url,
    start: u64,
    end: u64,
    attempts: u32,
    out: &tokio::sync::mpsc::UnboundedSender<Result<bytes::Bytes, std::io::Error>>,
) {
    let want = end - start + 1;
    let mut got = 0u64;
    let mut failures = 0u32;
    let mut last_error = String::new();
    while got < want {
        if failures >= attempts {
            let _ = out.send(Err(std::io::Error::other(ReadFailure {
                url: url.to_string(),
                offset: start + got,
                attempts,
                reason: last_error,
            })));
            return;
        }
        if failures > 0 {
            let backoff =
                Duration::from_millis(100u64 << failures.min(6)).min(Duration::from_secs(5));
            tokio::time::sleep(backoff).await;
        }
        let from = start + got;
        let resp = client
            .get_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .range(format!("bytes={from}-{end}"))
            // This loop retries (resuming mid-body, which the SDK cannot): no SDK retries
            // on top, which would multiply the attempts and their backoff.
            .customize()
            .config_override(
                aws_sdk_s3::config::Builder::new()
                    .retry_config(aws_config::retry::RetryConfig::disabled()),
            )
            .send()
            .await;
        let mut body = match resp {
            Ok(r) => r.body,
            Err(e) => {
                let d = describe(&e, &url.to_string(), Op::Read);
                if d.is_user_error() {
                    let _ = out.send(Err(std::io::Error::new(
                        std::io::ErrorKind::PermissionDenied,
                        d.to_string(),
                    )));
                    return;
                }
                last_error = d.to_string();
                failures += 1;
                continue;
            }
        };
        let before = got;
        loop {
            match body.try_next().await {
                Ok(Some(mut chunk)) => {
                    // A server that ignores the range end must not make us overrun it.
                    chunk.truncate((want - got).min(chunk.len() as u64) as usize);
                    if chunk.is_empty() {
                        break;
                    }
                    got += chunk.len() as u64;
                    if out.send(Ok(chunk)).is_err() {
                        return; // the reader is gone
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    last_error = format!("body interrupted: {e}");
                    break;
                }
            }
        }
        if got < want {
            // Attempts count those in a row that made no progress: a connection that keeps
            // being cut while the body still advances is not a reason to give up.
            failures = if got > before { 1 } else { failures + 1 };
            if last_error.is_empty() {
                last_error = "body ended early".into();
            }
        }
    }
}

/// The bytes of one object, in order, as `std::io::Read`.
pub struct S3Reader {
    parts: tokio::sync::mpsc::Receiver<PartBody>,
    part: Option<PartBody>,
    current: bytes::Bytes,
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            let Some(part) = self.part.as_mut() else {
                match self.parts.blocking_recv() {
                    Some(p) => self.part = Some(p),
                    None => return Ok(0),
                }
                continue;
            };
            match part.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => self.part = None,
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// A client made on first use, so that local runs never load AWS configuration.
#[derive(Default, Clone)]
pub struct LazyS3 {
    opts: S3Options,
    cell: Arc<OnceLock<Result<Arc<S3>, String>>>,
}

impl LazyS3 {
    pub fn new(opts: S3Options) -> Self {
        LazyS3 {
            opts,
            cell: Arc::default(),
        }
    }
    pub fn get(&self) -> Result<Arc<S3>, S3Error> {
        self.cell
            .get_or_init(|| {
                S3::connect(&self.opts)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(S3Error::Failed)
    }
}

impl std::fmt::Debug for LazyS3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyS3").field("opts", &self.opts).finish()
    }
}

/// Server-side encryption of written objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sse {
    /// The bucket's default.
    #[default]
    BucketDefault,
    /// SSE-S3 (AES256).
    S3,
    /// SSE-KMS, with the key's id or ARN (or the account's default key).
    Kms(Option<String>),
}

/// A multipart upload under way: the client, the object and the upload id.
type OpenUpload = (Arc<S3>, S3Url, String);

/// Multipart uploads under way, so that Ctrl-C can abort them.
fn uploads() -> &'static std::sync::Mutex<Vec<OpenUpload>> {
    static UPLOADS: OnceLock<std::sync::Mutex<Vec<OpenUpload>>> = OnceLock::new();
    UPLOADS.get_or_init(Default::default)
}

/// Abort every multipart upload still under way (on Ctrl-C or a failed run), so that no
/// incomplete upload is left behind to be billed.
pub fn abort_all_uploads() {
    let pending: Vec<_> = match uploads().lock() {
        Ok(mut u) => u.drain(..).collect(),
        Err(_) => return,
    };
    for (s3, url, id) in pending {
        s3.abort(&url, &id);
    }
}

impl S3 {
    fn abort(&self, url: &S3Url, upload_id: &str) {
        let _ = self.rt.block_on(
            self.client
                .abort_multipart_upload()
                .bucket(&url.bucket)
                .key(&url.key)
                .upload_id(upload_id)
                .send(),
        );
    }

    /// Write a small object whole.
    pub fn put(&self, url: &S3Url, body: Vec<u8>, sse: &Sse) -> Result<(), S3Error> {
        self.rt.block_on(async {
            let mut req = self
                .client
                .put_object()
                .bucket(&url.bucket)
                .key(&url.key)
                .body(body.into());
            match sse {
                Sse::BucketDefault => {}
                Sse::S3 => {
                    req =
                        req.server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                }
                Sse::Kms(key) => {
                    req = req
                        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                        .set_ssekms_key_id(key.clone());
                }
            }
            req.send()
                .await
                .map_err(|e| describe(&e, &url.to_string(), Op::Write))?;
            Ok(())
        })
    }

    /// Delete objects (one request per 1,000).
    pub fn delete(&self, urls: &[S3Url]) -> Result<(), S3Error> {
        use aws_sdk_s3::types::{Delete, ObjectIdentifier};
        let mut by_bucket: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for u in urls {
            by_bucket.entry(&u.bucket).or_default().push(&u.key);
        }
        self.rt.block_on(async {
            for (bucket, keys) in by_bucket {
                for batch in keys.chunks(1000) {
                    let objects = batch
                        .iter()
                        .map(|k| {
                            ObjectIdentifier::builder()
                                .key(*k)
                                .build()
                                .expect("key is set")
                        })
                        .collect();
                    let delete = Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                        .expect("objects are set");
                    self.client
                        .delete_objects()
                        .bucket(bucket)
                        .delete(delete)
                        .send()
                        .await
                        .map_err(|e| describe(&e, &format!("s3://{bucket}/"), Op::Write))?;
                }
            }
            Ok(())
        })
    }
}

/// An object written as a stream: a multipart upload once it outgrows one part, else a
/// single PUT. Dropped without [`S3Upload::complete`], it aborts its upload.
pub struct S3Upload {
    s3: Arc<S3>,
    url: S3Url,
    sse: Sse,
    part_size: usize,
    buf: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
    bytes: u64,
    done: bool,
}

impl S3Upload {
    pub fn new(s3: Arc<S3>, url: S3Url, sse: Sse, part_size: usize) -> S3Upload {
        S3Upload {
            s3,
            url,
            sse,
            // S3 parts are at least 5 MiB, except the last.
            part_size: part_size.max(5 << 20),
            buf: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            bytes: 0,
            done: false,
        }
    }

    /// As an I/O error for the Parquet writer; access errors keep their kind, so that
    /// the command exits with the user-error code.
    fn io(e: S3Error) -> std::io::Error {
        let kind = if e.is_user_error() {
            std::io::ErrorKind::PermissionDenied
        } else {
            std::io::ErrorKind::Other
        };
        std::io::Error::new(kind, e.to_string())
    }

    fn upload_part(&mut self, body: Vec<u8>) -> std::io::Result<()> {
        let s3 = self.s3.clone();
        if self.upload_id.is_none() {
            let id = s3.rt.block_on(async {
                let mut req = s3
                    .client
                    .create_multipart_upload()
                    .bucket(&self.url.bucket)
                    .key(&self.url.key);
                match &self.sse {
                    Sse::BucketDefault => {}
                    Sse::S3 => {
                        req = req
                            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
                    }
                    Sse::Kms(key) => {
                        req = req
                            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                            .set_ssekms_key_id(key.clone());
                    }
                }
                let out = req
                    .send()
                    .await
                    .map_err(|e| describe(&e, &self.url.to_string(), Op::Write))?;
                out.upload_id().map(str::to_string).ok_or_else(|| {
                    S3Error::Failed(format!("{}: S3 returned no upload id", self.url))
                })
            });
            let id = id.map_err(Self::io)?;
            if let Ok(mut u) = uploads().lock() {
                u.push((s3.clone(), self.url.clone(), id.clone()));
            }
            self.upload_id = Some(id);
        }
        let number = self.parts.len() as i32 + 1;
        let upload_id = self.upload_id.clone().expect("created above");
        let etag = s3.rt.block_on(async {
            let out = s3
                .client
                .upload_part()
                .bucket(&self.url.bucket)
                .key(&self.url.key)
                .upload_id(&upload_id)
                .part_number(number)
                .body(body.into())
                .send()
                .await
                .map_err(|e| describe(&e, &self.url.to_string(), Op::Write))?;
            Ok::<_, S3Error>(out.e_tag().map(str::to_string))
        });
        let etag = etag.map_err(Self::io)?;
        self.parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(etag)
                .build(),
        );
        Ok(())
    }

    /// Finish the object; returns its size.
    pub fn complete(mut self) -> std::io::Result<u64> {
        let rest = std::mem::take(&mut self.buf);
        if self.upload_id.is_none() {
            self.s3.put(&self.url, rest, &self.sse).map_err(Self::io)?;
        } else {
            if !rest.is_empty() {
                self.upload_part(rest)?;
            }
            let upload_id = self.upload_id.clone().expect("multipart");
            let s3 = self.s3.clone();
            let parts = std::mem::take(&mut self.parts);
            s3.rt
                .block_on(async {
                    s3.client
                        .complete_multipart_upload()
                        .bucket(&self.url.bucket)
                        .key(&self.url.key)
                        .upload_id(&upload_id)
                        .multipart_upload(
                            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                                .set_parts(Some(parts))
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| describe(&e, &self.url.to_string(), Op::Write))
                })
                .map_err(Self::io)?;
            if let Ok(mut u) = uploads().lock() {
                u.retain(|(_, _, id)| *id != upload_id);
            }
        }
        self.done = true;
        Ok(self.bytes)
    }
}

impl std::io::Write for S3Upload {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.bytes += data.len() as u64;
        while self.buf.len() >= self.part_size {
            let rest = self.buf.split_off(self.part_size);
            let part = std::mem::replace(&mut self.buf, rest);
            self.upload_part(part)?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        if let (false, Some(id)) = (self.done, &self.upload_id) {
            self.s3.abort(&self.url, id);
            if let Ok(mut u) = uploads().lock() {
                u.retain(|(_, _, i)| i != id);
            }
        }
    }
}
