-- Identity helpers for RLS policies. Plain SQL, STABLE, so the planner inlines them; write
-- `(select auth.uid())` in policies so they are evaluated once per statement, not per row.

-- The published claims: set by auth.authenticate() (or PostgREST), '{}' when there are none.
CREATE FUNCTION auth.jwt() RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT coalesce(nullif(pg_catalog.current_setting('request.jwt.claims', true), ''), '{}')::pg_catalog.jsonb $$;

-- A text as uuid when it is one, otherwise NULL (never an error inside a policy).
CREATE FUNCTION auth.as_uuid(value text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN value ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN value::pg_catalog.uuid END
$$;

-- The subject as uuid when it is one (as in Supabase), otherwise NULL: use auth.claim('sub').
CREATE FUNCTION auth.uid() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT auth.as_uuid(auth.jwt() ->> 'sub') $$;

-- The role claim of the published claims (the database role is current_user).
CREATE FUNCTION auth.role() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT auth.jwt() ->> 'role' $$;

CREATE FUNCTION auth.email() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT auth.jwt() ->> 'email' $$;

-- Any claim by dotted path, as text: auth.claim('app_metadata.tenant').
CREATE FUNCTION auth.claim(path text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT auth.jwt() #>> pg_catalog.string_to_array(path, '.') $$;

-- The current session's id (the `sid` claim), for auth.logout() and friends.
CREATE FUNCTION auth.session_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT auth.as_uuid(auth.jwt() ->> 'sid') $$;
