//! `ferry init`
use anyhow::Result;

use crate::cli::Global;

pub async fn run(_g: &Global, _demo: bool, _force: bool) -> Result<u8> {
    anyhow::bail!("not yet")
}
