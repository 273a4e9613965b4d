-- `total` in a records list without counting the org's rows on every read: a per-org counter
-- kept by triggers in the same transaction as each insert and delete (so it cannot drift), in
-- the tenant_counters table under the same RLS. The list function reads it in its one
-- statement.

insert into tenant_counters (org_code, counter, last_value)
select org_code, 'records_live', count(*) from records group by org_code
on conflict (org_code, counter) do update set last_value = excluded.last_value;

create function records_live_count() returns trigger
language plpgsql security invoker as $$
begin
  if tg_op = 'INSERT' then
    insert into public.tenant_counters as c (org_code, counter, last_value)
    select org_code, 'records_live', count(*) from new_rows group by org_code
    on conflict (org_code, counter) do update set last_value = c.last_value + excluded.last_value;
  else
    update public.tenant_counters c
       set last_value = c.last_value - d.n
      from (select org_code, count(*) as n from old_rows group by org_code) d
     where c.org_code = d.org_code and c.counter = 'records_live';
  end if;
  return null;
end
$$;

create trigger records_live_insert after insert on records
  referencing new table as new_rows for each statement execute function records_live_count();
create trigger records_live_delete after delete on records
  referencing old table as old_rows for each statement execute function records_live_count();

-- The org's live record count: the list's total, and the answer on its own when a page is
-- empty (past the end).
create function tenant_count_records(p_org text, p_switch boolean)
returns bigint
language plpgsql security invoker volatile as $$
declare
  v_total bigint;
begin
  perform tenant_enter(p_org, p_switch);
  select c.last_value into v_total
    from public.tenant_counters c
   where c.org_code = p_org and c.counter = 'records_live';
  return coalesce(v_total, 0);
end
$$;

create or replace function tenant_list_records(p_org text, p_switch boolean, p_after bigint, p_limit integer)
returns table (id bigint, name text, value jsonb, created_at timestamptz, updated_at timestamptz, total bigint)
language plpgsql security invoker volatile as $$
declare
  v_total bigint := tenant_count_records(p_org, p_switch);
begin
  return query
    select r.id, r.name, r.value, r.created_at, r.updated_at, v_total
      from public.records r
     where r.org_code = p_org and r.id > p_after
     order by r.id
     limit p_limit;
end
$$;

revoke execute on function tenant_count_records(text, boolean), records_live_count() from public;
grant execute on function tenant_count_records(text, boolean) to orgwall_tenant;
