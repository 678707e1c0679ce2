//! `davsync import-vdirsyncer`: write a davsync config equivalent to a vdirsyncer config.

use std::fs;
use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use davsync::config::ProcessEnv;
use davsync::import_vdirsyncer;

use super::CliError;

/// Write a davsync config equivalent to a vdirsyncer config
///
/// Reads a vdirsyncer 0.21 config (INI sections with JSON values) and writes the davsync
/// config that syncs the same storages and pairs: filesystem becomes vdir, http becomes webcal,
/// password.fetch commands become { cmd = [...] }, collections, conflict_resolution, metadata,
/// start_date/end_date (the common datetime.now() ± timedelta(days=N) forms) and status_path
/// carry over. Every option without an equivalent is kept as a comment starting with
/// "vdirsyncer:" and named in a warning on stderr. A Google storage needs `davsync auth
/// STORAGE` once: vdirsyncer's token file cannot be reused.
///
/// Coming from vdirsyncer takes two commands: `davsync import-vdirsyncer -o
/// ~/.config/davsync/config.toml`, then `davsync sync`. The first sync adopts the items both
/// sides already share (the same content, by normalized hash) without writing them.
///
/// Output: the davsync config on stdout (or in the file -o names); "warning: PATH: ..." lines
/// on stderr.
///
/// Exit status: 0 when the config was written (warnings or not); 1 when it could not be
/// written; 2 when the vdirsyncer config cannot be found or read (the error names its line) or
/// the output file exists.
#[derive(Debug, Args)]
pub struct ImportVdirsyncerArgs {
    /// The vdirsyncer config [default: $VDIRSYNCER_CONFIG, ~/.vdirsyncer/config,
    /// $XDG_CONFIG_HOME/vdirsyncer/config, the first that exists]
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    /// Write the davsync config to this file (never replaced: an existing file is an error)
    /// instead of stdout
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

pub fn cmd_import_vdirsyncer(args: &ImportVdirsyncerArgs) -> Result<(), CliError> {
    let path = match &args.path {
        Some(path) => path.clone(),
        None => {
            let candidates = import_vdirsyncer::config_candidates(&ProcessEnv);
            candidates
                .iter()
                .find(|p| p.exists())
                .cloned()
                .ok_or_else(|| {
                    let tried: Vec<String> =
                        candidates.iter().map(|p| p.display().to_string()).collect();
                    CliError::Usage(format!(
                        "no vdirsyncer config found (looked at: {}); name it as PATH",
                        tried.join(", ")
                    ))
                })?
        }
    };
    let text = fs::read_to_string(&path)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    let dir = std::path::absolute(&path)
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from));
    let translation = import_vdirsyncer::translate(&text, dir.as_deref())
        .map_err(|e| CliError::Usage(format!("{}:{}: {}", path.display(), e.line, e.message)))?;
    for warning in &translation.warnings {
        eprintln!("warning: {}: {warning}", path.display());
    }
    match &args.output {
        None => {
            std::io::stdout()
                .write_all(translation.text.as_bytes())
                .map_err(|e| CliError::Failed(format!("writing to stdout: {e}")))?;
        }
        Some(out) => {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(out)
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        CliError::Usage(format!(
                            "{} exists; not replacing it (name another file or move it away)",
                            out.display()
                        ))
                    } else {
                        CliError::Failed(format!("{}: {e}", out.display()))
                    }
                })?;
            file.write_all(translation.text.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| CliError::Failed(format!("{}: {e}", out.display())))?;
            eprintln!(
                "wrote {}; check it, then run: davsync -c {} sync",
                out.display(),
                out.display()
            );
        }
    }
    Ok(())
}
