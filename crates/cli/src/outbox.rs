//! The dashboard's view of the development outbox: the SMS of one verification instance.

use durable_dashboard::{Outbox, OutboxEntry};
use durable_phone_verification::{DevOutbox, OutboxMessage};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// The end of the file that is read: a verification's SMS is among the newest lines, and the
/// outbox of a long-running development server can grow large.
const TAIL_BYTES: u64 = 1024 * 1024;

/// Reads `outbox.jsonl` of a data directory.
pub(crate) struct OutboxReader {
    path: PathBuf,
}

impl OutboxReader {
    pub(crate) fn new(data_dir: &std::path::Path) -> Self {
        OutboxReader { path: data_dir.join(DevOutbox::FILE_NAME) }
    }
}

/// The instance id of an activity reference (`instance:execution:task`; ids may contain `:`).
fn instance_of(reference: &str) -> Option<&str> {
    let mut parts = reference.rsplitn(3, ':');
    let (_task, _execution) = (parts.next()?, parts.next()?);
    parts.next()
}

impl Outbox for OutboxReader {
    fn messages_for(&self, instance_id: &str) -> std::io::Result<Vec<OutboxEntry>> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        let start = len.saturating_sub(TAIL_BYTES);
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take(TAIL_BYTES).read_to_end(&mut bytes)?;
        // The cut may fall inside a character: only the first line can be damaged by it.
        let text = String::from_utf8_lossy(&bytes);
        // A cut first line is not a message.
        let lines = text.lines().skip(usize::from(start > 0));
        Ok(lines
            .filter_map(|l| serde_json::from_str::<OutboxMessage>(l).ok())
            .filter(|m| instance_of(&m.reference) == Some(instance_id))
            .map(|m| OutboxEntry { sent_at: m.sent_at, to: m.to, body: m.body })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use durable_phone_verification::SmsSender;

    #[test]
    fn references_name_their_instance() {
        assert_eq!(instance_of("abc:e1:0"), Some("abc"));
        assert_eq!(instance_of("a:b:c:e1:0"), Some("a:b:c"));
        assert_eq!(instance_of("e1:0"), None);
    }

    #[tokio::test]
    async fn only_the_instances_own_messages_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let reader = OutboxReader::new(dir.path());
        assert!(reader.messages_for("x").unwrap().is_empty(), "no file yet");
        let outbox = DevOutbox::new(dir.path());
        let sms = |to, body, reference, instance_id| durable_phone_verification::Sms {
            to,
            body,
            reference,
            instance_id,
        };
        outbox
            .send(&sms("+14255550100", "Your verification code is 1234", "inst:e1:0", "inst"))
            .await
            .unwrap();
        outbox
            .send(&sms("+14255550101", "Your verification code is 9999", "inst:2:e1:0", "inst:2"))
            .await
            .unwrap();
        let mine = reader.messages_for("inst").unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(
            (mine[0].to.as_str(), mine[0].body.as_str()),
            ("+14255550100", "Your verification code is 1234")
        );
    }
}
