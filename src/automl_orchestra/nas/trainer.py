"""Train and evaluate a spec with PyTorch following its control parameters (epochs, batch size, optimizer,
learning-rate schedule, time cap), recording per-epoch curves; export trained networks to ONNX."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from automl_orchestra.nas.data import Split
from automl_orchestra.nas.network import TrainedNetwork
from automl_orchestra.nas.torch_model import build, device

EVAL_BATCH = 512


def train(
    spec: dict[str, Any],
    split: Split,
    seed: int,
    on_epoch: Callable[[int, dict[str, float]], None] = lambda _epoch, _curve: None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """A trained module and its curves (train loss/accuracy, validation loss/accuracy, seconds)."""
    torch.manual_seed(seed)
    where = device()
    module = build(spec).to(where)
    control = spec["control"]
    optimizer = _optimizer(module, control)
    epochs = int(control["epochs"])
    scheduler = _schedule(optimizer, control["schedule"], epochs)
    loss_fn = nn.CrossEntropyLoss()
    x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    curves: list[dict[str, float]] = []
    for epoch in range(epochs):
        module.train()
        order = torch.randperm(len(x), generator=generator)
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(x), int(control["batchSize"])):
            index = order[start : start + int(control["batchSize"])]
            if len(index) < 2 and total:  # a batch of one breaks batch norm and adds nothing
                continue
            xb, yb = x[index].to(where), y[index].to(where)
            optimizer.zero_grad(set_to_none=True)
            logits = module(xb)
            loss = loss_fn(logits, yb)
            loss.backward()
            optimizer.step()
            loss_sum += float(loss.detach()) * len(index)
            correct += int((logits.argmax(1) == yb).sum())
            total += len(index)
        scheduler.step()
        valid_loss, valid_acc = (
            evaluate(module, split.x_valid, split.y_valid) if len(split.x_valid) else (math.nan, math.nan)
        )
        curve = {
            "epoch": epoch + 1,
            "trainLoss": loss_sum / max(1, total),
            "trainAccuracy": correct / max(1, total),
            "validLoss": valid_loss,
            "validAccuracy": valid_acc,
            "seconds": time.perf_counter() - started,
        }
        curves.append(curve)
        on_epoch(epoch + 1, curve)
        cap = control.get("maxSeconds")
        if cap and time.perf_counter() - started > float(cap):
            break  # the time cap ends training after a whole epoch
    return module, curves


def evaluate(module: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on ``x``, ``y`` (inference mode, fixed batch order)."""
    logits = predict_logits(module, x)
    tensor = torch.from_numpy(logits)
    labels = torch.from_numpy(y)
    loss = float(nn.functional.cross_entropy(tensor, labels))
    return loss, float((tensor.argmax(1) == labels).float().mean())


def predict_logits(module: nn.Module, x: np.ndarray) -> np.ndarray:
    where = next(module.parameters()).device
    module.eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, len(x), EVAL_BATCH):
            parts.append(module(torch.from_numpy(x[start : start + EVAL_BATCH]).to(where)).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def weights_of(module: nn.Module) -> dict[str, np.ndarray]:
    return {name: value.detach().cpu().numpy().copy() for name, value in module.state_dict().items()}


def restore(network: TrainedNetwork) -> nn.Module:
    """The trained module of a stored network, on the best device available."""
    module = build(network.spec)
    module.load_state_dict({name: torch.from_numpy(np.asarray(value)) for name, value in network.weights.items()})
    return module.to(device()).eval()


def export_onnx(module: nn.Module, shape: tuple[int, ...], path: Path) -> None:
    """ONNX (opset 17, dynamic batch) through the TorchScript exporter, which needs no onnxscript."""
    module = module.cpu().eval()
    example = torch.zeros(2, *shape)
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated, not broken; onnxscript is absent
        warnings.simplefilter("ignore", DeprecationWarning)
        _export(module, example, path)


def _export(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    torch.onnx.export(
        module,
        (example,),
        str(path),
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17,
    )


def onnx_logits(path: Path, x: np.ndarray, threads: int) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    parts = [session.run(None, {"input": x[s : s + EVAL_BATCH]})[0] for s in range(0, len(x), EVAL_BATCH)]
    return np.concatenate(parts)


def _optimizer(module: nn.Module, control: dict[str, Any]) -> torch.optim.Optimizer:
    lr, decay = float(control["learningRate"]), float(control["weightDecay"])
    if control["optimizer"] == "sgd":
        return torch.optim.SGD(module.parameters(), lr=lr, momentum=float(control["momentum"]), weight_decay=decay)
    if control["optimizer"] == "adamw":
        return torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=decay)
    return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=decay)


def _schedule(optimizer: torch.optim.Optimizer, name: str, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.5)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _epoch: 1.0)
