//! The fetch step (`fetch-stripe`, `fetch-paypal`, `fetch-square`, `fetch-ledger`): stages one source's day
//! under `raw/` (the files dropped in its inbox, else its API), writes the manifest there and returns a
//! reference to it ([`ManifestRef`]: key, sha256 and counts, the same size whatever the day's).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tracing::info;

use super::{yesterday, Ports, StartExecution};
use recon_sources::Keep;

use crate::fetch::{stage, ManifestRef};
use crate::keys::{self, Source};
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

/// Stages a source for a day and returns its manifest's reference. A dropped file that started the execution must be
/// a drop of this processor for this date ([`keys::parse_inbox`], the trigger's parser); the ledger fetch of
/// a processor's drop stages the ledger's own inbox. `deadline` is the invocation's (the Lambda context's): no
/// API wait is slept past it ([`recon_sources::api::within_deadline`]).
#[tracing::instrument(name = "fetch", skip_all, fields(source = %source, date = ?input.date))]
pub async fn fetch<S: ObjectStore, M: Mailer, X: StartExecution>(
    ports: &Ports<S, M, X>,
    source: Source,
    input: FetchInput,
    deadline: Option<std::time::Instant>,
) -> Result<ManifestRef, AppError> {
    let date = input.date.unwrap_or_else(yesterday);
    if let (Some(dropped), true) = (&input.source, source != Source::Ledger) {
        let expected = keys::inbox_day(source, date);
        match keys::parse_inbox(&dropped.key) {
            Ok(k) if k.source == source && k.date == date => {}
            Ok(_) => {
                let why = format!("{} is not under {expected}", dropped.key);
                return Err(AppError::InvalidInput(why));
            }
            Err(why) => {
                let why = format!("{why}; expected a file under {expected}");
                return Err(AppError::InvalidInput(why));
            }
        }
    }
    let staging = stage(&ports.objects, &ports.apis, source, date, 0, Keep::Counts);
    let fetched = recon_sources::api::within_deadline(deadline, staging).await?;
    info!(source = %source, date = %date, records = fetched.manifest.record_count, key = %fetched.manifest.manifest_key, "staged");
    let sha256 = fetched.manifest_sha256.ok_or_else(|| {
        AppError::Internal(format!(
            "{}: staged without its sha256",
            fetched.manifest.manifest_key
        ))
    })?;
    Ok(ManifestRef::of(&fetched.manifest, sha256))
}
