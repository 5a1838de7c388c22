//! One module per subcommand.

pub(crate) mod get;
pub(crate) mod id;
pub(crate) mod remove;
pub(crate) mod share;
pub(crate) mod status;
