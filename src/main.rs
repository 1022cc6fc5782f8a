//! Reads the configuration from the environment (and from `.env`, when there is one) and runs
//! the shop; `shop healthcheck` asks a running one whether it is ready (the image's check).

/// mimalloc: a page view allocates and frees many small buffers (headers, JSON, the page), and
/// glibc's malloc and free were a fifth of the server's time in the benchmark's profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        std::process::exit(shop::healthcheck::run());
    }
    // Variables already set win over the file, as twelve-factor config expects.
    let from_file = dotenvy::dotenv().ok();
    shop::startup::serve_from_env(from_file).await
}
