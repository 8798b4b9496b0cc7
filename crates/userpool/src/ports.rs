//! The directory's other dependencies: time, randomness and message delivery.

use async_trait::async_trait;

use crate::model::{Message, Millis};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Millis;
}

pub trait Random: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]);
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SendError(pub String);

#[async_trait]
pub trait MessageSender: Send + Sync + 'static {
    async fn send(&self, message: &Message) -> Result<(), SendError>;
}
