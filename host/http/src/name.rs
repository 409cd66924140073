//! Names checked once, when they are made: [`checked_name!`] defines a string newtype that
//! only holds values passing a check, parsed from strings and JSON alike.

/// Defines a string newtype `$name` holding only values for which `$check(&str) -> bool`
/// holds, with its error type `$err` ("invalid `$what` "x": `$rule`"), serde (as a string,
/// checked when read), `FromStr`, `TryFrom<String>`, `Display`, `AsRef<str>`, `Borrow<str>`
/// and comparison with `str`.
#[macro_export]
macro_rules! checked_name {
    ($(#[$meta:meta])* $name:ident, $err:ident, $check:path, $what:literal, $rule:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        #[doc = concat!("A ", $what, " that is not valid.")]
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $err(pub String);

        impl ::std::fmt::Display for $err {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, concat!("invalid ", $what, " {:?}: ", $rule), self.0)
            }
        }

        impl ::std::error::Error for $err {}

        impl $name {
            #[doc = concat!("The ", $what, " as a string.")]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::convert::TryFrom<String> for $name {
            type Error = $err;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                if $check(&s) {
                    Ok(Self(s))
                } else {
                    Err($err(s))
                }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $err;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::try_from(s.to_string())
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> Self {
                n.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl ::std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
