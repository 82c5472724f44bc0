-- WeChat official-account notifications (issue 15, store::wechat_outbox).
-- Whether a student follows the official account, as last learnt: from an
-- event push (subscribe/unsubscribe), from user info, or from WeChat
-- answering 43004 to a template message. No row: unknown.
create table wechat_follow (
    student_id bigint primary key references student (id),
    follows text not null check (follows in ('unknown', 'yes', 'no')),
    source text not null check (source in ('event', 'user_info', '43004')),
    changed_at_ms bigint not null
);
-- A student's notification choices. No row: the defaults (zh-CN, nothing
-- pushed 23:00-07:00 campus time, every kind on).
create table notify_pref (
    student_id bigint primary key references student (id),
    language text not null default 'zh-CN' check (language in ('zh-CN', 'en')),
    -- minutes after campus midnight; start = end means no quiet hours.
    quiet_start_min bigint not null default 1380 check (quiet_start_min between 0 and 1439),
    quiet_end_min bigint not null default 420 check (quiet_end_min between 0 and 1439),
    updated_at_ms bigint not null
);
-- Event kinds a student switched off (a row per kind; no row: on).
create table notify_pref_kind (
    student_id bigint not null references student (id),
    kind text not null,
    enabled boolean not null,
    primary key (student_id, kind)
);
-- One WeChat template message per (event, recipient), written in the
-- transaction of the inbox message it copies; the unique key makes it at
-- most once across restarts and nodes. The sender claims due rows with a
-- lease and a fencing epoch (like job) and finishes them only under it.
create table wechat_outbox (
    id integer primary key,
    event_key text not null,
    student_id bigint not null references student (id),
    kind text not null,
    -- store::wechat_outbox::OutboxArgs JSON (the inbox message's arguments and more).
    args text not null,
    -- pushed even in quiet hours (a delivery confirmation being waited for).
    urgent boolean not null default false,
    state text not null check (state in ('pending', 'sending', 'sent', 'failed', 'skipped')),
    attempts bigint not null default 0,
    next_attempt_at_ms bigint not null,
    lease_epoch bigint not null default 0,
    locked_by text,
    locked_until_ms bigint,
    last_errcode bigint,
    last_error text,
    msgid bigint,
    created_at_ms bigint not null,
    updated_at_ms bigint not null,
    unique (event_key, student_id)
);
create index wechat_outbox_due on wechat_outbox (next_attempt_at_ms) where state in ('pending', 'sending');
create index wechat_outbox_updated on wechat_outbox (updated_at_ms, state);
