-- Each API chooses how its tokens are signed: RS256 (the default, as with Kinde), ES256 or
-- EdDSA. Verifiers must allow the algorithm (AUTH_ALGORITHMS).
alter table apis add column signing_alg text not null default 'RS256'
  check (signing_alg in ('RS256', 'ES256', 'EdDSA'));
create index signing_keys_alg_active on signing_keys (alg) where retired_at is null;
