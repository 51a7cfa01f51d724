-- The audit trail (opt-in: pg_auth.audit = on). Triggers on pg_auth's tables record who signed in
-- or failed to, sessions ended and refreshed, password changes and resets, users created, disabled,
-- enabled, deleted or given another role, API keys created and revoked, ring keys added, retired
-- and deleted, tokens revoked: whichever function or statement made the change. Never a secret or a
-- token: only ids, names and the request's IP and user agent. auth.authenticate itself writes
-- nothing (it works in READ ONLY transactions and on replicas); its refusals go to the server log
-- at pg_auth.log_refusals. auth.cleanup_expired() deletes entries older than
-- pg_auth.audit_retention_days. The triggers are made in sql/audit_triggers.sql, once every
-- table exists.

CREATE TABLE auth.audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    event      text NOT NULL,
    -- The user concerned; no foreign key, so entries outlive the user.
    user_id    uuid,
    -- Failed sign-ins: the SHA-256 of the lower-cased email tried, known or not.
    email_key  bytea,
    session_id uuid,
    api_key_id uuid,
    -- Who made the change: the signed-in user of the request (auth.uid()), and the database login.
    actor_id   uuid,
    db_login   text NOT NULL DEFAULT session_user,
    ip         text,
    user_agent text,
    detail     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON auth.audit_log (at);
CREATE INDEX audit_log_user_id ON auth.audit_log (user_id, at);
REVOKE ALL ON auth.audit_log FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.audit_log', '');

-- Whether pg_auth.audit is on. Plain SQL with every name qualified, so it is inlined where it is
-- used (the triggers' WHEN) and no caller's search_path reaches it.
CREATE FUNCTION auth_internal.auditing() RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT pg_catalog.lower(pg_catalog.current_setting('pg_auth.audit', true))
           OPERATOR(pg_catalog.=) ANY (ARRAY['on', 'true', 'yes', '1'])
$$;

-- The client as PostgREST describes it: IP (the first X-Forwarded-For entry, else X-Real-IP,
-- at most 64 characters) and user agent (at most 512); NULL outside PostgREST, and when a SQL
-- caller set request.headers to something that is no JSON.
CREATE FUNCTION auth_internal.client(OUT ip text, OUT user_agent text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    headers jsonb;
BEGIN
    BEGIN
        headers := nullif(current_setting('request.headers', true), '')::jsonb;
    EXCEPTION WHEN OTHERS THEN
        headers := NULL;
    END;
    ip := left(coalesce(split_part(headers ->> 'x-forwarded-for', ',', 1), headers ->> 'x-real-ip'), 64);
    user_agent := left(headers ->> 'user-agent', 512);
END
$$;

-- Records `events` about a user (or an email tried), a session or an API key, with the request's
-- actor, IP and user agent.
CREATE FUNCTION auth_internal.record_audit(events text[], user_id uuid, email_key bytea, session_id uuid,
                                           api_key_id uuid, detail jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    actor uuid;
BEGIN
    IF coalesce(cardinality(events), 0) = 0 THEN
        RETURN;
    END IF;
    BEGIN
        actor := auth.uid();
    EXCEPTION WHEN OTHERS THEN  -- claims changed by hand: no actor rather than no audit
        actor := NULL;
    END;
    INSERT INTO auth.audit_log (event, user_id, email_key, session_id, api_key_id, actor_id, ip, user_agent, detail)
    SELECT e, record_audit.user_id, record_audit.email_key, record_audit.session_id, record_audit.api_key_id,
           actor, c.ip, c.user_agent, coalesce(record_audit.detail, '{}')
    FROM unnest(events) WITH ORDINALITY AS x(e, n), auth_internal.client() AS c
    ORDER BY x.n;
END
$$;

-- One row trigger for every audited table: what changed, told as events.
CREATE FUNCTION auth_internal.audit_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    events text[] := '{}';
    user_id uuid;
    email_key bytea;
    session_id uuid;
    api_key_id uuid;
    detail jsonb := '{}';
BEGIN
    CASE TG_TABLE_NAME
    WHEN 'sessions' THEN
        user_id := NEW.user_id;
        session_id := NEW.id;
        IF TG_OP = 'INSERT' THEN
            events := '{session_started}';
        ELSIF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
            events := '{session_ended}';
        ELSIF OLD.token_hash IS DISTINCT FROM NEW.token_hash THEN
            events := '{session_refreshed}';
        ELSIF OLD.aal IS DISTINCT FROM NEW.aal THEN
            events := '{second_factor_verified}';
        END IF;
    WHEN 'users' THEN
        IF TG_OP = 'DELETE' THEN
            user_id := OLD.id;
            events := '{user_deleted}';
        ELSIF TG_OP = 'INSERT' THEN
            user_id := NEW.id;
            events := '{user_created}';
            detail := jsonb_build_object('role', NEW.role);
        ELSE
            user_id := NEW.id;
            IF OLD.disabled IS DISTINCT FROM NEW.disabled THEN
                events := events || CASE WHEN NEW.disabled THEN 'user_disabled' ELSE 'user_enabled' END;
            END IF;
            -- pg_auth's password changes and resets move updated_at; a sign-in re-hashing the
            -- same password at a new argon2 cost does not.
            IF OLD.password_hash IS DISTINCT FROM NEW.password_hash THEN
                events := events || CASE WHEN NEW.updated_at IS DISTINCT FROM OLD.updated_at
                                         THEN 'password_changed' ELSE 'password_rehashed' END;
            END IF;
            IF OLD.role IS DISTINCT FROM NEW.role THEN
                events := events || 'role_changed'::text;
                detail := jsonb_build_object('from', OLD.role, 'to', NEW.role);
            END IF;
            IF OLD.email IS DISTINCT FROM NEW.email THEN
                events := events || 'email_changed'::text;
            END IF;
            IF NEW.email_verified AND NOT OLD.email_verified THEN
                events := events || 'email_verified'::text;
            END IF;
        END IF;
    WHEN 'login_attempts' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
        email_key := NEW.email_key;
        detail := jsonb_build_object('failed_logins', NEW.failed_logins);
        IF TG_OP = 'INSERT' OR NEW.failed_logins IS DISTINCT FROM OLD.failed_logins THEN
            events := '{sign_in_failed}';
        END IF;
        IF NEW.locked_until > now() AND (TG_OP = 'INSERT' OR OLD.locked_until IS DISTINCT FROM NEW.locked_until) THEN
            events := events || 'account_locked'::text;
            detail := detail || jsonb_build_object('locked_until', NEW.locked_until);
        END IF;
    WHEN 'password_resets' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
        user_id := NEW.user_id;
        IF TG_OP = 'INSERT' THEN
            events := '{password_reset_requested}';
        ELSIF OLD.used_at IS NULL AND NEW.used_at IS NOT NULL THEN
            events := '{password_reset_used}';
        END IF;
    WHEN 'api_keys' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN NULL;
        END IF;
        user_id := NEW.user_id;
        api_key_id := NEW.id;
        detail := jsonb_build_object('name', NEW.name, 'role', NEW.role);
        IF TG_OP = 'INSERT' THEN
            events := '{api_key_created}';
        ELSIF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
            events := '{api_key_revoked}';
        END IF;
    WHEN 'keys' THEN
        IF TG_OP = 'DELETE' THEN
            events := '{key_deleted}';
            detail := jsonb_build_object('kid', OLD.kid);
        ELSE
            detail := jsonb_build_object('kid', NEW.kid, 'algorithm', NEW.algorithm);
            IF TG_OP = 'INSERT' THEN
                events := '{key_added}';
            ELSIF OLD.retire_after IS DISTINCT FROM NEW.retire_after THEN
                events := '{key_retired}';
                detail := detail || jsonb_build_object('retire_after', NEW.retire_after);
            END IF;
        END IF;
    WHEN 'revoked_tokens' THEN
        IF TG_OP = 'INSERT' THEN
            events := '{token_revoked}';
            detail := jsonb_build_object('jti', NEW.jti);
        END IF;
    WHEN 'mfa_factors' THEN
        IF TG_OP = 'DELETE' THEN
            user_id := OLD.user_id;
            events := CASE WHEN OLD.confirmed_at IS NOT NULL THEN '{second_factor_removed}'::text[] ELSE '{}' END;
        ELSE
            user_id := NEW.user_id;
            IF TG_OP = 'INSERT' THEN
                events := '{second_factor_enrolling}';
            ELSIF OLD.confirmed_at IS NULL AND NEW.confirmed_at IS NOT NULL THEN
                events := '{second_factor_enrolled}';
            ELSIF NEW.failed_attempts > 0 AND NEW.failed_attempts IS DISTINCT FROM OLD.failed_attempts THEN
                events := '{second_factor_failed}';
                detail := jsonb_build_object('failed_attempts', NEW.failed_attempts);
            END IF;
            IF NEW.locked_until > now() AND OLD.locked_until IS DISTINCT FROM NEW.locked_until THEN
                events := events || 'second_factor_locked'::text;
                detail := detail || jsonb_build_object('locked_until', NEW.locked_until);
            END IF;
        END IF;
    WHEN 'recovery_codes' THEN
        user_id := NEW.user_id;
        IF OLD.used_at IS NULL AND NEW.used_at IS NOT NULL THEN
            events := '{recovery_code_used}';
        END IF;
    WHEN 'one_time_codes' THEN
        user_id := NEW.user_id;
        email_key := NEW.email_key;
        detail := jsonb_build_object('purpose', NEW.purpose);
        IF TG_OP = 'INSERT' THEN
            events := '{code_requested}';
        ELSIF NEW.failed_attempts IS DISTINCT FROM OLD.failed_attempts THEN
            events := '{code_failed}';
            detail := detail || jsonb_build_object('failed_attempts', NEW.failed_attempts);
        ELSIF OLD.used_at IS NULL AND NEW.used_at IS NOT NULL AND NEW.user_id IS NOT NULL THEN
            events := '{code_used}';
        END IF;
    WHEN 'identities' THEN
        IF TG_OP = 'DELETE' THEN
            user_id := OLD.user_id;
            events := '{identity_unlinked}';
            detail := jsonb_build_object('provider', OLD.provider);
        ELSIF TG_OP = 'INSERT' THEN
            user_id := NEW.user_id;
            events := '{identity_linked}';
            detail := jsonb_build_object('provider', NEW.provider);
        END IF;
    WHEN 'provider_keys' THEN
        detail := jsonb_build_object('provider', NEW.provider, 'kid', NEW.kid);
        IF TG_OP = 'INSERT' THEN
            events := '{provider_key_added}';
        ELSIF OLD.retired_at IS NULL AND NEW.retired_at IS NOT NULL THEN
            events := '{provider_key_retired}';
            detail := detail || jsonb_build_object('retired_at', NEW.retired_at);
        END IF;
    END CASE;
    PERFORM auth_internal.record_audit(events, user_id, email_key, session_id, api_key_id, detail);
    RETURN NULL;
END
$$;
