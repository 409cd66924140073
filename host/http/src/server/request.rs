//! Reading requests: JSON bodies within the server's size and time limits, query strings,
//! bearer tokens.

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::Request;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::response::ApiError;
use super::Limits;
use crate::error::ErrorCode;

/// Reads a JSON request body, within the server's [`Limits`] (`max_body` bytes, sent within
/// `body_timeout`): 413 when larger, 408 when late, 400 when it does not parse. An array where
/// the type has an object is refused too (serde would read a struct's fields from an array in
/// order, which no client means and no API document allows).
pub async fn read_json<T: DeserializeOwned + Serialize>(
    req: Request<Incoming>,
) -> Result<T, ApiError> {
    let limits = req
        .extensions()
        .get::<Limits>()
        .copied()
        .unwrap_or_default();
    let collect = Limited::new(req.into_body(), limits.max_body).collect();
    let body = tokio::time::timeout(limits.body_timeout, collect)
        .await
        .map_err(|_| {
            ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s (is Content-Length right?)",
                    limits.body_timeout.as_secs()
                ),
            )
        })?
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    format!("request body is over {} bytes", limits.max_body),
                )
            } else {
                ApiError::bad_request(format!("reading the request body: {e}"))
            }
        })?
        .to_bytes();
    let input: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let value: T = serde::Deserialize::deserialize(&input)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let shape = serde_json::to_value(&value).expect("request types serialise");
    if let Some(path) = array_for_object(&input, &shape, "") {
        return Err(ApiError::bad_request(format!(
            "invalid JSON body: {} must be an object, not an array",
            if path.is_empty() { "the body" } else { &path }
        )));
    }
    Ok(value)
}

/// The path of the first place where `input` has an array and `shape` (the value read back
/// out) an object.
fn array_for_object(input: &Value, shape: &Value, path: &str) -> Option<String> {
    match (input, shape) {
        (Value::Array(_), Value::Object(_)) => Some(path.to_string()),
        (Value::Object(i), Value::Object(s)) => i.iter().find_map(|(k, v)| {
            s.get(k)
                .and_then(|sv| array_for_object(v, sv, &format!("{path}/{k}")))
        }),
        (Value::Array(i), Value::Array(s)) => i
            .iter()
            .zip(s)
            .enumerate()
            .find_map(|(n, (a, b))| array_for_object(a, b, &format!("{path}/{n}"))),
        _ => None,
    }
}

/// The bearer token of a request (`Authorization: Bearer TOKEN`), if it has one.
pub fn bearer<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Compares secrets in time that depends only on their length.
pub fn secret_eq(given: &str, expected: &str) -> bool {
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// True when the request accepts server-sent events (`Accept: text/event-stream`).
pub fn wants_sse<B>(req: &Request<B>) -> bool {
    req.headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"))
}

/// A parsed, percent-decoded query string.
#[derive(Debug, Default)]
pub struct Query(BTreeMap<String, Vec<String>>);

impl Query {
    /// Parses the request's query string.
    pub fn of<B>(req: &Request<B>) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            map.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Self(map)
    }

    /// The last value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key)?.last().map(String::as_str)
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> &[String] {
        self.0.get(key).map_or(&[], Vec::as_slice)
    }

    /// The last value of `key` parsed as `T`; a value that does not parse is a 400 naming
    /// the key and saying why.
    pub fn parse<T>(&self, key: &str) -> Result<Option<T>, ApiError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e| ApiError::bad_request(format!("{key}={v:?}: {e}"))),
        }
    }

    /// A boolean: `true`/`1`, `false`/`0`, or a bare key (`?follow`) for true.
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        match self.get(key) {
            None => Ok(false),
            Some("" | "true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "{key}={v:?}: use true or false"
            ))),
        }
    }

    /// A number in `min..=max`.
    pub fn number(&self, key: &str, min: u64, max: u64) -> Result<Option<u64>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(ApiError::bad_request(format!(
                    "{key}={v:?}: use a whole number from {min} to {max}"
                ))),
            },
        }
    }

    /// A duration in whole seconds in `min..=max`.
    pub fn seconds(&self, key: &str, min: u64, max: u64) -> Result<Option<Duration>, ApiError> {
        Ok(self.number(key, min, max)?.map(Duration::from_secs))
    }
}
