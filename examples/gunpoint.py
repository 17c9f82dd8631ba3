"""GunPoint (UCR, univariate): the seed's time-series service with its default settings.

orchestra serve &            # in another terminal
python examples/gunpoint.py  # prints CV and test accuracy and wall time
"""

from __future__ import annotations

from _timeseries import ucr

if __name__ == "__main__":
    ucr("GunPoint")
