//! The commands, one module per group.

pub mod apps;
pub mod cluster;
pub mod docker;
pub mod env;
pub mod jobs;
pub mod limit;
pub mod release;
pub mod route;
pub mod run;
pub mod scale;

use std::io::{BufRead, IsTerminal, Write};

use serde::Serialize;

use crate::error::CliError;

/// Prints `v` as indented JSON.
pub fn print_json<T: Serialize>(v: &T) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).expect("API values serialize")
    );
}

/// The name a value has on the wire (`one-by-one`, `complete`), for enums shown to people.
pub fn wire_name<T: Serialize>(v: T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// Asks "QUESTION [y/N]" on a terminal; true for yes. Without a terminal, asks for `-y`.
pub fn confirm(question: &str) -> Result<bool, CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!(
            "{question}: pass -y to confirm (no terminal to ask on)"
        )));
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// `K=V` arguments as pairs.
pub fn pairs(args: &[String]) -> Result<Vec<(String, String)>, CliError> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CliError::usage(format!("{a:?} is not KEY=VALUE"))),
        })
        .collect()
}
