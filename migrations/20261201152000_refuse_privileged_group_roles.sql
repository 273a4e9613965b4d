-- orgwall_tenant and orgwall_issuer are cluster-wide: on a shared server another database, or an
-- administrator, may have created them before the earlier migrations, which create them only
-- when missing and then grant them the tenant tables and the issuer's catalogue (signing keys
-- included). Refuse a role that could log in itself, bypass RLS or hand out roles: it would carry
-- those rights past both walls. `orgwall migrate` makes the same check before any migration, so
-- this guards `sqlx migrate run` and other tools that apply these files.
do $$
declare
  r   record;
  bad text[];
begin
  for r in
    select rolname, rolcanlogin, rolsuper, rolbypassrls, rolcreaterole
      from pg_roles
     where rolname in ('orgwall_tenant', 'orgwall_issuer')
     order by rolname desc
  loop
    bad := array_remove(array[
      case when r.rolcanlogin then 'LOGIN' end,
      case when r.rolsuper then 'SUPERUSER' end,
      case when r.rolbypassrls then 'BYPASSRLS' end,
      case when r.rolcreaterole then 'CREATEROLE' end
    ], null);
    if cardinality(bad) > 0 then
      raise exception '%: existing role has %; refusing to use it', r.rolname, array_to_string(bad, ', ');
    end if;
  end loop;
end
$$;
