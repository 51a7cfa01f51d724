-- Identity helpers for RLS policies, STABLE: write `(select auth.uid())` in policies so they are
-- evaluated once per statement, not per row. auth.jwt() and auth.uid() are in Rust
-- (src/published.rs): they answer from what auth.authenticate() verified in this transaction,
-- not from request.jwt.claims, which any SQL caller can set. That state lives in the backend,
-- so every helper is PARALLEL RESTRICTED (a parallel worker does not have it). Any role may call
-- them with its own search_path, so every operator and function in them is schema-qualified:
-- an operator planted ahead of pg_catalog must not change what they answer.

-- A text as uuid when it is one, otherwise NULL (never an error inside a policy).
CREATE FUNCTION auth.as_uuid(value text) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN value OPERATOR(pg_catalog.~*) '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN value::pg_catalog.uuid END
$$;

-- The role claim of the published claims (the database role is current_user).
CREATE FUNCTION auth.role() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT auth.jwt() OPERATOR(pg_catalog.->>) 'role' $$;

CREATE FUNCTION auth.email() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT auth.jwt() OPERATOR(pg_catalog.->>) 'email' $$;

-- Any claim by dotted path, as text: auth.claim('app_metadata.tenant').
CREATE FUNCTION auth.claim(path text) RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT auth.jwt() OPERATOR(pg_catalog.#>>) pg_catalog.string_to_array(path, '.') $$;

-- The authenticator assurance level of the request: aal1 (one factor), aal2 (a second factor
-- verified in this session); NULL for credentials that carry none (API keys, foreign JWTs).
CREATE FUNCTION auth.aal() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT auth.jwt() OPERATOR(pg_catalog.->>) 'aal' $$;

-- The current session's id (the `sid` claim), for auth.logout() and friends.
CREATE FUNCTION auth.session_id() RETURNS uuid
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT auth.as_uuid(auth.jwt() OPERATOR(pg_catalog.->>) 'sid') $$;
