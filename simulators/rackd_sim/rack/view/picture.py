"""The rack as the view shows it: folded from rackd's MQTT messages (state, telemetry, rack totals, events)."""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

GPU_TEMP = re.compile(r"^gpu\d+_temp$")
EVENTS_KEPT = 50


@dataclass(frozen=True, slots=True)
class NodeRow:
    """One server's line in the view."""

    id: str
    power: str  # chassis power as rackd observed it ("on", "off", "-" when unknown)
    health: str
    bmc: str  # availability of the BMC source ("up", "down", "-" without a BMC)
    draw_w: float | None  # what its outlets meter (rack telemetry)
    bmc_w: float | None  # what its BMC reports (DCMI)
    hottest_gpu: float | None


@dataclass(frozen=True, slots=True)
class FeedRow:
    """One power feed (A/B): its draw and per-phase currents."""

    feed: str
    power: float | None
    phases: dict[str, float | None]
    pdus: list[str]


class RackPicture:
    """Thread-safe: the MQTT thread applies messages, the screen reads rows."""

    def __init__(self, site: str, rack: str, nodes: list[str]) -> None:
        """Show these nodes, in this order, of `site`/`rack`."""
        self.site = site
        self.rack = rack
        self.node_ids = list(nodes)
        self._lock = threading.Lock()
        self._states: dict[str, dict[str, Any]] = {}
        self._hottest: dict[str, float | None] = {}
        self._rack: dict[str, Any] | None = None
        self.events: deque[dict[str, Any]] = deque(maxlen=EVENTS_KEPT)
        self.messages = 0

    def apply(self, topic: str, payload: bytes) -> None:
        """Fold one MQTT message in (anything unexpected is ignored: the view never crashes on input)."""
        parts = topic.split("/")
        if len(parts) < 6 or parts[2] != self.site or parts[3] != self.rack:
            return
        device, leaf = parts[4], parts[5]
        try:
            body = json.loads(payload)
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        with self._lock:
            self.messages += 1
            if leaf == "state":
                self._states[device] = body
            elif leaf == "telemetry" and device == "_rack":
                self._rack = body
            elif leaf == "telemetry" and body.get("source") == "bmc":
                temps = [
                    r.get("value")
                    for r in body.get("readings", [])
                    if GPU_TEMP.match(str(r.get("sensor"))) and isinstance(r.get("value"), int | float)
                ]
                self._hottest[device] = max(temps) if temps else None
            elif leaf == "event":
                self.events.appendleft(body)

    def rows(self) -> list[NodeRow]:
        """Every node's line."""
        with self._lock:
            nodes = (self._rack or {}).get("nodes", {})
            rows = []
            for node in self.node_ids:
                state = self._states.get(node, {})
                sources = state.get("sources", {})
                figures = nodes.get(node, {})
                rows.append(
                    NodeRow(
                        id=node,
                        power=str(state.get("power", {}).get("chassis", "-")),
                        health=str(state.get("health", "-")),
                        bmc=str(sources.get("bmc", {}).get("availability", "-")),
                        draw_w=figures.get("outlet_power"),
                        bmc_w=figures.get("bmc_power"),
                        hottest_gpu=self._hottest.get(node) if state.get("power", {}).get("chassis") == "on" else None,
                    )
                )
            return rows

    def feeds(self) -> list[FeedRow]:
        """Every feed of the rack, A before B."""
        with self._lock:
            feeds = (self._rack or {}).get("feeds", {})
            return [
                FeedRow(
                    feed=name,
                    power=feed.get("power"),
                    phases={phase: values.get("current") for phase, values in sorted(feed.get("phases", {}).items())},
                    pdus=list(feed.get("pdus", [])),
                )
                for name, feed in sorted(feeds.items())
            ]

    def totals(self) -> tuple[float | None, float | None]:
        """(total draw, budget) in W."""
        with self._lock:
            rack = self._rack or {}
            return rack.get("total_power"), rack.get("budget_w")

    def latest_events(self, count: int) -> list[dict[str, Any]]:
        """The newest events first."""
        with self._lock:
            return list(self.events)[:count]
