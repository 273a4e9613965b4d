-- The built-in issuer's catalogue (docs/cli.md, docs/api.md). None of it is tenant data:
-- orgwall_tenant gets no privilege on any of these tables; the service's login role (the
-- migration owner in development, or a runtime role granted `orgwall_issuer` in production)
-- reads and writes them.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'orgwall_issuer') then
    create role orgwall_issuer nologin nosuperuser nobypassrls nocreatedb nocreaterole;
  end if;
exception
  when duplicate_object or unique_violation then null;
end
$$;

-- An API that tokens are issued for; audience is matched exactly (case-sensitive).
create table apis (
  id                  bigint generated always as identity primary key,
  audience            text not null unique check (char_length(audience) between 1 and 2048),
  name                text not null check (char_length(name) between 1 and 200),
  token_lifetime_secs integer not null default 3600 check (token_lifetime_secs between 60 and 86400),
  created_at          timestamptz not null default now()
);

create table api_scopes (
  api_id      bigint not null references apis (id) on delete cascade,
  name        text not null check (name ~ '^[!#-\[\]-~]{1,128}$'),
  description text not null default '',
  created_at  timestamptz not null default now(),
  primary key (api_id, name)
);

create table organizations (
  code       text primary key check (code ~ '^[A-Za-z0-9_.-]{1,100}$'),
  name       text not null check (char_length(name) between 1 and 200),
  created_at timestamptz not null default now()
);

-- An M2M application; with org_code it is org-scoped and every token it gets carries it.
create table m2m_apps (
  client_id  text primary key,
  name       text not null check (char_length(name) between 1 and 200),
  org_code   text references organizations (code),
  enabled    boolean not null default true,
  deleted_at timestamptz,
  created_at timestamptz not null default now()
);
create index m2m_apps_org_code on m2m_apps (org_code);

-- Client secrets are stored only as HMAC-SHA-256(salt, secret). Several may be live during a
-- rotation's grace period; expires_at null means no expiry.
create table client_secrets (
  id          bigint generated always as identity primary key,
  client_id   text not null references m2m_apps (client_id) on delete cascade,
  salt        bytea not null,
  secret_hash bytea not null,
  expires_at  timestamptz,
  created_at  timestamptz not null default now()
);
create index client_secrets_client_id on client_secrets (client_id);

-- What an app may ask for: one API, a subset of its scopes.
create table app_grants (
  client_id  text not null references m2m_apps (client_id) on delete cascade,
  api_id     bigint not null references apis (id) on delete cascade,
  scopes     text[] not null,
  created_at timestamptz not null default now(),
  primary key (client_id, api_id)
);

-- Signing keys. private_der (PKCS#8) never leaves the service; public_jwk is what the JWKS
-- publishes. The newest key not retired signs.
create table signing_keys (
  kid            text primary key,
  alg            text not null,
  private_der    bytea not null,
  public_jwk     jsonb not null,
  created_at     timestamptz not null default now(),
  retired_at     timestamptz,
  last_signed_at timestamptz
);

-- Every instance reloads its keys when they change (LISTEN orgwall_keys).
create function notify_signing_keys_changed() returns trigger
language plpgsql security invoker as $$
begin
  perform pg_notify('orgwall_keys', '');
  return null;
end
$$;
create trigger signing_keys_changed after insert or update or delete on signing_keys
  for each statement execute function notify_signing_keys_changed();

grant select, insert, update, delete on apis, api_scopes, organizations, m2m_apps,
  client_secrets, app_grants, signing_keys to orgwall_issuer;
revoke all on function notify_signing_keys_changed() from public;
