//! What can go wrong while following the cluster (each is logged and retried; none stops
//! the scheduler).

use flynn_http::client::ClientError;

/// A break in following the controller or discoverd.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The controller refused or could not be reached.
    #[error("controller: {0}")]
    Controller(#[source] ClientError),
    /// discoverd refused or could not be reached.
    #[error("discoverd: {0}")]
    Discoverd(#[source] ClientError),
    /// The event stream ended (its server restarts, say); it is followed again.
    #[error("the {0} event stream ended")]
    StreamEnded(&'static str),
}
