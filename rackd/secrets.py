"""Password and community references (file, env, systemd credential), resolved late and never shown."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, GetCoreSchemaHandler, ValidationError, model_validator
from pydantic_core import core_schema

from rackd.errors import SecretError

REDACTED = "***"


class SecretRef(BaseModel):
    """Where a secret lives: exactly one of `file`, `env` or `credential` (systemd LoadCredential name)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: Path | None = None
    env: str | None = None
    credential: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [name for name in ("file", "env", "credential") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a secret reference needs exactly one of file, env or credential")
        return self


class Secret:
    """A secret value: resolved on `reveal()`, redacted in repr/str/JSON so it never reaches logs or MQTT."""

    __slots__ = ("_inline", "_ref")

    def __init__(self, ref: SecretRef | None = None, inline: str | None = None) -> None:
        """Wrap a reference, or an inline literal from the config file."""
        if (ref is None) == (inline is None):
            raise ValueError("Secret needs a reference or an inline value")
        self._ref = ref
        self._inline = inline

    @property
    def is_inline(self) -> bool:
        """True when the secret was written into the config file itself (check-config warns)."""
        return self._inline is not None

    def describe(self) -> str:
        """Where the secret comes from, without its value."""
        if self._ref is None:
            return "inline"
        if self._ref.file is not None:
            return f"file {self._ref.file}"
        if self._ref.env is not None:
            return f"env {self._ref.env}"
        return f"credential {self._ref.credential}"

    def check(self) -> None:
        """Raise SecretError if the secret could not be resolved now; reads nothing into memory."""
        path = self._path()
        if path is not None:
            if not path.is_file():
                raise SecretError(f"secret {self.describe()}: no such file")
            if not os.access(path, os.R_OK):
                raise SecretError(f"secret {self.describe()}: file is not readable by this user")
        elif self._ref is not None and self._ref.env is not None and self._ref.env not in os.environ:
            raise SecretError(f"secret {self.describe()}: environment variable is not set")

    def reveal(self) -> str:
        """The secret's value, read now (files and credentials: first line, trailing newline stripped)."""
        if self._inline is not None:
            return self._inline
        assert self._ref is not None
        if self._ref.env is not None:
            try:
                return os.environ[self._ref.env]
            except KeyError:
                raise SecretError(f"secret {self.describe()}: environment variable is not set") from None
        path = self._path()
        assert path is not None
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretError(f"secret {self.describe()}: cannot read ({exc.strerror})") from None
        return text.splitlines()[0] if text else ""

    def _path(self) -> Path | None:
        if self._ref is None:
            return None
        if self._ref.file is not None:
            return self._ref.file
        if self._ref.credential is not None:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if directory is None:
                raise SecretError(
                    f"secret {self.describe()}: $CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=)"
                )
            return Path(directory) / self._ref.credential
        return None

    def __repr__(self) -> str:
        """Never the value."""
        return f"Secret({self.describe()})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        """Equal when they come from the same place (used to tell whether a device's config changed)."""
        if not isinstance(other, Secret):
            return NotImplemented
        return self._ref == other._ref and self._inline == other._inline

    def __hash__(self) -> int:
        """Hash of where it comes from."""
        return hash((self._ref, self._inline))

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        """Accept an inline string or a {file|env|credential} table; serialize as the redaction marker."""
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.union_schema(
                [core_schema.str_schema(), handler.generate_schema(SecretRef)]
            ),
            serialization=core_schema.plain_serializer_function_ser_schema(lambda _s: REDACTED),
        )

    @classmethod
    def _validate(cls, value: object) -> Secret:
        if isinstance(value, Secret):
            return value
        if isinstance(value, str):
            return cls(inline=value)
        if isinstance(value, dict):
            try:
                return cls(ref=SecretRef.model_validate(value))
            except ValidationError as exc:
                details = "; ".join(
                    f"{'.'.join(str(p) for p in err['loc']) or 'reference'}: {err['msg']}" for err in exc.errors()
                )
                raise ValueError(f"bad secret reference ({details})") from None
        raise ValueError("expected a string or a table with exactly one of file, env or credential")
