from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from rackd.errors import SecretError
from rackd.logs import configure_logging
from rackd.secrets import Secret, SecretRef


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("debug", stream, json=True)
    yield stream
    structlog.reset_defaults()


def test_json_lines_with_bound_context_and_redaction(log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW", "s3cr3t-value")
    secret = Secret(ref=SecretRef(env="PW"))
    log = structlog.get_logger("t").bind(device="gpu-01", command_id="c-1")
    log.info("bmc_login", password="s3cr3t-value", community="public-ish", secret=secret, host="10.0.0.1")
    line = json.loads(log_stream.getvalue().splitlines()[-1])
    assert line["event"] == "bmc_login"
    assert line["device"] == "gpu-01"
    assert line["command_id"] == "c-1"
    assert line["password"] == "***"
    assert line["community"] == "***"
    assert line["secret"] == "***"
    assert line["host"] == "10.0.0.1"
    assert "s3cr3t" not in log_stream.getvalue()


def test_secret_from_file_env_and_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    assert Secret(ref=SecretRef(file=tmp_path / "pw")).reveal() == "from-file"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    (tmp_path / "bmc").write_text("from-credential")
    assert Secret(ref=SecretRef(credential="bmc")).reveal() == "from-credential"
    monkeypatch.setenv("X_PW", "from-env")
    assert Secret(ref=SecretRef(env="X_PW")).reveal() == "from-env"


def test_unresolvable_secrets_say_where_without_a_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(SecretError, match="CREDENTIALS_DIRECTORY"):
        Secret(ref=SecretRef(credential="bmc")).check()
    with pytest.raises(SecretError, match="no such file"):
        Secret(ref=SecretRef(file=tmp_path / "missing")).check()
    monkeypatch.delenv("NOPE_PW", raising=False)
    with pytest.raises(SecretError, match="NOPE_PW"):
        Secret(ref=SecretRef(env="NOPE_PW")).reveal()


def test_secret_repr_never_shows_value() -> None:
    secret = Secret(inline="hunter2")
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in str(secret)
    assert "hunter2" not in f"{secret}"
