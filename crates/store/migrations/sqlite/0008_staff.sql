-- Issue 13: staff operators, their sessions and login attempts, and the
-- append-only, hash-chained audit log.
create table operator (
    id integer primary key,
    name text not null unique,
    role text not null check (role in ('administrator', 'cashier', 'building_manager', 'auditor')),
    -- argon2id PHC string (parameters and salt inside).
    password_phc text not null,
    -- true: every area, also ones created later; false: operator_area lists them.
    all_areas boolean not null,
    disabled_at_ms bigint,
    created_at_ms bigint not null,
    password_changed_at_ms bigint not null
);
create table operator_area (
    operator_id bigint not null references operator (id),
    area_id bigint not null references area (id),
    primary key (operator_id, area_id)
);
create table operator_building (
    operator_id bigint not null references operator (id),
    building_id bigint not null references building (id),
    primary key (operator_id, building_id)
);
-- The cookie holds a random token; only its SHA-256 is stored.
create table staff_session (
    token_hash text primary key,
    operator_id bigint not null references operator (id),
    csrf_token text not null,
    created_at_ms bigint not null,
    last_seen_at_ms bigint not null
);
create index staff_session_operator on staff_session (operator_id);
create table staff_login_attempt (
    id integer primary key,
    name text not null,
    client_ip text not null,
    ok boolean not null,
    at_ms bigint not null
);
create index staff_login_attempt_name on staff_login_attempt (name, at_ms);
create index staff_login_attempt_ip on staff_login_attempt (client_ip, at_ms);
-- seq is the row's place in the chain; hash = SHA-256 over the previous
-- row's hash and this row's canonical content (store::audit).
create table audit_log (
    seq bigint primary key,
    at_ms bigint not null,
    operator_id bigint,
    operator_name text not null,
    action text not null,
    client_ip text not null,
    subject text not null,
    before_json text,
    after_json text,
    prev_hash text not null,
    hash text not null unique
);
create index audit_log_operator on audit_log (operator_name, seq);
create index audit_log_action on audit_log (action, seq);
create index audit_log_at on audit_log (at_ms);
create trigger audit_log_no_update before update on audit_log
begin
    select raise(abort, 'audit_log is append-only: UPDATE refused');
end;
create trigger audit_log_no_delete before delete on audit_log
begin
    select raise(abort, 'audit_log is append-only: DELETE refused');
end;
