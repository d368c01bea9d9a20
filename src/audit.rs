//! `gavel audit`: checks of the event store.

use anyhow::{bail, Result};
use gavel_runtime::{postgres, Config};
use gavel_sinks::event_store as es;

#[derive(clap::Subcommand)]
pub enum AuditAction {
    /// Recompute every aggregate's hash chain; non-zero exit if any link is broken.
    Verify,
    /// An auction's state as of an instant (epoch millis or RFC 3339), from the event store.
    AsOf { auction_id: String, at: String },
}

pub async fn run(config: &Config, action: AuditAction) -> Result<()> {
    let client = postgres::connect(config).await?;
    let schema = &config.postgres_schema;
    postgres::require_migrated(&client, schema, &es::migrations()).await?;
    match action {
        AuditAction::Verify => {
            let report = es::verify(&client, schema).await?;
            println!(
                "{} events in {} aggregates checked",
                report.events, report.aggregates
            );
            for line in &report.broken {
                println!("BROKEN {line}");
            }
            if !report.intact() {
                bail!(
                    "{} aggregate(s) with a broken hash chain",
                    report.broken.len()
                );
            }
            println!("every hash chain intact");
        }
        AuditAction::AsOf { auction_id, at } => {
            let as_of = es::parse_instant(&at).map_err(anyhow::Error::msg)?;
            let id = gavel_domain::AuctionId::new(auction_id.clone());
            match es::state_as_of(&client, schema, &id, as_of).await? {
                Some(auction) => println!("{}", serde_json::to_string_pretty(&auction)?),
                None => println!("{auction_id} did not exist at {at}"),
            }
        }
    }
    Ok(())
}
