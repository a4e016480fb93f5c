//! `--config FILE`: a TOML file whose keys are the long flag names without `--`, turned into
//! flags for the ones the command line and the environment do not give.
//!
//! ```toml
//! bind = "0.0.0.0"
//! rest-api-port = 9100
//! interval = "2s"                 # or 2, or 0.5
//! "path.procfs" = "/host/proc"     # a dotted name quoted, or as tables:
//! [collector.filesystem]
//! mount-timeout = "10s"
//! ```
//!
//! Booleans switch on/off flags (`sample-self = true`), arrays give a repeatable flag several
//! values (`agents = ["http://a:8080", "http://b:8080"]`), `verbose` takes a count. Keys of a
//! subcommand other than the one running are left alone, so one file can serve the agent and the
//! coordinator. Anything else is an error naming the file and the key: an unknown key, a value
//! of the wrong kind, or one the flag's own parser refuses.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Arg, ArgAction};

use super::flags::{conflicts_with_given, settable};

/// Why the config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("config file {path}: unknown key `{key}`{hint}")]
    UnknownKey {
        path: PathBuf,
        key: String,
        /// ` (did you mean …?)`, or the rule for keys.
        hint: String,
    },
    #[error("config file {path}: `{key}` {problem}")]
    Value {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

impl ConfigFileError {
    /// 1 for a file that cannot be read (runtime input, as a token file), 2 for one that holds
    /// something no flag takes (a usage error written in a file).
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Read { .. } => 1,
            _ => 2,
        }
    }
}

/// A read config file: its path, for messages, and its keys flattened (`[a] b = 1` is `a.b`).
#[derive(Debug)]
pub struct ConfigFile {
    path: PathBuf,
    entries: Vec<(String, toml::Value)>,
}

/// Reads and parses `path`.
pub fn read(path: &Path) -> Result<ConfigFile, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Parses `text`, the content of `path`.
pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, ConfigFileError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // The error's own text is a multi-line snippet; one line says the place and the problem.
        let place = e.span().map(|span| {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: ")
        });
        ConfigFileError::Syntax {
            path: path.to_path_buf(),
            message: format!("{}{}", place.unwrap_or_default(), e.message()),
        }
    })?;
    let mut entries = Vec::new();
    flatten(String::new(), table, &mut entries);
    Ok(ConfigFile {
        path: path.to_path_buf(),
        entries,
    })
}

/// Tables become dotted keys, as the flags `--path.procfs`, `--collector.*`, `--http.*` are named.
fn flatten(prefix: String, table: toml::Table, out: &mut Vec<(String, toml::Value)>) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(key, inner, out),
            value => out.push((key, value)),
        }
    }
}

/// The flags a file adds: root flags (to go before the subcommand) and the running
/// subcommand's (to go after everything).
#[derive(Debug, Default, PartialEq)]
pub struct Added {
    pub before: Vec<OsString>,
    pub after: Vec<OsString>,
}

/// The flags `file` gives, for `command` (built, so that globals are in every subcommand)
/// running `subcommand`, leaving out those `given(id)` says the command line or the environment
/// already gives, and those that conflict with one given (the command line wins there too).
pub fn args(
    file: &ConfigFile,
    command: &clap::Command,
    subcommand: Option<&str>,
    given: &dyn Fn(&str) -> bool,
) -> Result<Added, ConfigFileError> {
    let running = subcommand.and_then(|name| command.find_subcommand(name));
    let mut added = Added::default();
    for (key, value) in &file.entries {
        let error = |problem: String| ConfigFileError::Value {
            path: file.path.clone(),
            key: key.clone(),
            problem,
        };
        if key == "config" {
            return Err(error("cannot be set in a config file".into()));
        }
        let root = find(command, key);
        let own = running.and_then(|sub| find(sub, key));
        let (arg, owner, after) = match (root, own) {
            (Some(arg), _) => (arg, command, false),
            (None, Some(arg)) => (arg, running.unwrap_or(command), true),
            (None, None) => {
                if command
                    .get_subcommands()
                    .any(|sub| find(sub, key).is_some())
                {
                    // Another subcommand's flag: one file serves every mode.
                    continue;
                }
                return Err(unknown(file, key, command));
            }
        };
        if given(arg.get_id().as_str()) || conflicts_with_given(owner, arg, given) {
            continue;
        }
        let flags = flags_of(arg, value).map_err(error)?;
        if after {
            added.after.extend(flags);
        } else {
            added.before.extend(flags);
        }
    }
    Ok(added)
}

/// The flag of `command` whose long name is `key`.
fn find<'c>(command: &'c clap::Command, key: &str) -> Option<&'c Arg> {
    command
        .get_arguments()
        .find(|a| settable(a) && a.get_long() == Some(key))
}

/// The unknown-key error, with the flag it may have meant (`rest_api_port` for
/// `rest-api-port`).
fn unknown(file: &ConfigFile, key: &str, command: &clap::Command) -> ConfigFileError {
    let dashed = key.replace('_', "-");
    let known = |name: &str| {
        find(command, name).is_some() || command.get_subcommands().any(|s| find(s, name).is_some())
    };
    let hint = if dashed != key && known(&dashed) {
        format!(" (did you mean `{dashed}`?)")
    } else {
        " (keys are the long flags without `--`, e.g. `rest-api-port`; see `system_monitor --help`)"
            .to_string()
    };
    ConfigFileError::UnknownKey {
        path: file.path.clone(),
        key: key.to_string(),
        hint,
    }
}

/// The command-line flags `--key=value` that `value` stands for, each value checked by the
/// flag's own parser so that a bad one is reported with the file's name.
fn flags_of(arg: &Arg, value: &toml::Value) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().unwrap_or_default();
    let flag = || OsString::from(format!("--{long}"));
    match arg.get_action() {
        ArgAction::SetTrue => match value {
            toml::Value::Boolean(true) => Ok(vec![flag()]),
            toml::Value::Boolean(false) => Ok(Vec::new()),
            _ => Err(format!(
                "is an on/off flag: give true or false, not {}",
                kind(value)
            )),
        },
        ArgAction::Count => match value {
            toml::Value::Integer(n) if (0..=255).contains(n) => {
                Ok((0..*n).map(|_| flag()).collect())
            }
            _ => Err(format!(
                "is a count: give a number from 0, not {}",
                kind(value)
            )),
        },
        action => {
            let values: Vec<&toml::Value> = match value {
                toml::Value::Array(items) if matches!(action, ArgAction::Append) => {
                    items.iter().collect()
                }
                toml::Value::Array(_) => {
                    return Err("takes one value, not an array".into());
                }
                value => vec![value],
            };
            values
                .into_iter()
                .map(|v| {
                    let text = scalar(v)?;
                    check(arg, &text)?;
                    Ok(OsString::from(format!("--{long}={text}")))
                })
                .collect()
        }
    }
}

/// A value as the command line would spell it.
fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("takes a string or a number, not {}", kind(other))),
    }
}

/// Runs the flag's own parser on `text`, for its message. (clap runs a parser only inside a
/// command, so this one holds a copy of the flag without its ties to other flags.)
fn check(arg: &Arg, text: &str) -> Result<(), String> {
    let long = arg.get_long().unwrap_or_default();
    let mut alone = Arg::new(arg.get_id().clone())
        .long(long.to_string())
        .action(ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    if let Some(names) = arg.get_value_names() {
        alone = alone.value_names(names.iter().cloned());
    }
    clap::Command::new("system_monitor")
        .arg(alone)
        .try_get_matches_from([
            OsString::from("system_monitor"),
            format!("--{long}={text}").into(),
        ])
        .map(drop)
        .map_err(|e| {
            let message = e.to_string();
            let first = message.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_string()
        })
}

/// The kind of a TOML value, for messages.
fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests;
