use clap::Parser;

use orgwall::commands::{self, Cli};
use orgwall::config::{LogFormat, Settings};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Before logging exists: a bad setting is one plain line on stderr.
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("orgwall: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    orgwall::telemetry::init(settings.log_format == LogFormat::Json, std::io::stderr);
    for warning in settings.warnings() {
        tracing::warn!("{warning}");
    }
    match commands::run(cli, settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the context chain, outermost first.
            eprintln!("orgwall: {}", format!("{e:#}").replace('\n', " "));
            std::process::ExitCode::FAILURE
        }
    }
}
