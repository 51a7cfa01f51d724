-- A tiny API for PostgREST on pg_auth: notes under row-level security, and whoami().
-- Loaded by scripts/demo.sh into the database pg_auth_demo.

DO $$ BEGIN
    CREATE ROLE authenticator LOGIN NOINHERIT;
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
    CREATE ROLE web_anon NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN
    CREATE ROLE web_user NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
GRANT web_anon, web_user TO authenticator;

CREATE SCHEMA api;
GRANT USAGE ON SCHEMA api TO web_anon, web_user;

CREATE TABLE api.notes (
    id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner  text NOT NULL DEFAULT auth.claim('sub'),
    public boolean NOT NULL DEFAULT false,
    body   text NOT NULL
);
ALTER TABLE api.notes ENABLE ROW LEVEL SECURITY;
-- (select ...) makes PostgreSQL evaluate the claim once per statement, not once per row.
CREATE POLICY read_own_or_public ON api.notes FOR SELECT USING (public OR owner = (SELECT auth.claim('sub')));
CREATE POLICY write_own ON api.notes FOR INSERT TO web_user WITH CHECK (owner = (SELECT auth.claim('sub')));
GRANT SELECT ON api.notes TO web_anon, web_user;
GRANT INSERT (public, body) ON api.notes TO web_user;

INSERT INTO api.notes (owner, public, body) VALUES
    ('alice', true, 'hello from alice (public)'),
    ('alice', false, 'alice''s secret'),
    ('bob', false, 'bob''s secret');

CREATE FUNCTION api.whoami() RETURNS json LANGUAGE sql STABLE AS $$
    SELECT json_build_object('role', current_user, 'sub', auth.claim('sub'), 'claims', auth.jwt())
$$;
GRANT EXECUTE ON FUNCTION api.whoami() TO web_anon, web_user;

-- Local development over http: cookies without the Secure flag.
ALTER ROLE authenticator SET pg_auth.cookie_secure = off;

-- One signing key in the ring (ES256, so auth.jwks() can also feed PostgREST's jwt-secret).
SELECT auth.generate_key('ES256', 'demo-key-1');
