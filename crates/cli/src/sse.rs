//! Reads a server-sent events stream off an HTTP answer as it arrives: the coordinator's
//! `tasks-changed` nudges and a task's log lines. Only what Blanket sends is handled
//! (`event`, `data`, `id`, comments); reconnecting is the caller's choice.

use reqwest::Response;

/// One event of the stream.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SseEvent {
    /// The `event:` field, empty when none was sent.
    pub event: String,
    /// The `data:` lines joined by `\n`.
    pub data: String,
    /// The `id:` field, when one was sent.
    pub id: Option<String>,
}

/// Frames the bytes of one answer into events.
pub struct SseReader {
    response: Response,
    parser: Parser,
}

impl SseReader {
    /// Reads events off `response`, whose headers were received.
    pub fn new(response: Response) -> SseReader {
        SseReader {
            response,
            parser: Parser::default(),
        }
    }

    /// The next event, or `None` once the server ended the stream.
    ///
    /// # Errors
    /// The connection broke.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, reqwest::Error> {
        loop {
            if let Some(event) = self.parser.next_event() {
                return Ok(Some(event));
            }
            match self.response.chunk().await? {
                Some(chunk) => self.parser.pending.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }
}

#[derive(Default)]
struct Parser {
    pending: Vec<u8>,
    event: SseEvent,
    data: Vec<String>,
    has_field: bool,
}

impl Parser {
    /// Takes complete lines off `pending` until one ends an event.
    fn next_event(&mut self) -> Option<SseEvent> {
        while let Some(end) = self.pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if self.has_field {
                    self.has_field = false;
                    let mut event = std::mem::take(&mut self.event);
                    event.data = std::mem::take(&mut self.data).join("\n");
                    return Some(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.event.event = value.to_owned(),
                "data" => self.data.push(value.to_owned()),
                "id" => self.event.id = Some(value.to_owned()),
                _ => {}
            }
            self.has_field = true;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<SseEvent> {
        let mut parser = Parser::default();
        parser.pending.extend_from_slice(text.as_bytes());
        std::iter::from_fn(|| parser.next_event()).collect()
    }

    #[test]
    fn a_log_line_and_its_empty_data_line_give_the_line_with_its_newline() {
        let parsed = events("event: message\nid: 3\ndata: hello\ndata: \n\n");
        assert_eq!(
            parsed,
            vec![SseEvent {
                event: "message".into(),
                data: "hello\n".into(),
                id: Some("3".into()),
            }]
        );
    }

    #[test]
    fn comments_are_skipped_and_crlf_is_accepted() {
        let parsed = events(":keepalive\r\n\r\nevent: tasks-changed\r\ndata: x\r\n\r\n");
        assert_eq!(parsed.len(), 1);
        assert_eq!(parsed[0].event, "tasks-changed");
    }

    #[test]
    fn an_event_split_across_chunks_waits_for_its_blank_line() {
        let mut parser = Parser::default();
        parser.pending.extend_from_slice(b"data: par");
        assert_eq!(parser.next_event(), None);
        parser.pending.extend_from_slice(b"t\n\n");
        assert_eq!(
            parser.next_event().map(|event| event.data),
            Some("part".into())
        );
    }
}
