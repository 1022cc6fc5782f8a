//! Reads the configuration from the environment (and from `.env`, when there is one) and runs
//! the shop.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    // Variables already set win over the file, as twelve-factor config expects.
    let from_file = dotenvy::dotenv().ok();
    shop::startup::serve_from_env(from_file).await
}
