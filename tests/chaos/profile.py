"""Short form (in `./scripts/test`) or long form (`python -m tests.chaos --long`, which
sets CHAOS_LONG=1): the same cases and criteria, with more trials and longer faults.

The numbers every case checks against are here too, with where they come from."""

from __future__ import annotations

import os
from dataclasses import dataclass

LONG_ENV = "CHAOS_LONG"


@dataclass(frozen=True)
class Profile:
    name: str
    #: Case 1: unsubscribe/subscribe pairs.
    race_pairs: int
    #: Trials of the cases that repeat (2, 4, 5, 7).
    trials: int
    #: Case 2: how long node X's Redis stays cut after the 10 s check.
    cut_extra_s: float
    #: Case 3: PostgreSQL SIGSTOPped this long.
    stall_s: float
    #: Case 4: Redis down this long between kill -9 and start.
    redis_down_s: float
    #: Case 6: PostgreSQL frozen this long.
    frozen_s: float
    #: Per-test timeout (pytest-timeout).
    timeout_s: float


SHORT = Profile(
    "short",
    race_pairs=200,
    trials=1,
    cut_extra_s=2.0,
    stall_s=10.0,
    redis_down_s=3.0,
    frozen_s=12.0,
    timeout_s=115,
)
LONG = Profile(
    "long",
    race_pairs=1000,
    trials=3,
    cut_extra_s=20.0,
    stall_s=45.0,
    redis_down_s=10.0,
    frozen_s=40.0,
    timeout_s=900,
)
PROFILE = LONG if os.environ.get(LONG_ENV) == "1" else SHORT

# ---------------------------------------------------------------- stated bounds

#: Case 2 and 3: a fault is noticed (subscribers closed or resynced, /readyz 503)
#: within this.
DETECT_S = 10.0
#: The stated deadline of a store operation: a write (or read) that needs PostgreSQL
#: fails within it (503) rather than hangs (the brief's 5 s).
STORE_TIMEOUT_S = 5.0
#: How long a writer on another node may wait for a topic lock held by a stuck unit (the
#: lock deadline). Assumed equal to the store deadline: nothing documents it yet.
LOCK_DEADLINE_S = 5.0
#: Scheduling slack on a loaded 2-core machine, added to every bound a client measures.
SLACK_S = 1.5
#: An event published after a subscriber's snapshot reaches it within this, or the
#: subscriber is deaf (case 1). Delivery takes milliseconds; this is slack for a loaded
#: machine, and short of the Redis broker's seq audit (2 x 4 s), which would turn a deaf
#: subscriber into a closed one after the fact.
DELIVERY_S = 2.0
#: After healing, followers equal the database within this.
CONVERGE_S = 30.0
