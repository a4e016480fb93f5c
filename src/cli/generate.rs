//! `system_monitor completions SHELL` and `system_monitor man [SUBCOMMAND]`: shell completions
//! and roff manual pages generated at run time from the same clap definitions the parser uses
//! ([`super::command`], environment variables included), so they cannot drift from the flags
//! and need no build step: packagers run the installed binary.

use std::io::Write;

use clap_complete::Shell;

/// The binary's name in completions and pages.
const NAME: &str = "system_monitor";

/// Why a page could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("no subcommand {name:?} (one of: {known})")]
    UnknownSubcommand { name: String, known: String },
    #[error("writing the output: {0}")]
    Write(#[from] std::io::Error),
}

/// Writes the completion script for `shell`.
pub fn completions(shell: Shell, out: &mut dyn Write) -> Result<(), GenerateError> {
    let mut command = super::command();
    clap_complete::generate(shell, &mut command, NAME, out);
    Ok(())
}

/// Writes the manual page of the binary, or of `subcommand` (`system_monitor-coordinator(1)`).
pub fn man(subcommand: Option<&str>, out: &mut dyn Write) -> Result<(), GenerateError> {
    let mut command = super::command();
    // Built, so that global flags are listed in each subcommand's page too.
    command.build();
    let page = match subcommand {
        None => command,
        Some(name) => match command.find_subcommand(name) {
            Some(sub) => {
                let title = format!("{NAME}-{name}");
                sub.clone()
                    .name(title.clone())
                    .display_name(title)
                    .version(crate::VERSION)
            }
            None => {
                let known: Vec<&str> = command
                    .get_subcommands()
                    .map(|s| s.get_name())
                    .filter(|name| *name != "help")
                    .collect();
                return Err(GenerateError::UnknownSubcommand {
                    name: name.to_string(),
                    known: known.join(", "),
                });
            }
        },
    };
    clap_mangen::Man::new(page).render(out)?;
    Ok(())
}
