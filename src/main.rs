//! Reads the configuration from the environment (and from `.env`, when there is one) and runs
//! the shop.

/// mimalloc: a page view allocates and frees many small buffers (headers, JSON, the page), and
/// glibc's malloc and free were a fifth of the server's time in the benchmark's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    // Variables already set win over the file, as twelve-factor config expects.
    let from_file = dotenvy::dotenv().ok();
    shop::startup::serve_from_env(from_file).await
}
