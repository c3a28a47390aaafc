//! The `partner-operator` command line.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "partner-operator",
    version,
    about = "Onboard a distributor's partners as tenants, declaratively"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML (what `crds/` holds).
    Crds,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds => print!("{}", partner_operator::api::crds_yaml()),
    }
}
