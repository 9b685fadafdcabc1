//! What to read: an export job's manifest, or a folder of NDJSON files, turned into a
//! [`Plan`]: the input files with their resource types, and the export's id.
//!
//! Accepted inputs:
//! - a HealthLake FHIR REST export status (`GET .../r4/export/<jobId>`): `exportJobProperties`
//!   plus the Bulk Data fields `transactionTime`, `output[{type,url}]`, `error[]`;
//! - a `describe-fhir-export-job` output: `ExportJobProperties.OutputDataConfig.S3Configuration.S3Uri`
//!   and no file list, so the job folder `<S3Uri>/<datastoreId>-FHIR_EXPORT-<jobId>/` is listed;
//! - a FHIR Bulk Data manifest: `output`, `deleted`, `error`, with `count` where given;
//! - a folder of `.ndjson`, `.jsonl` (optionally `.gz`) files at any depth, or one such file.
//!
//! Manifests name files by URL (`s3://bucket/prefix/Patient/Patient-1-0.ndjson`). When a
//! local copy is read, each URL is looked up under the local root (`--local-root`, by default
//! the manifest's folder) by the longest tail of its path that exists there:
//! `ROOT/prefix/Patient/Patient-1-0.ndjson`, then `ROOT/Patient/Patient-1-0.ndjson`, then
//! `ROOT/Patient-1-0.ndjson`.

use crate::s3::{LazyS3, S3Url};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where an input file's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    S3(S3Url),
}

/// What an input file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Resources of the export (`output[]`).
    Output,
    /// OperationOutcome resources describing export errors (`error[]`).
    Error,
}

#[derive(Debug, Clone)]
pub struct InputFile {
    pub location: Location,
    /// How reports and errors name the file: the manifest URL, else the path.
    pub name: String,
    pub resource_type: String,
    pub role: Role,
    /// Resource count stated by the manifest, if any.
    pub count: Option<u64>,
    pub bytes: u64,
}

impl InputFile {
    pub fn gzipped(&self) -> bool {
        self.name.ends_with(".gz")
    }
}

/// A `deleted[]` entry of a Bulk Data manifest: recorded, not applied.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Deleted {
    pub url: String,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InputKind {
    HealthlakeExportStatus,
    HealthlakeDescribeJob,
    BulkDataManifest,
    Folder,
    File,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub kind: InputKind,
    pub export_id: String,
    pub transaction_time: Option<String>,
    pub job_status: Option<String>,
    pub files: Vec<InputFile>,
    pub deleted: Vec<Deleted>,
}

impl Plan {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// Options for reading an input.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Where local copies of the manifest's URLs are (default: the manifest's folder).
    pub local_root: Option<PathBuf>,
    /// Overrides the export id taken from the manifest.
    pub export_id: Option<String>,
    /// For `s3://` inputs and manifest URLs without a local copy.
    pub s3: LazyS3,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    S3(#[from] crate::s3::S3Error),
}

impl ManifestError {
    /// A problem with what the user gave (exit code 2), rather than a failure.
    pub fn is_usage(&self) -> bool {
        match self {
            ManifestError::S3(e) => e.is_user_error(),
            _ => true,
        }
    }
}

fn input_err(path: &Path, message: impl Into<String>) -> ManifestError {
    ManifestError::Input {
        path: path.display().to_string(),
        message: message.into(),
    }
}

const NDJSON_SUFFIXES: [&str; 4] = [".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz"];

fn is_ndjson(name: &str) -> bool {
    NDJSON_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Make a value safe as a Hive partition value and a file name.
pub fn sanitize_id(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect::<String>()
        .trim_matches('-')
        .to_string()
}

/// Read the input at `path` into a plan.
pub fn plan(path: &Path, opts: &PlanOptions) -> Result<Plan, ManifestError> {
    let mut plan = match S3Url::parse(&path.to_string_lossy()) {
        Some(url) => s3_input_plan(&url, opts)?,
        None => local_input_plan(path, opts)?,
    };
    finish_plan(&mut plan, opts)?;
    Ok(plan)
}

fn local_input_plan(path: &Path, opts: &PlanOptions) -> Result<Plan, ManifestError> {
    let meta = std::fs::metadata(path).map_err(|source| ManifestError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok(if meta.is_dir() {
        folder_plan(path)?
    } else {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if is_ndjson(name) {
            let file = local_file(path, None, Role::Output, None)?;
            Plan {
                kind: InputKind::File,
                export_id: sanitize_id(name.split('.').next().unwrap_or("export")),
                transaction_time: None,
                job_status: None,
                files: vec![file],
                deleted: vec![],
            }
        } else {
            manifest_plan(path, opts)?
        }
    })
}

fn finish_plan(plan: &mut Plan, opts: &PlanOptions) -> Result<(), ManifestError> {
    if let Some(id) = &opts.export_id {
        let clean = sanitize_id(id);
        if clean.is_empty() {
            return Err(input_err(
                Path::new(id),
                "--export-id must contain letters or digits",
            ));
        }
        plan.export_id = clean;
    }
    if plan.export_id.is_empty() {
        plan.export_id = "export".into();
    }
    plan.files.sort_by(|a, b| {
        (a.role as u8, &a.resource_type, &a.name).cmp(&(b.role as u8, &b.resource_type, &b.name))
    });
    Ok(())
}

/// An `s3://` input: a manifest object, or a prefix of NDJSON objects.
fn s3_input_plan(url: &S3Url, opts: &PlanOptions) -> Result<Plan, ManifestError> {
    let s3 = opts.s3.get()?;
    if url.key.ends_with(".json") {
        let text = s3.get_bytes(url)?;
        return manifest_doc_plan(&text, &url.to_string(), opts.local_root.as_deref(), opts);
    }
    let mut prefix = url.clone();
    if !prefix.key.is_empty() && !prefix.key.ends_with('/') {
        prefix.key.push('/');
    }
    let mut plan = s3_folder_plan(opts, &prefix)?;
    let base = prefix
        .key
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    plan.export_id = match base.split_once("-FHIR_EXPORT-") {
        Some((_, job)) => sanitize_id(job),
        None => sanitize_id(&base),
    };
    Ok(plan)
}

/// Every NDJSON object under an S3 prefix.
fn s3_folder_plan(opts: &PlanOptions, prefix: &S3Url) -> Result<Plan, ManifestError> {
    let s3 = opts.s3.get()?;
    let mut files = Vec::new();
    for (url, size) in s3.list(prefix)? {
        let name = url.key.rsplit('/').next().unwrap_or_default();
        if !is_ndjson(name) || name.starts_with('.') {
            continue;
        }
        files.push(s3_file(url, size, None, Role::Output, None)?);
    }
    if files.is_empty() {
        return Err(ManifestError::Input {
            path: prefix.to_string(),
            message: "no .ndjson, .jsonl, .ndjson.gz or .jsonl.gz objects under this prefix".into(),
        });
    }
    Ok(Plan {
        kind: InputKind::Folder,
        export_id: String::new(),
        transaction_time: None,
        job_status: None,
        files,
        deleted: vec![],
    })
}

/// S3 objects named by a manifest, with their sizes from one listing per bucket (of the
/// keys' common prefix) rather than a request per object.
fn sized_s3_files(
    opts: &PlanOptions,
    objects: Vec<(S3Url, Option<String>, Role, Option<u64>)>,
) -> Result<Vec<InputFile>, ManifestError> {
    let s3 = opts.s3.get()?;
    let mut sizes = std::collections::HashMap::new();
    let mut buckets: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (u, ..) in &objects {
        buckets
            .entry(u.bucket.as_str())
            .or_default()
            .push(u.key.as_str());
    }
    for (bucket, keys) in buckets {
        let first = keys[0];
        let common = keys.iter().fold(first.len(), |n, k| {
            first
                .bytes()
                .zip(k.bytes())
                .take(n)
                .take_while(|(a, b)| a == b)
                .count()
        });
        let prefix = S3Url {
            bucket: bucket.to_string(),
            key: first[..common].to_string(),
        };
        for (u, size) in s3.list(&prefix)? {
            sizes.insert(u, size);
        }
    }
    objects
        .into_iter()
        .map(|(u, declared, role, count)| {
            let size = *sizes.get(&u).ok_or_else(|| ManifestError::Input {
                path: u.to_string(),
                message: "named by the manifest but not found in S3".into(),
            })?;
            s3_file(u, size, declared.as_deref(), role, count)
        })
        .collect()
}

fn s3_file(
    url: S3Url,
    size: u64,
    declared: Option<&str>,
    role: Role,
    count: Option<u64>,
) -> Result<InputFile, ManifestError> {
    let name = url.to_string();
    let resource_type = file_type(
        &name,
        role,
        declared,
        || type_from_name(&url.key),
        "name objects by type (Patient.ndjson, Patient/…) or use a manifest",
    )?;
    Ok(InputFile {
        location: Location::S3(url),
        name,
        resource_type,
        role,
        count,
        bytes: size,
    })
}

/// A folder of NDJSON files at any depth. A HealthLake job folder name gives the job id.
fn folder_plan(dir: &Path) -> Result<Plan, ManifestError> {
    let mut files = Vec::new();
    walk(dir, &mut |p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if is_ndjson(name) {
            files.push(local_file(p, None, Role::Output, None)?);
        }
        Ok(())
    })?;
    if files.is_empty() {
        return Err(input_err(
            dir,
            "no .ndjson, .jsonl, .ndjson.gz or .jsonl.gz files found; point at an export folder or manifest",
        ));
    }
    let base = dir
        .canonicalize()
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_default();
    let export_id = match base.split_once("-FHIR_EXPORT-") {
        Some((_, job)) => sanitize_id(job),
        None => sanitize_id(&base),
    };
    Ok(Plan {
        kind: InputKind::Folder,
        export_id,
        transaction_time: None,
        job_status: None,
        files,
        deleted: vec![],
    })
}

fn walk(
    dir: &Path,
    f: &mut dyn FnMut(&Path) -> Result<(), ManifestError>,
) -> Result<(), ManifestError> {
    let io = |source| ManifestError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, f)?;
        } else {
            f(&p)?;
        }
    }
    Ok(())
}

/// The resource type a file name or its folder names: `Patient.000.ndjson`,
/// `Patient-123-1-0.ndjson`, `.../Patient/part-1.ndjson`.
fn type_from_name(path: &str) -> Option<String> {
    let model = crate::model::Model::r4();
    let mut parts = path.rsplit(['/', '\\']);
    let file = parts.next().unwrap_or_default();
    let stem: String = file
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    if model.resource(&stem).is_some() {
        return Some(stem);
    }
    let folder = parts.next().unwrap_or_default();
    model.resource(folder).is_some().then(|| folder.to_string())
}

/// The `resourceType` of the first line of a file (the last resort for naming its type).
fn type_from_first_line(path: &Path) -> Option<String> {
    use std::io::{BufRead, BufReader, Read};
    let file = std::fs::File::open(path).ok()?;
    let reader: Box<dyn Read> = if path.to_string_lossy().ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut line = Vec::new();
    // Resource types sit near the start; do not read a huge line whole.
    BufReader::new(reader.take(1 << 20))
        .read_until(b'\n', &mut line)
        .ok()?;
    let text = String::from_utf8_lossy(&line);
    let at = text.find("\"resourceType\"")?;
    let rest = text[at + 14..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect();
    crate::model::Model::r4()
        .resource(&name)
        .is_some()
        .then_some(name)
}

fn local_file(
    path: &Path,
    declared: Option<&str>,
    role: Role,
    count: Option<u64>,
) -> Result<InputFile, ManifestError> {
    let meta = std::fs::metadata(path).map_err(|source| ManifestError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let name = path.display().to_string();
    let resource_type = file_type(
        &name,
        role,
        declared,
        || type_from_name(&name).or_else(|| type_from_first_line(path)),
        "name the file by type, give it in a manifest, or start it with a resource",
    )?;
    Ok(InputFile {
        location: Location::Local(path.to_path_buf()),
        name,
        resource_type,
        role,
        count,
        bytes: meta.len(),
    })
}

/// A file's resource type: OperationOutcome for `error[]` files, else the manifest's
/// `type`, else what `guess` finds (file name, folder, first line); it must be an R4
/// resource type.
fn file_type(
    name: &str,
    role: Role,
    declared: Option<&str>,
    guess: impl FnOnce() -> Option<String>,
    hint: &str,
) -> Result<String, ManifestError> {
    let err = |message: String| ManifestError::Input {
        path: name.to_string(),
        message,
    };
    let resource_type = match role {
        Role::Error => "OperationOutcome".to_string(),
        Role::Output => declared
            .map(str::to_string)
            .or_else(guess)
            .ok_or_else(|| err(format!("cannot tell its resource type; {hint}")))?,
    };
    if crate::model::Model::r4().resource(&resource_type).is_none() {
        return Err(err(format!(
            "{resource_type} is not a FHIR R4 resource type"
        )));
    }
    Ok(resource_type)
}

/// Find the local copy of a manifest URL: the longest tail of its path under `root`.
pub fn resolve_local(url: &str, root: &Path) -> Option<PathBuf> {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p).unwrap_or(""),
        None => url,
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "..")
        .collect();
    (0..parts.len())
        .map(|skip| root.join(parts[skip..].join("/")))
        .find(|c| c.is_file())
}

fn manifest_plan(path: &Path, opts: &PlanOptions) -> Result<Plan, ManifestError> {
    let text = std::fs::read(path).map_err(|source| ManifestError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let root = match &opts.local_root {
        Some(r) => r.clone(),
        None => path.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    manifest_doc_plan(&text, &path.display().to_string(), Some(&root), opts)
}

/// A manifest's text into a plan. Its URLs are read from `root` where a local copy is
/// there, else from S3 for `s3://` URLs.
fn manifest_doc_plan(
    text: &[u8],
    origin: &str,
    root: Option<&Path>,
    opts: &PlanOptions,
) -> Result<Plan, ManifestError> {
    let path = Path::new(origin);
    let doc: Value = serde_json::from_slice(text).map_err(|e| {
        input_err(
            path,
            format!("not a JSON manifest ({e}); give an export status, describe-fhir-export-job output, Bulk Data manifest, or a folder"),
        )
    })?;
    if let Some(props) = doc.get("ExportJobProperties") {
        return describe_job_plan(path, props, root, opts);
    }
    let Some(output) = doc.get("output").and_then(Value::as_array) else {
        return Err(input_err(
            path,
            "not a recognised manifest: expected `output` (Bulk Data / HealthLake export status) or `ExportJobProperties` (describe-fhir-export-job)",
        ));
    };
    let props = doc.get("exportJobProperties");
    let kind = if props.is_some() {
        InputKind::HealthlakeExportStatus
    } else {
        InputKind::BulkDataManifest
    };
    let job_status = props
        .and_then(|p| p.get("jobStatus"))
        .and_then(Value::as_str)
        .map(str::to_string);
    check_job_status(path, job_status.as_deref())?;
    let transaction_time = doc
        .get("transactionTime")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut files = Vec::new();
    let mut remote = Vec::new();
    for (role, entries) in [
        (Role::Output, Some(output)),
        (Role::Error, doc.get("error").and_then(Value::as_array)),
    ] {
        for entry in entries.into_iter().flatten() {
            let url = entry
                .get("url")
                .and_then(Value::as_str)
                .ok_or_else(|| input_err(path, "an output entry has no `url`"))?;
            let declared = entry.get("type").and_then(Value::as_str);
            let count = entry.get("count").and_then(Value::as_u64);
            match (root.and_then(|r| resolve_local(url, r)), S3Url::parse(url)) {
                (Some(local), _) => {
                    let mut f = local_file(&local, declared, role, count)?;
                    f.name = url.to_string();
                    files.push(f);
                }
                (None, Some(s3)) => remote.push((s3, declared.map(str::to_string), role, count)),
                (None, None) => {
                    return Err(input_err(
                        path,
                        format!(
                            "no local copy of {url}{}; pass --local-root DIR where the export's files are",
                            root.map(|r| format!(" under {}", r.display())).unwrap_or_default()
                        ),
                    ))
                }
            }
        }
    }
    if !remote.is_empty() {
        files.extend(sized_s3_files(opts, remote)?);
    }
    let deleted = doc
        .get("deleted")
        .and_then(Value::as_array)
        .map(|d| {
            d.iter()
                .filter_map(|e| {
                    Some(Deleted {
                        url: e.get("url")?.as_str()?.to_string(),
                        resource_type: e.get("type").and_then(Value::as_str).map(str::to_string),
                        count: e.get("count").and_then(Value::as_u64),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let export_id = props
        .and_then(|p| p.get("jobId"))
        .and_then(Value::as_str)
        .map(sanitize_id)
        .or_else(|| transaction_time.as_deref().map(sanitize_id))
        .unwrap_or_default();
    Ok(Plan {
        kind,
        export_id,
        transaction_time,
        job_status,
        files,
        deleted,
    })
}

fn check_job_status(path: &Path, status: Option<&str>) -> Result<(), ManifestError> {
    match status {
        None | Some("COMPLETED") | Some("COMPLETED_WITH_ERRORS") => Ok(()),
        Some(s) => Err(input_err(
            path,
            format!("the export job's status is {s}; convert a job whose status is COMPLETED or COMPLETED_WITH_ERRORS"),
        )),
    }
}

/// A describe-fhir-export-job output: find the job folder and list it.
fn describe_job_plan(
    path: &Path,
    props: &Value,
    root: Option<&Path>,
    opts: &PlanOptions,
) -> Result<Plan, ManifestError> {
    let get = |k: &str| props.get(k).and_then(Value::as_str);
    let job_id = get("JobId").ok_or_else(|| input_err(path, "ExportJobProperties has no JobId"))?;
    let datastore = get("DatastoreId")
        .ok_or_else(|| input_err(path, "ExportJobProperties has no DatastoreId"))?;
    let status = get("JobStatus").map(str::to_string);
    check_job_status(path, status.as_deref())?;
    let out = props.get("OutputDataConfig");
    let s3_uri = out
        .and_then(|o| o.get("S3Configuration"))
        .and_then(|c| c.get("S3Uri"))
        .or_else(|| out.and_then(|o| o.get("S3Uri")))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            input_err(
                path,
                "ExportJobProperties has no OutputDataConfig.S3Configuration.S3Uri",
            )
        })?;
    let folder_name = format!("{datastore}-FHIR_EXPORT-{job_id}");
    let trimmed = s3_uri.trim_end_matches('/');
    let job_uri = if trimmed.ends_with(&folder_name) {
        format!("{trimmed}/")
    } else {
        format!("{trimmed}/{folder_name}/")
    };
    // The job folder's local copy: the longest tail of its path under the root.
    let rel = job_uri
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(&job_uri);
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).skip(1).collect();
    let local = root.and_then(|root| {
        (0..parts.len())
            .map(|skip| root.join(parts[skip..].join("/")))
            .find(|c| c.is_dir())
    });
    let Some(dir) = local else {
        // No local copy: list the job folder in S3.
        let prefix = S3Url::parse(&job_uri).ok_or_else(|| {
            input_err(path, format!("no local copy of {job_uri}; pass --local-root DIR where the export's files are"))
        })?;
        let folder = s3_folder_plan(opts, &prefix)?;
        return Ok(Plan {
            kind: InputKind::HealthlakeDescribeJob,
            export_id: sanitize_id(job_id),
            transaction_time: None,
            job_status: status,
            files: folder.files,
            deleted: vec![],
        });
    };
    let mut folder = folder_plan(&dir)?;
    for f in &mut folder.files {
        if let Location::Local(p) = &f.location {
            if let Ok(rel) = p.strip_prefix(&dir) {
                f.name = format!("{job_uri}{}", rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    Ok(Plan {
        kind: InputKind::HealthlakeDescribeJob,
        export_id: sanitize_id(job_id),
        transaction_time: None,
        job_status: status,
        files: folder.files,
        deleted: vec![],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_copies_are_found_by_the_longest_existing_tail() {
        let dir = tempfile::tempdir().unwrap();
        let job = dir.path().join("job-FHIR_EXPORT-1/Patient");
        std::fs::create_dir_all(&job).unwrap();
        std::fs::write(job.join("Patient-1-0.ndjson"), "{}\n").unwrap();
        let found = resolve_local(
            "s3://bucket/prefix/out/job-FHIR_EXPORT-1/Patient/Patient-1-0.ndjson",
            dir.path(),
        );
        assert_eq!(found.unwrap(), job.join("Patient-1-0.ndjson"));
        let found = resolve_local(
            "https://files.example.org/x/job-FHIR_EXPORT-1/Patient/Patient-1-0.ndjson?sig=1",
            dir.path(),
        );
        assert_eq!(found.unwrap(), job.join("Patient-1-0.ndjson"));
        assert!(resolve_local("s3://bucket/prefix/Other/Other-1.ndjson", dir.path()).is_none());
        // `..` cannot climb out of the root.
        assert!(resolve_local("s3://bucket/../../etc/passwd", dir.path()).is_none());
    }

    #[test]
    fn resource_types_from_names() {
        assert_eq!(
            type_from_name("x/Patient.000.ndjson").as_deref(),
            Some("Patient")
        );
        assert_eq!(
            type_from_name("x/Observation-1022280015944103279-3-0.ndjson").as_deref(),
            Some("Observation")
        );
        assert_eq!(
            type_from_name("x/Condition/part-1.ndjson").as_deref(),
            Some("Condition")
        );
        assert_eq!(
            type_from_name("x/Encounter.ndjson.gz").as_deref(),
            Some("Encounter")
        );
        assert_eq!(type_from_name("x/data/part-1.ndjson"), None);
        assert_eq!(
            type_from_name("x/patient.ndjson"),
            None,
            "types are case-sensitive"
        );
    }

    #[test]
    fn ids_are_safe_partition_values() {
        assert_eq!(
            sanitize_id("2024-08-06T18:12:57.000Z"),
            "2024-08-06T18-12-57.000Z"
        );
        assert_eq!(sanitize_id("a/b c"), "a-b-c");
        assert_eq!(
            sanitize_id("5df064e0e44777861f7a6c2ddf0d5f1b"),
            "5df064e0e44777861f7a6c2ddf0d5f1b"
        );
    }

    #[test]
    fn jobs_that_are_not_complete_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("status.json");
        std::fs::write(
            &p,
            r#"{"exportJobProperties":{"jobId":"j","jobStatus":"IN_PROGRESS"},"output":[]}"#,
        )
        .unwrap();
        let e = plan(&p, &PlanOptions::default()).unwrap_err().to_string();
        assert!(e.contains("status is IN_PROGRESS"), "{e}");
        std::fs::write(&p, r#"{"hello":1}"#).unwrap();
        let e = plan(&p, &PlanOptions::default()).unwrap_err().to_string();
        assert!(e.contains("not a recognised manifest"), "{e}");
    }
}
