//! pollen-tests: end-to-end tests that drive the real `pollen` binary; see `tests/`.
