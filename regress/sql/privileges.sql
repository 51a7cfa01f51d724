-- Closed by default: who may execute each function of schemas auth and auth_internal (besides
-- its owner), and
-- which functions run with their owner's rights (SECURITY DEFINER) with which search_path.
-- A new function shows up here and must be placed deliberately.
SELECT p.oid::regprocedure AS function,
       coalesce((SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, ', ')
                 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) AS a
                 WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> p.proowner), '-') AS execute,
       CASE WHEN p.prosecdef THEN 'definer' ELSE '' END AS security,
       coalesce(array_to_string(p.proconfig, ' '), '') AS config
FROM pg_proc p
WHERE p.pronamespace IN ('auth'::regnamespace, 'auth_internal'::regnamespace)
ORDER BY p.oid::regprocedure::text;
-- Tables and views: nothing for PUBLIC.
SELECT c.oid::regclass AS relation, coalesce(array_to_string(c.relacl, ' '), 'default') AS acl
FROM pg_class c
WHERE c.relnamespace = 'auth'::regnamespace AND c.relkind IN ('r', 'v', 'S')
ORDER BY c.relname;
-- Schema auth_internal: no USAGE for PUBLIC.
SELECT n.nspname, coalesce(array_to_string(n.nspacl, ' '), 'default') AS acl
FROM pg_namespace n WHERE n.nspname IN ('auth', 'auth_internal') ORDER BY 1;
