//! Task and worker ids: 12 bytes shown as 24 lower-case hex characters, in the old server's
//! format (4 bytes of unix seconds, then 8 bytes of randomness and counter), so ids sort by
//! creation second and old clients can parse them.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::Error;

/// The raw 12 bytes behind a [`TaskId`] or [`WorkerId`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct RawId([u8; 12]);

impl RawId {
    fn generate() -> Self {
        static STATE: OnceLock<(u64, AtomicU64)> = OnceLock::new();
        let (seed, counter) = STATE.get_or_init(|| {
            let mut bytes = [0u8; 8];
            // Without OS randomness ids stay unique within this process (the counter); the
            // seed only keeps two processes apart.
            let _ = getrandom::fill(&mut bytes);
            (u64::from_le_bytes(bytes), AtomicU64::new(0))
        });
        let count = counter.fetch_add(1, Ordering::Relaxed);
        // SplitMix64 is a bijection, so the 8 bytes after the second are unique per process
        // yet look random: ids of one second differ early, which keeps short prefixes useful.
        let mut mixed = seed.wrapping_add(count.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^= mixed >> 31;
        let seconds = u32::try_from(crate::wire::now())
            .unwrap_or(u32::MAX)
            .to_be_bytes();
        let mut bytes = [0u8; 12];
        bytes[..4].copy_from_slice(&seconds);
        bytes[4..].copy_from_slice(&mixed.to_be_bytes());
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
    use proptest::prelude::*;

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
    fn ids_of_one_second_are_unique_and_differ_right_after_the_time() {
        let ids: Vec<TaskId> = (0..10_000).map(|_| TaskId::generate()).collect();
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
        let tails: std::collections::HashSet<String> = ids
            .iter()
            .map(|id| id.to_string()[8..14].to_string())
            .collect();
        assert!(
            tails.len() > 9_900,
            "the bytes after the time must vary: {}",
            tails.len()
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

    proptest! {
        #[test]
        fn any_id_round_trips_through_display_and_parse(bytes: [u8; 12]) {
            let id = TaskId(RawId(bytes));
            let shown = id.to_string();
            prop_assert_eq!(shown.len(), 24);
            prop_assert!(shown.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')));
            prop_assert_eq!(shown.parse::<TaskId>().unwrap(), id);
            prop_assert_eq!(shown.to_ascii_uppercase().parse::<TaskId>().unwrap(), id);
            let worker: WorkerId = shown.parse().unwrap();
            prop_assert_eq!(worker.to_string(), shown);
        }

        #[test]
        fn parse_accepts_exactly_24_hex_characters(text in "\\PC{0,30}|[0-9a-fA-F]{22,26}") {
            let is_id = text.len() == 24 && text.bytes().all(|byte| byte.is_ascii_hexdigit());
            prop_assert_eq!(text.parse::<TaskId>().is_ok(), is_id);
            prop_assert_eq!(text.parse::<WorkerId>().is_ok(), is_id);
        }

        #[test]
        fn lowest_at_keeps_the_second_it_was_given(seconds in 0..=i64::from(u32::MAX)) {
            let id = TaskId::lowest_at(seconds);
            prop_assert_eq!(id.created_seconds(), seconds);
            prop_assert_eq!(id.to_string().parse::<TaskId>().unwrap(), id);
        }
    }
}
