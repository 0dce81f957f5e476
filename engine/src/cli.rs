//! The command line of `partyline serve`, shared with party authors' own binaries
//! ([`crate::Server::from_args`]): the same flags, the same TOML file, the same defaults,
//! so a binary with its own parties runs and is configured like `partyline serve`.

use crate::config::{Admin, Config, LogFormat};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The flags of `partyline serve` (each overrides the `--config` file's key).
#[derive(Debug, Clone, Default, Parser)]
pub struct ServeArgs {
    /// Address to listen on for clients [default: 127.0.0.1:1999].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin listener (`/metrics`, `/health`): an address, or `off`
    /// [default: 127.0.0.1:9464].
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<Admin>,
    /// Number of shards [default: one per core].
    #[arg(long)]
    pub shards: Option<usize>,
    /// Folder for on-disk state: room storage and alarms [default: .partyline].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A TOML config file (docs/operations.md lists every key; flags override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Do not pin shards to cores.
    #[arg(long)]
    pub no_pin: bool,
    /// Which node of the config's `[cluster]` list this process is.
    #[arg(long, value_name = "ID")]
    pub node: Option<String>,
    /// A folder of static files to serve for paths that are not party paths (read again on
    /// SIGHUP).
    #[arg(long, value_name = "DIR")]
    pub serve: Option<PathBuf>,
    /// How log lines are written: `text`, or `json` (one object per line) [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// TLS: the certificate chain (PEM) for `wss://` and `https://`; with --tls-key.
    /// Reloaded on SIGHUP.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS: the certificate's private key (PEM); with --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// The configuration: the file's (or the defaults), then the flags over it.
    pub fn config(&self) -> Result<Config, String> {
        let mut cfg = match &self.config {
            Some(path) => Config::from_toml_file(path)?,
            None => Config::default(),
        };
        if let Some(l) = self.listen {
            cfg.listen = l;
        }
        if let Some(a) = self.admin {
            cfg.admin = a;
        }
        if let Some(s) = self.shards {
            cfg.shards = s;
        }
        if let Some(d) = &self.data {
            cfg.data.clone_from(d);
        }
        if self.no_pin {
            cfg.pin_cores = false;
        }
        if self.node.is_some() {
            cfg.node.clone_from(&self.node);
        }
        if self.serve.is_some() {
            cfg.serve.clone_from(&self.serve);
        }
        if let Some(f) = self.log_format {
            cfg.log_format = f;
        }
        if self.tls_cert.is_some() {
            cfg.tls_cert.clone_from(&self.tls_cert);
            cfg.tls_key.clone_from(&self.tls_key);
        }
        Ok(cfg)
    }
}
