//! `ferry demo`
use std::path::PathBuf;

use anyhow::Result;

use crate::cli::Global;

pub async fn run(_g: &Global, _keep: Option<PathBuf>) -> Result<u8> {
    anyhow::bail!("not yet")
}
