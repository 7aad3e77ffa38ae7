//! `ferry-bench`: see the crate documentation and docs/performance.md.

/// The same allocator as the `ferry` binary, so the figures are Ferry's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ferry_bench::cli::main(std::env::args().collect(), "cargo run --release -p ferry-bench --").await
}
