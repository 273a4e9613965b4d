-- The audit log (docs/api.md, "Audit events"): tenant data, written in the same transaction as
-- the change it records, so that an event exists if and only if its change committed.
--
-- Like every tenant table: org_code leads the primary key, row-level security is enabled and
-- forced with the same policy, and ids are per-organization sequence numbers from the one
-- per-org counter (tenant_next_id). Append-only: orgwall_tenant may read and insert, never
-- change or delete an event. Since nothing deletes events and a rolled-back insert rolls its
-- counter back too, the counter's value is also the org's number of events.

create table audit_events (
  org_code  text        not null,
  id        bigint      not null check (id > 0),
  at        timestamptz not null default now(),
  action    text        not null check (action ~ '^[a-z]+\.[a-z_]+$'),
  -- The token's client for API writes; null for operators (CLI, admin API).
  client_id text,
  details   jsonb       not null default '{}',
  primary key (org_code, id)
);

alter table audit_events enable row level security;
alter table audit_events force row level security;
create policy tenant_isolation on audit_events for all
  using (org_code = nullif(current_setting('app.org_code', true), ''))
  with check (org_code = nullif(current_setting('app.org_code', true), ''));

grant select, insert on audit_events to orgwall_tenant;

-- Appends one event with the org's next event id. Runs inside a tenant context (as
-- orgwall_tenant, under RLS), in the caller's statement and transaction.
create function tenant_audit(p_org text, p_action text, p_client_id text, p_details jsonb)
returns bigint
language sql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
  insert into public.audit_events (org_code, id, action, client_id, details)
  values (p_org, public.tenant_next_id(p_org, 'audit_events'), p_action, p_client_id, p_details)
  returning id
$$;

-- Record creation writes its event in the same statement: still one round trip.
drop function tenant_create_record(text, text, jsonb);

create function tenant_create_record(p_org text, p_client_id text, p_name text, p_value jsonb)
returns table (id bigint, name text, value jsonb, created_at timestamptz, updated_at timestamptz)
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
declare
  v_record public.records;
begin
  perform public.tenant_enter(p_org);
  insert into public.records as r (org_code, id, name, value)
  values (p_org, public.tenant_next_id(p_org, 'records'), p_name, p_value)
  returning r.* into v_record;
  perform public.tenant_audit(p_org, 'record.created', p_client_id,
                              jsonb_build_object('record_id', v_record.id));
  return query
    select v_record.id, v_record.name, v_record.value, v_record.created_at, v_record.updated_at;
end
$$;

-- An event about one of an organization's apps, written from the issuer's catalogue
-- transaction. The catalogue runs as the issuer's login role, which RLS would not limit (it
-- may own the table or bypass RLS): the insert instead enters the tenant context for itself
-- (orgwall_tenant, app.org_code, both transaction-local, through tenant_enter) and then puts
-- back the role and context the transaction had, so the catalogue statements after it still
-- run as before. One function rather than four statements from the application: the switch
-- and the switch back cannot come apart, and it costs one round trip. orgwall_tenant may not
-- call it, so a tenant transaction cannot use it to leave its role.
create function audit_catalogue_event(p_org text, p_action text, p_details jsonb)
returns bigint
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
declare
  v_role text := current_setting('role');
  v_org  text := coalesce(current_setting('app.org_code', true), '');
  v_id   bigint;
begin
  perform public.tenant_enter(p_org);
  v_id := public.tenant_audit(p_org, p_action, null, p_details);
  perform set_config('role', v_role, true);
  perform set_config('app.org_code', v_org, true);
  return v_id;
end
$$;

revoke execute on function tenant_audit(text, text, text, jsonb),
  tenant_create_record(text, text, text, jsonb),
  audit_catalogue_event(text, text, jsonb) from public;
grant execute on function tenant_audit(text, text, text, jsonb),
  tenant_create_record(text, text, text, jsonb) to orgwall_tenant;
grant execute on function audit_catalogue_event(text, text, jsonb) to orgwall_issuer;
