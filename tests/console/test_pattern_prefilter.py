"""The combined pre-filter regex of the pattern detector finds a line exactly when some single pattern does."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from rackd.console.patterns import DEFAULT_PATTERNS, _any_of

REGEXES = [re.compile(p.regex) for p in DEFAULT_PATTERNS]
COMBINED = _any_of(REGEXES)
TRIGGERS = [
    "Kernel panic - not syncing: Fatal exception",
    "NVRM: Xid (PCI:0000:3b:00): 79, GPU has fallen off the bus",
    "Out of memory: Killed process 4711 (python3)",
    "watchdog: BUG: soft lockup - CPU#3 stuck for 23s!",
    "INFO: task kworker/1:1:45 blocked for more than 120 seconds.",
    "mce: [Hardware Error]: Machine check events logged",
    "node1 login: ",
    "Oops: 0000 [#1] SMP",
]


@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=60), st.sampled_from(["", *TRIGGERS]), st.text(max_size=20))
def test_prefilter_agrees_with_the_patterns(before: str, trigger: str, after: str) -> None:
    line = before + trigger + after
    assert COMBINED is not None
    assert bool(COMBINED.search(line)) == any(rx.search(line) for rx in REGEXES)


def test_patterns_that_cannot_be_combined_disable_the_prefilter() -> None:
    assert _any_of([re.compile("a"), re.compile("(?i)b")]) is None  # inline flags only at the very start
    assert _any_of([re.compile("a"), re.compile(r"(b)\1")]) is None  # a backreference would shift groups
