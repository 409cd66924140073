//! The write half of the distribution API: blob existence, upload sessions (one request, or
//! `PATCH` chunks then a closing `PUT`), cross-repository mounts and manifest `PUT`.

use bytes::Bytes;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Response, StatusCode, Url};

use super::{Registry, RegistryError};
use crate::digest::Digest;

const OCTET_STREAM: &str = "application/octet-stream";

/// What `POST .../blobs/uploads/` gave.
#[derive(Debug)]
pub enum UploadStart {
    /// The blob was mounted from the other repository: nothing to upload.
    Mounted,
    /// An upload session, at this URL.
    Session(Url),
}

impl Registry {
    fn repo_url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.base, self.repository)
    }

    /// The URL of the session a response points to (`Location`, often relative).
    fn location(&self, resp: &Response, url: &str) -> Result<Url, RegistryError> {
        let bad = |message: &str| RegistryError::Status {
            status: resp.status(),
            url: url.to_string(),
            message: message.to_string(),
        };
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| bad("the answer has no Location header for the upload"))?;
        Url::parse(&self.base)
            .and_then(|b| b.join(loc))
            .map_err(|_| bad("the upload's Location header is not a URL"))
    }

    /// True when the repository has the blob (`HEAD .../blobs/DIGEST`).
    pub async fn has_blob(&self, digest: &Digest) -> Result<bool, RegistryError> {
        let url = self.repo_url(&format!("blobs/{digest}"));
        let resp = self.send(&|| self.http.head(&url), &url).await?;
        match resp.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self
                .status_error(resp, &url, &format!("blob {digest}"))
                .await),
        }
    }

    /// Starts an upload; with `mount` (a digest and another repository of this registry),
    /// asks the registry to mount that repository's blob instead. A registry that cannot
    /// mount it (the other repository lacks it) starts a session.
    pub async fn start_upload(
        &self,
        mount: Option<(&Digest, &str)>,
    ) -> Result<UploadStart, RegistryError> {
        let mut url = self.repo_url("blobs/uploads/");
        if let Some((d, from)) = mount {
            url = format!("{url}?mount={d}&from={from}");
        }
        let resp = self
            .send(&|| self.http.post(&url).header(CONTENT_LENGTH, 0), &url)
            .await?;
        match resp.status() {
            StatusCode::CREATED if mount.is_some() => Ok(UploadStart::Mounted),
            StatusCode::ACCEPTED => Ok(UploadStart::Session(self.location(&resp, &url)?)),
            _ => Err(self.status_error(resp, &url, "an upload").await),
        }
    }

    /// Sends `data` as the chunk at `offset` of the session; returns the session's next URL.
    pub async fn upload_chunk(
        &self,
        session: &Url,
        offset: u64,
        data: Bytes,
    ) -> Result<Url, RegistryError> {
        let end = offset + data.len() as u64 - 1;
        let url = session.as_str();
        let build = || {
            self.http
                .patch(session.clone())
                .header(CONTENT_TYPE, OCTET_STREAM)
                .header(CONTENT_RANGE, format!("{offset}-{end}"))
                .header(CONTENT_LENGTH, data.len())
                .body(data.clone())
        };
        let resp = self.send(&build, url).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.status_error(resp, url, "an upload chunk").await);
        }
        // The registry says how much it holds; anything but all of it is a lost chunk.
        let held = resp
            .headers()
            .get(RANGE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(held) = held {
            if held != format!("0-{end}") && held != format!("bytes=0-{end}") {
                return Err(RegistryError::Status {
                    status: resp.status(),
                    url: url.to_string(),
                    message: format!("the registry holds {held} of the upload, not 0-{end}"),
                });
            }
        }
        self.location(&resp, url)
    }

    /// Closes the session with its last bytes (none after chunks): the registry checks the
    /// content against `digest` and stores the blob.
    pub async fn finish_upload(
        &self,
        session: &Url,
        digest: &Digest,
        data: Bytes,
    ) -> Result<(), RegistryError> {
        let mut target = session.clone();
        target
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let url = target.as_str();
        let build = || {
            self.http
                .put(target.clone())
                .header(CONTENT_TYPE, OCTET_STREAM)
                .header(CONTENT_LENGTH, data.len())
                .body(data.clone())
        };
        let resp = self.send(&build, url).await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(());
        }
        Err(self
            .status_error(resp, url, &format!("blob {digest}"))
            .await)
    }

    /// Abandons a session (best effort: the registry expires it anyway).
    pub async fn cancel_upload(&self, session: &Url) {
        let _ = self
            .send(&|| self.http.delete(session.clone()), session.as_str())
            .await;
    }

    /// Stores a manifest under `reference` (a tag or its digest); returns its digest as the
    /// registry reports it.
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, RegistryError> {
        let url = self.repo_url(&format!("manifests/{reference}"));
        let build = || {
            self.http
                .put(&url)
                .header(CONTENT_TYPE, media_type)
                .body(bytes.clone())
        };
        let resp = self.send(&build, &url).await?;
        if resp.status() != StatusCode::CREATED {
            let what = format!("manifest {}:{reference}", self.repository);
            return Err(self.status_error(resp, &url, &what).await);
        }
        let reported = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|d| d.parse().ok());
        Ok(reported.unwrap_or_else(|| Digest::of(&bytes)))
    }
}
