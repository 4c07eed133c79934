//! The two ids of the route, parsed once at the edge so that an invalid id cannot reach HealthLake.
//!
//! The rule is HealthLake's service model for `DatastoreId` and `JobId`: 1 to 32 Unicode scalar
//! values, each matching `[\p{L}\p{Z}\p{N}_.:/=+\-%@]`. General categories come from
//! `unicode-properties` (a table lookup, nothing to compile at start-up).

use std::fmt;
use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// The model's length bound, counted in Unicode scalar values (not bytes); the least is 1.
pub const MAX_LEN: usize = 32;

/// Why a string is not an id. The caller knows which parameter it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdError {
    Empty,
    TooLong {
        chars: usize,
    },
    /// A character outside the model's classes; `position` counts characters from 1.
    BadChar {
        ch: char,
        position: usize,
    },
    /// Percent-decoding produced bytes that are not UTF-8.
    NotUtf8,
    /// A datastore id in the path with anything but ASCII letters, digits and `- . _`:
    /// what would need percent-encoding, or is encoded (see `route`).
    NotPlain,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdError::Empty => write!(f, "must not be empty"),
            IdError::TooLong { chars } => {
                write!(f, "must be at most {MAX_LEN} characters long, got {chars}")
            }
            IdError::BadChar { ch, position } => write!(
                f,
                "has a character that is not allowed (U+{:04X} at position {position}); allowed are \
                 letters, numbers, spaces and _ . : / = + - % @",
                u32::from(*ch)
            ),
            IdError::NotUtf8 => write!(f, "is not valid percent-encoded UTF-8"),
            IdError::NotPlain => write!(
                f,
                "must be ASCII letters, digits, - . and _ only, with no percent-encoding \
                 (a HealthLake data store id is 32 hex digits)"
            ),
        }
    }
}

/// Whether `c` is in `[\p{L}\p{Z}\p{N}_.:/=+\-%@]`.
fn is_id_char(c: char) -> bool {
    match c {
        '_' | '.' | ':' | '/' | '=' | '+' | '-' | '%' | '@' => true,
        c if c.is_ascii_alphanumeric() || c == ' ' => true,
        c if c.is_ascii() => false,
        c => matches!(
            c.general_category_group(),
            GeneralCategoryGroup::Letter | GeneralCategoryGroup::Separator | GeneralCategoryGroup::Number
        ),
    }
}

fn check(s: &str) -> Result<(), IdError> {
    let mut chars = 0;
    for (i, c) in s.chars().enumerate() {
        if !is_id_char(c) {
            return Err(IdError::BadChar {
                ch: c,
                position: i + 1,
            });
        }
        chars += 1;
    }
    match chars {
        0 => Err(IdError::Empty),
        n if n > MAX_LEN => Err(IdError::TooLong { chars: n }),
        _ => Ok(()),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses an already-decoded string.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check(s).map(|()| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A HealthLake data store id, valid by construction.
    DatastoreId
);
id_type!(
    /// A HealthLake export job id, valid by construction.
    JobId
);

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        JobId::parse(s).is_ok()
    }

    #[test]
    fn accepts_real_ids_and_every_listed_symbol() {
        assert!(ok("a1b2c3d4e5f60718293a4b5c6d7e8f90"));
        assert!(ok("_.:/=+-%@"));
        assert!(ok("job 1"));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        assert_eq!(JobId::parse(""), Err(IdError::Empty));
        assert!(ok(&"é".repeat(32))); // 64 bytes, 32 characters
        assert_eq!(JobId::parse(&"é".repeat(33)), Err(IdError::TooLong { chars: 33 }));
        assert!(ok(&"a".repeat(32)));
        assert_eq!(JobId::parse(&"a".repeat(33)), Err(IdError::TooLong { chars: 33 }));
    }

    #[test]
    fn unicode_classes_follow_general_categories() {
        assert!(ok("データストア")); // Lo
        assert!(ok("Ⅻ")); // U+216B ROMAN NUMERAL TWELVE is Nl
        assert!(ok("٣")); // Arabic-Indic digit, Nd
        assert!(ok("½")); // No
        assert!(ok("a\u{2028}b")); // LINE SEPARATOR is Zl
        assert!(ok("a\u{2029}b")); // PARAGRAPH SEPARATOR is Zp
        assert!(ok("a\u{00A0}b")); // NO-BREAK SPACE is Zs
        assert!(ok("ǅ")); // Lt
        assert!(ok("ʰ")); // Lm
    }

    #[test]
    fn rejects_marks_controls_and_other_symbols() {
        // A combining acute accent (Mn) is not a letter, even after one.
        assert_eq!(
            JobId::parse("e\u{0301}"),
            Err(IdError::BadChar {
                ch: '\u{0301}',
                position: 2
            })
        );
        // Devanagari vowel sign AA (Mc) is alphabetic but not a letter.
        assert!(!ok("क\u{093E}"));
        assert!(!ok("a\tb")); // Cc
        assert!(!ok("a\nb"));
        assert!(!ok("a\u{200B}b")); // ZERO WIDTH SPACE is Cf, not Z
        assert!(!ok("😀")); // So
        assert!(!ok("€")); // Sc
        for c in "#?&!*'\"()[]{}<>,;\\|^`~$".chars() {
            assert!(!ok(&c.to_string()), "{c:?} must be rejected");
        }
    }

    #[test]
    fn error_text_names_the_character() {
        let err = DatastoreId::parse("a#b").unwrap_err();
        assert_eq!(err, IdError::BadChar { ch: '#', position: 2 });
        assert!(err.to_string().contains("U+0023 at position 2"));
    }
}
