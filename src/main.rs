use std::process::ExitCode;

use stowage::config::{Cli, Command};
use stowage::{Application, db, telemetry};

#[actix_web::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stowage: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::load()?;
    let settings = cli.settings;
    telemetry::init_tracing(&settings.log, settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            Application::build(settings)
                .await?
                .run_until_stopped()
                .await?
        }
        Command::Migrate => {
            let conn = db::connect(&settings.database_url()).await?;
            db::migrate(&conn).await?;
            tracing::info!("migrations applied");
        }
    }
    Ok(())
}
