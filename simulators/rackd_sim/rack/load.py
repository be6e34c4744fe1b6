"""Inference load over time per server, and the watts it draws at the wall."""

from __future__ import annotations

import math
import random

from rackd_sim.rack.spec import ServerPlan


class InferenceLoad:
    """A compressed day of inference traffic: a slow swing, request bursts, and a little noise; 0..1."""

    def __init__(self, plan: ServerPlan, period: float, seed: int) -> None:
        """Each server gets its own phase and noise (seeded, so a run can be replayed)."""
        self.plan = plan
        self.period = max(1.0, period)
        self._rng = random.Random(seed)
        self._phase = self._rng.uniform(0, 2 * math.pi)
        self._burst = 0.0

    def at(self, elapsed: float) -> float:
        """The load share `elapsed` seconds into the run."""
        swing = math.sin(2 * math.pi * elapsed / self.period + self._phase)
        # Bursts: batches of requests arrive and drain (a random walk pulled back towards zero).
        self._burst = 0.8 * self._burst + self._rng.gauss(0.0, 0.04)
        value = self.plan.load_mean + self.plan.load_swing * swing + self._burst
        return max(0.02, min(1.0, value))


def watts(plan: ServerPlan, load: float, *, powered: bool) -> float:
    """Wall power of the server: standby while the host is off, else idle plus the load's share."""
    if not powered:
        return plan.standby_w
    return plan.idle_w + (plan.max_w - plan.idle_w) * load
