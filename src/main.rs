use std::process::ExitCode;

use stowage::config::{AdminCommand, Cli, Command};
use stowage::startup::server_secret;
use stowage::{Application, db, telemetry};
use stowage_actors::keys::Keys;

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
        Command::Admin(AdminCommand::CreateKey { name }) => {
            let secret = server_secret(&settings)?;
            let conn = db::connect(&settings.database_url()).await?;
            db::migrate(&conn).await?;
            let (view, key) = Keys::new(conn, &secret)
                .create_service_key(&name)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::info!(key_id = %view.key.id, user_id = %view.key.user_id, "admin key created");
            println!("{key}");
        }
    }
    Ok(())
}
