-- Campus policy (issue 14 item 6, E4).
--
-- A price schedule: the unit price of an area, or of one building of it,
-- from an instant on (the start of a campus-local day). The price of an
-- order is the one in force for its meter at the order's creation — the
-- meter's own tariff, else the building's latest row in force, else the
-- area's, else area.unit_price_centifen_per_kwh — and is frozen on the
-- order (orders.unit_price_centifen_per_kwh) as before. A row is only ever
-- added for the future (store::policy::schedule_price), so an order already
-- created keeps its price and a past price stays what it was.
create table price_schedule (
    id integer primary key,
    area_id bigint not null references area (id),
    -- null: the whole area; else one building of it.
    building_id bigint references building (id),
    unit_price_centifen_per_kwh bigint not null check (unit_price_centifen_per_kwh > 0),
    effective_from_ms bigint not null,
    operator_name text not null,
    created_at_ms bigint not null,
    check (effective_from_ms > created_at_ms)
);
create index price_schedule_scope on price_schedule (area_id, building_id, effective_from_ms);

-- Per-scope settings: one row per area (building_id null) and per building.
-- low_balance_centikwh, when set, replaces the meters' own thresholds
-- (a building's row before its area's).
create table campus_policy (
    id integer primary key,
    area_id bigint not null references area (id),
    building_id bigint references building (id),
    low_balance_centikwh bigint check (low_balance_centikwh >= 0),
    operator_name text not null,
    updated_at_ms bigint not null
);
create unique index campus_policy_area on campus_policy (area_id) where building_id is null;
create unique index campus_policy_building on campus_policy (building_id) where building_id is not null;
