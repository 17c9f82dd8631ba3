"""Network instrumentation (AMLA's stubs): not only accuracy but parameters, multiply-adds, inference
latency per sample and peak memory, measured on the network the library built."""

from __future__ import annotations

import resource
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from automl_orchestra.nas import spec as model_spec
from automl_orchestra.nas.torch_model import count_parameters

LATENCY_BATCH = 64
LATENCY_REPEATS = 5


def static(spec: dict[str, Any], module: nn.Module) -> dict[str, Any]:
    """Counts known before training: parameters (from the library, checked against the spec) and MACs."""
    footprint = model_spec.footprint(spec)
    return {
        "parameters": count_parameters(module),
        "specParameters": footprint.parameters,
        "multiplyAdds": footprint.multiply_adds,
        "activationValues": footprint.activations,
    }


def latency_ms_per_sample(module: nn.Module, shape: tuple[int, ...], device: torch.device) -> float:
    """Median wall time of a batch forward pass, per sample (inference mode, after one warm-up pass)."""
    module.eval()
    batch = torch.randn(LATENCY_BATCH, *shape, device=device)
    timings = []
    with torch.inference_mode():
        module(batch)
        for _ in range(LATENCY_REPEATS):
            start = time.perf_counter()
            module(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - start)
    return float(np.median(timings)) * 1000.0 / LATENCY_BATCH


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of this process so far: the GPU allocator's peak on CUDA, resident set size on CPU."""
    if device.type == "cuda":
        return float(torch.cuda.max_memory_allocated(device)) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak) / (2**20 if sys.platform == "darwin" else 2**10)
