//! Reads the configuration from the environment and runs the shop.

use shop::{Application, Config};

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("The shop cannot start: {err}");
            std::process::exit(2);
        }
    };
    let host = config.host.clone();
    let app = Application::build(config).await?;
    log::info!("The shop is open at http://{host}:{}/", app.port());
    app.run_until_stopped().await?;
    log::info!("The shop has stopped.");
    Ok(())
}
