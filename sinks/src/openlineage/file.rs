//! The file destination: appends each event as one JSON line (JSON Lines). A value spread
//! over several lines is re-serialized compactly. Each line is written and flushed before the
//! record counts as delivered (the OS may still hold it in its page cache: a machine crash can
//! lose the last lines, a process crash cannot).

use std::path::{Path, PathBuf};

use lineage_schemas::records::DeadLetterKind;
use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::delivery::retry::{AttemptError, RetryReason};
use crate::delivery::{Destination, SinkRecord};
use crate::error::SinkError;

/// Appends events to a file.
#[derive(Debug)]
pub struct FileDestination {
    path: PathBuf,
    file: Mutex<File>,
}

impl FileDestination {
    /// Opens (creates) `path` for appending.
    pub async fn open(path: &Path) -> Result<Self, SinkError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .await
            .map_err(|source| SinkError::File {
                what: "opening the OpenLineage output file",
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }
}

/// The event as one line with its newline.
fn line(value: &[u8]) -> Result<Vec<u8>, AttemptError> {
    let malformed = |e: serde_json::Error| AttemptError::Permanent {
        kind: DeadLetterKind::MalformedInput,
        status: None,
        body: None,
        detail: format!("the value is not a JSON document: {e}"),
    };
    let mut line = if value.contains(&b'\n') {
        let document: serde_json::Value = serde_json::from_slice(value).map_err(malformed)?;
        serde_json::to_vec(&document).map_err(malformed)?
    } else {
        serde_json::from_slice::<serde::de::IgnoredAny>(value).map_err(malformed)?;
        value.to_vec()
    };
    line.push(b'\n');
    Ok(line)
}

impl Destination for FileDestination {
    async fn deliver(&self, record: &SinkRecord) -> Result<(), AttemptError> {
        let line = line(&record.value)?;
        let mut file = self.file.lock().await;
        let written = async {
            file.write_all(&line).await?;
            file.flush().await
        };
        written.await.map_err(|e| AttemptError::Retryable {
            reason: RetryReason::Io,
            retry_after: None,
            detail: format!("appending to {}: {e}", self.path.display()),
        })
    }

    async fn probe(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value: &[u8]) -> SinkRecord {
        SinkRecord {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: None,
            value: value.to_vec(),
            tenant: None,
        }
    }

    #[tokio::test]
    async fn events_are_appended_one_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let destination = FileDestination::open(&path).await.unwrap();
        destination.deliver(&record(br#"{"a":1}"#)).await.unwrap();
        destination
            .deliver(&record(b"{\n  \"b\": 2\n}"))
            .await
            .unwrap();
        let rejected = destination.deliver(&record(b"not json")).await;
        assert!(matches!(
            rejected,
            Err(AttemptError::Permanent {
                kind: DeadLetterKind::MalformedInput,
                ..
            })
        ));
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":2}\n");
    }
}
