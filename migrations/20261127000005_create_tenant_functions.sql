-- One-round-trip tenant statements. Each function enters the tenant context itself: with
-- p_switch it drops to orgwall_tenant (`set local role`), then sets app.org_code
-- transaction-locally, then runs one query under RLS. Called as a single statement, its
-- implicit transaction is the tenant transaction: role and context end with it, exactly as
-- with BEGIN ... COMMIT, but in one round trip instead of three or four.
-- SECURITY INVOKER (the default, spelled out): a function never runs with more rights than its
-- caller. Tables are schema-qualified so that search_path cannot redirect them.

-- The context every tenant_* function enters first: drop to orgwall_tenant when the login role
-- could bypass RLS, then set app.org_code for the rest of the (implicit) transaction.
create function tenant_enter(p_org text, p_switch boolean) returns void
language plpgsql security invoker volatile as $$
begin
  if p_switch then
    set local role orgwall_tenant;
  end if;
  perform set_config('app.org_code', p_org, true);
end
$$;

create function tenant_list_records(p_org text, p_switch boolean, p_after bigint, p_limit integer)
returns table (id bigint, name text, value jsonb, created_at timestamptz, updated_at timestamptz, total bigint)
language plpgsql security invoker volatile as $$
begin
  perform tenant_enter(p_org, p_switch);
  return query
    select r.id, r.name, r.value, r.created_at, r.updated_at,
           (select count(*) from public.records c where c.org_code = p_org)
      from public.records r
     where r.org_code = p_org and r.id > p_after
     order by r.id
     limit p_limit;
end
$$;

create function tenant_get_record(p_org text, p_switch boolean, p_id bigint)
returns table (id bigint, name text, value jsonb, created_at timestamptz, updated_at timestamptz)
language plpgsql security invoker volatile as $$
begin
  perform tenant_enter(p_org, p_switch);
  return query
    select r.id, r.name, r.value, r.created_at, r.updated_at
      from public.records r
     where r.org_code = p_org and r.id = p_id;
end
$$;

create function tenant_create_record(p_org text, p_switch boolean, p_name text, p_value jsonb)
returns table (id bigint, name text, value jsonb, created_at timestamptz, updated_at timestamptz)
language plpgsql security invoker volatile as $$
begin
  perform tenant_enter(p_org, p_switch);
  return query
    with next as (
      insert into public.tenant_counters as c (org_code, counter, last_value)
      values (p_org, 'records', 1)
      on conflict (org_code, counter) do update set last_value = c.last_value + 1
      returning c.last_value
    )
    insert into public.records as r (org_code, id, name, value)
    select p_org, next.last_value, p_name, p_value from next
    returning r.id, r.name, r.value, r.created_at, r.updated_at;
end
$$;

revoke execute on function tenant_enter(text, boolean),
  tenant_list_records(text, boolean, bigint, integer),
  tenant_get_record(text, boolean, bigint),
  tenant_create_record(text, boolean, text, jsonb) from public;
grant execute on function tenant_enter(text, boolean),
  tenant_list_records(text, boolean, bigint, integer),
  tenant_get_record(text, boolean, bigint),
  tenant_create_record(text, boolean, text, jsonb) to orgwall_tenant;
