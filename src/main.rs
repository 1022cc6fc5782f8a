//! Reads the configuration from the environment and runs the shop.

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    shop::startup::serve_from_env().await
}
