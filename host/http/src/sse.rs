//! Server-sent events (`text/event-stream`): writing one event, and reading events out of
//! arriving bytes, whatever the chunking.

/// One event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`, if given.
    pub id: Option<String>,
    /// `event:`; `None` means the default type, `message`.
    pub event: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
}

/// One event as it goes on the wire (`data` may hold newlines; each becomes a `data:` line).
pub fn encode(id: Option<&str>, event: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 32);
    if let Some(id) = id {
        out.push_str("id: ");
        out.push_str(id);
        out.push('\n');
    }
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    for line in data.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// A comment line (clients ignore it): keeps idle connections open.
pub fn comment(text: &str) -> String {
    format!(": {text}\n\n")
}

/// Reads events out of a byte stream fed in chunks of any size.
#[derive(Debug, Default)]
pub struct SseReader {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseReader {
    /// Adds bytes that arrived.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, if the bytes so far hold one. Comments are skipped; an event
    /// with no `data:` line is not dispatched.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                let event = std::mem::take(&mut self.current);
                if std::mem::take(&mut self.has_data) {
                    return Some(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (&*line, ""),
            };
            match field {
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                "event" => self.current.event = Some(value.to_string()),
                "id" => self.current.id = Some(value.to_string()),
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_byte_by_byte() {
        let wire = format!(
            "{}{}{}",
            comment("subscribed"),
            encode(Some("7"), Some("job"), "{\"a\":1}"),
            encode(None, None, "two\nlines")
        );
        let mut r = SseReader::default();
        let mut got = Vec::new();
        for b in wire.as_bytes() {
            r.feed(&[*b]);
            while let Some(e) = r.next_event() {
                got.push(e);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id.as_deref(), Some("7"));
        assert_eq!(got[0].event.as_deref(), Some("job"));
        assert_eq!(got[0].data, "{\"a\":1}");
        assert_eq!(got[1].data, "two\nlines");
    }
}
