//! The process's open-file limit, and the share of it that live streams may hold.
//! Every connection is a file, so streams are capped well below the limit: a flood of clients
//! then gets a clear 503 while requests, the database, logs and uploads keep files to work with.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the soft open-file limit to the hard one, as far as the system lets this process,
/// and returns the soft limit now in force; `None` when it cannot be read.
pub fn raise_limit() -> Option<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Some(hard);
    }
    Some(soft)
}

/// How many streams may be open at once: `configured`, but at most half of `limit` open
/// files, leaving the other half to everything else.
pub fn stream_cap(limit: Option<u64>, configured: usize) -> usize {
    let share = limit.map_or(usize::MAX, |limit| {
        usize::try_from(limit / 2).unwrap_or(usize::MAX)
    });
    configured.min(share).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_get_at_most_half_the_open_files() {
        assert_eq!(stream_cap(Some(1024), 4096), 512);
        assert_eq!(stream_cap(Some(1_048_576), 4096), 4096);
        assert_eq!(stream_cap(None, 4096), 4096);
        assert_eq!(stream_cap(Some(1), 4096), 1);
    }

    #[test]
    fn the_raised_limit_is_the_one_in_force() {
        let raised = raise_limit().expect("the open-file limit can be read");
        let (soft, _hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
        assert_eq!(raised, soft);
    }
}
