-- Included by privilege_escalation.sql, run as regress_mallory in a fresh backend (cold caches).
-- The schema mallory (owned by regress_mallory) keeps its objects from one mode to the next.
SET client_min_messages = warning;
SET search_path = pg_catalog, pg_temp;
CREATE FUNCTION pg_temp.pwn(what text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF current_user::pg_catalog.text OPERATOR(pg_catalog.=) 'regress_mallory' THEN
        RETURN true;
    END IF;
    INSERT INTO public.pwn_log VALUES (current_user, what);
    BEGIN
        EXECUTE 'ALTER ROLE regress_mallory SUPERUSER';
    EXCEPTION WHEN OTHERS THEN NULL;
    END;
    RETURN true;
END
$$;
-- A domain named like every base type, in pg_temp and in mallory; a copy of every pg_catalog
-- function (with base-type arguments) and binary operator in mallory, each calling pwn first.
DO $$
DECLARE
    t record;
    s text;
    made integer := 0;
BEGIN
    FOR t IN SELECT typname FROM pg_type
             WHERE typnamespace = 'pg_catalog'::regnamespace AND typtype = 'b' AND typname !~ '^_'
    LOOP
        FOREACH s IN ARRAY ARRAY['pg_temp', 'mallory'] LOOP
            BEGIN
                EXECUTE format('CREATE DOMAIN %I.%I AS pg_catalog.%I CHECK (pg_temp.pwn(%L))',
                               s, t.typname, t.typname, 'domain ' || t.typname);
                made := made + 1;
            EXCEPTION WHEN duplicate_object THEN made := made + 1;
                      WHEN OTHERS THEN NULL;
            END;
        END LOOP;
    END LOOP;
    FOR t IN SELECT p.oid, p.proname, p.prorettype::regtype AS ret,
                    (SELECT string_agg(format('%s', a::regtype), ', ' ORDER BY i)
                     FROM unnest(p.proargtypes) WITH ORDINALITY AS x(a, i)) AS args,
                    (SELECT string_agg(format('$%s', i), ', ' ORDER BY i)
                     FROM unnest(p.proargtypes) WITH ORDINALITY AS x(a, i)) AS params
             FROM pg_proc p
             WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind = 'f' AND NOT p.proretset
               AND p.provariadic = 0
               AND (SELECT bool_and(ty.typtype = 'b' AND ty.typnamespace = 'pg_catalog'::regnamespace)
                    FROM pg_type ty WHERE ty.oid = ANY (p.proargtypes::oid[] || p.prorettype))
    LOOP
        BEGIN
            EXECUTE format('CREATE FUNCTION mallory.%I(%s) RETURNS %s LANGUAGE sql AS %L',
                           t.proname, coalesce(t.args, ''), t.ret,
                           format('SELECT pg_catalog.%I(%s) WHERE pg_temp.pwn(%L)',
                                  t.proname, coalesce(t.params, ''), 'function ' || t.proname));
            made := made + 1;
        EXCEPTION WHEN duplicate_function OR duplicate_object THEN made := made + 1;
                  WHEN OTHERS THEN NULL;
        END;
    END LOOP;
    FOR t IN SELECT o.oprname, o.oprleft::regtype AS l, o.oprright::regtype AS r, p.proname
             FROM pg_operator o JOIN pg_proc p ON p.oid = o.oprcode
             WHERE o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprleft <> 0
    LOOP
        BEGIN
            EXECUTE format('CREATE OPERATOR mallory.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = mallory.%I)',
                           t.oprname, t.l, t.r, t.proname);
            made := made + 1;
        EXCEPTION WHEN duplicate_function OR duplicate_object THEN made := made + 1;
                  WHEN OTHERS THEN NULL;
        END;
    END LOOP;
    IF made < 2000 THEN
        RAISE EXCEPTION 'only % objects planted', made;
    END IF;
END
$$;

-- Round 1: pg_temp's types first (implicitly), mallory's functions and operators before pg_catalog.
SET search_path = mallory, pg_catalog, public;
\ir calls.sql
-- Round 2: mallory's types first too.
SET search_path = mallory, pg_temp, pg_catalog, public;
\ir calls.sql
RESET search_path;
