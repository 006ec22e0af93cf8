//! The fetch step (`fetch-stripe`, `fetch-paypal`, `fetch-square`, `fetch-ledger`): stages one source's day
//! under `raw/` (the files dropped in its inbox, else its API) and returns the manifest.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{yesterday, Ports, StartExecution};
use crate::fetch::{stage, Manifest};
use crate::notify::Mailer;
use crate::objects::ObjectStore;
use crate::AppError;

/// An object in S3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRef {
    pub bucket: String,
    pub key: String,
}

/// Input of the fetch functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchInput {
    /// The day; `null` or absent means yesterday (UTC), as for the daily schedule.
    #[serde(default)]
    pub date: Option<NaiveDate>,
    #[serde(default)]
    pub processor: Option<String>,
    /// Set when an S3 drop started the execution: the file is in `inbox/` and is staged instead of the API.
    #[serde(default)]
    pub source: Option<SourceRef>,
}

/// Stages a source (`stripe`, `paypal`, `square`, `ledger`) for a day and returns its manifest.
#[tracing::instrument(name = "fetch", skip_all, fields(source = source_name, date = ?input.date))]
pub async fn fetch<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    source_name: &str,
    input: FetchInput,
) -> Result<Manifest, AppError> {
    let date = input.date.unwrap_or_else(yesterday);
    if let Some(s) = &input.source {
        let expected = format!("inbox/{source_name}/{date}/");
        if source_name != "ledger" && !s.key.starts_with(&expected) {
            return Err(AppError::InvalidInput(format!(
                "{} is not under {expected}",
                s.key
            )));
        }
    }
    let fetched = stage(&ports.objects, &ports.apis, source_name, date, 0).await?;
    info!(source = source_name, date = %date, records = fetched.manifest.record_count, key = %fetched.manifest.manifest_key, "staged");
    Ok(fetched.manifest)
}
