"""The MQTT topic tree v1: `{prefix}/v1/{site}/{rack}/{device}/{leaf}` and the daemon's own topics."""

from __future__ import annotations

from dataclasses import dataclass

VERSION = "v1"
DAEMON_LEVEL = "_daemon"
RACK_LEVEL = "_rack"


@dataclass(frozen=True, slots=True)
class Topics:
    """Builds every topic rackd publishes or subscribes to, for one prefix and site."""

    prefix: str
    site: str

    @property
    def root(self) -> str:
        """`{prefix}/v1/{site}`."""
        return f"{self.prefix}/{VERSION}/{self.site}"

    def daemon_status(self, instance: str) -> str:
        """Retained online/offline status of one daemon instance (also its last will)."""
        return f"{self.root}/{DAEMON_LEVEL}/{instance}/status"

    def daemon_event(self, instance: str) -> str:
        """Events about the daemon itself (spool overflow)."""
        return f"{self.root}/{DAEMON_LEVEL}/{instance}/event"

    def device(self, rack: str, device: str, leaf: str) -> str:
        """`…/{rack}/{device}/{leaf}` for leaf in telemetry, state, event, cmd, cmd/result."""
        return f"{self.root}/{rack}/{device}/{leaf}"

    def telemetry(self, rack: str, device: str) -> str:
        """Per-poll readings (QoS 0)."""
        return self.device(rack, device, "telemetry")

    def state(self, rack: str, device: str) -> str:
        """Retained device state (QoS 1)."""
        return self.device(rack, device, "state")

    def event(self, rack: str, device: str) -> str:
        """Device events (QoS 1, never lost)."""
        return self.device(rack, device, "event")

    def command(self, rack: str, device: str) -> str:
        """Command requests for one device."""
        return self.device(rack, device, "cmd")

    def command_result(self, rack: str, device: str) -> str:
        """Command results when the request named no MQTT 5 response topic."""
        return self.device(rack, device, "cmd/result")

    def rack_telemetry(self, rack: str) -> str:
        """Rack totals."""
        return f"{self.root}/{rack}/{RACK_LEVEL}/telemetry"

    def rack_event(self, rack: str) -> str:
        """Rack events (budget, phase imbalance)."""
        return f"{self.root}/{rack}/{RACK_LEVEL}/event"

    def command_subscription(self) -> str:
        """Subscription filter for every device's command topic at this site."""
        return f"{self.root}/+/+/cmd"

    def parse_device_topic(self, topic: str) -> tuple[str, str, str] | None:
        """(rack, device, leaf) of a device topic under this site, else None."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix) :].split("/", 2)
        if len(parts) != 3 or not all(parts):
            return None
        return parts[0], parts[1], parts[2]
