"""Claims come back as jsonb built directly from the verified text (src/api/jsonb.rs), not through
PostgreSQL's jsonb_in: every payload must give exactly the jsonb that jsonb_in gives for the same
text (same value, same text rendering, same numeric scale), or the same error."""

import json

import pytest

from conftest import one
from jwtutil import make_token

SECRET = b"a-secret-for-jsonb-result-tests-0123456789"
OPTIONS = '{"algorithms": ["HS256"], "leeway": 0}'

PAYLOADS = [
    b'{}',
    b'{"sub":"u","n":1,"neg":-7,"zero":0,"negzero":-0,"big":9223372036854775807,"small":-9223372036854775808}',
    b'{"beyond_int64":9223372036854775808,"huge":123456789012345678901234567890}',
    b'{"f":1.10,"e":1e2,"E":-2.5E-3,"frac":0.1,"intf":3.0}',
    b'{"t":true,"f":false,"n":null,"s":""}',
    b'{"nested":{"b":{"c":[1,"x",{"d":null}],"a":[]},"a":{}},"arr":[[],[[]],{}]}',
    b'{"dup":1,"dup":2,"x":{"k":"first","k":"last"}}',
    b'{"bb":1,"a":2,"ccc":3,"b":4,"aa":5,"ab":6,"B":7,"\xc3\xa9":8,"z":9}',
    '{"unicode":"h\u00e9llo \u2603 \U0001f600","k\u00e9y":"v"}'.encode(),
    b'{"esc":"quote \\" backslash \\\\ slash \\/ \\b\\f\\n\\r\\t","u":"\\u00e9\\u2603\\ud83d\\ude00"}',
    b'{"ctrl":"\\u0001\\u001f"}',
    b'  {"spaced" : [ 1 , 2 ] }  ',
    b'{"long":"' + b"x" * 10_000 + b'"}',
    b'{"deep":' + b'[' * 200 + b']' * 200 + b'}',
    b'{"deep":' + b'{"a":' * 150 + b'1' + b'}' * 150 + b'}',
]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_verify_jwt_returns_what_jsonb_in_makes_of_the_payload(conn, payload):
    token = make_token({"alg": "HS256", "typ": "JWT"}, payload, key=SECRET)
    got = one(conn, "SELECT auth.verify_jwt(%s, %s, %s)::text", (token, SECRET.decode(), OPTIONS))
    want = one(conn, "SELECT convert_from(%s, 'UTF8')::jsonb::text", (payload,))
    assert got == want
    assert one(conn, "SELECT auth.verify_jwt(%s, %s, %s) = convert_from(%s, 'UTF8')::jsonb",
               (token, SECRET.decode(), OPTIONS, payload))


def test_a_nul_escape_is_refused_before_jsonb_is_built(conn):
    payload = b'{"s":"a\\u0000b"}'
    token = make_token({"alg": "HS256", "typ": "JWT"}, payload, key=SECRET)
    with pytest.raises(Exception) as e:
        one(conn, "SELECT auth.verify_jwt(%s, %s, %s)", (token, SECRET.decode(), OPTIONS))
    assert getattr(e.value, "sqlstate", None) == "PA009", e.value
    assert "\\u0000" in str(e.value)


def test_lookups_in_the_result_find_every_key(conn):
    """jsonb finds keys by binary search in its own key order: a wrongly sorted result would
    answer NULL for keys that are there."""
    claims = {k: i for i, k in enumerate(["a", "b", "aa", "B", "é", "z", "ab", "ccc", "bb", "Z9", "a b"])}
    token = make_token({"alg": "HS256", "typ": "JWT"}, json.dumps(claims).encode(), key=SECRET)
    for key, index in claims.items():
        assert one(conn, "SELECT (auth.verify_jwt(%s, %s, %s) ->> %s)::int", (token, SECRET.decode(), OPTIONS, key)) == index
    assert one(conn, "SELECT auth.verify_jwt(%s, %s, %s) ?& %s", (token, SECRET.decode(), OPTIONS, list(claims)))
