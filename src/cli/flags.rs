//! What the environment and the config file need to know of clap's flags: which flags take a
//! value from them, and which are in conflict.

use clap::{Arg, ArgAction};

/// Whether `arg` is a flag that the environment and the config file may set: every long option
/// but help and version (positional arguments are not flags).
pub fn settable(arg: &Arg) -> bool {
    arg.get_long().is_some()
        && !matches!(
            arg.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
}

/// Whether a flag of `command` (built) for which `given(id)` holds conflicts with `arg`, either
/// way (clap keeps a conflict on the flag that declared it).
pub fn conflicts_with_given(
    command: &clap::Command,
    arg: &Arg,
    given: &dyn Fn(&str) -> bool,
) -> bool {
    command
        .get_arg_conflicts_with(arg)
        .iter()
        .any(|other| given(other.get_id().as_str()))
        || command.get_arguments().any(|other| {
            given(other.get_id().as_str())
                && command
                    .get_arg_conflicts_with(other)
                    .iter()
                    .any(|c| c.get_id() == arg.get_id())
        })
}
