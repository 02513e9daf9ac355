"""What a neural configuration costs, measured on the device and threads that run it: its parameter
count, its training FLOPs per sample and its inference latency per sample at batch 1 (a trigger's
one-event path) and at a throughput batch.

* **FLOPs** come from torch's own counter (``torch.utils.flop_counter.FlopCounterMode``): one forward
  and backward pass of a small batch in training mode, divided by the batch. It counts the matrix
  multiplications and convolutions (a multiply-add is 2 FLOPs), not the element-wise operations.
* **Latency** is the network alone at the model's input shape (after its crop and pooling), in eval
  mode under ``torch.inference_mode`` in the precision the model trains in: the median of repeated
  calls after warm-up, divided by the batch. It is measured before training (the weights do not change
  the cost), on the trial's own CPU threads or GPU; a busy machine inflates it, so the device and the
  thread count are recorded beside it.

``bench run --costs`` measures every trial's (``benchmark.search.tune.trial``); the recorded tables carry
them as ``cost.*`` columns.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmark.models.base import Model

#: The batch sizes latency is measured at, and the timed repeats (after warm-up) of each.
BATCHES = {1: 25, 256: 3}
WARMUP = {1: 3, 256: 1}
FLOP_BATCH = 4
KEYS = ("cost.parameters", "cost.train_flops_per_sample", *(f"cost.latency_b{b}_s" for b in BATCHES), "cost.device")


def device_name(plan) -> str:
    """The device a latency was measured on, in words: the GPU's name, or the CPU's and its threads."""
    if plan.is_cuda:
        return torch.cuda.get_device_name(torch.device(plan.device))
    from benchmark.environment import cpu_model

    cpu = cpu_model()
    return f"{cpu} ({plan.threads} thread{'s' if plan.threads != 1 else ''})"


def _sum_outputs(out) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.float().sum()
    return sum(_sum_outputs(o) for o in out if isinstance(o, (torch.Tensor, tuple, list)))


def measure(model: Model) -> dict[str, float | str]:
    """The ``cost.*`` values of ``model``'s configuration (:data:`KEYS`); empty for a model that is not
    neural (it has no network to time)."""
    from benchmark.models.training import NeuralModel, autocast

    if not isinstance(model, NeuralModel):
        return {}
    plan = model.plan
    plan.apply()
    device = torch.device(plan.device)
    torch.manual_seed(model.seed)
    net = model.build_net().to(device)
    memory_format = torch.channels_last if model.channels_last else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    shape = model.input_shape

    def batch(n: int) -> torch.Tensor:
        return torch.randn(n, *shape, device=device).contiguous(memory_format=memory_format)

    net.train()
    with FlopCounterMode(display=False) as counter:
        _sum_outputs(net(batch(FLOP_BATCH))).backward()
    out: dict[str, float | str] = {
        "cost.parameters": float(sum(p.numel() for p in net.parameters())),
        "cost.train_flops_per_sample": counter.get_total_flops() / FLOP_BATCH,
    }
    net.eval()
    with torch.inference_mode(), autocast(device, model.precision):
        for n, repeats in BATCHES.items():
            x = batch(n)
            times = []
            for i in range(WARMUP[n] + repeats):
                t0 = time.perf_counter()
                net(x)
                if plan.is_cuda:
                    torch.cuda.synchronize(device)
                if i >= WARMUP[n]:
                    times.append(time.perf_counter() - t0)
            out[f"cost.latency_b{n}_s"] = statistics.median(times) / n
    out["cost.device"] = device_name(plan)
    return out
