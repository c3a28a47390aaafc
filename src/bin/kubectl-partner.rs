//! `kubectl-partner`: the kubectl plugin (`kubectl partner ...`). Everything is in
//! `partner_operator::plugin`, its printing in `partner_operator::plugin::output`.

use std::process::ExitCode;

use clap::Parser;
use partner_operator::plugin::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    match runtime.block_on(plugin::main(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            plugin::output::error(&err.0);
            ExitCode::FAILURE
        }
    }
}
