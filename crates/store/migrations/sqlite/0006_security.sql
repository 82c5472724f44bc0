-- Issue 10 (security hardening).
-- Binding attempts are also counted campus-wide (the global throttle).
create index bind_attempt_at on bind_attempt (at_ms);
-- Looking up a meter one is not bound to (to buy for someone else) is
-- throttled like binding: one row per lookup, counted per student and per
-- client address over the last hour.
create table meter_lookup (
    id integer primary key,
    student_id bigint not null,
    meter_address text not null,
    client_ip text not null,
    at_ms bigint not null
);
create index meter_lookup_student on meter_lookup (student_id, at_ms);
create index meter_lookup_ip on meter_lookup (client_ip, at_ms);
