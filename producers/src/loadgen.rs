//! A realistic auction workload: hundreds of auctions, thousands of contended
//! bids (some deliberately invalid), reserves, cancellations. It also predicts,
//! with the pure domain, the exact final state the pipeline must reach.

use gavel_domain::auction::{
    decide, evolve, Auction, AuctionCommand, CancelAuction, CreateAuction, EndAuction, PlaceBid,
    StartAuction, CLOCK_ACTOR,
};
use gavel_domain::{AuctionId, Currency, Money, TenantId, Timestamp, UserId};
use gavel_runtime::envelope::CommandMeta;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

pub struct LoadSpec {
    pub run_id: String,
    pub tenant: String,
    pub auctions: usize,
    pub bids: usize,
    /// Auctions end this long after `now`.
    pub duration_ms: i64,
    pub seed: u64,
}

pub type Command = (AuctionCommand, CommandMeta);

/// Commands in the order they must be sent, in three phases.
pub struct Workload {
    pub setup: Vec<Command>,
    pub bids: Vec<Command>,
    /// Sent once `end_time` has passed.
    pub ends: Vec<Command>,
    pub end_time: Timestamp,
}

impl Workload {
    pub fn command_count(&self) -> usize {
        self.setup.len() + self.bids.len() + self.ends.len()
    }

    pub fn auction_ids(&self) -> Vec<AuctionId> {
        self.setup
            .iter()
            .filter(|(c, _)| matches!(c, AuctionCommand::Create(_)))
            .map(|(c, _)| c.auction_id().clone())
            .collect()
    }

    /// The state every auction must end in, by applying the commands in order
    /// with the pure domain: setup and bids before the end time, ends after it.
    pub fn expected(&self) -> BTreeMap<AuctionId, Auction> {
        self.predict(true)
    }

    /// The state before any auction ends: setup and bids only.
    pub fn expected_before_end(&self) -> BTreeMap<AuctionId, Auction> {
        self.predict(false)
    }

    fn predict(&self, with_ends: bool) -> BTreeMap<AuctionId, Auction> {
        let mut states: BTreeMap<AuctionId, Auction> = BTreeMap::new();
        let before_end = self.end_time.plus_millis(-1);
        let no_ends = Vec::new();
        let ends = if with_ends { &self.ends } else { &no_ends };
        let phases = [
            (&self.setup, before_end),
            (&self.bids, before_end),
            (ends, self.end_time),
        ];
        for (commands, now) in phases {
            for (command, _) in commands.iter() {
                let id = command.auction_id().clone();
                let mut state = states.remove(&id);
                if let Ok(events) = decide(state.as_ref(), command, now) {
                    for event in &events {
                        state = evolve(state, &id, event);
                    }
                }
                if let Some(state) = state {
                    states.insert(id, state);
                }
            }
        }
        states
    }
}

pub fn generate(spec: &LoadSpec, now: Timestamp) -> Workload {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let eur = Currency::parse("EUR").unwrap_or_else(|_| unreachable!("EUR is a valid code"));
    let money = |minor: i64| {
        Money::new(minor, eur).unwrap_or_else(|_| unreachable!("generated amounts are positive"))
    };
    let end_time = now.plus_millis(spec.duration_ms);
    let tenant = TenantId::new(spec.tenant.clone());
    let meta = |actor: &UserId| CommandMeta::new(tenant.clone(), actor.clone());
    let clock = UserId::new(CLOCK_ACTOR);
    let mut setup = Vec::new();
    let mut prices: Vec<(AuctionId, UserId, i64, i64)> = Vec::new();
    for n in 0..spec.auctions {
        let auction_id = AuctionId::new(format!("{}-auction-{n:05}", spec.run_id));
        let seller_id = UserId::new(format!("{}-seller-{}", spec.run_id, n % 40));
        let starting = 1_000 * rng.gen_range(5..200);
        let increment = [100, 250, 500, 1_000][rng.gen_range(0..4)];
        let reserve = rng.gen_bool(0.3).then(|| money(starting * 2));
        setup.push((
            AuctionCommand::Create(CreateAuction {
                auction_id: auction_id.clone(),
                seller_id: seller_id.clone(),
                title: format!("{} #{n}", TITLES[n % TITLES.len()]),
                starting_price: money(starting),
                reserve_price: reserve,
                min_increment: money(increment),
                end_time,
            }),
            meta(&seller_id),
        ));
        let command = if rng.gen_bool(0.03) {
            AuctionCommand::Cancel(CancelAuction {
                auction_id: auction_id.clone(),
                reason: "withdrawn by seller".into(),
            })
        } else {
            AuctionCommand::Start(StartAuction {
                auction_id: auction_id.clone(),
            })
        };
        setup.push((command, meta(&seller_id)));
        prices.push((auction_id, seller_id, starting, increment));
    }
    let bids = generate_bids(spec, &mut rng, &prices, money, &meta);
    let ends = prices
        .iter()
        .map(|(id, ..)| {
            (
                AuctionCommand::End(EndAuction {
                    auction_id: id.clone(),
                }),
                meta(&clock),
            )
        })
        .collect();
    Workload {
        setup,
        bids,
        ends,
        end_time,
    }
}

/// Bids skewed towards a few hot auctions; about 2 % by the seller and 5 % too
/// low, so rejections flow through the pipeline too.
fn generate_bids(
    spec: &LoadSpec,
    rng: &mut StdRng,
    auctions: &[(AuctionId, UserId, i64, i64)],
    money: impl Fn(i64) -> Money,
    meta: &impl Fn(&UserId) -> CommandMeta,
) -> Vec<Command> {
    let mut current: Vec<Option<i64>> = vec![None; auctions.len()];
    let mut bids = Vec::with_capacity(spec.bids);
    if auctions.is_empty() {
        return bids;
    }
    for _ in 0..spec.bids {
        let skew: f64 = rng.gen::<f64>().powi(2);
        let index = ((skew * auctions.len() as f64) as usize).min(auctions.len() - 1);
        let (auction_id, seller_id, starting, increment) = &auctions[index];
        let roll: f64 = rng.gen();
        let (bidder, amount) = if roll < 0.02 {
            (
                seller_id.clone(),
                current[index].unwrap_or(*starting) + increment,
            )
        } else if roll < 0.07 {
            (
                bidder_name(spec, rng),
                current[index].unwrap_or(*starting) - 1,
            )
        } else {
            let amount = match current[index] {
                None => *starting,
                Some(price) => price + increment * rng.gen_range(1..4),
            };
            current[index] = Some(amount);
            (bidder_name(spec, rng), amount)
        };
        let bid = PlaceBid {
            auction_id: auction_id.clone(),
            bidder_id: bidder,
            amount: money(amount.max(1)),
            max_amount: None,
        };
        let meta = meta(&bid.bidder_id);
        bids.push((AuctionCommand::PlaceBid(bid), meta));
    }
    bids
}

fn bidder_name(spec: &LoadSpec, rng: &mut StdRng) -> UserId {
    UserId::new(format!("{}-bidder-{}", spec.run_id, rng.gen_range(0..500)))
}

const TITLES: [&str; 8] = [
    "Harbour at Dusk, oil on canvas",
    "Untitled (Blue Study)",
    "Bronze Hare",
    "Portrait of a Lady in Green",
    "Kinetic Sculpture No. 4",
    "Woodcut: Mountain Pass",
    "Still Life with Quinces",
    "Silver Gelatin Print, 1962",
];

#[cfg(test)]
mod tests {
    use super::*;
    use gavel_domain::auction::AuctionStatus;

    fn spec() -> LoadSpec {
        LoadSpec {
            run_id: "r".into(),
            tenant: "t".into(),
            auctions: 50,
            bids: 2_000,
            duration_ms: 10_000,
            seed: 7,
        }
    }

    #[test]
    fn the_workload_is_deterministic_for_a_seed() {
        let a = generate(&spec(), Timestamp::from_millis(0));
        let b = generate(&spec(), Timestamp::from_millis(0));
        let amounts = |w: &Workload| {
            w.bids
                .iter()
                .map(|(c, _)| format!("{c:?}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(amounts(&a), amounts(&b));
        assert_eq!(a.command_count(), 50 * 3 + 2_000);
    }

    #[test]
    fn every_auction_ends_or_is_cancelled_with_some_rejections_along_the_way() {
        let workload = generate(&spec(), Timestamp::from_millis(0));
        let expected = workload.expected();
        assert_eq!(expected.len(), 50);
        assert!(expected
            .values()
            .all(|a| matches!(a.status, AuctionStatus::Ended | AuctionStatus::Cancelled)));
        let accepted_bids: u32 = expected.values().map(|a| a.bid_count).sum();
        assert!(
            accepted_bids > 1_000 && accepted_bids < 2_000,
            "{accepted_bids}"
        );
        assert!(expected
            .values()
            .any(|a| a.status == AuctionStatus::Ended && a.winner_id.is_none() && a.bid_count > 0));
    }
}
