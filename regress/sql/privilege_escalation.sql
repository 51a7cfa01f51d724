-- No path from any database role to the extension owner's rights. A login role with no
-- privileges (regress_mallory, a member of one web role, like a compromised app login) plants,
-- in pg_temp and in a schema of its own, a domain for every base type name whose CHECK runs its
-- own function, and a copy of every pg_catalog function and operator; then it calls every
-- function PUBLIC may execute, in every mode (include/attack.sql). Whatever pg_auth runs as the
-- owner of its tables must never resolve one of those objects: the planted function logs the
-- user it runs as and tries to make its caller superuser.
CREATE ROLE regress_mallory LOGIN;
CREATE ROLE regress_web NOLOGIN;
GRANT regress_web TO regress_mallory;
CREATE SCHEMA mallory AUTHORIZATION regress_mallory;
CREATE TABLE public.pwn_log (who text, what text);
GRANT INSERT ON public.pwn_log TO PUBLIC;

-- Credentials of every kind, made by the owner.
SELECT auth.generate_key('HS256', 'esc-hs') IS NOT NULL AS ring_key;
SELECT auth.register('victim@example.com', 'correct horse battery', role => 'regress_web') IS NOT NULL AS registered;
CREATE TABLE public.creds AS
SELECT l ->> 'token' AS session_token, l ->> 'jwt' AS sid_jwt,
       auth.sign_jwt('{"sub":"s","role":"regress_web","jti":"esc-jti"}'::jsonb) AS ring_jwt,
       auth.sign_jwt('{"sub":"s","role":"regress_web"}'::jsonb, repeat('k', 32)) AS keyed_jwt,
       repeat('k', 32) AS secret
FROM auth.login('victim@example.com', 'correct horse battery', true) AS l;
GRANT SELECT ON public.creds TO regress_mallory;

-- Mode 1: role switching (the default).
\c - regress_mallory
\i sql/include/attack.sql
-- Mode 2: claims only, with an anonymous role.
\c - postgres
ALTER ROLE regress_mallory SET pg_auth.claims_only = on;
ALTER ROLE regress_mallory SET pg_auth.anon_role = 'regress_web';
\c - regress_mallory
\i sql/include/attack.sql
-- Mode 3: anonymous access refused, sessions only from a header.
\c - postgres
ALTER ROLE regress_mallory RESET ALL;
ALTER ROLE regress_mallory SET pg_auth.anonymous = off;
ALTER ROLE regress_mallory SET pg_auth.token_sources = 'header, cookie';
\c - regress_mallory
\i sql/include/attack.sql

-- The identity helpers cannot be lied to: operators planted ahead of pg_catalog that answer
-- another user's values change nothing (they are called with the caller's search_path).
\c - postgres
CREATE SCHEMA mallory_lies AUTHORIZATION regress_mallory;
\c - regress_mallory
CREATE FUNCTION mallory_lies.get(jsonb, text) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT '6f1c2b0e-9a57-4d35-8a3e-2b8f1f0c9d11' $$;
CREATE FUNCTION mallory_lies.path(jsonb, text[]) RETURNS text LANGUAGE sql IMMUTABLE
    AS $$ SELECT '6f1c2b0e-9a57-4d35-8a3e-2b8f1f0c9d11' $$;
CREATE FUNCTION mallory_lies.match(text, text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;
CREATE OPERATOR mallory_lies.->> (LEFTARG = jsonb, RIGHTARG = text, FUNCTION = mallory_lies.get);
CREATE OPERATOR mallory_lies.#>> (LEFTARG = jsonb, RIGHTARG = text[], FUNCTION = mallory_lies.path);
CREATE OPERATOR mallory_lies.~* (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory_lies.match);
SET search_path = mallory_lies, pg_catalog;
SELECT '{}'::jsonb ->> 'x' AS planted_operator_answers;
SELECT auth.jwt() AS jwt, auth.uid() AS uid, auth.role() AS role, auth.email() AS email,
       auth.claim('sub') AS sub, auth.session_id() AS sid, auth.as_uuid('not a uuid') AS as_uuid;
RESET search_path;

-- Nothing planted ever ran as anyone but its author.
\c - postgres
SELECT (SELECT count(*) FROM pg_proc WHERE pronamespace = 'mallory'::regnamespace) > 1000 AS functions_planted,
       (SELECT count(*) FROM pg_operator WHERE oprnamespace = 'mallory'::regnamespace) > 300 AS operators_planted,
       (SELECT count(*) FROM pg_type WHERE typnamespace = 'mallory'::regnamespace) > 50 AS types_planted;
SELECT count(*) AS ran_as_someone_else FROM public.pwn_log;
SELECT rolsuper AS mallory_is_superuser FROM pg_roles WHERE rolname = 'regress_mallory';

SELECT who, what, count(*) FROM public.pwn_log GROUP BY 1, 2 ORDER BY 1, 2;
DROP TABLE public.creds, public.pwn_log;
SET client_min_messages = warning;
DROP SCHEMA mallory, mallory_lies CASCADE;
RESET client_min_messages;
DROP OWNED BY regress_mallory;
DROP ROLE regress_mallory;
DROP ROLE regress_web;
SELECT auth.delete_user(id) FROM auth.users WHERE email = 'victim@example.com';
DELETE FROM auth.keys WHERE kid = 'esc-hs';
