//! The first screen of a log: its last lines, where they start in the file and how many
//! complete lines precede the end, so a page shows the tail at once and follows the rest
//! over `/task/:id/log` (`Last-Event-ID` = that count) without a gap or a repeated line.
//! Reads only; the streaming itself is `logs.rs`'s.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// How many lines the first screen of a log shows.
pub const TAIL_LINES: usize = 1000;
/// The most bytes the first screen of a log reads, so one huge line cannot make it slow.
pub const TAIL_BYTES: u64 = 256 * 1024;

/// What a page shows of a log before it follows the rest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogSnapshot {
    /// The last complete lines, each ending in a newline.
    pub text: String,
    /// The byte offset in the file where `text` starts; earlier bytes load on demand.
    pub start: u64,
    /// How many complete lines the file has up to the end of `text`: the line number a
    /// follower resumes after.
    pub lines: u64,
    /// The file's size when read.
    pub size: u64,
    /// Whether the file exists.
    pub exists: bool,
}

/// The snapshot of the log at `path`, off the async executor. A missing or unreadable file
/// is an empty snapshot: a task that has not started has no log yet.
pub async fn snapshot(path: PathBuf) -> LogSnapshot {
    tokio::task::spawn_blocking(move || read_snapshot(&path, TAIL_LINES, TAIL_BYTES))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// The last `max_lines` complete lines of the file (at most `max_bytes` of them), where they
/// start, and how many complete lines come before their end.
fn read_snapshot(path: &Path, max_lines: usize, max_bytes: u64) -> std::io::Result<LogSnapshot> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(LogSnapshot::default());
        }
        Err(error) => return Err(error),
    };
    // Everything below looks at the first `size` bytes only: the file only grows, so what
    // was written after this moment reaches the page through the follower.
    let size = file.metadata()?.len();
    let mut lines = 0u64;
    let mut buffer = vec![0u8; 1024 * 1024];
    let mut remaining = size;
    while remaining > 0 {
        let want = usize::try_from(remaining.min(buffer.len() as u64)).unwrap_or(buffer.len());
        let read = file.read(&mut buffer[..want])?;
        if read == 0 {
            break;
        }
        lines += count_newlines(&buffer[..read]);
        remaining -= read as u64;
    }
    let Some(end) = end_of_last_line(&mut file, size)? else {
        return Ok(LogSnapshot {
            size,
            exists: true,
            ..LogSnapshot::default()
        });
    };
    let region_start = end.saturating_sub(max_bytes);
    let mut region = vec![0u8; usize::try_from(end - region_start).unwrap_or(0)];
    file.seek(SeekFrom::Start(region_start))?;
    file.read_exact(&mut region)?;
    let from = tail_start(&region, region_start == 0, max_lines);
    Ok(LogSnapshot {
        text: String::from_utf8_lossy(&region[from..]).into_owned(),
        start: region_start + from as u64,
        lines,
        size,
        exists: true,
    })
}

/// The offset just after the last newline within the first `size` bytes, if there is one.
fn end_of_last_line(file: &mut std::fs::File, size: u64) -> std::io::Result<Option<u64>> {
    let mut end = size;
    let mut chunk = vec![0u8; 64 * 1024];
    while end > 0 {
        let step = end.min(chunk.len() as u64);
        let start = end - step;
        let piece = &mut chunk[..usize::try_from(step).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(piece)?;
        if let Some(position) = piece.iter().rposition(|&byte| byte == b'\n') {
            return Ok(Some(start + position as u64 + 1));
        }
        end = start;
    }
    Ok(None)
}

/// Where the last `max_lines` lines of `region` (which ends with a newline) begin. When the
/// region does not reach the file's start, its first, possibly cut, line is left out.
fn tail_start(region: &[u8], at_file_start: bool, max_lines: usize) -> usize {
    if max_lines == 0 {
        return region.len();
    }
    let body = region.len().saturating_sub(1);
    let mut seen = 0;
    let mut first_break = None;
    for index in (0..body).rev() {
        if region[index] == b'\n' {
            seen += 1;
            first_break = Some(index);
            if seen == max_lines {
                return index + 1;
            }
        }
    }
    if at_file_start {
        return 0;
    }
    // One line longer than the whole region is shown cut rather than not at all.
    first_break.map_or(0, |index| index + 1)
}

/// How many `\n` bytes `bytes` holds, eight at a time (fast even in a debug build).
pub fn count_newlines(bytes: &[u8]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const NEWLINES: u64 = ONES * b'\n' as u64;
    const LOW_SEVEN: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let mut words = bytes.chunks_exact(8);
    let mut count = 0u64;
    for word in &mut words {
        let word = u64::from_ne_bytes(word.try_into().expect("chunks_exact(8) gives 8 bytes"));
        // A byte of `zero_where_newline` is 0 exactly where `word` holds a newline; each
        // byte of `marks` then has its high bit set exactly for those.
        let zero_where_newline = word ^ NEWLINES;
        let nonzero = ((zero_where_newline & LOW_SEVEN).wrapping_add(LOW_SEVEN))
            | zero_where_newline
            | LOW_SEVEN;
        count += u64::from((!nonzero).count_ones());
    }
    count
        + words
            .remainder()
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn newline_count_matches_a_plain_count_for_every_alignment() {
        let text: Vec<u8> = (0..1000u32)
            .map(|index| {
                if index % 7 == 0 {
                    b'\n'
                } else {
                    (index % 250) as u8 + 1
                }
            })
            .collect();
        for start in 0..16 {
            let slice = &text[start..];
            let plain = slice.iter().filter(|&&byte| byte == b'\n').count() as u64;
            assert_eq!(count_newlines(slice), plain, "from {start}");
        }
        assert_eq!(count_newlines(b"\x8a\x0a\xff\x0b\x09"), 1);
    }

    #[test]
    fn snapshot_shows_the_last_lines_and_counts_all_complete_ones() {
        let text: String = (1..=5000).map(|index| format!("line {index}\n")).collect();
        let (_dir, path) = write(format!("{text}partial").as_bytes());
        let snapshot = read_snapshot(&path, 3, TAIL_BYTES).unwrap();
        assert_eq!(snapshot.text, "line 4998\nline 4999\nline 5000\n");
        assert_eq!(snapshot.lines, 5000);
        assert_eq!(
            snapshot.start as usize,
            text.len() - "line 4998\nline 4999\nline 5000\n".len()
        );
        assert!(snapshot.exists);
    }

    #[test]
    fn snapshot_of_a_short_log_starts_at_zero() {
        let (_dir, path) = write(b"a\nb\n");
        let snapshot = read_snapshot(&path, 10, TAIL_BYTES).unwrap();
        assert_eq!(snapshot.text, "a\nb\n");
        assert_eq!((snapshot.start, snapshot.lines), (0, 2));
    }

    #[test]
    fn snapshot_without_a_complete_line_is_empty_and_a_missing_file_too() {
        let (dir, path) = write(b"no newline yet");
        let snapshot = read_snapshot(&path, 10, TAIL_BYTES).unwrap();
        assert_eq!((snapshot.text.as_str(), snapshot.lines), ("", 0));
        let missing = read_snapshot(&dir.path().join("missing"), 10, TAIL_BYTES).unwrap();
        assert!(!missing.exists);
    }

    #[test]
    fn snapshot_is_bounded_in_bytes_and_starts_on_a_line() {
        let text: String = (1..=100).map(|index| format!("{index:09}\n")).collect();
        let (_dir, path) = write(text.as_bytes());
        let snapshot = read_snapshot(&path, 1000, 35).unwrap();
        assert_eq!(snapshot.text, "000000098\n000000099\n000000100\n");
        assert_eq!(snapshot.lines, 100);
        assert_eq!(snapshot.start, 970);
    }
}
