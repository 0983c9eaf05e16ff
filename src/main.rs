use std::process::ExitCode;

use stowage::config::{AdminCommand, Cli, Command, KeysCommand};
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
    if cli.command == Some(Command::Openapi) {
        // Nothing else: no logs, no configuration checks, just the document.
        println!("{}", stowage::http::openapi::document()?);
        return Ok(());
    }
    let settings = cli.settings;
    let telemetry = telemetry::init_tracing(&settings.log, settings.log_format);
    let result = command(cli.command.unwrap_or(Command::Serve), settings).await;
    telemetry.shutdown();
    result
}

async fn command(command: Command, settings: stowage::config::Settings) -> anyhow::Result<()> {
    match command {
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
        Command::Openapi => println!("{}", stowage::http::openapi::document()?),
        Command::Keys(KeysCommand::Rotate) => {
            anyhow::ensure!(
                settings.s3_endpoint.is_none(),
                "keys rotate is for the local store; with S3, the store encrypts (STOWAGE_S3_SSE)"
            );
            let root = settings.data_dir.join("blobs");
            let configured = settings.encryption_key.clone();
            let done = tokio::task::spawn_blocking(move || {
                stowage_actors::storage::rotate_keys(&root, configured.as_ref())
            })
            .await??;
            tracing::info!(
                kek = %done.kek,
                rewrapped = done.rewrapped,
                already_current = done.already_current,
                unencrypted = done.unencrypted,
                "every data key is wrapped by the new key-encryption key"
            );
            println!("{}", serde_json::to_string(&done)?);
        }
    }
    Ok(())
}
