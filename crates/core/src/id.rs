//! Task and worker ids: 12 bytes shown as 24 lower-case hex characters, in the old server's
//! format (4 bytes of unix seconds, then 5 random bytes and a 3-byte counter), so ids sort by
//! creation time and old clients can parse them.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::Error;

/// The raw 12 bytes behind a [`TaskId`] or [`WorkerId`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct RawId([u8; 12]);

impl RawId {
    fn generate() -> Self {
        static PROCESS_RANDOM: OnceLock<[u8; 5]> = OnceLock::new();
        static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
        let process_random = PROCESS_RANDOM.get_or_init(|| {
            let mut bytes = [0u8; 5];
            // Without OS randomness ids are still unique within this process thanks to the
            // counter; the random part only separates processes.
            let _ = getrandom::fill(&mut bytes);
            bytes
        });
        let counter = COUNTER.get_or_init(|| {
            let mut bytes = [0u8; 4];
            let _ = getrandom::fill(&mut bytes);
            AtomicU32::new(u32::from_le_bytes(bytes))
        });
        let count = counter.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let seconds = u32::try_from(crate::wire::now())
            .unwrap_or(u32::MAX)
            .to_be_bytes();
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&seconds);
        bytes[4..9].copy_from_slice(process_random);
        bytes[9..].copy_from_slice(&count[1..]);
        RawId(bytes)
    }

    fn lowest_at(seconds: i64) -> Self {
        let clamped = u32::try_from(seconds.max(0)).unwrap_or(u32::MAX);
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&clamped.to_be_bytes());
        RawId(bytes)
    }

    fn seconds(&self) -> i64 {
        i64::from(u32::from_be_bytes([
            self.0[0], self.0[1], self.0[2], self.0[3],
        ]))
    }

    fn parse(kind: &str, text: &str) -> Result<Self, Error> {
        let invalid = || {
            Error::Invalid(format!(
                "{kind} id {text:?} is malformed: expected 24 hexadecimal characters like 5f2b3c4d5e6f708192a3b4c5"
            ))
        };
        if text.len() != 24 {
            return Err(invalid());
        }
        let mut bytes = [0u8; 12];
        for (index, pair) in text.as_bytes().chunks_exact(2).enumerate() {
            let high = hex_value(pair[0]).ok_or_else(invalid)?;
            let low = hex_value(pair[1]).ok_or_else(invalid)?;
            bytes[index] = high << 4 | low;
        }
        Ok(RawId(bytes))
    }
}

impl fmt::Display for RawId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(formatter, "{byte:02x}")?;
        }
        Ok(())
    }
}

fn hex_value(character: u8) -> Option<u8> {
    match character {
        b'0'..=b'9' => Some(character - b'0'),
        b'a'..=b'f' => Some(character - b'a' + 10),
        b'A'..=b'F' => Some(character - b'A' + 10),
        _ => None,
    }
}

macro_rules! id_type {
    ($name:ident, $kind:literal) => {
        #[doc = concat!("The id of a ", $kind, ": 24 lower-case hex characters on the wire.")]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(RawId);

        impl $name {
            /// A fresh, time-ordered id.
            pub fn generate() -> Self {
                $name(RawId::generate())
            }

            /// The "none" id: 24 zeros.
            pub const NONE: $name = $name(RawId([0; 12]));

            /// Whether this is the "none" id.
            pub fn is_none(&self) -> bool {
                *self == Self::NONE
            }

            /// The smallest id that can be created at `seconds` (unix time), for range filters.
            pub fn lowest_at(seconds: i64) -> Self {
                $name(RawId::lowest_at(seconds))
            }

            /// The unix second the id was created in.
            pub fn created_seconds(&self) -> i64 {
                self.0.seconds()
            }
        }

        impl FromStr for $name {
            type Err = Error;

            /// Parses 24 hex characters (either case; shown lower-case).
            fn from_str(text: &str) -> Result<Self, Error> {
                RawId::parse($kind, text).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(formatter)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(formatter, "{}({})", stringify!($name), self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(TaskId, "task");
id_type!(WorkerId, "worker");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_24_lower_hex_and_round_trip() {
        let id = TaskId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 24);
        assert!(
            text.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(text.parse::<TaskId>().unwrap(), id);
    }

    #[test]
    fn ids_from_one_process_increase() {
        let first = TaskId::generate();
        let second = TaskId::generate();
        assert_ne!(first, second);
        assert_eq!(
            first.created_seconds(),
            second.created_seconds().min(first.created_seconds())
        );
    }

    #[test]
    fn id_carries_its_creation_second() {
        let before = crate::wire::now();
        let id = WorkerId::generate();
        assert!(id.created_seconds() >= before && id.created_seconds() <= before + 1);
        assert_eq!(
            TaskId::lowest_at(1_600_000_000).to_string(),
            "5f5e10000000000000000000"
        );
    }

    #[test]
    fn malformed_ids_are_refused_with_an_example() {
        for bad in [
            "",
            "abc",
            "zz2b3c4d5e6f708192a3b4c5",
            "5f2b3c4d5e6f708192a3b4c5ff",
            "5f2b3c4d5e6f708192a3b4c\u{e9}",
        ] {
            let error = bad.parse::<TaskId>().unwrap_err().to_string();
            assert!(error.contains("24 hexadecimal"), "{error}");
        }
        assert_eq!(
            "5F2B3C4D5E6F708192A3B4C5"
                .parse::<TaskId>()
                .unwrap()
                .to_string(),
            "5f2b3c4d5e6f708192a3b4c5"
        );
    }

    #[test]
    fn none_id_is_all_zeros() {
        assert_eq!(WorkerId::NONE.to_string(), "0".repeat(24));
        assert!(WorkerId::NONE.is_none());
    }
}
