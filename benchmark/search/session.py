"""The Ray session of a run: a local Ray or a connection to a cluster, what its nodes can host, and the
device plan of a trial from what Ray assigned it. The search wing's other Ray-facing modules are
``benchmark.search.tune`` (Tune's searcher, scheduler, callbacks and trainable) and
``benchmark.search.final`` (the test evaluation as Ray tasks).
"""
from __future__ import annotations

import math
import os
import socket

from benchmark import environment
from benchmark.devices import DevicePlan
from benchmark.errors import BenchError
from benchmark.search.spec import RunSpec, parse_address

CONNECT_TIMEOUT_S = 10  # ray.init retries an unreachable head for minutes: a plain TCP connect first
#: What a user does when a cluster wants Ray's token authentication and this process does not send it.
TOKEN_FIX = ("the cluster uses Ray's token authentication: set RAY_AUTH_MODE=token (the token is ~/.ray/auth_token "
             "or $RAY_AUTH_TOKEN, the same as the head's; README: Scaling out)")


def trial_plan() -> DevicePlan:
    """The plan of the current Ray trial, actor or task: its CPUs and its GPU (Ray sets
    ``CUDA_VISIBLE_DEVICES`` to the assigned GPU, so it is ``cuda:0`` in this process)."""
    import ray

    return DevicePlan.from_resources(ray.get_runtime_context().get_assigned_resources(), bool(ray.get_gpu_ids()))


def lone_task_cpus(spec: RunSpec) -> float:
    """The CPUs of a task that runs alone (a recipe's one training): the CPUs of the node with the most,
    on CPU-only runs; a trial's share on GPU runs (the widest node may have no GPU)."""
    import ray

    if spec.gpus_per_trial > 0:
        return spec.cpus_per_trial
    return max([spec.cpus_per_trial] + [n.get("Resources", {}).get("CPU", 0) for n in ray.nodes() if n.get("Alive")])


def trial_slots(spec: RunSpec) -> int:
    """How many trials fit at once: per alive node, its CPUs over --cpus-per-trial, capped by its GPUs
    over --gpus-per-trial (a trial cannot span nodes)."""
    import ray

    slots = 0
    for node in ray.nodes():
        if node.get("Alive"):
            res = node.get("Resources", {})
            fit = math.floor(res.get("CPU", 0) / spec.cpus_per_trial + 1e-9)
            if spec.gpus_per_trial > 0:
                fit = min(fit, math.floor(res.get("GPU", 0) / spec.gpus_per_trial + 1e-9))
            slots += fit
    return slots



def check_resources(spec: RunSpec) -> None:
    """Refuse a trial no node can host, instead of Tune waiting for it forever."""
    import ray

    if trial_slots(spec) > 0:
        return
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    largest = ", ".join(f"{r.get('CPU', 0):g} CPUs / {r.get('GPU', 0):g} GPUs" for r in nodes) or "none alive"
    raise BenchError(f"no node can run a trial with --cpus-per-trial {spec.cpus_per_trial:g} and --gpus-per-trial "
                     f"{spec.gpus_per_trial:g} (nodes: {largest}); ask for less, or add a node that has it")


def init_ray(spec: RunSpec) -> None:
    import logging

    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # our own records replace Ray's loggers
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "100")
    os.environ.setdefault("TUNE_PRINT_ALL_TRIAL_ERRORS", "1" if spec.verbose else "0")  # Progress prints one line
    if not ray.is_initialized():
        quiet = logging.INFO if spec.verbose else logging.ERROR
        if spec.address or os.environ.get("RAY_ADDRESS"):  # `ray job submit` sets RAY_ADDRESS for its driver
            connect(spec.address or os.environ["RAY_ADDRESS"], "--address" if spec.address else "RAY_ADDRESS",
                     logging_level=quiet, log_to_driver=spec.verbose)
        else:  # "local": a new instance, even when a cluster started by `ray start` runs on this machine
            ray.init(address="local", num_cpus=os.cpu_count(), num_gpus=len(environment.gpu_names()), include_dashboard=False,
                     logging_level=quiet, log_to_driver=spec.verbose, configure_logging=True)
    check_resources(spec)


def connect(address: str, label: str, **init_kwargs) -> None:
    """``ray.init(address=...)``, failing in seconds with one line (Ray retries an unreachable head for
    minutes, then raises a multi-line error)."""
    import ray

    how = "start one with `ray start --head` and pass the address it prints, or check host, port and firewall"
    if address != "auto":
        host, port = parse_address(address, label)
        try:
            socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as e:
            raise BenchError(f"{label} {address}: no Ray cluster reachable at {host}:{port} "
                             f"({e.strerror or type(e).__name__}); {how}") from None
        except UnicodeError as e:  # a host name IDNA cannot encode
            raise BenchError(f"{label} {address}: not a host name ({e}); {how}") from None
    try:
        ray.init(address=address, **init_kwargs)
    except Exception as e:  # e.g. `auto` finds no cluster on this machine, or the head wants a token
        if is_auth_error(e):
            raise BenchError(f"{label} {address}: {TOKEN_FIX}") from None
        if not isinstance(e, (ConnectionError, RuntimeError, ValueError)):
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BenchError(f"{label} {address}: cannot connect ({message}); {how}") from None


def is_auth_error(e: BaseException) -> bool:
    """Whether ``e`` is Ray refusing this process for want of its authentication token."""
    return type(e).__name__ == "AuthenticationError" or "RAY_AUTH_MODE" in str(e)
