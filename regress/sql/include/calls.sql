-- Every function PUBLIC may execute (regress/sql/privileges.sql lists them), with each kind of
-- credential and source. Only the SQLSTATE is shown: the point is what runs, not the result.
SELECT public.err('SELECT auth.jwks()') AS jwks;
SELECT public.err(format('SELECT auth.verify_jwt(%L)', ring_jwt)) AS verify_ring,
       public.err(format('SELECT auth.verify_jwt(%L, %L, %L)', keyed_jwt, secret, '{"algorithms":["HS256"]}')) AS verify_key,
       public.err(format('SELECT auth.verify_jwt(%L, %L, %L)', keyed_jwt, secret, '{"leeway":5,"required":["sub"],"algorithms":["HS256"]}')) AS verify_options,
       public.err(format('SELECT auth.sign_jwt(%L, %L)', '{"a":1}', secret)) AS sign_key,
       public.err(format('SELECT auth.sign_jwt(%L, %L, %L)', '{"a":1}', secret, 'HS512')) AS sign_key_alg,
       public.err(format('SELECT auth.decode_jwt_unverified(%L)', ring_jwt)) AS decode
FROM public.creds;
-- Any SQL client: auth.authenticate(token).
SELECT public.err(format('SELECT auth.authenticate(%L)', ring_jwt)) AS ring_jwt,
       public.err(format('SELECT auth.authenticate(%L)', session_token)) AS session,
       public.err(format('SELECT auth.authenticate(%L)', sid_jwt)) AS sid_jwt,
       public.err(format('SELECT auth.authenticate(%L)', keyed_jwt)) AS foreign_jwt,
       public.err('SELECT auth.authenticate(NULL)') AS anonymous
FROM public.creds;
-- PostgREST's pre-request, with request.* set by hand: cookie, header, Bearer.
SELECT public.err(format($q$SELECT set_config('request.method', 'GET', true), set_config('request.headers', '{"x-access-token": %s}', true),
                                  set_config('request.cookies', '{"access_token": %s}', true),
                                  auth.authenticate()$q$, to_json(sid_jwt), to_json(session_token))) AS pre_request
FROM public.creds;
SELECT public.err(format($q$SELECT set_config('request.method', 'GET', true), set_config('request.headers', '{"authorization": "Bearer %s"}', true),
                                  set_config('request.jwt.claims', %L, true),
                                  auth.authenticate()$q$, ring_jwt, '{"role":"regress_web","jti":"x","sid":"00000000-0000-0000-0000-000000000000"}')) AS pre_request_bearer
FROM public.creds;
SELECT public.err('SELECT auth.jwt(), auth.uid(), auth.role(), auth.email(), auth.claim(''a.b''), auth.session_id(), auth.as_uuid(''x''), auth.aal(), auth.mfa_satisfied()') AS identity;
