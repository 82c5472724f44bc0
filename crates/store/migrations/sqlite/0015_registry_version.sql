-- Issue 14 item 1: the head-end picks up registry changes without a restart.
-- Every registry change bumps the one row of registry_version in its own
-- transaction; head-ends poll it and reload the registry when it moved.
-- A retired meter keeps its row (history stays readable) but leaves its bus.
create table registry_version (
    id bigint primary key check (id = 1),
    version bigint not null
);
insert into registry_version (id, version) values (1, 0);
alter table meter add column retired_at_ms bigint;
