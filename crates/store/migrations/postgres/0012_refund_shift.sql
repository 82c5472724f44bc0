-- Cash paid back at the counter comes out of the refunding operator's open
-- shift, if they have one: its cash-up expects that much less cash.
alter table staff_refund add column shift_id bigint references shift (id);
create index staff_refund_shift on staff_refund (shift_id);
