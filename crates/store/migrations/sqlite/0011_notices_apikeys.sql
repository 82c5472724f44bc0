-- Issue 13 items 7 and 1: notices get an editor's fields (schedule,
-- target, pin, push flag, who created and last edited them), and the
-- integrations' bearer token becomes named, revocable API keys.
alter table notice add column target text not null default 'campus'
    check (target in ('campus', 'area', 'buildings'));
update notice set target = 'area' where area_id is not null;
alter table notice add column shown_from_ms bigint;
alter table notice add column shown_until_ms bigint;
alter table notice add column pinned boolean not null default false;
alter table notice add column push boolean not null default false;
alter table notice add column created_by bigint references operator (id);
alter table notice add column updated_by bigint references operator (id);
alter table notice add column updated_at_ms bigint;
-- Bumped by every edit; an edit names the revision it was made from.
alter table notice add column revision bigint not null default 1;
-- The buildings of a notice whose target is 'buildings' (all in its area).
create table notice_building (
    notice_id bigint not null references notice (id),
    building_id bigint not null references building (id),
    primary key (notice_id, building_id)
);
create index notice_building_building on notice_building (building_id);
-- The secret is 256 random bits shown once; only its SHA-256 is stored.
create table api_key (
    id integer primary key,
    name text not null unique,
    role text not null check (role in ('administrator', 'cashier', 'building_manager', 'auditor')),
    secret_hash text not null unique,
    created_at_ms bigint not null,
    created_by bigint references operator (id),
    last_used_at_ms bigint,
    revoked_at_ms bigint,
    revoked_by bigint references operator (id)
);
