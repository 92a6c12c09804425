//! `stripe-emulator [--port P]`: serves the Stripe emulator on 127.0.0.1 until Ctrl-C
//! (or SIGTERM). The port defaults to `STRIPE_EMULATOR_PORT`, else 12111; 0 picks a
//! free port (the line printed at start names it).

use std::process::ExitCode;

use stripe_emulator::StripeEmulator;

const DEFAULT_PORT: u16 = 12111;
const USAGE: &str =
    "usage: stripe-emulator [--port P]   (default: $STRIPE_EMULATOR_PORT, else 12111)";

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Serve(u16),
    Help,
}

fn parse_port(value: &str, source: &str) -> Result<u16, String> {
    value
        .trim()
        .parse::<u16>()
        .map_err(|_| format!("invalid port {value:?} in {source}"))
}

fn parse_args(args: &[String], env_port: Option<&str>) -> Result<Command, String> {
    use lexopt::Arg::{Long, Short};
    let mut parser = lexopt::Parser::from_args(args);
    let mut port = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(Command::Help),
            Short('p') | Long("port") => {
                let value = parser.value().map_err(|e| e.to_string())?;
                port = Some(parse_port(&value.to_string_lossy(), "--port")?);
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    match (port, env_port) {
        (Some(p), _) => Ok(Command::Serve(p)),
        (None, Some(v)) => parse_port(v, "STRIPE_EMULATOR_PORT").map(Command::Serve),
        (None, None) => Ok(Command::Serve(DEFAULT_PORT)),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let env_port = std::env::var("STRIPE_EMULATOR_PORT").ok();
    let port = match parse_args(&args, env_port.as_deref()) {
        Ok(Command::Serve(port)) => port,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("stripe-emulator: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let emulator = match StripeEmulator::start(port).await {
        Ok(emulator) => emulator,
        Err(e) => {
            eprintln!("stripe-emulator: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("stripe emulator listening on {}", emulator.url());
    shutdown_signal().await;
    drop(emulator);
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn port_from_flag_env_or_default() {
        assert_eq!(parse_args(&args(&[]), None), Ok(Command::Serve(12111)));
        assert_eq!(
            parse_args(&args(&[]), Some("4000")),
            Ok(Command::Serve(4000))
        );
        assert_eq!(
            parse_args(&args(&["--port", "5000"]), Some("4000")),
            Ok(Command::Serve(5000))
        );
        assert_eq!(
            parse_args(&args(&["--port=0"]), None),
            Ok(Command::Serve(0))
        );
        assert_eq!(parse_args(&args(&["-p", "7"]), None), Ok(Command::Serve(7)));
        assert_eq!(parse_args(&args(&["--help"]), None), Ok(Command::Help));
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse_args(&args(&["--port"]), None).is_err());
        assert!(parse_args(&args(&["--port", "99999"]), None).is_err());
        assert!(parse_args(&args(&["--verbose"]), None).is_err());
        assert!(parse_args(&args(&[]), Some("abc")).is_err());
    }
}
