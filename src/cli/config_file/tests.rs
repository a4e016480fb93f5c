//! Tests of `cli::config_file`: which flags a file adds, and where.

use super::*;

fn added(text: &str, subcommand: Option<&str>, given: &[&str]) -> Result<Added, ConfigFileError> {
    let file = parse(Path::new("/etc/sm.toml"), text)?;
    let mut command = crate::cli::command();
    command.build();
    args(&file, &command, subcommand, &|id| given.contains(&id))
}

fn strings(flags: &[OsString]) -> Vec<String> {
    flags
        .iter()
        .map(|f| f.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn root_flags_go_before_and_the_subcommands_after() {
    let added = added(
        "node-id = \"n\"\nagents = [\"http://a:1\", \"http://b:2\"]\nsample-self = false\n",
        Some("coordinator"),
        &[],
    )
    .unwrap();
    assert_eq!(strings(&added.before), ["--node-id=n"]);
    assert_eq!(
        strings(&added.after),
        ["--agents=http://a:1", "--agents=http://b:2"]
    );
}

#[test]
fn given_flags_are_left_out() {
    let added = added("node-id = \"n\"\ninterval = 2\n", None, &["node_id"]).unwrap();
    assert_eq!(strings(&added.before), ["--interval=2"]);
}

#[test]
fn numbers_and_counts_are_spelled_as_flags() {
    let added = added(
        "interval = 0.25\nverbose = 2\nrest-api-port = 9100\n",
        None,
        &[],
    )
    .unwrap();
    assert_eq!(
        strings(&added.before),
        // In the table's (key) order.
        [
            "--interval=0.25",
            "--rest-api-port=9100",
            "--verbose",
            "--verbose"
        ]
    );
}
