//! Staging from a source's API: the pages exactly as received, each written before it is parsed.

use chrono::NaiveDate;

use recon_sources::api::{ApiError, RawPage};
use recon_sources::Keep;

use crate::keys::Source;
use crate::objects::ObjectStore;
use crate::AppError;

use super::{hash_and_parse, Fetched, Staged, StagedFrom};

/// API access configured for this process ([`crate::settings::ApiSettings::sources`]).
#[derive(Default)]
pub struct ApiSources {
    pub http: Option<reqwest::Client>,
    pub policy: recon_sources::api::RetryPolicy,
    pub stripe: Option<recon_sources::api::stripe::StripeConfig>,
    pub paypal: Option<recon_sources::api::paypal::PaypalClient>,
    pub square: Option<recon_sources::api::square::SquareConfig>,
    pub ledger: Option<recon_sources::api::ledger::LedgerApiConfig>,
}

impl ApiSources {
    /// Is an API configured for this source?
    pub fn configured(&self, source: Source) -> bool {
        match source {
            Source::Stripe => self.stripe.is_some(),
            Source::Paypal => self.paypal.is_some(),
            Source::Square => self.square.is_some(),
            Source::Ledger => self.ledger.is_some(),
        }
    }

    pub(crate) async fn fetch(&self, source: Source, date: NaiveDate) -> Result<Vec<RawPage>, ApiError> {
        use recon_sources::api::{http_client, ledger, square, stripe};
        let http = self.http.clone().unwrap_or_else(http_client);
        match source {
            Source::Stripe => match &self.stripe {
                Some(c) => stripe::fetch_day(&http, c, &self.policy, date).await,
                None => Ok(Vec::new()),
            },
            Source::Paypal => match &self.paypal {
                Some(c) => c.fetch_day(date).await,
                None => Ok(Vec::new()),
            },
            Source::Square => match &self.square {
                Some(c) => square::fetch_day(&http, c, &self.policy, date).await,
                None => Ok(Vec::new()),
            },
            Source::Ledger => match &self.ledger {
                Some(c) => ledger::fetch_day(&http, c, &self.policy, date).await,
                None => Ok(Vec::new()),
            },
        }
    }
}

/// Stages API pages exactly as received (each written before it is parsed), then the manifest.
pub async fn stage_pages<S: ObjectStore>(
    store: &S,
    source_name: Source,
    date: NaiveDate,
    first_object: u32,
    pages: Vec<RawPage>,
    keep: Keep,
) -> Result<Fetched, AppError> {
    let mut staged = Staged::new(source_name, date, StagedFrom::Api);
    for (n, page) in pages.into_iter().enumerate() {
        let key = format!("{}{}", staged.prefix, page.name);
        let len = page.body.len() as u64;
        let content_type = if page.name.ends_with(".jsonl") {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        store
            .put(&key, page.body.clone(), content_type)
            .await
            .map_err(AppError::Object)?;
        let object = first_object + u32::try_from(n).unwrap_or(0);
        let (digest, _, parsed) = hash_and_parse(&key, object, page.body.as_slice(), Some(len), keep);
        if let Some(c) = &page.next_cursor {
            staged.cursors.push(c.clone());
        }
        staged.add(key, page.request, (digest, len), parsed);
    }
    staged.finish(store).await
}
