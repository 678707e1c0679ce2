//! `davsync generate` (hidden): writes the man pages and shell completions from the clap
//! definitions, so help text, man pages and completions have one source.

use std::fs;
use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::{Cli, CliError, complete};

/// Write man pages and shell completions generated from the CLI definition
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Directory for the man pages
    #[arg(long, value_name = "DIR")]
    man: Option<PathBuf>,
    /// Directory for the shell completions
    #[arg(long, value_name = "DIR")]
    completions: Option<PathBuf>,
}

pub fn cmd_generate(args: &GenerateArgs) -> Result<(), CliError> {
    let failed =
        |path: &PathBuf, e: std::io::Error| CliError::Failed(format!("{}: {e}", path.display()));
    if let Some(dir) = &args.man {
        fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        for (name, page) in man_pages()? {
            let path = dir.join(name);
            fs::write(&path, page).map_err(|e| failed(&path, e))?;
        }
    }
    if let Some(dir) = &args.completions {
        fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
        for (name, script) in complete::scripts().map_err(|e| failed(dir, e))? {
            let path = dir.join(name);
            fs::write(&path, script).map_err(|e| failed(&path, e))?;
        }
    }
    Ok(())
}

/// `davsync.1` and one `davsync-<command>.1` per visible subcommand.
fn man_pages() -> Result<Vec<(String, Vec<u8>)>, CliError> {
    let render = |cmd: clap::Command| -> Result<Vec<u8>, CliError> {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .render(&mut out)
            .map_err(|e| CliError::Failed(format!("rendering man page: {e}")))?;
        Ok(out)
    };
    let root = Cli::command();
    let mut pages = vec![("davsync.1".to_owned(), render(root.clone())?)];
    for sub in root.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("davsync-{}", sub.get_name());
        pages.push((format!("{name}.1"), render(sub.clone().name(name.clone()))?));
    }
    Ok(pages)
}
