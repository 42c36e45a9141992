//! What every sink's `send` answers: the batch was taken, or why not and whether trying again may help.

/// Why a sink did not take a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    /// One line for operators and for the dead-letter message's `reason` property.
    pub reason: String,
    /// True when the same batch may succeed later (timeouts, refused connections, 5xx, 429, lost database
    /// connections); false when it never will (4xx, a row the table refuses), which dead-letters it at once.
    pub retryable: bool,
}

impl SinkError {
    /// A failure that may pass.
    pub fn retry(reason: impl Into<String>) -> SinkError {
        SinkError {
            reason: reason.into(),
            retryable: true,
        }
    }

    /// A failure that will not.
    pub fn fatal(reason: impl Into<String>) -> SinkError {
        SinkError {
            reason: reason.into(),
            retryable: false,
        }
    }
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for SinkError {}

/// An error and its causes on one line (a client library's own message often says little: "error sending
/// request").
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
