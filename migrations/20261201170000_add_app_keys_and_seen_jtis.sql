-- Key-bound clients (README "Key-bound clients"). An app with `jwks` authenticates only with a
-- client assertion signed by one of those public keys (private_key_jwt), never with a secret;
-- an app with `require_dpop` gets only DPoP-bound tokens. Both columns are on m2m_apps, whose
-- trigger already tells every instance to drop its cached client lookups.
alter table m2m_apps
  add column jwks jsonb check (jwks is null or jsonb_typeof(jwks -> 'keys') = 'array'),
  add column require_dpop boolean not null default false;

-- One row per accepted assertion or token-endpoint DPoP proof until it could no longer be valid,
-- so that a replay is refused by every instance sharing this database. `kind` is 'assertion'
-- (subject: the client id) or 'dpop' (subject: the proof key's thumbprint).
create table seen_jtis (
  kind       text not null check (kind in ('assertion', 'dpop')),
  subject    text not null,
  jti        text not null check (char_length(jti) between 1 and 255),
  expires_at timestamptz not null,
  created_at timestamptz not null default now(),
  primary key (kind, subject, jti)
);
create index seen_jtis_expires_at on seen_jtis (expires_at);

grant select, insert, update, delete on seen_jtis to orgwall_issuer;
