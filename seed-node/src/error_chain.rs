//! Errors as one line with their causes, for messages that cross the API.

/// An error and its causes, as one line: "writing …/data: No space left on device (os error 28)".
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
