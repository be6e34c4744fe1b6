"""Many simulated PDUs behind one UDP port and one engine, told apart by community (v3: context name)."""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from pysnmp.carrier.asyncio.dgram import udp
from pysnmp.entity.rfc3413 import context

from rackd_sim.pdu.agent import PduAgent, close_engine, open_engine, start_responders

log = structlog.get_logger(__name__)


class SharedEndpoint:
    """One engine for a whole rack of simulated PDUs: cheap enough for load tests with hundreds of them.

    Faults are applied per PDU after decoding (a silent PDU drops its requests); `reply_delay` is not
    supported here because the engine answers synchronously.
    """

    def __init__(self, agents: Sequence[PduAgent], host: str, port: int = 0) -> None:
        """Serve `agents`; their communities must be unique across the endpoint."""
        communities = [c for agent in agents for c in (agent.spec.read_community, agent.spec.write_community)]
        if len(set(communities)) != len(communities):
            raise ValueError("PDUs sharing a port need communities of their own (e.g. public-pdu1)")
        self._agents = list(agents)
        self._host = host
        self._port = port
        self._engine: object | None = None

    def start(self) -> int:
        """Bind the port; returns it."""
        snmp_engine, port = open_engine(self._host, self._port, udp.UdpAsyncioTransport())
        snmp_context = context.SnmpContext(snmp_engine)
        for agent in self._agents:
            agent.controller.drop_when_silent = True
            agent.register(snmp_engine, snmp_context, agent.spec.name.encode())
            agent.port = port
        start_responders(snmp_engine, snmp_context)
        self._engine = snmp_engine
        log.info("sim_pdus_listening", endpoint=f"{self._host}:{port}", pdus=len(self._agents))
        return port

    def stop(self) -> None:
        """Stop serving every PDU; safe to call more than once."""
        snmp_engine, self._engine = self._engine, None
        for agent in self._agents:
            agent.pdu.close()
        if snmp_engine is not None:
            close_engine(snmp_engine)
