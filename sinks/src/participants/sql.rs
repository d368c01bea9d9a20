//! The participants' tables. Every participant records the effects it applied
//! in `participant_effects`, one row per (participant, effect key, direction):
//! the primary key is what makes a step and its compensation apply at most once.

use gavel_runtime::postgres::Migration;

pub fn migrations() -> Vec<Migration> {
    vec![Migration {
        version: 300,
        name: "saga_participants",
        sql: "
        CREATE TABLE {schema}.participant_effects (
            participant text NOT NULL,
            effect_key text NOT NULL,
            direction text NOT NULL CHECK (direction IN ('do', 'undo')),
            command_id text NOT NULL,
            saga_kind text NOT NULL,
            saga_id text NOT NULL,
            reference text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (participant, effect_key, direction)
        );
        -- Money in minor units, signed from the house's point of view: a charge
        -- is +amount from the winner, a refund -amount, a payout -amount to the
        -- seller, a commission is what the house keeps (+ on its own account).
        CREATE TABLE {schema}.money_movements (
            id bigserial PRIMARY KEY,
            effect_key text NOT NULL,
            saga_kind text NOT NULL,
            saga_id text NOT NULL,
            kind text NOT NULL CHECK (kind IN ('charge', 'refund', 'payout',
                'payout_reversal', 'commission', 'commission_reversal')),
            account text NOT NULL,
            amount_minor bigint NOT NULL CHECK (amount_minor >= 0),
            currency text NOT NULL
        );
        CREATE INDEX money_movements_saga ON {schema}.money_movements (saga_kind, saga_id);
        CREATE TABLE {schema}.auction_payments (
            auction_id text PRIMARY KEY,
            paid boolean NOT NULL,
            changed_at timestamptz NOT NULL DEFAULT now()
        );
        -- Append-only; each entry hashes its predecessor's hash and its own
        -- fields, so a changed or removed entry breaks the chain.
        CREATE TABLE {schema}.ownership_ledger (
            seq bigserial PRIMARY KEY,
            auction_id text NOT NULL,
            from_user text NOT NULL,
            to_user text NOT NULL,
            effect_key text NOT NULL,
            direction text NOT NULL,
            prev_hash text NOT NULL,
            hash text NOT NULL UNIQUE
        );
        CREATE TABLE {schema}.notifications (
            id bigserial PRIMARY KEY,
            effect_key text NOT NULL,
            recipient text NOT NULL,
            kind text NOT NULL,
            body jsonb NOT NULL
        );
        CREATE TABLE {schema}.inventory_stock (
            sku text PRIMARY KEY,
            available integer NOT NULL CHECK (available >= 0)
        );
        CREATE TABLE {schema}.inventory_movements (
            id bigserial PRIMARY KEY,
            effect_key text NOT NULL,
            sku text NOT NULL,
            quantity integer NOT NULL
        );
        CREATE TABLE {schema}.shipments (
            order_id text PRIMARY KEY,
            effect_key text NOT NULL,
            tracking text NOT NULL,
            address text NOT NULL
        );",
    }]
}
