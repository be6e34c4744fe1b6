from __future__ import annotations

import datetime as dt

import pytest

from rackd.control.signing import SignatureError, SignatureVerifier, sign
from rackd.secrets import Secret

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
REQUEST = {"v": 1, "id": "c-1", "action": "power.cycle", "args": {"via": "bmc"}}


@pytest.fixture
def verifier() -> SignatureVerifier:
    return SignatureVerifier({"alice": Secret(inline="k-alice"), "bob": Secret(inline="k-bob")}, max_skew=300)


def test_valid_signature_authenticates_the_signer(verifier: SignatureVerifier) -> None:
    assert verifier.verify(sign(REQUEST, "alice", "k-alice", NOW), NOW + dt.timedelta(seconds=5)) == "alice"


def test_unsigned_is_refused(verifier: SignatureVerifier) -> None:
    with pytest.raises(SignatureError, match="unsigned"):
        verifier.verify({**REQUEST, "requested_by": "alice"}, NOW)


def test_tampered_is_refused(verifier: SignatureVerifier) -> None:
    signed = sign(REQUEST, "alice", "k-alice", NOW)
    with pytest.raises(SignatureError, match="bad signature"):
        verifier.verify({**signed, "action": "power.off"}, NOW)
    with pytest.raises(SignatureError, match="bad signature"):
        verifier.verify({**signed, "requested_by": "bob"}, NOW)  # claiming to be someone else


def test_stale_is_refused(verifier: SignatureVerifier) -> None:
    with pytest.raises(SignatureError, match="stale"):
        verifier.verify(sign(REQUEST, "alice", "k-alice", NOW), NOW + dt.timedelta(seconds=301))


def test_replay_is_refused(verifier: SignatureVerifier) -> None:
    signed = sign(REQUEST, "alice", "k-alice", NOW)
    verifier.verify(signed, NOW)
    with pytest.raises(SignatureError, match="replayed"):
        verifier.verify(signed, NOW + dt.timedelta(seconds=1))


def test_unknown_signer_is_refused(verifier: SignatureVerifier) -> None:
    with pytest.raises(SignatureError, match="no signing key for 'mallory'"):
        verifier.verify(sign(REQUEST, "mallory", "whatever", NOW), NOW)
