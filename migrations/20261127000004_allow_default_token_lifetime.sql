-- An API without its own token lifetime uses the service's TOKEN_LIFETIME (1 h by default).
alter table apis alter column token_lifetime_secs drop default;
alter table apis alter column token_lifetime_secs drop not null;
