//! Fitting any file name into a ticket.

/// Longest file name a ticket carries (bytes).
const MAX_NAME: usize = 255;

/// A file name a ticket accepts, made from any name: path separators and control characters
/// become `_`, and a name over 255 bytes is shortened in the middle, keeping its extension.
/// `None` for a name with nothing usable in it.
pub fn fit_name(name: &str) -> Option<String> {
    let clean: String = name
        .chars()
        .map(|c| {
            if c == '/' || c == '\\' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        return None;
    }
    if clean.len() <= MAX_NAME {
        return Some(clean.to_string());
    }
    let ext = clean
        .rfind('.')
        .map(|i| &clean[i..])
        .filter(|e| e.len() <= 16)
        .unwrap_or("");
    let mut stem_end = MAX_NAME - ext.len() - '…'.len_utf8();
    while !clean.is_char_boundary(stem_end) {
        stem_end -= 1;
    }
    Some(format!("{}…{ext}", &clean[..stem_end]))
}
