//! `cargo bench -p ferry-bench -- [OPTIONS]`: the same benchmark as
//! `cargo run --release -p ferry-bench -- [OPTIONS]` (docs/performance.md).

/// The same allocator as the `ferry` binary, so the figures are Ferry's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Cargo passes `--bench` to a bench target without the default harness.
    let args = std::env::args().filter(|a| a != "--bench").collect();
    ferry_bench::cli::main(args, "cargo bench -p ferry-bench --").await
}
