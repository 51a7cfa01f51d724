-- Sign-in with an identity provider (OpenID Connect: Google, Microsoft, Keycloak, Auth0…). The
-- browser gets an ID token from the provider and posts it to an API function calling
-- auth.sign_in_with_id_token; pg_auth verifies it with the provider's keys (auth.provider_keys,
-- apart from the key ring: a provider's key never verifies a token of this database), finds or
-- creates the user through auth.identities and starts a session like a password login. The
-- provider's own claims (its `sid` among them) are never published: the session is ours.

CREATE TABLE auth.identity_providers (
    name             text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,39}$'),
    -- ID tokens must carry exactly this `iss`, and this client id in `aud`.
    issuer           text NOT NULL CHECK (length(issuer) BETWEEN 1 AND 500),
    client_id        text NOT NULL CHECK (length(client_id) BETWEEN 1 AND 500),
    -- Where the keys are fetched (https; http only on loopback); NULL: keys are added by hand.
    jwks_url         text CHECK (length(jwks_url) <= 2000),
    -- Sign an ID token with a verified email into the existing account of that email.
    link_by_email    boolean NOT NULL DEFAULT false,
    -- Create an account for a new identity.
    allow_sign_up    boolean NOT NULL DEFAULT true,
    -- Role of accounts created through this provider (NULL: pg_auth.user_role).
    user_role        text,
    refresh_interval interval NOT NULL DEFAULT '1 hour'
                     CHECK (refresh_interval BETWEEN interval '1 minute' AND interval '7 days'),
    -- A key the provider stopped publishing is still accepted this long (tokens signed just before).
    key_grace_period interval NOT NULL DEFAULT '1 hour'
                     CHECK (key_grace_period BETWEEN interval '0' AND interval '30 days'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    keys_fetched_at      timestamptz,  -- last fetch that succeeded
    fetch_attempted_at   timestamptz,  -- last fetch, whatever came of it
    fetch_error          text,         -- why the last fetch failed; NULL after a success
    refresh_requested_at timestamptz   -- a token named a kid not known yet
);
REVOKE ALL ON auth.identity_providers FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.identity_providers', '');

CREATE TABLE auth.provider_keys (
    provider     text NOT NULL REFERENCES auth.identity_providers ON DELETE CASCADE ON UPDATE CASCADE,
    kid          text NOT NULL,  -- '' for a provider's only key without one
    jwk          jsonb NOT NULL,
    added_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at timestamptz NOT NULL DEFAULT now(),  -- last fetch that listed it
    -- No longer accepted from then on (set when the provider stops listing it, plus the grace).
    retired_at   timestamptz,
    PRIMARY KEY (provider, kid)
);
REVOKE ALL ON auth.provider_keys FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.provider_keys', '');

-- ID tokens used to sign in or link, until they expire: each works once (a stolen one cannot be
-- replayed). Only hashes.
CREATE TABLE auth.used_id_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    expires_at timestamptz NOT NULL
);
REVOKE ALL ON auth.used_id_tokens FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.used_id_tokens', '');

-- Who an identity of a provider is here: several identities per user.
CREATE TABLE auth.identities (
    provider        text NOT NULL REFERENCES auth.identity_providers ON DELETE CASCADE ON UPDATE CASCADE,
    subject         text NOT NULL CHECK (length(subject) BETWEEN 1 AND 255),
    user_id         uuid NOT NULL REFERENCES auth.users ON DELETE CASCADE,
    email           text,  -- as the provider last said
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_sign_in_at timestamptz,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user_id ON auth.identities (user_id);
REVOKE ALL ON auth.identities FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('auth.identities', '');

-- Registers a provider. Its keys come from jwks_url (auth.refresh_provider_keys, and the
-- background worker when pg_auth.jwks_databases names this database) or auth.add_provider_key.
CREATE FUNCTION auth.add_identity_provider(name text, issuer text, client_id text, jwks_url text DEFAULT NULL,
                                           link_by_email boolean DEFAULT false, allow_sign_up boolean DEFAULT true,
                                           user_role text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF jwks_url IS NOT NULL THEN
        PERFORM auth_internal.check_jwks_url(jwks_url);
    END IF;
    INSERT INTO auth.identity_providers (name, issuer, client_id, jwks_url, link_by_email, allow_sign_up, user_role)
    VALUES (add_identity_provider.name, add_identity_provider.issuer, add_identity_provider.client_id,
            add_identity_provider.jwks_url, coalesce(add_identity_provider.link_by_email, false),
            coalesce(add_identity_provider.allow_sign_up, true), add_identity_provider.user_role);
END
$$;

-- Stores the usable keys of a provider's JWKS document: new keys are added, listed ones kept
-- (and brought back if retired), keys no longer listed retire after the provider's
-- key_grace_period. PA012 when the document holds no usable key (nothing changes).
-- {keys, added, retired}.
CREATE FUNCTION auth_internal.store_provider_keys(provider text, document text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    grace interval;
    listed jsonb;
    added integer;
    retired integer;
BEGIN
    -- NO KEY UPDATE: sign-ins adding identities (a foreign key to this row) do not wait for it.
    SELECT p.key_grace_period INTO grace FROM auth.identity_providers p
    WHERE p.name = store_provider_keys.provider FOR NO KEY UPDATE;
    SELECT jsonb_agg(jsonb_build_object('kid', k.kid, 'jwk', k.jwk)) INTO listed
    FROM auth_internal.usable_provider_keys(document) AS k;
    SELECT count(*) INTO added FROM jsonb_to_recordset(listed) AS l(kid text, jwk jsonb)
    WHERE NOT EXISTS (SELECT FROM auth.provider_keys k WHERE k.provider = store_provider_keys.provider AND k.kid = l.kid);
    INSERT INTO auth.provider_keys AS k (provider, kid, jwk)
    SELECT store_provider_keys.provider, l.kid, l.jwk FROM jsonb_to_recordset(listed) AS l(kid text, jwk jsonb)
    ON CONFLICT ON CONSTRAINT provider_keys_pkey DO UPDATE SET jwk = excluded.jwk, last_seen_at = now(), retired_at = NULL;
    UPDATE auth.provider_keys k SET retired_at = k.last_seen_at + grace
    WHERE k.provider = store_provider_keys.provider AND k.retired_at IS NULL
      AND NOT EXISTS (SELECT FROM jsonb_to_recordset(listed) AS l(kid text, jwk jsonb) WHERE l.kid = k.kid);
    GET DIAGNOSTICS retired = ROW_COUNT;
    RETURN jsonb_build_object('keys', jsonb_array_length(listed), 'added', added, 'retired', retired);
END
$$;

-- Adds one key of a provider by hand (a JWK; no private parts, no oct secrets). It retires like
-- the others if the provider's fetched JWKS does not list it.
CREATE FUNCTION auth.add_provider_key(provider text, jwk jsonb) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM auth.identity_providers p WHERE p.name = add_provider_key.provider) THEN
        PERFORM auth_internal.raise_error('invalid_argument', format('unknown identity provider %L', add_provider_key.provider));
    END IF;
    INSERT INTO auth.provider_keys AS k (provider, kid, jwk)
    SELECT add_provider_key.provider, u.kid, u.jwk
    FROM auth_internal.usable_provider_keys(jsonb_build_object('keys', jsonb_build_array(add_provider_key.jwk))::text) AS u
    ON CONFLICT ON CONSTRAINT provider_keys_pkey DO UPDATE SET jwk = excluded.jwk, last_seen_at = now(), retired_at = NULL;
END
$$;

-- Fetches a provider's JWKS now and stores its keys: {provider, keys, added, retired}. A failure
-- keeps the last good keys, is logged (WARNING), recorded in fetch_error and returned as
-- {provider, error}; with `raise_errors` it is raised instead (PA028, or PA012 for a document
-- without usable keys), and then not recorded.
CREATE FUNCTION auth.refresh_provider_keys(provider text, raise_errors boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p auth.identity_providers;
    result jsonb;
    failure text;
    failure_state text;
BEGIN
    SELECT * INTO p FROM auth.identity_providers x WHERE x.name = refresh_provider_keys.provider;
    IF p.name IS NULL OR p.jwks_url IS NULL THEN
        PERFORM auth_internal.raise_error('invalid_argument',
            format('%L is no identity provider with a jwks_url', refresh_provider_keys.provider));
    END IF;
    BEGIN
        result := auth_internal.store_provider_keys(p.name, auth_internal.fetch_jwks(p.jwks_url));
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS failure = MESSAGE_TEXT, failure_state = RETURNED_SQLSTATE;
    END;
    UPDATE auth.identity_providers x
    SET fetch_attempted_at = now(), fetch_error = failure,
        keys_fetched_at = CASE WHEN failure IS NULL THEN now() ELSE x.keys_fetched_at END
    WHERE x.name = p.name;
    IF failure IS NOT NULL THEN
        RAISE WARNING 'pg_auth: keys of identity provider % not refreshed (the last good keys stay): %', p.name, failure;
        IF raise_errors THEN
            RAISE EXCEPTION USING ERRCODE = failure_state, MESSAGE = failure;
        END IF;
        RETURN jsonb_build_object('provider', p.name, 'error', failure);
    END IF;
    RETURN jsonb_build_object('provider', p.name) || result;
END
$$;

-- The providers whose keys are due: older than their refresh_interval, failing (retried), or
-- asked for by an unknown kid — never one fetched less than pg_auth.jwks_min_refresh_interval
-- seconds ago. The background worker refreshes each in a transaction of its own.
CREATE FUNCTION auth_internal.due_provider_names() RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(x.name ORDER BY x.name), '{}') FROM auth.identity_providers x
    WHERE x.jwks_url IS NOT NULL
      AND (x.fetch_attempted_at IS NULL
           OR x.fetch_attempted_at < now() - make_interval(secs => auth_internal.setting('jwks_min_refresh_interval')::int)
              AND (x.fetch_error IS NOT NULL OR x.keys_fetched_at IS NULL
                   OR x.fetch_attempted_at < now() - x.refresh_interval
                   OR x.refresh_requested_at > x.fetch_attempted_at))
$$;

-- Refreshes every due provider in this transaction (for pg_cron without the worker: schedule
-- it every minute); returns how many were fetched.
CREATE FUNCTION auth_internal.refresh_due_provider_keys() RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT count(auth.refresh_provider_keys(name))::integer FROM unnest(auth_internal.due_provider_names()) AS name
$$;

-- The ID token verified with the provider's live keys: {subject, email, email_verified,
-- expires_at}, email_verified only from a provider with link_by_email. NULL when the token names
-- a key not known yet: the keys are then asked for (the caller refuses the sign-in so that this
-- request commits, and the background worker fetches them). A token is good once (PA027 after).
CREATE FUNCTION auth_internal.verified_id_token(p auth.identity_providers, id_token text, nonce text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    keys jsonb;
    claimed jsonb;
BEGIN
    SELECT coalesce(jsonb_agg(k.jwk ORDER BY k.kid), '[]') INTO keys FROM auth.provider_keys k
    WHERE k.provider = p.name AND (k.retired_at IS NULL OR k.retired_at > now());
    claimed := auth_internal.verify_id_token(id_token, keys, p.issuer, p.client_id, nonce);
    IF claimed IS NULL THEN
        -- Once per fetch: a flood of made-up kids writes nothing more.
        UPDATE auth.identity_providers x SET refresh_requested_at = now()
        WHERE x.name = p.name AND (x.refresh_requested_at IS NULL OR x.refresh_requested_at <= x.fetch_attempted_at);
        RETURN NULL;
    END IF;
    -- Keyed by what was signed (header and payload), not the token's text: an ECDSA signature has
    -- a second valid spelling. Kept while the token still verifies (its exp and the leeway).
    INSERT INTO auth.used_id_tokens (token_hash, expires_at)
    VALUES (auth_internal.hash_token(split_part(id_token, '.', 1) || '.' || split_part(id_token, '.', 2)),
            to_timestamp((claimed ->> 'expires_at')::bigint) + make_interval(secs => auth_internal.setting('leeway')::int))
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        PERFORM auth_internal.raise_error('identity_refused', 'this ID token was used already; sign in with the provider again');
    END IF;
    -- Only a provider trusted to link by email is trusted to have verified one.
    RETURN claimed || jsonb_build_object('email_verified', p.link_by_email AND (claimed ->> 'email_verified')::boolean);
END
$$;

CREATE FUNCTION auth_internal.identity_provider(name text) RETURNS auth.identity_providers
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p auth.identity_providers;
BEGIN
    SELECT * INTO p FROM auth.identity_providers x WHERE x.name = identity_provider.name;
    IF p.name IS NULL THEN
        PERFORM auth_internal.raise_error('identity_refused', format('unknown identity provider %L', identity_provider.name));
    END IF;
    RETURN p;
END
$$;

-- Signs in with an ID token of `provider`: verified (signature with the provider's keys, iss,
-- aud = client id, exp, azp, and `nonce` — pass the one the application sent, always), then the
-- identity's account, or the account of the token's email when the provider verified it and
-- link_by_email is on, or a new account (allow_sign_up, the provider's email). A session as
-- auth.login: {provider, user_id, session_id, token, expires_at, aal, mfa_enrolled[, jwt]}.
-- A token signed with a key not known yet: NULL with 401 (X-Auth-Error: PA010) and the keys are
-- fetched; try again in a few seconds.
CREATE FUNCTION auth.sign_in_with_id_token(provider text, id_token text, nonce text DEFAULT NULL,
                                           return_jwt boolean DEFAULT false) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p auth.identity_providers;
    claimed jsonb;
    target uuid;
    existing auth.users;
BEGIN
    PERFORM auth_internal.require_read_write('auth.sign_in_with_id_token');
    p := auth_internal.identity_provider(provider);
    claimed := auth_internal.verified_id_token(p, id_token, nonce);
    IF claimed IS NULL THEN
        RETURN auth_internal.refuse('PA010', 'the token is signed with a key of the provider not known yet; try again in a few seconds');
    END IF;
    SELECT i.user_id INTO target FROM auth.identities i WHERE i.provider = p.name AND i.subject = claimed ->> 'subject';
    IF target IS NULL THEN
        SELECT * INTO existing FROM auth.users u WHERE lower(u.email) = lower(claimed ->> 'email') FOR UPDATE;
        IF existing.id IS NOT NULL THEN
            IF NOT (p.link_by_email AND (claimed ->> 'email_verified')::boolean
                    AND auth_internal.same_email(existing.email, claimed ->> 'email')) THEN
                PERFORM auth_internal.raise_error('identity_refused',
                    'an account with this email exists and is not linked to this provider; sign in to it and link the provider');
            END IF;
            target := existing.id;
            IF NOT existing.email_verified THEN
                -- Whoever made this account never proved the address; the provider's user has.
                PERFORM auth_internal.end_unproved_ways_in(target);
            END IF;
        ELSIF NOT p.allow_sign_up THEN
            PERFORM auth_internal.raise_error('identity_refused', format('sign-up through %s is off', p.name));
        ELSIF claimed ->> 'email' IS NULL THEN
            PERFORM auth_internal.raise_error('identity_refused', 'the provider gave no email address to create an account with');
        ELSE
            INSERT INTO auth.users (email, role, email_verified)
            VALUES (claimed ->> 'email', coalesce(p.user_role, auth_internal.setting('user_role')), (claimed ->> 'email_verified')::boolean)
            ON CONFLICT DO NOTHING
            RETURNING users.id INTO target;
            IF target IS NULL THEN  -- made meanwhile by someone else
                PERFORM auth_internal.raise_error('identity_refused',
                    'an account with this email exists and is not linked to this provider; sign in to it and link the provider');
            END IF;
        END IF;
        INSERT INTO auth.identities (provider, subject, user_id, email) VALUES (p.name, claimed ->> 'subject', target, claimed ->> 'email')
        ON CONFLICT DO NOTHING;
        SELECT i.user_id INTO target FROM auth.identities i WHERE i.provider = p.name AND i.subject = claimed ->> 'subject';
    END IF;
    -- The account as it is now, locked: a disabled one gets no session.
    SELECT * INTO existing FROM auth.users u WHERE u.id = target FOR UPDATE;
    IF existing.disabled THEN
        PERFORM auth_internal.raise_error('identity_refused', 'this account is disabled');
    END IF;
    IF (claimed ->> 'email_verified')::boolean AND auth_internal.same_email(existing.email, claimed ->> 'email')
       AND NOT existing.email_verified THEN
        UPDATE auth.users u SET email_verified = true, updated_at = now() WHERE u.id = target;
    END IF;
    UPDATE auth.identities i SET last_sign_in_at = now(), email = claimed ->> 'email'
    WHERE i.provider = p.name AND i.subject = claimed ->> 'subject';
    RETURN jsonb_build_object('provider', p.name) || auth_internal.start_session(target, return_jwt);
END
$$;

-- Links an identity of `provider` to the signed-in user (verified like a sign-in), from a session
-- signed in within pg_auth.reauthentication_window (PA017 otherwise) and, with a second factor,
-- at aal2. PA027 when it belongs to another account. {provider, subject}.
CREATE FUNCTION auth.link_identity(provider text, id_token text, nonce text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions;
    p auth.identity_providers;
    claimed jsonb;
    owner uuid;
BEGIN
    PERFORM auth_internal.require_read_write('auth.link_identity');
    me := auth_internal.current_session();
    -- A new way into the account outlives sessions and passwords: only from a recent sign-in,
    -- with the second factor if there is one.
    PERFORM auth_internal.require_recent_sign_in();
    PERFORM auth_internal.require_second_factor();
    p := auth_internal.identity_provider(provider);
    claimed := auth_internal.verified_id_token(p, id_token, nonce);
    IF claimed IS NULL THEN
        RETURN auth_internal.refuse('PA010', 'the token is signed with a key of the provider not known yet; try again in a few seconds');
    END IF;
    INSERT INTO auth.identities (provider, subject, user_id, email) VALUES (p.name, claimed ->> 'subject', me.user_id, claimed ->> 'email')
    ON CONFLICT DO NOTHING;
    SELECT i.user_id INTO owner FROM auth.identities i WHERE i.provider = p.name AND i.subject = claimed ->> 'subject';
    IF owner <> me.user_id THEN
        PERFORM auth_internal.raise_error('identity_refused', 'this identity is linked to another account');
    END IF;
    RETURN jsonb_build_object('provider', p.name, 'subject', claimed ->> 'subject');
END
$$;

-- Removes the signed-in user's identities of `provider`. True when there was one. Not the
-- last way to sign in of an account without a password (PA027; email codes aside).
CREATE FUNCTION auth.unlink_identity(provider text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    me auth.sessions := auth_internal.current_session();
BEGIN
    PERFORM auth_internal.require_second_factor();
    PERFORM FROM auth.users u WHERE u.id = me.user_id FOR UPDATE;
    DELETE FROM auth.identities i WHERE i.user_id = me.user_id AND i.provider = unlink_identity.provider;
    IF FOUND AND NOT EXISTS (SELECT FROM auth.identities i WHERE i.user_id = me.user_id)
       AND EXISTS (SELECT FROM auth.users u WHERE u.id = me.user_id AND u.password_hash IS NULL) THEN
        PERFORM auth_internal.raise_error('identity_refused',
            'this is the account''s last way to sign in; set a password or link another provider first');
    END IF;
    RETURN FOUND;
END
$$;

-- The signed-in user's identities.
CREATE FUNCTION auth.my_identities()
RETURNS TABLE (provider text, subject text, email text, created_at timestamptz, last_sign_in_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.provider, i.subject, i.email, i.created_at, i.last_sign_in_at
    FROM auth.identities i WHERE i.user_id = (auth_internal.current_session()).user_id
    ORDER BY i.provider, i.created_at
$$;
