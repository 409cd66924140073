//! The body of every error response, `{"code": ..., "message": ...}`, and the codes.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines [`ErrorCode`] from one table: variant, wire name, default status, doc.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $name:ident = $wire:literal, $status:literal;)*) => {
        /// A stable, machine-readable error code. Clients match on these, never on messages.
        /// A code this build does not know (from a newer server) reads as
        /// [`ErrorCode::Unknown`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $name,)*
            /// A code this build does not know.
            Unknown,
        }

        impl ErrorCode {
            /// The code's wire name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $wire,)*
                    ErrorCode::Unknown => "unknown",
                }
            }

            /// The HTTP status a server answers this code with unless it says otherwise.
            pub fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$name => $status,)*
                    ErrorCode::Unknown => 500,
                }
            }

            /// The code with this wire name ([`ErrorCode::Unknown`] for any other).
            pub fn from_wire(s: &str) -> Self {
                match s {
                    $($wire => ErrorCode::$name,)*
                    _ => ErrorCode::Unknown,
                }
            }
        }
    };
}

error_codes! {
    /// The request is malformed: a body, query or path that does not parse or validate.
    BadRequest = "bad_request", 400;
    /// The bearer token or key is missing or wrong.
    Unauthorized = "unauthorized", 401;
    /// No route has this path.
    NotFound = "not_found", 404;
    /// The path exists, not with this method (`Allow` lists the methods).
    MethodNotAllowed = "method_not_allowed", 405;
    /// The request body did not arrive in time.
    RequestTimeout = "request_timeout", 408;
    /// The request body is over the server's limit.
    PayloadTooLarge = "payload_too_large", 413;
    /// The route needs an HTTP upgrade the request did not ask for.
    UpgradeRequired = "upgrade_required", 400;
    /// The server failed; its log says more.
    Internal = "internal", 500;
    /// A backing store failed.
    Store = "store", 503;
    /// The operation timed out on the server.
    Timeout = "timeout", 504;
    /// The service is not ready to answer yet (starting up, state not loaded).
    Unavailable = "unavailable", 503;
    /// A compare-and-swap lost: the version is not the one given.
    Conflict = "conflict", 409;
    /// No job has this id.
    NoSuchJob = "no_such_job", 404;
    /// A job with this id exists.
    JobExists = "job_exists", 409;
    /// The job has not ended.
    JobRunning = "job_running", 409;
    /// The job does not run.
    JobNotRunning = "job_not_running", 409;
    /// The job's configuration is invalid.
    BadJob = "bad_job", 400;
    /// The job could not be started.
    StartFailed = "start_failed", 500;
    /// An image could not be pulled (the registry refused, or what it sent was bad).
    PullFailed = "pull_failed", 502;
    /// No such image is stored.
    NoSuchImage = "no_such_image", 404;
    /// An image name or id prefix matches several images.
    AmbiguousImage = "ambiguous_image", 400;
    /// The image is used by a job.
    ImageInUse = "image_in_use", 409;
    /// No such volume.
    NoSuchVolume = "no_such_volume", 404;
    /// A volume with this name exists.
    VolumeExists = "volume_exists", 409;
    /// The volume is attached to a job.
    VolumeInUse = "volume_in_use", 409;
    /// The host is draining: it takes no new jobs.
    HostDraining = "host_draining", 409;
    /// The host belongs to no cluster that others can join.
    NotInCluster = "not_in_cluster", 404;
    /// A host port is taken.
    PortInUse = "port_in_use", 409;
    /// The job network has no free address.
    NetworkExhausted = "network_exhausted", 503;
    /// A service has no live instance to lead it.
    NoLeader = "no_leader", 404;
    /// A service has no metadata.
    NoMeta = "no_meta", 404;
    /// No such instance is registered.
    NoSuchInstance = "no_such_instance", 404;
    /// No app has this name or id.
    NoSuchApp = "no_such_app", 404;
    /// An app with this name exists.
    AppExists = "app_exists", 409;
    /// No such release (or not of this app).
    NoSuchRelease = "no_such_release", 404;
    /// No such artifact.
    NoSuchArtifact = "no_such_artifact", 404;
    /// The app has no formation for this release.
    NoSuchFormation = "no_such_formation", 404;
    /// No such route (or not of this app).
    NoSuchRoute = "no_such_route", 404;
    /// No event has this id.
    NoSuchEvent = "no_such_event", 404;
    /// No such deployment (or not of this app).
    NoSuchDeployment = "no_such_deployment", 404;
    /// The app has an unfinished deployment already.
    DeployInProgress = "deploy_in_progress", 409;
    /// A route with this domain and path, or this TCP port, exists; or the route has
    /// dependent routes.
    RouteConflict = "route_conflict", 409;
    /// A release asks for the host's network, files or capabilities, which only system apps
    /// may.
    HostAccessDenied = "host_access_denied", 403;
    /// The release has no artifact, so it cannot run.
    NotDeployable = "not_deployable", 400;
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::from_wire(&s))
    }
}

/// The message of an error followed by those of its sources (`: `-joined, repeats left
/// out): what an error body says, since the source chain does not cross the wire.
pub fn message_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What kind of failure, for programs.
    pub code: ErrorCode,
    /// What went wrong and what to do, for people.
    pub message: String,
}

impl ErrorBody {
    /// A body with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_read_as_unknown() {
        for code in [
            ErrorCode::NoSuchJob,
            ErrorCode::BadRequest,
            ErrorCode::NoLeader,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        let later: ErrorBody =
            serde_json::from_str(r#"{"code":"added_later","message":"m"}"#).unwrap();
        assert_eq!(later.code, ErrorCode::Unknown);
        assert_eq!(ErrorCode::NoSuchJob.status(), 404);
    }
}
