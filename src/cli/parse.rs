//! The command line as the binary parses it: clap's definitions from [`Cli`], each flag also
//! read from a `SYSTEM_MONITOR_*` environment variable, then the `--config` file's keys for the
//! flags neither gave. Precedence: flag > variable > file > default.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory, FromArgMatches};

use super::config_file::{self, ConfigFileError};
use super::flags::{conflicts_with_given, settable};
use super::Cli;

/// Prefix of every flag's environment variable.
const ENV_PREFIX: &str = "SYSTEM_MONITOR_";

/// The environment variable of the flag `--long`: `SYSTEM_MONITOR_` and the name in capitals,
/// `-` and `.` as `_` (`--rest-api-port` → `SYSTEM_MONITOR_REST_API_PORT`, `--path.procfs` →
/// `SYSTEM_MONITOR_PATH_PROCFS`). Derived, not written per flag, so that a flag added later has
/// its variable too. The token variables (`SYSTEM_MONITOR_AUTH_TOKEN`,
/// `SYSTEM_MONITOR_CLUSTER_TOKEN`, which hold a token itself) are not flags' and cannot clash: a
/// flag's ends in `_FILE` there.
pub fn env_name(long: &str) -> String {
    let mut name = String::with_capacity(ENV_PREFIX.len() + long.len());
    name.push_str(ENV_PREFIX);
    name.extend(long.chars().map(|c| match c {
        '-' | '.' => '_',
        c => c.to_ascii_uppercase(),
    }));
    name
}

/// [`Cli`]'s definitions with each flag's environment variable, recursively. On/off flags read
/// their variable leniently (`1`, `true`, `yes`, `on` and `0`, `false`, `no`, `off`), as
/// environments usually spell them.
pub fn command() -> clap::Command {
    with_env(Cli::command())
}

fn with_env(command: clap::Command) -> clap::Command {
    command
        .mut_args(|arg| {
            if !settable(&arg) {
                return arg;
            }
            let Some(long) = arg.get_long() else {
                return arg;
            };
            let name = env_name(long);
            let arg = arg.env(name);
            if matches!(arg.get_action(), ArgAction::SetTrue) {
                arg.value_parser(clap::builder::BoolishValueParser::new())
            } else {
                arg
            }
        })
        .mut_subcommands(with_env)
}

/// Why the command line could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A usage error, or `--help`/`--version` (clap's own output and exit code).
    #[error("{error}")]
    Clap {
        error: clap::Error,
        /// The config file whose keys were added, for a note: the error may be about one.
        file: Option<std::path::PathBuf>,
    },
    /// The `--config` file cannot be read or holds something that is no flag.
    #[error(transparent)]
    File(#[from] ConfigFileError),
}

impl ParseError {
    /// Prints the error (or the help) and exits: 0 for `--help`/`--version`, 2 for usage errors
    /// and a bad config file, 1 for a config file that cannot be read.
    pub fn exit(self) -> ! {
        match self {
            Self::Clap { error, file } => {
                if !error.use_stderr() {
                    error.exit()
                }
                let _ = error.print();
                // The message names the flag; say where else its value may have come from.
                let variables = set_variables();
                if !variables.is_empty() {
                    eprintln!(
                        "note: flags were also read from the environment: {}",
                        variables.join(", ")
                    );
                }
                if let Some(file) = file {
                    eprintln!(
                        "note: flags not given on the command line or in SYSTEM_MONITOR_* variables \
                         were read from the config file {}",
                        file.display()
                    );
                }
                std::process::exit(error.exit_code())
            }
            Self::File(error) => {
                eprintln!("system_monitor: error: {error}");
                std::process::exit(error.exit_code())
            }
        }
    }
}

/// The flags' variables that are set in this process's environment (names only).
fn set_variables() -> Vec<String> {
    fn collect(command: &clap::Command, out: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(name) = arg.get_env().and_then(|n| n.to_str()) {
                if std::env::var_os(name).is_some() && !out.iter().any(|o| o == name) {
                    out.push(name.to_string());
                }
            }
        }
        for sub in command.get_subcommands() {
            collect(sub, out);
        }
    }
    let mut out = Vec::new();
    collect(&command(), &mut out);
    out
}

/// The command line of this process, or exit as [`ParseError::exit`] says.
pub fn parse() -> Cli {
    try_parse_from(std::env::args_os()).unwrap_or_else(|error| error.exit())
}

/// `args` (the program name first) with the environment and the `--config` file.
pub fn try_parse_from<I, T>(args: I) -> Result<Cli, ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let Prepared {
        command,
        args,
        file,
    } = prepare(command(), args)?;
    let matches = command
        .try_get_matches_from(args)
        .map_err(|error| ParseError::Clap {
            error,
            file: file.clone(),
        })?;
    Cli::from_arg_matches(&matches).map_err(|error| ParseError::Clap { error, file })
}

/// The command and the arguments the real parse is given.
struct Prepared {
    command: clap::Command,
    args: Vec<OsString>,
    /// The config file whose flags were added.
    file: Option<std::path::PathBuf>,
}

/// Applies the precedence the real parse cannot see: a flag on the command line beats a
/// variable or a config-file key of a flag it conflicts with (`--listen-on-localhost` over
/// `SYSTEM_MONITOR_BIND`), and the `--config` file's keys become flags where neither the command
/// line nor the environment gives one. The command line is read once leniently first, to learn
/// the file, the subcommand, and where each flag came from.
fn prepare(command: clap::Command, args: Vec<OsString>) -> Result<Prepared, ConfigFileError> {
    // Errors (and --help) are left to the real parse.
    let Ok(first) = command
        .clone()
        .ignore_errors(true)
        .try_get_matches_from(&args)
    else {
        return Ok(Prepared {
            command,
            args,
            file: None,
        });
    };
    let subcommand = first.subcommand();
    let source = |id: &str| {
        let of = |m: &ArgMatches| {
            m.try_contains_id(id)
                .unwrap_or(false)
                .then(|| m.value_source(id))
                .flatten()
        };
        match of(&first) {
            Some(ValueSource::DefaultValue) | None => subcommand.and_then(|(_, m)| of(m)),
            found => found,
        }
    };
    let mut built = command.clone();
    built.build();
    let scope = subcommand
        .and_then(|(name, _)| built.find_subcommand(name))
        .unwrap_or(&built);
    let on_command_line = |id: &str| source(id) == Some(ValueSource::CommandLine);
    let overruled: Vec<String> = scope
        .get_arguments()
        .filter(|arg| source(arg.get_id().as_str()) == Some(ValueSource::EnvVariable))
        .filter(|arg| conflicts_with_given(scope, arg, &on_command_line))
        .map(|arg| arg.get_id().to_string())
        .collect();
    let mut command = command;
    for id in &overruled {
        command = without_env(command, id);
    }
    let Some(path) = first.get_one::<std::path::PathBuf>("config").cloned() else {
        return Ok(Prepared {
            command,
            args,
            file: None,
        });
    };
    // Generating completions or a manual needs no configuration (and must work with a broken one).
    if let Some(("completions" | "man", _)) = subcommand {
        return Ok(Prepared {
            command,
            args,
            file: None,
        });
    }
    let given = |id: &str| {
        !overruled.iter().any(|o| o == id)
            && matches!(
                source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
    };
    let file = config_file::read(&path)?;
    let added = config_file::args(&file, &built, subcommand.map(|(name, _)| name), &given)?;
    // Root flags right after the program name (globals are taken anywhere); the subcommand's
    // after everything (they are only taken after its name).
    let mut out = Vec::with_capacity(args.len() + added.before.len() + added.after.len());
    out.extend(args.first().cloned());
    out.extend(added.before);
    out.extend(args.iter().skip(1).cloned());
    out.extend(added.after);
    Ok(Prepared {
        command,
        args: out,
        file: Some(path),
    })
}

/// `command` with flag `id` no longer read from its variable (wherever it is defined).
fn without_env(command: clap::Command, id: &str) -> clap::Command {
    let reset = |arg: Arg| arg.env(None::<&str>);
    let command = if command.get_arguments().any(|a| a.get_id() == id) {
        command.mut_arg(id, reset)
    } else {
        command
    };
    command.mut_subcommands(|sub| without_env(sub, id))
}

#[cfg(test)]
mod tests;
