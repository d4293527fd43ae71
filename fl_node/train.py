"""Local training and evaluation on one node's data, deterministic given the seeds.

`train_local` is the whole of a node's learning: it starts from the global state, runs the
spec's local epochs and returns the new state. It reads no global random state and leaves
none changed (the RNG is forked and seeded from `round_seed`), so the same inputs give the
same weights bit for bit, in any process, with the ledger on or off. Training pins the
process to one torch thread (`configure_worker`): the thread count changes the bytes.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from ledger.privacy import DPRound

from .errors import FLError
from .model import StateDict, export_state, load_state
from .spec import ModelSpec

ArrayLike = npt.NDArray[np.generic] | torch.Tensor


class TrainingError(FLError, ValueError):
    """Local data cannot be trained or evaluated on with this spec."""


def configure_worker() -> None:
    """Pin torch to one intra-op thread and deterministic kernels, for the whole process.

    The thread count changes the bytes of a trained model (measured: the same
    `train_local` call gives different weights with 1 and 2 threads), and the
    ledger-on/ledger-off identity needs the same bytes everywhere, so `train_local` and
    `evaluate` call this themselves. One thread is also faster for models this small.
    It is process-wide and never undone: restoring it per call would race between node
    threads of one process.
    """
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    if not torch.are_deterministic_algorithms_enabled():
        torch.use_deterministic_algorithms(True)


def round_seed(job_seed: int, round_number: int, node: int) -> int:
    """The local training seed of `node` in `round_number`: a hash, so seeds never collide."""
    material = f"{job_seed}:{round_number}:{node}".encode()
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "big") >> 1


def _as_tensors(spec: ModelSpec, x: ArrayLike, y: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    xt = torch.as_tensor(x).to(torch.float32)
    yt = torch.as_tensor(y).to(torch.int64)
    if xt.ndim != 2 or yt.ndim != 1 or xt.shape[0] != yt.shape[0]:
        raise TrainingError(
            f"need features [n, d] and labels [n], got {tuple(xt.shape)} and {tuple(yt.shape)}"
        )
    if xt.shape[0] == 0:
        raise TrainingError("no examples to train or evaluate on")
    if xt.shape[1] != spec.input_dim:
        raise TrainingError(f"data has {xt.shape[1]} features, the model spec expects {spec.input_dim}")
    if int(yt.min()) < 0 or int(yt.max()) >= spec.num_classes:
        raise TrainingError(
            f"labels must be in [0, {spec.num_classes - 1}], got [{int(yt.min())}, {int(yt.max())}]"
        )
    if not bool(torch.isfinite(xt).all()):
        raise TrainingError("features contain NaN or infinity")
    return xt.contiguous(), yt.contiguous()


def _optimizer(spec: ModelSpec, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if spec.optimizer == "adam":
        return torch.optim.Adam(params, lr=spec.lr, weight_decay=spec.weight_decay)
    return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay)


def train_local(
    spec: ModelSpec,
    global_state: Mapping[str, torch.Tensor],
    x: ArrayLike,
    y: ArrayLike,
    round_seed: int,
) -> tuple[StateDict, int, dict[str, float]]:
    """Train `spec.local_epochs` epochs from `global_state` on (x, y).

    Returns the new state, the number of examples (the FedAvg weight) and metrics
    (`train_loss`: mean loss of the last epoch). Optimiser state starts fresh every round,
    as a node keeps nothing between rounds but its data.
    """
    configure_worker()
    xt, yt = _as_tensors(spec, x, y)
    model = load_state(spec, dict(global_state))
    anchor = [p.detach().clone() for p in model.parameters()] if spec.proximal_mu > 0 else []
    optimizer = _optimizer(spec, list(model.parameters()))
    n = int(xt.shape[0])
    last_loss = math.nan
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(round_seed)
        order_rng = torch.Generator().manual_seed(round_seed)
        model.train()
        for _ in range(spec.local_epochs):
            order = torch.randperm(n, generator=order_rng)
            total = 0.0
            for start in range(0, n, spec.batch_size):
                batch = order[start : start + spec.batch_size]
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xt[batch]), yt[batch])
                total += float(loss.detach()) * int(batch.numel())
                if anchor:
                    # FedProx: pull towards the round's global model, limiting client drift
                    # when a node's classes are skewed.
                    drift = sum(
                        (torch.sum((p - a) ** 2) for p, a in zip(model.parameters(), anchor, strict=True)),
                        torch.zeros(()),
                    )
                    loss = loss + 0.5 * spec.proximal_mu * drift
                torch.autograd.backward(loss)
                optimizer.step()
            last_loss = total / n
    if not math.isfinite(last_loss):
        raise TrainingError(f"training diverged (loss {last_loss}); lower the learning rate ({spec.lr})")
    return export_state(model), n, {"train_loss": last_loss, "num_examples": float(n)}


def train_local_dp(
    spec: ModelSpec,
    global_state: Mapping[str, torch.Tensor],
    x: ArrayLike,
    y: ArrayLike,
    round_seed: int,
    dp: DPRound,
) -> tuple[StateDict, int, dict[str, float]]:
    """DP-SGD from `global_state` on (x, y): `dp.steps` steps on Poisson-sampled batches.

    Every example joins a step's batch with probability `dp.sample_rate`; Opacus computes
    per-sample gradients, clips each to `dp.max_grad_norm` and adds Gaussian noise of std
    `dp.noise_multiplier * dp.max_grad_norm` (`DPOptimizer`) before the spec's optimiser steps.
    An empty batch still takes a noise-only step, as the accountant assumes. Sampling and noise
    come from generators seeded by `round_seed`, so the same inputs give the same bytes.
    The FedProx term (`proximal_mu`) is not applied: only clipped per-sample gradients reach
    the update.
    """
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    configure_worker()
    xt, yt = _as_tensors(spec, x, y)
    model = load_state(spec, dict(global_state))
    sampled = GradSampleModule(model, loss_reduction="mean")
    params = [p for p in model.parameters() if p.requires_grad]
    n = int(xt.shape[0])
    expected = max(1, round(dp.sample_rate * n))
    last_loss = math.nan
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(round_seed)
        sample_rng = torch.Generator().manual_seed(round_seed)
        noise_rng = torch.Generator().manual_seed(round_seed ^ 0x5EED)
        base = _optimizer(spec, params)
        optimizer = DPOptimizer(
            base,
            noise_multiplier=dp.noise_multiplier,
            max_grad_norm=dp.max_grad_norm,
            expected_batch_size=expected,
            loss_reduction="mean",
            generator=noise_rng,
        )
        sampled.train()
        total, seen = 0.0, 0
        for _ in range(dp.steps):
            batch = (torch.rand(n, generator=sample_rng) < dp.sample_rate).nonzero().squeeze(1)
            optimizer.zero_grad(set_to_none=True)
            if batch.numel() == 0:
                std = dp.noise_multiplier * dp.max_grad_norm
                for p in params:
                    p.grad = torch.normal(0.0, std, p.shape, generator=noise_rng) / expected
                base.step()
                continue
            loss = F.cross_entropy(sampled(xt[batch]), yt[batch])
            total += float(loss.detach()) * int(batch.numel())
            seen += int(batch.numel())
            with warnings.catch_warnings():
                # Opacus' hooks on the first layer, whose input needs no gradient: harmless.
                warnings.filterwarnings("ignore", message="Full backward hook is firing")
                torch.autograd.backward(loss)
            optimizer.step()
        last_loss = total / seen if seen else math.nan
    sampled._close()
    if seen and not math.isfinite(last_loss):
        raise TrainingError(f"training diverged (loss {last_loss}); lower the learning rate ({spec.lr})")
    metrics = {"train_loss": last_loss if seen else 0.0, "num_examples": float(n)}
    return export_state(model), n, metrics


def evaluate(
    spec: ModelSpec, state: Mapping[str, torch.Tensor], x: ArrayLike, y: ArrayLike
) -> dict[str, float]:
    """Accuracy and mean cross-entropy loss of `state` on (x, y), in eval mode (no dropout)."""
    configure_worker()
    xt, yt = _as_tensors(spec, x, y)
    model = load_state(spec, dict(state))
    model.eval()
    with torch.no_grad():
        logits = model(xt)
        loss = float(F.cross_entropy(logits, yt))
        accuracy = float((logits.argmax(dim=1) == yt).to(torch.float64).mean())
    return {"accuracy": accuracy, "loss": loss}
