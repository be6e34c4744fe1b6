"""The plugin's sample config validates against the driver's options model."""

from __future__ import annotations

import tomllib
from pathlib import Path

from rackd_ipmi.options import IpmiOptions

from rackd.drivers.registry import DriverRegistry


def test_sample_node_bmc_tables_validate() -> None:
    sample = tomllib.loads((Path(__file__).parents[1] / "sample.toml").read_text(encoding="utf-8"))
    model = DriverRegistry().info("ipmi").options_model
    assert model is IpmiOptions
    nodes = sample["node"]
    assert len(nodes) == 3
    for node in nodes:
        table = dict(node["bmc"])
        assert table.pop("driver") == "ipmi"
        options = IpmiOptions.model_validate(table)
        assert options.host
        assert 0 not in options.cipher_suites
