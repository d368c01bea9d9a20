//! The commands of a load run, generated one at a time: auctions are created
//! and started first, then bids from many users pick an auction by a Zipf
//! distribution (a few hot lots get most bids), and bid wars break out on the
//! auctions closest to their end: a share of bids goes to the lots closing
//! next, from two to four rivals outbidding each other.
//!
//! Auction end times are spread over the second part of the planned run (plus
//! a margin), so auctions really do end while it runs and late bids are
//! rejected as they would be live. Amounts follow the price each auction would
//! have if every earlier bid were accepted; under concurrency some lose races
//! and are rejected as too low, as in a real auction.

use super::zipf::Zipf;
use gavel_domain::auction::{AuctionCommand, CreateAuction, PlaceBid, StartAuction};
use gavel_domain::{AuctionId, Currency, Money, Timestamp, UserId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Share of bids that go to an auction about to close (the bid wars).
const WAR_SHARE: f64 = 0.3;
/// "About to close": its end falls within this share of the run from now.
const CLOSING_WINDOW: f64 = 0.05;
/// Share of deliberately too-low bids.
const LOW_BID_SHARE: f64 = 0.03;
/// Auctions end between these shares of the planned run (plus the margin).
const FIRST_END: f64 = 0.3;
const SELLERS: usize = 200;

#[derive(Debug, Clone)]
pub struct TrafficSpec {
    /// Prefix of auction and user ids, so runs never share auctions.
    pub run_id: String,
    pub auctions: usize,
    pub users: usize,
    /// Zipf exponent of auction popularity.
    pub zipf_s: f64,
    pub seed: u64,
    /// How long the run is planned to take, and how long after it the last auction ends.
    pub planned_ms: i64,
    pub margin_ms: i64,
}

/// One command and the user who sends it (the seller, or the bidder).
#[derive(Debug, Clone)]
pub struct Planned {
    pub command: AuctionCommand,
    pub user: UserId,
}

struct Lot {
    id: AuctionId,
    seller: UserId,
    price: Option<i64>,
    starting: i64,
    increment: i64,
    /// When it ends, as a share of the planned run.
    ends_at: f64,
}

pub struct Traffic {
    spec: TrafficSpec,
    rng: StdRng,
    zipf: Zipf,
    lots: Vec<Lot>,
    /// Lot indices sorted by end, for the closing-soon lookup.
    by_end: Vec<usize>,
    start: Timestamp,
    eur: Currency,
}

impl Traffic {
    /// None when the spec has no auctions or users, or a bad exponent.
    pub fn new(spec: TrafficSpec, start: Timestamp) -> Option<Self> {
        if spec.users == 0 {
            return None;
        }
        let zipf = Zipf::new(spec.auctions, spec.zipf_s)?;
        let eur = Currency::parse("EUR").ok()?;
        let mut rng = StdRng::seed_from_u64(spec.seed);
        let lots: Vec<Lot> = (0..spec.auctions)
            .map(|n| {
                let starting = 1_000 * rng.gen_range(5..200);
                Lot {
                    id: AuctionId::new(format!("{}-lot-{n}", spec.run_id)),
                    seller: UserId::new(format!("{}-seller-{}", spec.run_id, n % SELLERS)),
                    price: None,
                    starting,
                    increment: [100, 250, 500, 1_000][rng.gen_range(0..4)],
                    ends_at: rng.gen_range(FIRST_END..1.0),
                }
            })
            .collect();
        let mut by_end: Vec<usize> = (0..lots.len()).collect();
        by_end.sort_by(|a, b| lots[*a].ends_at.total_cmp(&lots[*b].ends_at));
        Some(Self {
            spec,
            rng,
            zipf,
            lots,
            by_end,
            start,
            eur,
        })
    }

    /// Create and start for every auction: two commands each, sent first.
    pub fn setup_len(&self) -> usize {
        2 * self.lots.len()
    }

    /// Command `index` of the run; `progress` in [0, 1] is how far the run is
    /// (used for bids only: which auctions are still open or about to close).
    pub fn command(&mut self, index: usize, progress: f64) -> Planned {
        if index < self.setup_len() {
            self.setup(index)
        } else {
            self.bid(progress)
        }
    }

    fn money(&self, minor: i64) -> Money {
        Money::new(minor.max(1), self.eur)
            .unwrap_or_else(|_| unreachable!("amounts are clamped positive"))
    }

    fn setup(&self, index: usize) -> Planned {
        let lot = &self.lots[index / 2];
        let command = if index.is_multiple_of(2) {
            let end_ms = (lot.ends_at * self.spec.planned_ms as f64) as i64 + self.spec.margin_ms;
            AuctionCommand::Create(CreateAuction {
                auction_id: lot.id.clone(),
                seller_id: lot.seller.clone(),
                title: format!("Lot {} of {}", index / 2, self.spec.run_id),
                starting_price: self.money(lot.starting),
                reserve_price: (index.is_multiple_of(10)).then(|| self.money(lot.starting * 2)),
                min_increment: self.money(lot.increment),
                end_time: self.start.plus_millis(end_ms),
            })
        } else {
            AuctionCommand::Start(StartAuction {
                auction_id: lot.id.clone(),
            })
        };
        Planned {
            command,
            user: lot.seller.clone(),
        }
    }

    fn bid(&mut self, progress: f64) -> Planned {
        let (index, war) = self.pick(progress);
        let bidder = if war {
            // Two to four rivals per lot fight it out.
            let rival = index * 7 + self.rng.gen_range(0..4);
            self.user(rival)
        } else {
            let n = self.rng.gen_range(0..self.spec.users);
            self.user(n)
        };
        let low = self.rng.gen_bool(LOW_BID_SHARE);
        let step = self.rng.gen_range(1..4);
        let lot = &mut self.lots[index];
        let amount = match (lot.price, low) {
            (None, false) => lot.starting,
            (None, true) => lot.starting - 1,
            (Some(price), true) => price,
            (Some(price), false) => price + lot.increment * step,
        };
        if !low {
            lot.price = Some(amount);
        }
        let auction_id = lot.id.clone();
        Planned {
            command: AuctionCommand::PlaceBid(PlaceBid {
                auction_id,
                bidder_id: bidder.clone(),
                amount: self.money(amount),
                max_amount: None,
            }),
            user: bidder,
        }
    }

    fn user(&self, n: usize) -> UserId {
        UserId::new(format!("{}-user-{}", self.spec.run_id, n % self.spec.users))
    }

    /// The auction of the next bid, and whether it is a bid-war bid.
    fn pick(&mut self, progress: f64) -> (usize, bool) {
        if self.rng.gen_bool(WAR_SHARE) {
            if let Some(index) = self.closing_soon(progress) {
                return (index, true);
            }
        }
        // Popular lots first, skipping ones already over (a few retries; past
        // that the bid goes out late, like a real one).
        let mut index = self.zipf.sample(&mut self.rng);
        for _ in 0..8 {
            if self.lots[index].ends_at > progress {
                break;
            }
            index = self.zipf.sample(&mut self.rng);
        }
        (index, false)
    }

    fn closing_soon(&mut self, progress: f64) -> Option<usize> {
        let lots = &self.lots;
        let from = self
            .by_end
            .partition_point(|i| lots[*i].ends_at <= progress);
        let to = self
            .by_end
            .partition_point(|i| lots[*i].ends_at <= progress + CLOSING_WINDOW);
        (from < to).then(|| self.by_end[self.rng.gen_range(from..to)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn traffic(auctions: usize) -> Traffic {
        let spec = TrafficSpec {
            run_id: "t".into(),
            auctions,
            users: 10_000,
            zipf_s: 1.0,
            seed: 9,
            planned_ms: 60_000,
            margin_ms: 5_000,
        };
        Traffic::new(spec, Timestamp::from_millis(1_000_000)).unwrap()
    }

    #[test]
    fn setup_creates_then_starts_every_auction_as_its_seller() {
        let mut t = traffic(3);
        let setup: Vec<Planned> = (0..t.setup_len()).map(|i| t.command(i, 0.0)).collect();
        assert_eq!(setup.len(), 6);
        for pair in setup.chunks(2) {
            let AuctionCommand::Create(create) = &pair[0].command else {
                panic!("expected a create: {:?}", pair[0].command)
            };
            assert!(matches!(pair[1].command, AuctionCommand::Start(_)));
            assert_eq!(pair[1].command.auction_id(), &create.auction_id);
            assert_eq!(pair[0].user, create.seller_id);
            let end = create.end_time.millis() - 1_000_000;
            assert!((18_000 + 5_000..=65_000).contains(&end), "{end}");
        }
    }

    #[test]
    fn bids_are_skewed_to_hot_auctions_and_wars_to_closing_ones() {
        let mut t = traffic(500);
        let setup = t.setup_len();
        let per_lot = bids_per_lot(&mut t, setup, 0.0);
        let hottest = per_lot
            .get(&AuctionId::new("t-lot-0"))
            .copied()
            .unwrap_or(0);
        let median = {
            let mut counts: Vec<usize> = per_lot.values().copied().collect();
            counts.sort_unstable();
            counts[counts.len() / 2]
        };
        assert!(hottest > 10 * median, "{hottest} vs median {median}");
        let per_lot = bids_per_lot(&mut t, setup, 0.5);
        // Lots closing in (0.5, 0.55] get the war share on top of their Zipf share.
        let closing: usize = t
            .lots
            .iter()
            .filter(|l| l.ends_at > 0.5 && l.ends_at <= 0.55)
            .map(|l| per_lot.get(&l.id).copied().unwrap_or(0))
            .sum();
        assert!(closing > 20_000 * 25 / 100, "{closing}");
    }

    fn bids_per_lot(t: &mut Traffic, setup: usize, progress: f64) -> HashMap<AuctionId, usize> {
        let mut per_lot: HashMap<AuctionId, usize> = HashMap::new();
        for i in 0..20_000 {
            let planned = t.command(setup + i, progress);
            let AuctionCommand::PlaceBid(bid) = planned.command else {
                panic!("expected a bid")
            };
            assert_eq!(planned.user, bid.bidder_id);
            *per_lot.entry(bid.auction_id).or_default() += 1;
        }
        per_lot
    }

    #[test]
    fn accepted_bids_raise_the_price_by_whole_increments() {
        let mut t = traffic(1);
        let setup = t.setup_len();
        let mut last = 0;
        for i in 0..200 {
            let AuctionCommand::PlaceBid(bid) = t.command(setup + i, 0.0).command else {
                panic!("expected a bid")
            };
            let amount = bid.amount.minor();
            if amount > last {
                let lot = &t.lots[0];
                assert!(last == 0 || (amount - last) % lot.increment == 0);
                last = amount;
            }
        }
        assert!(last > t.lots[0].starting);
    }
}
