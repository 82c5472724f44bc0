-- Campus policy, part 3 (issue 14 item 6, E4): no-cut ("friendly") hours
-- and scheduled power-off hours, per area or building (store::schedule).
--
-- A window is a daily span of campus-local time on a set of weekdays (the
-- day it starts): from start_minute to end_minute after midnight, crossing
-- midnight when end_minute < start_minute. A building's window of a kind
-- replaces its area's. Rows are never deleted: setting a window clears the
-- one in force (cleared_at_ms) and adds a new row, so an occurrence under
-- way keeps the row it started from.
create table policy_window (
    id integer primary key,
    area_id bigint not null references area (id),
    -- null: the whole area; else one building of it.
    building_id bigint references building (id),
    kind text not null check (kind in ('no_cut', 'power_off')),
    start_minute bigint not null check (start_minute between 0 and 1439),
    end_minute bigint not null check (end_minute between 0 and 1439),
    -- bit 0 Monday ... bit 6 Sunday: the days a window starts on.
    weekdays bigint not null check (weekdays between 1 and 127),
    operator_name text not null,
    created_at_ms bigint not null,
    cleared_at_ms bigint,
    check (start_minute <> end_minute)
);
create unique index policy_window_area on policy_window (area_id, kind)
    where building_id is null and cleared_at_ms is null;
create unique index policy_window_building on policy_window (building_id, kind)
    where building_id is not null and cleared_at_ms is null;

-- One row per occurrence of a window (its start instant): the unique key
-- makes several schedulers agree on one occurrence.
create table window_occurrence (
    id integer primary key,
    window_id bigint not null references policy_window (id),
    start_ms bigint not null,
    end_ms bigint not null check (end_ms > start_ms),
    ended_at_ms bigint,
    created_at_ms bigint not null,
    unique (window_id, start_ms)
);
create index window_occurrence_open on window_occurrence (end_ms) where ended_at_ms is null;

-- What an occurrence did to each meter at its start and at its end: the
-- primary key is the guard that enqueues each edge's command once per
-- meter whatever the number of schedulers. command_id is null when the
-- meter was skipped (skipped says why).
create table window_meter (
    occurrence_id bigint not null references window_occurrence (id),
    meter_id bigint not null references meter (id),
    phase text not null check (phase in ('start', 'end')),
    command_id bigint references relay_command (id),
    skipped text,
    created_at_ms bigint not null,
    primary key (occurrence_id, meter_id, phase)
);
