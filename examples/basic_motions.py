"""BasicMotions (UCR, 6 channels): the seed's time-series service with its default settings.

orchestra serve &
python examples/basic_motions.py
"""

from __future__ import annotations

from _timeseries import ucr

if __name__ == "__main__":
    ucr("BasicMotions")
