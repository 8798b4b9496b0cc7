//! Message delivery for the user directory: `smtp` (a real mail server), `log` (a line per
//! message, never its code), and `outbox` (kept in the database for development and tests).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use userpool::{Clock, Medium, Message, MessageSender, SendError, Store};

/// Writes one log line per message: who, what kind, where; never the code or the body.
pub struct LogSender;

#[async_trait]
impl MessageSender for LogSender {
    async fn send(&self, m: &Message) -> Result<(), SendError> {
        tracing::info!(
            pool_id = %m.pool_id,
            username = %m.username,
            kind = m.kind.as_str(),
            medium = m.medium.as_str(),
            "message not delivered (log sender)"
        );
        Ok(())
    }
}

/// Keeps every message, code included, in the database, where `GET /_cognate/messages` serves
/// it. Development only: the one place a code is stored in clear.
pub struct OutboxSender {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
}

impl OutboxSender {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

#[async_trait]
impl MessageSender for OutboxSender {
    async fn send(&self, m: &Message) -> Result<(), SendError> {
        self.store
            .insert_message(m, self.clock.now())
            .await
            .map_err(|e| SendError(format!("outbox: {e}")))
    }
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain TCP (a local relay or a test sink).
    None,
    /// Upgrade with STARTTLS (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Tls,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The From address, e.g. `Cognate <no-reply@example.com>`.
    pub from: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpSetupError {
    #[error("invalid SMTP from address: {0}")]
    From(String),
    #[error("invalid SMTP settings: {0}")]
    Transport(String),
}

/// Sends e-mail through an SMTP server. SMS cannot go through SMTP: such messages fail with a
/// delivery error (Cognito's CodeDeliveryFailureException).
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpSender {
    pub fn new(s: &SmtpSettings) -> Result<Self, SmtpSetupError> {
        let from: Mailbox = s
            .from
            .parse()
            .map_err(|e| SmtpSetupError::From(format!("{e}")))?;
        let terr = |e: lettre::transport::smtp::Error| SmtpSetupError::Transport(e.to_string());
        let mut builder = match s.security {
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
            SmtpSecurity::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host).map_err(terr)?
            }
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host).map_err(terr)?
            }
        }
        .port(s.port)
        .timeout(Some(Duration::from_secs(10)));
        if let (Some(u), Some(p)) = (&s.username, &s.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait]
impl MessageSender for SmtpSender {
    async fn send(&self, m: &Message) -> Result<(), SendError> {
        if m.medium == Medium::Sms {
            return Err(SendError(
                "SMS delivery is not configured (the smtp sender sends e-mail only)".into(),
            ));
        }
        let to: Mailbox = m
            .destination
            .parse()
            .map_err(|e| SendError(format!("bad recipient address: {e}")))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.clone().unwrap_or_default())
            .body(m.body.clone())
            .map_err(|e| SendError(format!("cannot build the e-mail: {e}")))?;
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| SendError(format!("smtp: {e}")))
    }
}
