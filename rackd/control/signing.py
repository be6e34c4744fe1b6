"""Signed MQTT commands: HMAC-SHA256 per operator over the canonical payload with a timestamp and a nonce."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any

from rackd.errors import RackdError
from rackd.secrets import Secret

SIGNATURE_FIELDS = ("ts", "nonce", "sig")


class SignatureError(RackdError):
    """A command's signature is missing, wrong, stale or replayed (the message says which)."""


def canonical(request: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: the request without `sig`, as sorted compact UTF-8 JSON."""
    body = {k: v for k, v in request.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(request: Mapping[str, Any], who: str, key: str, now: dt.datetime) -> dict[str, Any]:
    """Add requested_by, ts, nonce and sig to a request (what a client does)."""
    signed = {**request, "requested_by": who, "ts": now.isoformat(), "nonce": secrets.token_hex(16)}
    signed["sig"] = hmac.new(key.encode(), canonical(signed), hashlib.sha256).hexdigest()
    return signed


class SignatureVerifier:
    """Checks signed requests; remembers nonces for the accepted clock skew so a replay is refused."""

    def __init__(self, keys: Mapping[str, Secret], max_skew: float) -> None:
        """`keys` maps each operator name to their shared key (a secret reference)."""
        self._keys = keys
        self._max_skew = dt.timedelta(seconds=max_skew)
        self._seen: dict[str, dt.datetime] = {}

    def verify(self, request: Mapping[str, Any], now: dt.datetime, *, check_nonce: bool = True) -> str:
        """The authenticated operator name; SignatureError otherwise."""
        fields = [request.get(k) for k in ("requested_by", "ts", "nonce", "sig")]
        if not all(isinstance(v, str) and v for v in fields):
            raise SignatureError("unsigned command refused: this site requires requested_by, ts, nonce and sig")
        who, stamp, nonce, sig = (str(v) for v in fields)
        key = self._keys.get(who)
        if key is None:
            raise SignatureError(f"no signing key for {who!r}")
        expected = hmac.new(key.reveal().encode(), canonical(request), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, sig):
            raise SignatureError("bad signature (tampered, or signed with another key)")
        try:
            signed_at = dt.datetime.fromisoformat(stamp)
        except ValueError:
            raise SignatureError(f"ts {stamp!r} is not an ISO-8601 time") from None
        if signed_at.tzinfo is None:
            raise SignatureError("ts must carry a timezone")
        if abs(now - signed_at) > self._max_skew:
            raise SignatureError(f"stale: signed at {stamp}, more than {self._max_skew.total_seconds():g} s from now")
        self._forget_before(now - self._max_skew)
        if not check_nonce:
            return who
        if nonce in self._seen:
            raise SignatureError("replayed: this nonce was already used")
        self._seen[nonce] = signed_at
        return who

    def _forget_before(self, cutoff: dt.datetime) -> None:
        # A nonce older than the skew window cannot come back: its timestamp would be refused as stale.
        for nonce in [n for n, at in self._seen.items() if at < cutoff]:
            del self._seen[nonce]
