-- Idempotency keys of the JSON API (issue 9 item 7) and the readiness write
-- probe (issue 9 item 11). Keep in step with ../sqlite/0005_idempotency_health.sql.

-- One row per (scope, key) a client sent. The row is inserted in the same
-- transaction as the operation it guards and carries that operation's
-- answer, so a retry (or a concurrent twin, which waits on the unique key)
-- gets the stored answer instead of a second sale.
create table idempotency_key (
    scope text not null,
    idem_key text not null,
    -- SHA-256 (hex) of the canonical request: the same key with another
    -- request is refused.
    request_sha256 text not null,
    status_code integer not null,
    response_body text not null,
    created_at_ms bigint not null,
    primary key (scope, idem_key)
);
create index idempotency_key_created on idempotency_key (created_at_ms);

-- One row, rewritten by /readyz: a readiness check that only reads cannot
-- see a full disk or a read-only database.
create table health_probe (
    id integer primary key check (id = 1),
    probes bigint not null,
    at_ms bigint not null
);
