-- Tenant data and the second wall (docs/security.md).
--
-- Every tenant table: org_code leads the primary key; row-level security enabled and forced;
-- one policy for all commands, USING and WITH CHECK, matching nothing when app.org_code is
-- unset (NULL) or empty ('' after a transaction-local set has ended on that connection).
-- Unique constraints include org_code, so no constraint error can reveal another tenant's row.

-- The role tenant transactions run as. Roles are cluster-wide, so another database on the same
-- server may have created it first, even concurrently.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'orgwall_tenant') then
    create role orgwall_tenant nologin nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
  end if;
exception
  when duplicate_object or unique_violation then null;
end
$$;

-- Per-organization id counters: records get 1, 2, 3, ... within their org, never reused.
create table tenant_counters (
  org_code   text   not null,
  counter    text   not null,
  last_value bigint not null,
  created_at timestamptz not null default now(),
  primary key (org_code, counter)
);

create table records (
  org_code   text        not null,
  id         bigint      not null check (id > 0),
  name       text        not null check (char_length(name) between 1 and 200),
  value      jsonb       not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (org_code, id)
);

create table org_users (
  org_code   text        not null,
  id         bigint      not null check (id > 0),
  email      text        not null check (char_length(email) between 3 and 320),
  name       text        not null check (char_length(name) between 1 and 200),
  created_at timestamptz not null default now(),
  primary key (org_code, id),
  constraint org_users_email_unique unique (org_code, email)
);

do $$
declare
  t text;
begin
  foreach t in array array['tenant_counters', 'records', 'org_users'] loop
    execute format('alter table %I enable row level security', t);
    execute format('alter table %I force row level security', t);
    execute format(
      'create policy tenant_isolation on %I for all
         using (org_code = nullif(current_setting(''app.org_code'', true), ''''))
         with check (org_code = nullif(current_setting(''app.org_code'', true), ''''))', t);
  end loop;
end
$$;

-- orgwall_tenant reaches tenant tables only, and only these privileges.
grant usage on schema public to orgwall_tenant;
grant select, insert, update on tenant_counters to orgwall_tenant;
grant select, insert, update, delete on records, org_users to orgwall_tenant;
