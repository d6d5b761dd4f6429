-- The shop the examples of docs/operating.md and docs/cli.md run against: three tables in
-- their own schema, rivet_docs, of the local PostgreSQL's `test` database.
--   psql postgresql://postgres@127.0.0.1:5432/test -f setup.sql
-- Re-running it starts over (the schema is dropped first). Every value is fixed, so every
-- run of the examples exports the same rows.
DROP SCHEMA IF EXISTS rivet_docs CASCADE;
CREATE SCHEMA rivet_docs;

CREATE TABLE rivet_docs.customers (
    id         integer PRIMARY KEY,
    email      text NOT NULL,
    country    char(2) NOT NULL,
    created_at timestamptz NOT NULL
);
INSERT INTO rivet_docs.customers
SELECT g, 'customer' || g || '@example.com', (ARRAY['DE', 'FR', 'NL', 'US'])[g % 4 + 1],
       TIMESTAMPTZ '2025-01-01 00:00:00+00' + g * INTERVAL '1 day'
FROM generate_series(1, 200) AS g;

-- Orders change: the application sets updated_at on every write, so `orders` is exported
-- incrementally on it (the index serves the cursor).
CREATE TABLE rivet_docs.orders (
    id          bigint PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES rivet_docs.customers,
    amount      numeric(12, 2) NOT NULL,
    status      text NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX orders_updated_at ON rivet_docs.orders (updated_at);
INSERT INTO rivet_docs.orders
SELECT g, g % 200 + 1, ((g * 7919) % 100000) / 100.0,
       (ARRAY['placed', 'paid', 'shipped'])[g % 3 + 1],
       TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '1 minute'
FROM generate_series(1, 3000) AS g;

-- Events only grow, keyed by a bigint: `events` is exported in key ranges (chunks).
CREATE TABLE rivet_docs.events (
    id       bigint PRIMARY KEY,
    order_id bigint NOT NULL,
    kind     text NOT NULL,
    payload  jsonb,
    at       timestamptz NOT NULL
);
INSERT INTO rivet_docs.events
SELECT g, g % 3000 + 1, (ARRAY['view', 'cart', 'checkout', 'refund'])[g % 4 + 1],
       jsonb_build_object('step', g % 7),
       TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * INTERVAL '10 seconds'
FROM generate_series(1, 20000) AS g;

ANALYZE rivet_docs.customers, rivet_docs.orders, rivet_docs.events;
