"""One thread for torch in these tests: the machine running the suite is shared (as the workers do per step)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> None:
    torch.set_num_threads(1)
