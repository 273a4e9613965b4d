-- One counter row per organization instead of one row per counter.
--
-- Every create used to update three rows of tenant_counters: the record id (`records`), the
-- live count (`records_live`, by a statement trigger that grouped a transition table) and the
-- audit event id (`audit_events`). Each stays locked until commit, so concurrent writers in one
-- organization queue on them, and the trigger added a query per insert. Now an organization's
-- counters are the columns of one row, and a create takes its record id, its event id and
-- counts the record in one update of that row.
--
-- Who keeps what:
-- - `last_record_id`, `last_user_id`, `last_event_id`: the last id handed out (ids are dense,
--   1, 2, 3, ... per org, never reused). Events are never deleted, so `last_event_id` is also
--   how many the org has.
-- - `live_records`: how many records the org has (a list's `total`). tenant_create_record
--   counts the record it inserts, in the same update that takes its id; the delete trigger
--   counts deletions, whatever statement deletes. Records are inserted only through
--   tenant_create_record: a row inserted any other way has no id from the counter either.

create table org_counters (
  org_code       text        not null primary key,
  last_record_id bigint      not null default 0 check (last_record_id >= 0),
  live_records   bigint      not null default 0,
  last_user_id   bigint      not null default 0 check (last_user_id >= 0),
  last_event_id  bigint      not null default 0 check (last_event_id >= 0),
  created_at     timestamptz not null default now()
);

alter table org_counters enable row level security;
create policy tenant_isolation on org_counters for all
  using (org_code = nullif(current_setting('app.org_code', true), ''))
  with check (org_code = nullif(current_setting('app.org_code', true), ''));

grant select, insert, update on org_counters to orgwall_tenant;

-- The move reads and writes every organization's counters. Whoever runs the migrations owns
-- both tables, and an owner is exempt from a table's policies only while they are not forced
-- (a superuser always is): both are unforced for the move and org_counters forced right
-- after, in this migration's one transaction.
alter table tenant_counters no force row level security;
insert into org_counters (org_code, last_record_id, live_records, last_user_id, last_event_id, created_at)
select org_code,
       coalesce(max(last_value) filter (where counter = 'records'), 0),
       coalesce(max(last_value) filter (where counter = 'records_live'), 0),
       coalesce(max(last_value) filter (where counter = 'org_users'), 0),
       coalesce(max(last_value) filter (where counter = 'audit_events'), 0),
       min(created_at)
  from tenant_counters
 group by org_code;
alter table org_counters force row level security;

drop trigger records_live_insert on records;
drop trigger records_live_delete on records;
drop function records_live_count();
drop function tenant_create_record(text, text, text, jsonb);
drop function tenant_next_id(text, text);
drop table tenant_counters;

-- Takes ids from the org's counter row: adds the given amounts (0 or 1 each) and returns the
-- new values. One update of one row, which also serializes concurrent callers in one org
-- until commit. Taking a record id also counts a live record: the only caller that takes one
-- inserts that record in the same statement, or fails and rolls both back. Called inside a
-- tenant context, under RLS.
--
-- PL/pgSQL rather than SQL, here and in tenant_audit: PostgreSQL (before 18) plans the
-- statements of a SQL-language function again on every call that it cannot inline (an
-- insert never is), while PL/pgSQL keeps its plans for the session. On the create path that
-- planning was a quarter of the statement's cost.
create function tenant_take_ids(p_org text, p_records integer, p_users integer, p_events integer,
                                out record_id bigint, out user_id bigint, out event_id bigint)
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
begin
  insert into public.org_counters as c (org_code, last_record_id, live_records, last_user_id, last_event_id)
  values (p_org, p_records, p_records, p_users, p_events)
  on conflict (org_code) do update
     set last_record_id = c.last_record_id + p_records,
         live_records   = c.live_records + p_records,
         last_user_id   = c.last_user_id + p_users,
         last_event_id  = c.last_event_id + p_events
  returning c.last_record_id, c.last_user_id, c.last_event_id
       into record_id, user_id, event_id;
end
$$;

-- Deletions, by whatever statement: one update per org the statement deleted from.
create function records_deleted_count() returns trigger
language plpgsql security invoker
set search_path = pg_catalog, public, pg_temp as $$
begin
  update public.org_counters c
     set live_records = c.live_records - d.n
    from (select org_code, count(*) as n from old_rows group by org_code) d
   where c.org_code = d.org_code;
  return null;
end
$$;

create trigger records_deleted_count after delete on records
  referencing old table as old_rows for each statement execute function records_deleted_count();

-- The audit event insert of the migration before, its id now from the org's counter row.
create or replace function tenant_audit(p_org text, p_action text, p_client_id text, p_details jsonb)
returns bigint
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
declare
  v_id bigint := (public.tenant_take_ids(p_org, 0, 0, 1)).event_id;
begin
  insert into public.audit_events (org_code, id, action, client_id, details)
  values (p_org, v_id, p_action, p_client_id, p_details);
  return v_id;
end
$$;

create or replace function tenant_count_records(p_org text) returns bigint
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
declare
  v_total bigint;
begin
  perform public.tenant_enter(p_org);
  select c.live_records into v_total from public.org_counters c where c.org_code = p_org;
  return coalesce(v_total, 0);
end
$$;

-- The record, its `record.created` event and both ids from one counter update, in one round
-- trip.
create function tenant_create_record(p_org text, p_client_id text, p_name text, p_value jsonb)
returns table (id bigint, name text, value jsonb, created_at timestamptz, updated_at timestamptz)
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
declare
  v_ids    record;
  v_record public.records;
begin
  perform public.tenant_enter(p_org);
  v_ids := public.tenant_take_ids(p_org, 1, 0, 1);
  insert into public.records as r (org_code, id, name, value)
  values (p_org, v_ids.record_id, p_name, p_value)
  returning r.* into v_record;
  insert into public.audit_events (org_code, id, action, client_id, details)
  values (p_org, v_ids.event_id, 'record.created', p_client_id,
          jsonb_build_object('record_id', v_record.id));
  return query
    select v_record.id, v_record.name, v_record.value, v_record.created_at, v_record.updated_at;
end
$$;

revoke execute on function tenant_take_ids(text, integer, integer, integer),
  tenant_audit(text, text, text, jsonb),
  tenant_create_record(text, text, text, jsonb),
  records_deleted_count() from public;
grant execute on function tenant_take_ids(text, integer, integer, integer),
  tenant_audit(text, text, text, jsonb),
  tenant_create_record(text, text, text, jsonb) to orgwall_tenant;
