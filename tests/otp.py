"""TOTP codes computed on the test side: an implementation of RFC 6238 independent of pg_auth's."""

import base64
import hashlib
import hmac
import struct
import time


def totp(secret_b32, at=None, offset=0):
    """RFC 6238 with SHA-1, 6 digits, 30 s."""
    secret = base64.b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    step = int((time.time() if at is None else at) // 30) + offset
    mac = hmac.new(secret, struct.pack(">q", step), hashlib.sha1).digest()
    offset_byte = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset_byte:offset_byte + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"
