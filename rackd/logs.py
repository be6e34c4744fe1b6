"""structlog setup: JSON lines off a TTY (journald), readable lines on a TTY, secrets redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from rackd.secrets import REDACTED, Secret

# Keys whose values are never logged, whatever they hold.
_SECRET_KEYS = re.compile(r"pass(word)?|secret|community|auth_?key|priv_?key|token|credential", re.IGNORECASE)


def redact_secrets(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Processor: replace values of secret-looking keys, and Secret objects, by the redaction marker."""
    for key, value in list(event_dict.items()):
        if isinstance(value, Secret) or (_SECRET_KEYS.search(key) and value is not None):
            event_dict[key] = REDACTED
    return event_dict


def configure_logging(level: str = "info", stream: TextIO | None = None, json: bool | None = None) -> None:
    """Set up structlog once for the process; `json=None` picks JSON unless the stream is a TTY."""
    stream = stream or sys.stderr
    use_json = (not stream.isatty()) if json is None else json
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if use_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    # Libraries that log through the stdlib (aiomqtt, pysnmp) go to the same stream, quietly.
    logging.basicConfig(stream=stream, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
