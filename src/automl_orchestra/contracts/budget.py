"""How a search budget and a step's timeout fit together: one rule, used by the API to size or refuse a
step's timeout at POST and by the workers to check the budget they were given."""

from __future__ import annotations

import math

# What a search leaves of the step's timeout for the work around it (loading data and imports before, the
# final refit and saving after): a tenth, at least 10 s. One rule for both sides: the API sizes a step's timeout
# with it at POST, workers check the budget they get against it.
MIN_RESERVE_S = 10.0
RESERVE_SHARE = 0.1


def budget_reserve_s(timeout_s: float) -> float:
    """The part of a ``timeout_s`` step timeout that a search budget must leave free."""
    return max(MIN_RESERVE_S, RESERVE_SHARE * timeout_s)


def timeout_for_budget(budget_s: float) -> float:
    """The smallest whole-second step timeout that holds a ``budget_s`` search and its reserve."""
    # round() first: budget / 0.9 is 8000.000000001 for 7200 in floating point, not 8000.
    return float(math.ceil(round(max(budget_s + MIN_RESERVE_S, budget_s / (1.0 - RESERVE_SHARE)), 6)))
