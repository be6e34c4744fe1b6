"""Finds drivers through the entry-point group `rackd.drivers` — first-party and third-party alike."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import cast

import structlog

from rackd.drivers.contract import Capability, Driver, DriverOptions
from rackd.errors import DriverNotFoundError

ENTRY_POINT_GROUP = "rackd.drivers"
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DriverInfo:
    """What `rackd drivers` shows about one installed driver."""

    name: str
    capabilities: frozenset[Capability]
    options_model: type[DriverOptions]
    distribution: str | None
    target: str


class DriverRegistry:
    """The installed drivers; each is loaded on first use and instantiated once per process."""

    def __init__(self, extra: dict[str, type[Driver]] | None = None) -> None:
        """Read the entry points now; `extra` adds drivers that are not installed (tests)."""
        self._entry_points: dict[str, EntryPoint] = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        self._classes: dict[str, type[Driver]] = dict(extra or {})
        self._instances: dict[str, Driver] = {}

    def names(self) -> list[str]:
        """Names of every installed driver, sorted."""
        return sorted(set(self._entry_points) | set(self._classes))

    def driver_class(self, name: str) -> type[Driver]:
        """The driver class for `name`; DriverNotFoundError names the installed ones when it is missing."""
        if name in self._classes:
            return self._classes[name]
        entry_point = self._entry_points.get(name)
        if entry_point is None:
            installed = ", ".join(self.names()) or "none"
            raise DriverNotFoundError(f"no driver named {name!r} is installed (installed: {installed})")
        try:
            loaded = entry_point.load()
        except Exception as exc:  # a broken plugin must not take the daemon down; say which one and why
            raise DriverNotFoundError(f"driver {name!r} ({entry_point.value}) failed to load: {exc!r}") from exc
        cls = cast("type[Driver]", loaded)
        self._classes[name] = cls
        return cls

    def get(self, name: str) -> Driver:
        """The one instance of driver `name` in this process."""
        if name not in self._instances:
            self._instances[name] = self.driver_class(name)()
        return self._instances[name]

    def info(self, name: str) -> DriverInfo:
        """Capabilities and origin of one driver."""
        cls = self.driver_class(name)
        entry_point = self._entry_points.get(name)
        dist = entry_point.dist.name if entry_point is not None and entry_point.dist is not None else None
        target = entry_point.value if entry_point is not None else f"{cls.__module__}:{cls.__qualname__}"
        return DriverInfo(name, cls.capabilities, cls.options_model, dist, target)

    def loaded(self) -> list[Driver]:
        """Every driver instantiated so far (to close them at shutdown)."""
        return list(self._instances.values())

    async def aclose(self) -> None:
        """Release every instantiated driver's process-wide resources."""
        for name, driver in list(self._instances.items()):
            try:
                await driver.aclose()
            except Exception:  # closing must continue through a faulty driver
                log.exception("driver_close_failed", driver=name)
        self._instances.clear()
