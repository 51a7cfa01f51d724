-- Access rules from a declaration: "role may read / read_mine / create / update / delete / all on
-- this table", compiled into real GRANTs and row-level security policies that PostgreSQL enforces
-- (pg_auth is not involved at query time). Everything lives in the catalog: a policy named
-- pg_auth_<role>_<action> on the table, with a comment saying which privilege pg_auth granted for
-- it, so the rules are dumped and restored with the table, listed by auth.access_rules and
-- removed exactly. The functions run with the caller's rights (SECURITY INVOKER) and call nothing
-- private: only whoever may create policies on the table (its owner) can declare rules for it,
-- once granted EXECUTE on them.

-- Declares that `role` may perform `actions` on `tbl`: for each action, one permissive policy
-- for that role and command, the privilege granted unless the role holds it already, and row-level
-- security enabled on the table. With `owner_column` (a uuid column), read_mine reads and
-- create/update/delete touch only rows whose owner is auth.uid(). Running it again replaces the
-- rules it made (idempotent). Returns the statements it ran.
CREATE FUNCTION auth.grant_access(tbl regclass, role name, actions text[], owner_column name DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    wanted text[];
    act text;
    rule record;
    own text;
    policy name;
    stmt text;
    held boolean;
BEGIN
    IF tbl IS NULL OR role IS NULL OR actions IS NULL OR cardinality(actions) = 0 THEN
        RAISE EXCEPTION 'grant_access needs a table, a role and at least one action' USING ERRCODE = '22023';
    END IF;
    IF NOT EXISTS (SELECT FROM pg_roles r WHERE r.rolname = grant_access.role) THEN
        RAISE EXCEPTION 'role % does not exist', quote_ident(role) USING ERRCODE = '22023';
    END IF;
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = tbl) NOT IN ('r', 'p') THEN
        RAISE EXCEPTION '% is not a table', tbl USING ERRCODE = '22023';
    END IF;
    IF owner_column IS NOT NULL AND NOT EXISTS (
           SELECT FROM pg_attribute a
           WHERE a.attrelid = tbl AND a.attname = owner_column AND a.attnum > 0 AND NOT a.attisdropped
             AND a.atttypid = 'uuid'::regtype) THEN
        RAISE EXCEPTION '% has no uuid column % to compare with auth.uid()', tbl, quote_ident(owner_column)
            USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(DISTINCT x ORDER BY x) INTO wanted
    FROM unnest(actions) AS a(v),
         unnest(CASE WHEN a.v = 'all' THEN ARRAY['create', 'read', 'update', 'delete'] ELSE ARRAY[a.v] END) AS x;
    FOREACH act IN ARRAY wanted LOOP
        IF act IS NULL OR act NOT IN ('create', 'read', 'read_mine', 'update', 'delete') THEN
            RAISE EXCEPTION 'unknown action % (use create, read, read_mine, update, delete, all)', quote_nullable(act)
                USING ERRCODE = '22023';
        END IF;
        IF act = 'read_mine' AND owner_column IS NULL THEN
            RAISE EXCEPTION 'read_mine needs an owner_column' USING ERRCODE = '22023';
        END IF;
    END LOOP;
    -- Replace what an earlier call made for these actions, keeping privileges still needed.
    RETURN QUERY SELECT * FROM auth.revoke_access(tbl, role, wanted);
    stmt := format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE stmt;
    RETURN NEXT stmt;
    FOREACH act IN ARRAY wanted LOOP
        -- The command and privilege of the action, and whether rows are the caller's own only.
        SELECT a.command, a.command AS privilege, a.own_rows INTO rule
        FROM (VALUES ('read', 'SELECT', false), ('read_mine', 'SELECT', true),
                     ('create', 'INSERT', owner_column IS NOT NULL), ('update', 'UPDATE', owner_column IS NOT NULL),
                     ('delete', 'DELETE', owner_column IS NOT NULL)) AS a(action, command, own_rows)
        WHERE a.action = act;
        own := CASE WHEN rule.own_rows THEN format('(%I = (SELECT auth.uid()))', owner_column) ELSE '(true)' END;
        -- pg_auth_<role>_<action>; a hash of the role when that is longer than an identifier may be.
        policy := CASE WHEN octet_length(format('pg_auth_%s_%s', role, act)) <= 63
                       THEN format('pg_auth_%s_%s', role, act)
                       ELSE format('pg_auth_%s_%s', left(md5(role), 16), act) END;
        stmt := format('CREATE POLICY %I ON %s AS PERMISSIVE FOR %s TO %I', policy, tbl, rule.command, role)
             || CASE rule.command
                    WHEN 'SELECT' THEN ' USING ' || own
                    WHEN 'DELETE' THEN ' USING ' || own
                    WHEN 'INSERT' THEN ' WITH CHECK ' || own
                    ELSE ' USING ' || own || ' WITH CHECK ' || own END;
        EXECUTE stmt;
        RETURN NEXT stmt;
        -- Held already, and not by the grant of another of pg_auth's rules (then this rule shares it).
        SELECT EXISTS (SELECT FROM pg_class c, aclexplode(c.relacl) p
                       WHERE c.oid = tbl AND p.grantee = (SELECT r.oid FROM pg_roles r WHERE r.rolname = grant_access.role)
                         AND p.privilege_type = rule.privilege)
           AND NOT EXISTS (SELECT FROM auth.access_rules o
                           WHERE o.table_name = tbl AND o.role = grant_access.role AND o.privilege = rule.privilege
                             AND o.granted) INTO held;
        IF NOT held THEN
            stmt := format('GRANT %s ON %s TO %I', rule.privilege, tbl, role);
            EXECUTE stmt;
            RETURN NEXT stmt;
        END IF;
        -- The comment remembers whether pg_auth granted the privilege, so removal revokes only that.
        EXECUTE format('COMMENT ON POLICY %I ON %s IS %L', policy, tbl,
                       format('pg_auth access rule: %s %s; %s %s', role, act,
                              CASE WHEN held THEN 'privilege already held:' ELSE 'granted' END, rule.privilege));
    END LOOP;
END
$$;

-- Removes the rules grant_access made for `role` on `tbl` (all of them, or those of `actions`):
-- their policies, and each privilege pg_auth granted for them unless another remaining rule of the
-- role on the table still needs it. Row-level security stays enabled. Returns the statements run.
CREATE FUNCTION auth.revoke_access(tbl regclass, role name, actions text[] DEFAULT NULL)
RETURNS SETOF text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    rule record;
    stmt text;
BEGIN
    IF tbl IS NULL OR role IS NULL THEN
        RAISE EXCEPTION 'revoke_access needs a table and a role' USING ERRCODE = '22023';
    END IF;
    FOR rule IN
        SELECT r.policy, r.privilege, r.granted FROM auth.access_rules r
        WHERE r.table_name = tbl AND r.role = revoke_access.role
          AND (actions IS NULL OR r.action = ANY (actions))
    LOOP
        stmt := format('DROP POLICY %I ON %s', rule.policy, tbl);
        EXECUTE stmt;
        RETURN NEXT stmt;
        IF rule.granted AND NOT EXISTS (
               SELECT FROM auth.access_rules o
               WHERE o.table_name = tbl AND o.role = revoke_access.role AND o.privilege = rule.privilege) THEN
            stmt := format('REVOKE %s ON %s FROM %I', rule.privilege, tbl, role);
            EXECUTE stmt;
            RETURN NEXT stmt;
        END IF;
    END LOOP;
END
$$;

-- Every rule grant_access made, read from the catalog (what pg_policies shows anyone, with the
-- action and whether pg_auth granted the privilege).
CREATE VIEW auth.access_rules AS
SELECT p.polrelid::regclass AS table_name,
       (SELECT r.rolname FROM pg_roles r WHERE r.oid = p.polroles[1]) AS role,
       (regexp_match(d.description, ' ([a-z_]+); [^;]*$'))[1] AS action,
       p.polname AS policy,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END AS command,
       pg_get_expr(p.polqual, p.polrelid) AS using_expression,
       pg_get_expr(p.polwithcheck, p.polrelid) AS check_expression,
       (regexp_match(d.description, '; (?:granted|privilege already held:) ([A-Z]+)$'))[1] AS privilege,
       d.description ~ '; granted [A-Z]+$' AS granted
FROM pg_policy p
JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_policy'::regclass AND d.objsubid = 0
WHERE d.description LIKE 'pg_auth access rule: %';
GRANT SELECT ON auth.access_rules TO PUBLIC;
