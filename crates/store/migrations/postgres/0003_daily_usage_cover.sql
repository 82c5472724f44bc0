-- The overview and bill pages read ~31 daily-usage rows per view; with years
-- of history a covering index lets both backends answer from the index alone
-- instead of one table lookup per row (measured: ~35% more overview pages/s
-- on SQLite with 3 years of history, see docs/BENCHMARKS.md "Pages").
create index daily_usage_cover on daily_usage (meter_id, day, status, usage_centikwh);
