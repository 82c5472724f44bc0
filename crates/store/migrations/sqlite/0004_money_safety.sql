-- Money safety under concurrency (issue 9).
--
-- Fencing: every claim of a job takes a new lease epoch; completing,
-- failing, releasing or renewing a job names the epoch it holds, so a
-- worker whose lease ran out and was taken over can change nothing.
alter table job add column lease_epoch bigint not null default 0;

-- The platform's hoarding limit is the meter's own (the reference meter
-- profile holds at most 500.00 kWh); the old default let orders through
-- that the meter would refuse.
update meter set hoard_limit_centikwh = 50000 where hoard_limit_centikwh = 99999999;

-- Orders of one meter that still wait for delivery, looked up on every
-- purchase-number assignment and completion.
create index orders_meter_state on orders (meter_id, state, paid_at_ms);
