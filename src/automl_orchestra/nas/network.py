"""What ``nas/train`` stores: the spec, the learned weights as NumPy arrays and the training record.

Plain data only (no torch objects), so the stored object loads without PyTorch and is library-independent
like the spec; the PyTorch stub rebuilds the module from the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class TrainedNetwork:
    spec: dict[str, Any]
    weights: dict[str, np.ndarray]
    data: dict[str, Any]  # DataSettings.to_json(): how to rebuild the same split
    classes: list[str]
    curves: list[dict[str, float]] = field(default_factory=list)  # one entry per epoch
    instrumentation: dict[str, Any] = field(default_factory=dict)
    rejected: str | None = None  # why a constraint stopped it before training, if one did
    # How raw rows become its inputs (nas.data.prepare_inputs); None for networks stored before it was kept.
    preprocessing: dict[str, Any] | None = None

    def __repr__(self) -> str:
        status = f"rejected: {self.rejected}" if self.rejected else f"{len(self.curves)} epoch(s)"
        return f"TrainedNetwork({self.spec.get('name', 'network')!r}, {len(self.classes)} classes, {status})"
