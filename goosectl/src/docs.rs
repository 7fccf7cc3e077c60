//! `completions` and `man`: shell completions and the man page, generated
//! from the same clap definition as the parser so they never drift.

use crate::error::CtlError;
use crate::output::EXIT_SUCCESS;
use clap::CommandFactory;
use std::io::Write;

/// Prints completions for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<u8, CtlError> {
    let mut command = crate::Cli::command();
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut command, "goosectl", &mut buffer);
    std::io::stdout().write_all(&buffer)?;
    Ok(EXIT_SUCCESS)
}

/// Prints the man page (roff) on stdout.
pub fn man() -> Result<u8, CtlError> {
    let mut buffer = Vec::new();
    clap_mangen::Man::new(crate::Cli::command()).render(&mut buffer)?;
    std::io::stdout().write_all(&buffer)?;
    Ok(EXIT_SUCCESS)
}
