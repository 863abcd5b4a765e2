//! What the CLI prints on stdout goes through [`line`], so a reader that stops early
//! (`overseer jobs list | head`) ends the command with one clear error instead of the panic
//! `println!` gives on a closed pipe.

use std::io::Write;

use super::api::CliError;

/// Writes one line to stdout.
pub fn line(text: impl std::fmt::Display) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => CliError::OutputClosed,
            _ => CliError::Input(format!("cannot write the output: {e}")),
        })
}
