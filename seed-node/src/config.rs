//! `pollen node --config FILE`: a TOML file whose keys are the node's flags. The file is
//! turned into flags placed before the command line's, so flags given on the command line
//! win; a key whose `POLLEN_*` environment variable is set is left out, so the environment
//! wins over the file too. Precedence: command line, environment, file, defaults.
//!
//! The fuzz crate compiles this module and [`crate::cli`] too (`#[path]`, see
//! `fuzz/README.md`): they use nothing else of this crate.

use std::{ffi::OsString, path::Path};

use anyhow::{Context, Result, bail};
use clap::CommandFactory;

use crate::cli::Cli;

/// The command line with `pollen node --config FILE` replaced by the file's settings as
/// flags (then the rest of the command line); any other command line unchanged. A key given
/// on the command line, or in its `POLLEN_*` variable, is left out of the file's flags (so a
/// list on the command line replaces the file's instead of adding to it).
pub(crate) fn expand(args: Vec<OsString>) -> Result<Vec<OsString>> {
    if args.get(1).and_then(|a| a.to_str()) != Some("node") {
        return Ok(args);
    }
    let mut rest: Vec<OsString> = Vec::new();
    let mut file: Option<OsString> = None;
    let mut it = args.iter().skip(2);
    while let Some(a) = it.next() {
        match a.to_str() {
            Some("--config") => file = Some(it.next().context("--config needs a file")?.clone()),
            Some(s) if s.starts_with("--config=") => file = Some(s["--config=".len()..].into()),
            _ => rest.push(a.clone()),
        }
    }
    let given: Vec<String> = rest
        .iter()
        .filter_map(|a| a.to_str()?.strip_prefix("--"))
        .map(|f| f.split('=').next().unwrap_or(f).to_string())
        .collect();
    let mut out = vec![args[0].clone(), "node".into()];
    if let Some(file) = file {
        let skip = |name: &str| {
            std::env::var_os(env_name(name)).is_some() || given.iter().any(|g| g == name)
        };
        out.extend(
            file_flags(Path::new(&file), skip)?
                .into_iter()
                .map(OsString::from),
        );
    }
    out.extend(rest);
    Ok(out)
}

/// `pollen config check FILE`: the settings it holds, or why it is wrong.
pub(crate) fn check(path: &Path) -> Result<usize> {
    check_text(path, &read(path)?)
}

/// [`check`] of a settings file's text; `path` names it in messages.
pub(crate) fn check_text(path: &Path, text: &str) -> Result<usize> {
    let flags = text_flags(path, text, |_| false)?;
    let mut argv = vec!["pollen".to_string(), "node".to_string()];
    argv.extend(flags.iter().cloned());
    // Values are checked as the node would parse them (a `data` key is needed).
    Cli::try_parse_from_checked(&argv).with_context(|| format!("{}", path.display()))?;
    Ok(flags.iter().filter(|f| f.starts_with("--")).count())
}

impl Cli {
    fn try_parse_from_checked(argv: &[String]) -> Result<()> {
        use clap::Parser;
        match Cli::try_parse_from(argv) {
            Ok(_) => Ok(()),
            Err(e) => bail!("{}", e.render().to_string().trim()),
        }
    }
}

/// The environment variable that sets flag `--name`.
fn env_name(name: &str) -> String {
    format!("POLLEN_{}", name.to_uppercase().replace('-', "_"))
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the settings file {}", path.display()))
}

/// The flags a settings file stands for, leaving out keys `skip` says to.
fn file_flags(path: &Path, skip: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    text_flags(path, &read(path)?, skip)
}

/// The flags a settings file's text stands for, leaving out keys `skip` says to; `path` names
/// the file in messages. Unknown keys, and values of the wrong shape, are errors that name the
/// key.
pub(crate) fn text_flags(
    path: &Path,
    text: &str,
    skip: impl Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let table: toml::Table =
        toml::from_str(text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let known = node_flags();
    let mut flags = Vec::new();
    for (key, value) in &table {
        let Some(&(_, takes_value)) = known.iter().find(|(name, _)| name == key) else {
            bail!(
                "{}: unknown key '{key}' (keys are pollen node's flags: {})",
                path.display(),
                known
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        if skip(key) {
            continue;
        }
        let wrong = |what: &str| anyhow::anyhow!("{}: '{key}' {what}", path.display());
        match (value, takes_value) {
            (toml::Value::Boolean(on), false) => {
                if *on {
                    flags.push(format!("--{key}"));
                }
            }
            (_, false) => return Err(wrong("is a switch: true or false")),
            (toml::Value::Array(items), true) => {
                for item in items {
                    flags.push(format!(
                        "--{key}={}",
                        scalar(item)
                            .ok_or_else(|| wrong("lists values that are not strings or numbers"))?
                    ));
                }
            }
            (v, true) => {
                let v = scalar(v).ok_or_else(|| wrong("takes a string or a number"))?;
                flags.push(format!("--{key}={v}"));
            }
        }
    }
    Ok(flags)
}

/// A TOML string or number as a flag's value.
fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

/// `pollen node`'s flags (long names) and whether each takes a value; `--config` itself is
/// not a key.
fn node_flags() -> Vec<(String, bool)> {
    let cmd = Cli::command();
    let Some(node) = cmd.find_subcommand("node") else {
        return Vec::new();
    };
    node.get_arguments()
        .filter_map(|a| {
            let long = a.get_long()?;
            (long != "config" && long != "help")
                .then(|| (long.to_string(), a.get_action().takes_values()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
        f
    }

    #[test]
    fn a_file_becomes_flags_before_the_command_lines() {
        let f = write(
            "data = \"/var/lib/pollen\"\nmax-upload-rate = \"20M\"\njoin = [\"10.0.0.1:7711\", \"10.0.0.2:7711\"]\nno-signal = true\nmax-fetches = 8\n",
        );
        let path = f.path().to_str().expect("utf-8").to_string();
        let args = vec!["pollen", "node", "--config", &path, "--max-fetches", "9"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let out: Vec<String> = expand(args)
            .expect("expands")
            .into_iter()
            .map(|a| a.into_string().expect("utf-8"))
            .collect();
        let pos = |flag: &str| out.iter().position(|a| a == flag);
        assert!(
            out.contains(&"--data=/var/lib/pollen".to_string()),
            "{out:?}"
        );
        assert!(out.contains(&"--join=10.0.0.2:7711".to_string()), "{out:?}");
        assert!(out.contains(&"--no-signal".to_string()), "{out:?}");
        // A key on the command line is left out of the file's flags: the command line wins.
        assert!(
            pos("--max-fetches=8").is_none() && pos("--max-fetches").is_some(),
            "{out:?}"
        );
        assert!(!out.iter().any(|a| a.contains("config")), "{out:?}");
    }

    #[test]
    fn unknown_keys_and_wrong_shapes_are_named() {
        let f = write("data = \"/d\"\nmax-uplod-rate = \"1M\"\n");
        let err = check(f.path()).expect_err("unknown key").to_string();
        assert!(err.contains("unknown key 'max-uplod-rate'"), "{err}");
        let f = write("data = \"/d\"\nno-signal = \"yes\"\n");
        let err = format!("{:#}", check(f.path()).expect_err("not a switch"));
        assert!(err.contains("'no-signal' is a switch"), "{err}");
        let f = write("data = \"/d\"\nlisten = \"nowhere\"\n");
        let err = format!("{:#}", check(f.path()).expect_err("bad address"));
        assert!(err.contains("nowhere"), "{err}");
        let f = write("data = \"/d\"\nzone = \"eu\"\njoin = [\"1.2.3.4:7711\"]\n");
        assert_eq!(check(f.path()).expect("valid"), 3);
    }
}
