"""Many simulated PDUs at once (one agent and port each), with the JSON description the CLI prints."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rackd_sim.pdu.agent import PduAgent, PduSpec
from rackd_sim.pdu.shared import SharedEndpoint


class PduSimulator:
    """Starts and stops a set of simulated PDUs inside the running event loop."""

    def __init__(self, specs: Sequence[PduSpec], *, shared_port: bool = False) -> None:
        """Build every PDU (names must be unique: tests and the virtual rack address them by name).

        With `shared_port`, all PDUs answer on the first spec's host:port through one engine, told apart by
        their communities (v3: by context name = PDU name); otherwise each has its own port and engine.
        """
        names = [spec.name for spec in specs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"duplicate PDU names: {', '.join(duplicates)}")
        self.agents = {spec.name: PduAgent(spec) for spec in specs}
        self._shared = (
            SharedEndpoint(list(self.agents.values()), specs[0].host, specs[0].port) if shared_port and specs else None
        )

    def start(self) -> None:
        """Bind every PDU's port; on failure the ones already started are stopped again."""
        if self._shared is not None:
            self._shared.start()
            return
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
        if self._shared is not None:
            self._shared.stop()
            return
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
                    "v3_context": agent.spec.name if self._shared is not None else "",
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
