-- Tenant statements always run as orgwall_tenant. Until now the tenant_* functions switched
-- role only when told to (p_switch), and the service told them to only when the login role
-- could bypass RLS. A runtime role that cannot bypass RLS is still a member of orgwall_issuer:
-- inside a tenant context it could read signing_keys. Now every tenant context drops to
-- orgwall_tenant, which holds no privilege on the issuer's catalogue.
--
-- Also: one per-org counter (tenant_next_id) instead of a copy of its upsert per table, and
-- every function orgwall defines pins its search_path, so that no object created in another
-- schema can stand in for what a function calls.

drop function tenant_list_records(text, boolean, bigint, integer);
drop function tenant_get_record(text, boolean, bigint);
drop function tenant_create_record(text, boolean, text, jsonb);
drop function tenant_count_records(text, boolean);
drop function tenant_enter(text, boolean);

-- The context every tenant statement enters first: drop to orgwall_tenant, then set
-- app.org_code, both for the rest of the (implicit) transaction. `set local` inside a function
-- outlives the function (only the search_path of its SET clause is restored on exit).
create function tenant_enter(p_org text) returns void
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
begin
  set local role orgwall_tenant;
  perform set_config('app.org_code', p_org, true);
end
$$;

-- The org's next value of a per-org counter (1, 2, 3, ...; never reused). The counter row
-- serializes concurrent callers in one org. Called inside a tenant context, under RLS.
create function tenant_next_id(p_org text, p_counter text) returns bigint
language sql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
  insert into public.tenant_counters as c (org_code, counter, last_value)
  values (p_org, p_counter, 1)
  on conflict (org_code, counter) do update set last_value = c.last_value + 1
  returning c.last_value
$$;

-- The org's live record count: the list's total, and the answer on its own when a page is
-- empty (past the end).
create function tenant_count_records(p_org text) returns bigint
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
declare
  v_total bigint;
begin
  perform public.tenant_enter(p_org);
  select c.last_value into v_total
    from public.tenant_counters c
   where c.org_code = p_org and c.counter = 'records_live';
  return coalesce(v_total, 0);
end
$$;

create function tenant_list_records(p_org text, p_after bigint, p_limit integer)
returns table (id bigint, name text, value jsonb, created_at timestamptz, updated_at timestamptz, total bigint)
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
declare
  v_total bigint := public.tenant_count_records(p_org);
begin
  return query
    select r.id, r.name, r.value, r.created_at, r.updated_at, v_total
      from public.records r
     where r.org_code = p_org and r.id > p_after
     order by r.id
     limit p_limit;
end
$$;

create function tenant_get_record(p_org text, p_id bigint)
returns table (id bigint, name text, value jsonb, created_at timestamptz, updated_at timestamptz)
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
begin
  perform public.tenant_enter(p_org);
  return query
    select r.id, r.name, r.value, r.created_at, r.updated_at
      from public.records r
     where r.org_code = p_org and r.id = p_id;
end
$$;

create function tenant_create_record(p_org text, p_name text, p_value jsonb)
returns table (id bigint, name text, value jsonb, created_at timestamptz, updated_at timestamptz)
language plpgsql security invoker volatile
set search_path = pg_catalog, public, pg_temp as $$
begin
  perform public.tenant_enter(p_org);
  return query
    insert into public.records as r (org_code, id, name, value)
    values (p_org, public.tenant_next_id(p_org, 'records'), p_name, p_value)
    returning r.id, r.name, r.value, r.created_at, r.updated_at;
end
$$;

alter function records_live_count() set search_path = pg_catalog, public, pg_temp;
alter function notify_signing_keys_changed() set search_path = pg_catalog, public, pg_temp;
alter function notify_catalogue_changed() set search_path = pg_catalog, public, pg_temp;

revoke execute on function tenant_enter(text),
  tenant_next_id(text, text),
  tenant_count_records(text),
  tenant_list_records(text, bigint, integer),
  tenant_get_record(text, bigint),
  tenant_create_record(text, text, jsonb) from public;
grant execute on function tenant_enter(text),
  tenant_next_id(text, text),
  tenant_count_records(text),
  tenant_list_records(text, bigint, integer),
  tenant_get_record(text, bigint),
  tenant_create_record(text, text, jsonb) to orgwall_tenant;
