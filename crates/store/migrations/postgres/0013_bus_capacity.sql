-- How many meters a bus may carry (issue 14: an import refuses a bus over
-- it). 64 is the plan's limit (domain::campus::BUS_METERS_MAX, the RS485
-- transceivers' unit load); the reference campus runs 58 per bus.
alter table bus add column meter_capacity bigint not null default 64 check (meter_capacity > 0);
