"""Shared fixtures: fake-driver world reset, config files, a real mosquitto on a free loopback port."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from rackd.config import Config, load_config
from rackd.drivers.registry import DriverRegistry
from rackd.testing.broker import Mosquitto
from rackd.testing.fake_driver import WORLD


@pytest.fixture(autouse=True)
def _reset_fake_world() -> Iterator[None]:
    WORLD.reset()
    yield
    WORLD.reset()


@pytest.fixture
def registry() -> DriverRegistry:
    return DriverRegistry()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Write a TOML config (dedented) into tmp_path and return its path."""
    counter = iter(range(1000))

    def write(text: str) -> Path:
        path = tmp_path / f"rackd-{next(counter)}.toml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def load(write_config: Callable[[str], Path], registry: DriverRegistry) -> Callable[[str], Config]:
    def _load(text: str) -> Config:
        return load_config(write_config(text), registry)

    return _load


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A real mosquitto on a free loopback port, stopped by PID afterwards."""
    mosquitto = Mosquitto()
    mosquitto.start()
    yield mosquitto
    mosquitto.cleanup()
