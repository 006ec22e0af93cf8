//! The [`Mailer`] port on SES v2: the RFC 5322 multipart message (HTML and plain-text parts) sent raw.

use aws_sdk_sesv2::types::{Destination, EmailContent, RawMessage};
use recon_app::notify::{Email, Mailer};
use recon_app::AppError;

use crate::s3::retryable;

/// The mailer on SES v2: the RFC 5322 multipart message (HTML and plain-text parts) sent raw.
#[derive(Clone, Debug)]
pub struct SesMailer {
    pub client: aws_sdk_sesv2::Client,
    pub configuration_set: Option<String>,
}

impl Mailer for SesMailer {
    async fn send(&self, email: &Email) -> Result<String, AppError> {
        let raw = email.to_rfc5322()?;
        let out = self
            .client
            .send_email()
            .from_email_address(&email.from)
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(email.to.clone()))
                    .build(),
            )
            .content(
                EmailContent::builder()
                    .raw(
                        RawMessage::builder()
                            .data(aws_sdk_sesv2::primitives::Blob::new(raw))
                            .build()
                            .map_err(|e| AppError::failed("SES raw message", e))?,
                    )
                    .build(),
            )
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map_err(|e| {
                // throttling (TooManyRequests), timeouts and 5xx are retried by Step Functions; the error's
                // kind only, never a dump of the request
                let kind = crate::s3::brief(&e);
                let lost = matches!(
                    e,
                    aws_sdk_sesv2::error::SdkError::TimeoutError(_)
                        | aws_sdk_sesv2::error::SdkError::ResponseError(_)
                );
                if lost {
                    // sent, perhaps: SES may have accepted it before the answer was lost
                    AppError::Uncertain(format!(
                        "sending the email {:?}: no answer from SES ({kind})",
                        email.subject
                    ))
                } else if retryable(&e) {
                    AppError::Transient(format!(
                        "sending the email {:?}: throttled or unavailable ({kind})",
                        email.subject
                    ))
                } else {
                    AppError::InvalidInput(format!(
                        "SES refused the email {:?}: {kind}; check SENDER_EMAIL's verified identity and \
                         SES_CONFIGURATION_SET",
                        email.subject
                    ))
                }
            })?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}
