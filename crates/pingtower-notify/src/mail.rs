//! The installation's own mail (`PINGTOWER_SMTP_URL`, `PINGTOWER_MAIL_FROM`): messages to
//! people about their accounts (confirming an email, an invitation), not notifications.
//!
//! The operator configures this server, as it configures an OIDC provider, so it does not go
//! through the tenants' blocklist. Every send ends within the mailer's timeout.

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error(
        "PINGTOWER_SMTP_URL: {0} (for example smtps://user:pass@mail.example.com or smtp://relay:25)"
    )]
    Url(String),
    #[error(
        "PINGTOWER_MAIL_FROM: `{0}` is not an address (for example `PingTower <ops@example.com>`)"
    )]
    From(String),
    #[error("`{0}` is not an address mail can be sent to")]
    To(String),
    #[error("the mail server did not accept the message: {0}")]
    Send(String),
    #[error("the mail server did not answer within {0:?}")]
    Timeout(Duration),
}

/// Sends the installation's mail through one SMTP server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold the server's password.
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

impl Mailer {
    /// A mailer for `url` (lettre's connection URLs: `smtps://` for implicit TLS,
    /// `smtp://…?tls=required` for STARTTLS, plain `smtp://` for a relay) sending as `from`.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, MailError> {
        let from: Mailbox = from.parse().map_err(|_| MailError::From(from.to_owned()))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| MailError::Url(e.to_string()))?
            .timeout(Some(timeout))
            .build();
        Ok(Self {
            transport,
            from,
            timeout,
        })
    }

    /// Sends one plain-text message; ends within the mailer's timeout (plus the time to
    /// connect, which the transport bounds by the same timeout).
    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|_| MailError::To(to.to_owned()))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| MailError::Send(e.to_string()))?;
        // The transport's timeout covers each read and write; the whole exchange gets a
        // deadline too (a server that answers one byte at a time would otherwise hold on).
        match tokio::time::timeout(self.timeout * 3, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(MailError::Send(e.to_string())),
            Err(_) => Err(MailError::Timeout(self.timeout * 3)),
        }
    }
}
