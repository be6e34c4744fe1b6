"""Many simulated PDUs at once (one agent and port each), with the JSON description the CLI prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rackd_sim.pdu.agent import PduAgent, PduSpec


class PduSimulator:
    """Starts and stops a set of simulated PDUs inside the running event loop."""

    def __init__(self, specs: Sequence[PduSpec]) -> None:
        """Build every PDU (names must be unique: tests and the virtual rack address them by name)."""
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate PDU names: {', '.join(duplicates)}")
        self.agents = {spec.name: PduAgent(spec) for spec in specs}

    def start(self) -> None:
        """Bind every PDU's port; on failure the ones already started are stopped again."""
        started = []
        try:
            for agent in self.agents.values():
                agent.start()
                started.append(agent)
        except BaseException:
            for agent in started:
                agent.stop()
            raise

    def stop(self) -> None:
        """Stop every PDU."""
        for agent in self.agents.values():
            agent.stop()

    def __getitem__(self, name: str) -> PduAgent:
        """One PDU's agent by name."""
        return self.agents[name]

    def describe(self) -> dict[str, Any]:
        """Endpoints and credentials, as printed on the CLI's ready line."""
        return {
            "simulator": "pdu",
            "pdus": [
                {
                    "name": agent.spec.name,
                    "vendor": agent.vendor.name,
                    "host": agent.spec.host,
                    "port": agent.port,
                    "endpoint": agent.endpoint,
                    "outlets": len(agent.pdu.outlets),
                    "communities": {"read": agent.spec.read_community, "write": agent.spec.write_community},
                    "v3_users": [
                        {
                            "user": user.name,
                            "auth_protocol": user.auth_protocol,
                            "auth_key": user.auth_key,
                            "priv_protocol": user.priv_protocol,
                            "priv_key": user.priv_key,
                        }
                        for user in agent.spec.v3_users
                    ],
                }
                for agent in self.agents.values()
            ],
        }
