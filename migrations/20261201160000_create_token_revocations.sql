-- Token lifecycle: issued tokens can be revoked before their `exp`, by app, by organization, by
-- single token (its jti) and by signing key. All of it is the issuer's catalogue, never tenant
-- data: orgwall_issuer reads and writes it, orgwall_tenant gets nothing.
--
-- Times compared with a token's `iat` are unix seconds (bigint), like the claim itself. A
-- cutoff is kept until every token it can reject has expired (the longest token lifetime is
-- 24 h), and has no foreign key, so that it outlives a deleted app.

-- Tokens issued to the app at or before `revoked_before` are revoked.
create table app_token_cutoffs (
  client_id      text primary key check (char_length(client_id) between 1 and 128),
  revoked_before bigint not null,
  created_at     timestamptz not null default now()
);

-- Tokens carrying this org_code issued at or before `revoked_before` are revoked.
create table org_token_cutoffs (
  org_code       text primary key check (org_code ~ '^[A-Za-z0-9_.-]{1,100}$'),
  revoked_before bigint not null,
  created_at     timestamptz not null default now()
);

-- Single tokens, by jti, kept until the token's own `exp`.
create table revoked_tokens (
  jti        text primary key check (char_length(jti) between 1 and 256),
  client_id  text not null,
  expires_at bigint not null,
  created_at timestamptz not null default now()
);
create index revoked_tokens_expires_at on revoked_tokens (expires_at);

-- While set, the organization's apps get no token and every token carrying its code is refused.
alter table organizations add column disabled_at timestamptz;

-- A revoked key leaves the JWKS at once and every token it signed is refused.
alter table signing_keys add column revoked_at timestamptz;

grant select, insert, update, delete on app_token_cutoffs, org_token_cutoffs, revoked_tokens
  to orgwall_issuer;

-- Every instance keeps the revocations in memory and re-reads them on this notification.
create function notify_revocations_changed() returns trigger
language plpgsql security invoker set search_path = pg_catalog as $$
begin
  perform pg_notify('orgwall_revocations', '');
  return null;
end
$$;
revoke all on function notify_revocations_changed() from public;

create trigger app_token_cutoffs_changed after insert or update or delete or truncate
  on app_token_cutoffs for each statement execute function notify_revocations_changed();
create trigger org_token_cutoffs_changed after insert or update or delete or truncate
  on org_token_cutoffs for each statement execute function notify_revocations_changed();
create trigger revoked_tokens_changed after insert or update or delete or truncate
  on revoked_tokens for each statement execute function notify_revocations_changed();
create trigger organizations_revocations_changed after update of disabled_at
  on organizations for each statement execute function notify_revocations_changed();
create trigger signing_keys_revocations_changed after update of revoked_at
  on signing_keys for each statement execute function notify_revocations_changed();

-- A disabled organization's apps are refused at the token endpoint: its client lookups, cached
-- on every instance, depend on this table too.
create trigger organizations_changed after insert or update or delete or truncate
  on organizations for each statement execute function notify_catalogue_changed();

-- `last_signed_at` is written while a key signs; that alone changes nothing any instance
-- caches, so it no longer makes every instance reload its keys.
drop trigger signing_keys_changed on signing_keys;
create trigger signing_keys_changed
  after insert or delete or update of kid, alg, private_der, public_jwk, retired_at, revoked_at
  on signing_keys for each statement execute function notify_signing_keys_changed();
