//! Reading answers leniently: what a newer peer adds is skipped, not refused.
//!
//! Request types refuse unknown fields (`deny_unknown_fields`), so a client's typo is a 400
//! naming the field. The same types are read back from answers, event streams and stored
//! records, where an unknown field means the other side is newer (a host upgraded before the
//! scheduler that reads its jobs), not a mistake. [`from_slice`] (and [`from_str`],
//! [`from_value`]) read those: it tries the
//! strict reading first and, only when it fails on an unknown field, drops that field where
//! it was found and tries again. Anything else (a missing field, a wrong type) still fails,
//! and so does an enum value it does not know, unless the enum reads its names through
//! [`variant`], which then gives the enum's own "unknown" value.

use std::cell::Cell;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

/// Reads `bytes` as a `T`, skipping fields that `T` does not know (see the module's doc).
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    match serde_json::from_slice(bytes) {
        Ok(v) => Ok(v),
        Err(e) if e.is_data() => from_value(serde_json::from_slice(bytes)?),
        Err(e) => Err(e),
    }
}

/// Reads `s` as a `T`, skipping fields that `T` does not know.
pub fn from_str<T: DeserializeOwned>(s: &str) -> Result<T, serde_json::Error> {
    from_slice(s.as_bytes())
}

/// Reads a parsed document as a `T`, dropping fields `T` does not know one at a time.
///
/// Each drop reads the document again, so a list of N objects that each carry a new field
/// costs N readings; each removes a key, so the readings end.
pub fn from_value<T: DeserializeOwned>(mut value: Value) -> Result<T, serde_json::Error> {
    let _lenient = Lenient::enter();
    for _ in 0..=keys(&value) {
        let e = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(field) = unknown_field(&e.inner().to_string()) else {
            return Err(e.into_inner());
        };
        let segments: Vec<&Segment> = e.path().iter().collect();
        if !drop_field(&mut value, &segments, &field) {
            return Err(e.into_inner());
        }
        tracing::debug!(field, at = %e.path(), "skipped a field this build does not know");
    }
    serde_json::from_value(value)
}

/// Reads a part of a document that a hand-written `Deserialize` took out as a [`Value`]
/// (to split a flattened object, say) as strictly as the whole document is read: leniently
/// within [`from_slice`] and its kin, strictly everywhere else. The error of a strict reading
/// cannot say where in the part the unknown field was, so the part is read here instead.
pub fn part<T: DeserializeOwned>(value: Value) -> Result<T, serde_json::Error> {
    if LENIENT.with(Cell::get) {
        from_value(value)
    } else {
        serde_json::from_value(value)
    }
}

/// Reads an enum's wire name with `T`'s `FromStr`. A name it does not know is serde's
/// unknown-variant error naming `expected`, except while reading leniently (within
/// [`from_slice`] and its kin), where it is `unknown`: a value a newer peer added (a job state,
/// say) then reads as "a value this build does not know" instead of failing the whole answer.
/// For enums whose `Deserialize` calls this, `FromStr` must refuse the name of `unknown`, so
/// that a request naming it is refused too.
pub fn variant<'de, D, T>(
    d: D,
    expected: &'static [&'static str],
    unknown: T,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
{
    use serde::Deserialize as _;
    let name = std::borrow::Cow::<str>::deserialize(d)?;
    if let Ok(v) = name.parse() {
        return Ok(v);
    }
    if LENIENT.with(Cell::get) {
        tracing::debug!(%name, "read a value this build does not know as unknown");
        return Ok(unknown);
    }
    Err(serde::de::Error::unknown_variant(&name, expected))
}

thread_local! {
    /// True while this thread reads a document leniently (deserialising is synchronous).
    static LENIENT: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as reading leniently until dropped, then restores what was before.
struct Lenient(bool);

impl Lenient {
    fn enter() -> Self {
        Self(LENIENT.with(|l| l.replace(true)))
    }
}

impl Drop for Lenient {
    fn drop(&mut self) {
        LENIENT.with(|l| l.set(self.0));
    }
}

/// How many object keys `value` holds, at every depth.
fn keys(value: &Value) -> usize {
    match value {
        Value::Object(map) => map.len() + map.values().map(keys).sum::<usize>(),
        Value::Array(items) => items.iter().map(keys).sum(),
        _ => 0,
    }
}

/// The field an "unknown field `NAME`, expected ..." error names.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

/// Removes `field` where the error at `path` found it: the path ends at the field itself
/// (derived types), or at the object holding it (types that read their fields by hand and
/// report the error for the whole object). False when it is in neither place.
fn drop_field(value: &mut Value, path: &[&Segment], field: &str) -> bool {
    if let Some(Value::Object(map)) = walk(value, path) {
        if map.remove(field).is_some() {
            return true;
        }
    }
    match path.split_last() {
        Some((Segment::Map { key }, parent)) if key == field => match walk(value, parent) {
            Some(Value::Object(map)) => map.remove(field).is_some(),
            _ => false,
        },
        _ => false,
    }
}

/// The value at `path`, if the document has one there.
fn walk<'a>(value: &'a mut Value, path: &[&Segment]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |v, segment| match segment {
        Segment::Map { key } => v.get_mut(key.as_str()),
        Segment::Seq { index } => v.get_mut(*index),
        Segment::Enum { .. } => Some(v),
        Segment::Unknown => None,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer};

    use super::*;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Port {
        port: u16,
        #[serde(default)]
        proto: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Job {
        id: String,
        ports: Vec<Port>,
        #[serde(default)]
        by_name: BTreeMap<String, Port>,
        #[serde(default)]
        config: Option<ByHand>,
    }

    /// Takes its `id` out by hand and reads the rest as a `Port` through [`part`], as types
    /// with a flattened part do.
    #[derive(Debug, PartialEq)]
    struct ByHand {
        id: String,
        port: Port,
    }

    impl<'de> Deserialize<'de> for ByHand {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            use serde::de::Error;
            let mut map = serde_json::Map::<String, Value>::deserialize(d)?;
            let id = map
                .remove("id")
                .and_then(|v| v.as_str().map(str::to_string))
                .ok_or_else(|| D::Error::missing_field("id"))?;
            let port = part(Value::Object(map)).map_err(D::Error::custom)?;
            Ok(Self { id, port })
        }
    }

    #[test]
    fn fields_a_newer_peer_adds_are_skipped_wherever_they_are() {
        let json = r#"{"id":"a","added":{"x":[1]},"ports":[{"port":80},{"port":81,"tls":true}],
            "by_name":{"web":{"port":82,"weight":3}},"config":{"id":"c","port":83,"restart":"always"}}"#;
        let job: Job = from_str(json).unwrap();
        assert_eq!(job.id, "a");
        assert_eq!(
            job.ports[1],
            Port {
                port: 81,
                proto: None
            }
        );
        assert_eq!(job.by_name["web"].port, 82);
        let port = Port {
            port: 83,
            proto: None,
        };
        let config = ByHand {
            id: "c".into(),
            port,
        };
        assert_eq!(job.config, Some(config));
        // the strict reading refuses the same document, also the hand-read part alone
        assert!(serde_json::from_str::<Job>(json).is_err());
        let e = serde_json::from_str::<ByHand>(r#"{"id":"c","port":83,"new":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `new`"), "{e}");
    }

    #[test]
    fn other_mistakes_are_still_errors_with_serdes_message() {
        for (json, message) in [
            (r#"{"ports":[],"new":1}"#, "missing field `id`"),
            (
                r#"{"id":"a","ports":[{"port":"80"}],"new":1}"#,
                "invalid type: string",
            ),
            (
                r#"{"id":"a","ports":[],"config":{"id":"c","new":1}}"#,
                "missing field `port`",
            ),
            (r#"{"id":"a","ports":["#, "EOF while parsing"),
        ] {
            let e = from_str::<Job>(json).unwrap_err();
            assert!(e.to_string().contains(message), "{json}: {e}");
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum State {
        Up,
        Down,
        Unknown,
    }

    impl std::str::FromStr for State {
        type Err = String;
        fn from_str(s: &str) -> Result<Self, String> {
            match s {
                "up" => Ok(State::Up),
                "down" => Ok(State::Down),
                _ => Err(format!("unknown state {s:?}")),
            }
        }
    }

    impl<'de> Deserialize<'de> for State {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            variant(d, &["up", "down"], State::Unknown)
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Unit {
        id: String,
        state: State,
    }

    #[test]
    fn an_enum_value_a_newer_peer_adds_reads_as_unknown_only_leniently() {
        let json = r#"[{"id":"a","state":"up"},{"id":"b","state":"paused"}]"#;
        let units: Vec<Unit> = from_str(json).unwrap();
        assert_eq!(units[0].state, State::Up);
        assert_eq!(
            (units[1].id.as_str(), units[1].state),
            ("b", State::Unknown)
        );
        // With an unknown field beside it, both are taken care of.
        let u: Unit = from_str(r#"{"id":"c","state":"paused","new":1}"#).unwrap();
        assert_eq!(u.state, State::Unknown);
        // Strictly (a request), it is refused with serde's message, also by its own name.
        for state in ["paused", "unknown"] {
            let doc = format!(r#"{{"id":"a","state":"{state}"}}"#);
            let e = serde_json::from_str::<Unit>(&doc).unwrap_err();
            let want = format!("unknown variant `{state}`, expected `up` or `down`");
            assert!(e.to_string().contains(&want), "{e}");
        }
        // Not a string at all is still an error, leniently too.
        assert!(from_str::<Unit>(r#"{"id":"a","state":3}"#).is_err());
    }

    #[test]
    fn a_long_list_whose_every_item_has_a_new_field_is_read() {
        let items: Vec<Value> = (0..500)
            .map(|n| serde_json::json!({"port": n, "weight": n}))
            .collect();
        let json = serde_json::json!({"id": "a", "ports": items}).to_string();
        let job: Job = from_str(&json).unwrap();
        assert_eq!(job.ports.len(), 500);
        assert_eq!(job.ports[499].port, 499);
    }

    #[test]
    fn a_field_named_like_a_known_one_elsewhere_is_dropped_only_where_unknown() {
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Outer {
            port: u16,
            inner: Port,
        }
        let o: Outer = from_str(r#"{"port":1,"inner":{"port":2,"id":"x"},"id":"y"}"#).unwrap();
        assert_eq!((o.port, o.inner.port), (1, 2));
    }
}
