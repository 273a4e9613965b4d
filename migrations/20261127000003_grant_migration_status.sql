-- The runtime login role (created by `orgwall migrate` when DATABASE_RUNTIME_ROLE is set) may
-- read which migrations are applied, so that `orgwall demo` running as that role can tell that
-- it has nothing to migrate. It can change nothing here.
grant select on _sqlx_migrations to orgwall_issuer;
