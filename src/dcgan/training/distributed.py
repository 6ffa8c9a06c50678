"""Training on many processes, launched by `torchrun` (PyTorch's own launcher and rendezvous).

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT for every process; from those we
join the process group (nccl on CUDA, gloo on the CPU). Outside torchrun everything here is a
no-op for one process, so the single-process path pays nothing.

The rules that keep N processes in step:
- every process draws the same *global* batch of noise and image indices and keeps its slice, so
  a run's data does not depend on the number of processes;
- rank 0 alone writes (logs, samples, checkpoints); `on_main` runs that work while the others
  wait, and an error there is raised on every rank, so all stop together;
- the decision to stop (a signal, a NaN) is agreed each time it is taken (`any_signal`, `gather`).
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from dcgan.errors import ConfigError, brief, shown
from dcgan.fsio import atomic_write_text
from dcgan.seeding import STREAM_PROCESSES, seed_for
from dcgan.training.guards import OUT_OF_TIME

T = TypeVar("T")

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
STORE_CONNECT_SECONDS = 10
# What stops a run early, in rising priority (SIGINT's exit code wins): the time budget
# and the signals.
SIGNALS = (None, OUT_OF_TIME, "SIGTERM", "SIGINT")


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in TORCHRUN_ENV)


def env_rank() -> int:
    """This process's rank as torchrun gave it (0 outside torchrun), group or no group."""
    return int(os.environ.get("RANK", "0")) if launched_by_torchrun() else 0


def restart_count() -> int:
    """How many times torchrun has restarted the worker group (0 on the first attempt, and
    outside torchrun, whatever a shell left in the variable)."""
    text = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") if launched_by_torchrun() else "0"
    if not (text.isascii() and text.isdigit() and len(text) < 10):
        raise ConfigError(
            f"TORCHELASTIC_RESTART_COUNT={shown(text)} is not a count; torchrun sets it: unset "
            "it, or start the run with torchrun"
        )
    return int(text)


def check_launcher() -> None:
    """Refuse torchrun's variables without torchrun: left in a shell by an earlier job, they
    would make a plain `dcgan train` wait minutes for peers that never come."""
    restart_count()  # a readable count, before anything waits
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        raise ConfigError(
            f"{', '.join(TORCHRUN_ENV)} are set, but torchrun did not start this process (no "
            f"TORCHELASTIC_RUN_ID): left from an earlier job? unset them, or start with torchrun"
        )


@dataclass
class Processes:
    """This process's place in the group and the collectives the training loop needs."""

    device: torch.device
    rank: int = 0
    world: int = 1
    control: Any = None  # a gloo group for host-side messages (the default group when gloo)
    owns_group: bool = False  # we created the process group, so we destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if self.owns_group and dist.is_initialized():
            if exc_type is None:
                dist.barrier()  # no rank tears its connections down while another still uses them
            dist.destroy_process_group()

    # ------------------------------------------------------------------ coordination

    def on_main(self, fn: Callable[..., T], *args: Any, share: bool = False) -> T | None:
        """fn(*args) on rank 0 while the others wait; an error there is raised on every rank.

        Returns fn's value on rank 0, and on every rank when `share` (it must pickle).
        """
        if self.world == 1:
            return fn(*args)
        value, error = None, None
        if self.main:
            try:
                value = fn(*args)
            except Exception as e:  # re-raised below, on every rank
                error = e
        message = [value if share else None, error]
        dist.broadcast_object_list(message, src=0, group=self.control)
        if message[1] is not None:
            raise error or message[1]  # rank 0 raises its own, with its traceback
        return value if self.main else message[0]

    def main_first(self, fn: Callable[[], T]) -> T:
        """fn() on rank 0, then on the others: rank 0 fills shared caches the others then read."""
        value = self.on_main(fn)
        return value if self.main else fn()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's `obj` (small and picklable), in rank order, on every rank."""
        if self.world == 1:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj, group=self.control)
        return out

    def any_signal(self, name: str | None) -> str | None:
        """The stop any rank asks for (SIGINT over SIGTERM over an expired time budget), the
        same on every rank."""
        if self.world == 1:
            return name
        code = torch.tensor([SIGNALS.index(name)])
        dist.all_reduce(code, op=dist.ReduceOp.MAX, group=self.control)
        return SIGNALS[int(code)]

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean of `values` (any shape, on the training device) over all ranks."""
        if self.world == 1:
            return values
        total = values.clone()
        dist.all_reduce(total)
        return total / self.world

    def seed(self, run_seed: int, step: int) -> None:
        """Give each process its own torch RNG (dropout masks), derived from the run seed, the
        rank and the step so a resumed run re-derives it. One process keeps the saved state."""
        if self.world > 1:
            torch.manual_seed(seed_for(run_seed, step, STREAM_PROCESSES) + self.rank)

    # ------------------------------------------------------------------ models

    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` under DistributedDataParallel (gradients averaged over ranks in backward)."""
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # BatchNorm statistics are not broadcast each forward: with --sync-bn they agree
        # already, and without it each rank's are a valid estimate (rank 0's are saved).
        # (torch 2.13 renamed the option; 2.4 knows only the old name.)
        params = inspect.signature(DistributedDataParallel).parameters
        name = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
        return DistributedDataParallel(module, device_ids=ids, **{name: False})

    def sync_batchnorm(self, module: nn.Module) -> nn.Module:
        """`module` with every BatchNorm2d normalising over the global batch (in place)."""
        if self.device.type == "cuda":
            return nn.SyncBatchNorm.convert_sync_batchnorm(module)  # fused CUDA kernels
        return _convert_batchnorm(module)


def start(device: torch.device) -> Processes:
    """Join torchrun's process group, or describe a single process when not under torchrun.

    On CUDA each process takes the GPU numbered by its LOCAL_RANK.
    """
    if not launched_by_torchrun():
        return Processes(device)
    check_launcher()
    local_rank = int(os.environ["LOCAL_RANK"])
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    owns = not dist.is_initialized()
    if owns:
        backend = "nccl" if device.type == "cuda" else "gloo"
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        dist.init_process_group(
            backend, store=_attempt_store(rank, world), rank=rank, world_size=world
        )
    control = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    return Processes(device, dist.get_rank(), dist.get_world_size(), control, owns)


def _attempt_store(rank: int, world: int) -> dist.Store:
    """torchrun's key-value store, with keys private to this attempt of the worker group.

    torchrun hands a restarted group the same store, and the first attempt's keys are still in
    it: gloo then reads the dead workers' addresses and fails or hangs (most restarts did in
    our tests; see docs/distributed.md). A per-attempt prefix gives every attempt a clean namespace.
    """
    agent_hosts = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    address = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        # A short timeout to connect (a store that does not answer is gone), a long one after
        # (the group's first barrier waits for every peer to start)
        store = dist.TCPStore(
            os.environ["MASTER_ADDR"],
            int(os.environ["MASTER_PORT"]),
            world,
            is_master=not agent_hosts and rank == 0,  # without torchrun's agent store, rank 0 hosts
            timeout=timedelta(seconds=STORE_CONNECT_SECONDS),
            wait_for_workers=False,
            multi_tenant=True,
        )
    except (RuntimeError, ValueError) as e:
        raise ConfigError(
            f"torchrun's store at {address} did not answer in {STORE_CONNECT_SECONDS} s "
            f"({brief(e, 80)}): is the torchrun that started this process still running?"
        ) from None
    store.set_timeout(timedelta(minutes=10))
    return dist.PrefixStore(f"dcgan/attempt-{restart_count()}", store)


# ---------------------------------------------------------------------------- sync BatchNorm


class _SumOverRanks(torch.autograd.Function):
    """all_reduce(SUM) with its gradient: each rank's input reaches every rank's output."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics span the global batch of every process, on any
    device and backend (torch's SyncBatchNorm is CUDA-only). Outside a process group, or in
    eval mode, it is an ordinary BatchNorm2d; its state dict is the same.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> normalised (B, C, H, W), statistics over all ranks' B*H*W."""
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        xf, dims = x.float(), (0, 2, 3)
        count = torch.full((1,), x.numel() // x.shape[1], dtype=torch.float32, device=x.device)
        sums = _SumOverRanks.apply(torch.cat([xf.sum(dims), count]))
        n = sums[-1].detach()
        mean = sums[:-1] / n
        centred = xf - mean.view(1, -1, 1, 1)
        # Two passes (mean, then squares about it) keep the variance accurate in fp32.
        var = _SumOverRanks.apply((centred * centred).sum(dims)) / n
        self._track(mean.detach(), var.detach(), n)
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)

    @torch.no_grad()
    def _track(self, mean: torch.Tensor, var: torch.Tensor, n: torch.Tensor) -> None:
        """Update the running statistics as BatchNorm2d does (unbiased variance)."""
        if not self.track_running_stats:
            return
        self.num_batches_tracked.add_(1)
        momentum = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked
        self.running_mean.lerp_(mean, momentum)
        self.running_var.lerp_(var * n / (n - 1).clamp(min=1), momentum)


def _convert_batchnorm(module: nn.Module) -> nn.Module:
    """Swap each BatchNorm2d below `module` for a SyncBatchNorm2d sharing its parameters and
    buffers (so optimisers built on the old ones keep working)."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = SyncBatchNorm2d(
                child.num_features, child.eps, child.momentum, child.affine,
                child.track_running_stats, device="meta",
            )  # fmt: skip
            synced._parameters = child._parameters
            synced._buffers = child._buffers
            synced.train(child.training)
            setattr(module, name, synced)
        else:
            _convert_batchnorm(child)
    return module


# ---------------------------------------------------------------------------- elastic restarts


def run_marker(out: str | Path) -> Path | None:
    """Where rank 0 records this torchrun job's run directory, so that a restarted worker group
    resumes it; None outside torchrun. Named by the job's rendezvous id (--rdzv-id)."""
    run_id = os.environ.get("TORCHELASTIC_RUN_ID")
    if not launched_by_torchrun() or not run_id:
        return None
    return Path(out) / f".torchrun-{run_id}.json"


def remember_run(out: str | Path, run_dir: Path) -> None:
    """Record `run_dir` as this torchrun job's run (nothing outside torchrun)."""
    marker = run_marker(out)
    if marker is not None:
        text = json.dumps({"run_dir": str(run_dir)})
        atomic_write_text(marker, text)


def restarted_run(out: str | Path) -> Path | None:
    """After torchrun restarted the worker group: the run its first attempt started."""
    marker = run_marker(out)
    if restart_count() == 0 or marker is None or not marker.is_file():
        return None
    try:
        run_dir = json.loads(marker.read_bytes())["run_dir"]
    except (ValueError, KeyError, TypeError) as e:  # damaged: the restart cannot tell which run
        raise ConfigError(
            f"{marker}: damaged ({' '.join(str(e).split())}); resume the run it named with "
            "dcgan train --resume RUN, then remove the file"
        ) from None
    return Path(str(run_dir))


def forget_run(out: str | Path) -> None:
    """Drop the record once the run is complete: nothing is left to restart."""
    marker = run_marker(out)
    if marker is not None:
        marker.unlink(missing_ok=True)
