//! Enums of wire names that a newer peer may add to: [`wire_enum!`](crate::wire_enum).

/// Defines a `Copy` enum of unit variants, each with its wire name, plus `Unknown`: a value a
/// newer peer sent that this build does not know. It derives `Debug, Clone, Copy, PartialEq,
/// Eq` (more with `#[derive(...)]` on the enum) and gets `NAMES`, `as_str`, `Display`,
/// `FromStr` (which refuses `unknown` and every name it does not list, saying which it takes),
/// `Serialize`, and a `Deserialize` through [`json::variant`](crate::json::variant): a name it
/// does not know is an error in a request (read strictly) and `Unknown` in an answer, event
/// or record (read leniently), so one new value does not fail a whole listing.
///
/// ```
/// flynn_http::wire_enum! {
///     /// Where a deployment is.
///     pub enum Status("deployment status") {
///         /// Being carried out.
///         Running = "running",
///         /// Done.
///         Complete = "complete",
///     }
/// }
/// assert_eq!("running".parse::<Status>().unwrap(), Status::Running);
/// assert_eq!(
///     "paused".parse::<Status>().unwrap_err(),
///     "unknown deployment status \"paused\": use running or complete"
/// );
/// let s: Status = flynn_http::json::from_str("\"paused\"").unwrap();
/// assert_eq!((s, s.as_str()), (Status::Unknown, "unknown"));
/// assert!(serde_json::from_str::<Status>("\"paused\"").is_err());
/// ```
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident($what:literal) {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $wire:literal
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name {
            $(
                $(#[$vmeta])*
                $variant,
            )+
            /// A value a newer peer sent that this build does not know (read from answers,
            /// events and records only; refused in requests).
            Unknown,
        }

        impl $name {
            /// The wire names this build knows.
            pub const NAMES: &'static [&'static str] = &[$($wire),+];

            /// The wire name (`unknown` for [`Self::Unknown`]).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)+
                    $name::Unknown => "unknown",
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(format!(
                        "unknown {} {s:?}: use {}",
                        $what,
                        $crate::wire_enum::one_of(Self::NAMES)
                    )),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::json::variant(d, Self::NAMES, $name::Unknown)
            }
        }
    };
}

/// `a`, `a or b`, `a, b or c`.
pub fn one_of(names: &[&str]) -> String {
    match names.split_last() {
        None => String::new(),
        Some((last, [])) => (*last).to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::one_of;

    crate::wire_enum! {
        /// A test enum.
        #[derive(Default, Hash, PartialOrd, Ord)]
        pub enum Mode("mode") {
            /// One.
            #[default]
            Bridge = "bridge",
            /// Two.
            Host = "host",
            /// Three.
            OnFailure = "on-failure",
        }
    }

    #[test]
    fn names_round_trip_and_unknown_ones_are_read_only_leniently() {
        for m in [Mode::Bridge, Mode::Host, Mode::OnFailure] {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{m}\""));
            assert_eq!(serde_json::from_str::<Mode>(&json).unwrap(), m);
            assert_eq!(m.as_str().parse::<Mode>().unwrap(), m);
        }
        assert_eq!(Mode::default(), Mode::Bridge);
        assert_eq!(
            "unknown".parse::<Mode>().unwrap_err(),
            "unknown mode \"unknown\": use bridge, host or on-failure"
        );
        let e = serde_json::from_str::<Mode>("\"macvlan\"").unwrap_err();
        assert!(
            e.to_string().contains(
                "unknown variant `macvlan`, expected one of `bridge`, `host`, `on-failure`"
            ),
            "{e}"
        );
        let m: Mode = crate::json::from_str("\"macvlan\"").unwrap();
        assert_eq!(m, Mode::Unknown);
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"unknown\"");
    }

    #[test]
    fn lists_read_as_a_person_says_them() {
        assert_eq!(one_of(&[]), "");
        assert_eq!(one_of(&["a"]), "a");
        assert_eq!(one_of(&["a", "b"]), "a or b");
        assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
    }
}
