-- Inbox messages as a kind plus typed arguments (store::message), rendered
-- in the reader's language when read; rows from before keep title/body and
-- have no args. New rows store empty title/body.
alter table message add column args text;

-- Overdraft energy used (DI 00900101), 0.01 kWh, as last read; null before
-- the first reading.
alter table meter_state add column overdraft_centikwh bigint;
