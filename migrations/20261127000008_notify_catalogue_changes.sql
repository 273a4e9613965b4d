-- Every instance caches what the token endpoint reads about a client (app, live secrets, API,
-- grant) and drops that cache when any of these tables changes, so that disabling an app or
-- rotating a secret takes effect on every instance at once (LISTEN orgwall_catalogue).
create function notify_catalogue_changed() returns trigger
language plpgsql security invoker as $$
begin
  perform pg_notify('orgwall_catalogue', '');
  return null;
end
$$;

do $$
declare
  t text;
begin
  foreach t in array array['m2m_apps', 'client_secrets', 'apis', 'app_grants'] loop
    execute format(
      'create trigger %I after insert or update or delete or truncate on %I
         for each statement execute function notify_catalogue_changed()',
      t || '_changed', t);
  end loop;
end
$$;

revoke all on function notify_catalogue_changed() from public;
