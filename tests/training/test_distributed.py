"""Training on several processes: torchrun launches, sync BatchNorm, restarts, agreed stops.

The end-to-end tests launch real `torchrun` groups of 2 CPU processes (gloo); the unit tests
spawn small gloo groups directly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from conftest import TINY, tiny_flags, with_settings
from dcgan.cli import main
from dcgan.config import Config
from dcgan.data import ImageSet
from dcgan.errors import ConfigError
from dcgan.run.rundir import latest_checkpoint, read_stats
from dcgan.training.batches import RealBatches, steps_per_epoch
from dcgan.training.distributed import Processes, SyncBatchNorm2d
from dcgan.training.state import TrainState
from dcgan.training.step import draw_z

TESTS = Path(__file__).parent.parent
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node"]
TINY_LR = Config().train.lr
LOSSES = ("loss_d_real", "loss_d_fake", "loss_g", "d_real", "d_fake")


def _torchrun(nproc: int, *args: str, env: dict | None = None) -> str:
    """Run `torchrun --nproc-per-node nproc <args>` to completion; its output on success."""
    cmd = [*TORCHRUN, str(nproc), *args]
    done = subprocess.run(
        cmd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def _run_dir(tmp_path: Path) -> Path:
    (run,) = sorted((tmp_path / "runs").glob("0*"))
    return run


def _steps(run: Path) -> dict[int, dict]:
    return {r["step"]: r for r in read_stats(run) if "loss_d" in r}


@pytest.mark.slow
def test_two_processes_then_resume_on_one(tmp_path: Path) -> None:
    out = _torchrun(2, "-m", "dcgan", "train", *tiny_flags(tmp_path))
    run = _run_dir(tmp_path)
    assert out.count("run directory:") == 1  # rank 0 alone reports
    rows = _steps(run)
    assert list(rows) == [2, 4]
    assert rows[4]["global_batch"] == 2 * TINY["train"]["batch_size"]
    assert rows[4]["images_seen"] == 4 * rows[4]["global_batch"]
    saved = torch.load(latest_checkpoint(run), weights_only=True)
    assert saved["world"] == 2 and saved["step"] == 4
    assert not any(k.startswith("module.") for k in saved["generator"])  # unwrapped weights
    assert not list((tmp_path / "runs").glob(".torchrun-*"))  # a complete run leaves no marker

    assert main(["train", "--resume", str(run), "--steps", "6"]) == 0  # 2 -> 1 process
    rows = _steps(run)
    assert list(rows) == [2, 4, 6]
    assert rows[6]["global_batch"] == TINY["train"]["batch_size"]
    assert rows[6]["images_seen"] == rows[4]["images_seen"] + 2 * rows[6]["global_batch"]
    resumed = torch.load(latest_checkpoint(run), weights_only=True)
    assert resumed["world"] == 1 and resumed["step"] == 6


@pytest.mark.slow
def test_sync_bn_two_processes_match_one_with_the_same_global_batch(tmp_path: Path) -> None:
    flags = ["--precision", "fp32", "--log-every", "1", "--steps", "4"]
    one = tmp_path / "one"
    assert main(["train", *tiny_flags(one, batch_size=16), *flags]) == 0
    expected = _steps(_run_dir(one))

    def two(name: str, *extra: str) -> dict[int, dict]:
        root = tmp_path / name
        _torchrun(2, "-m", "dcgan", "train", *tiny_flags(root, batch_size=8), *flags, *extra)
        return _steps(_run_dir(root))

    synced = two("synced", "--sync-bn")
    assert list(synced) == list(expected) == [1, 2, 3, 4]
    for step, row in expected.items():
        for key in LOSSES:
            assert synced[step][key] == pytest.approx(row[key], rel=1e-4, abs=1e-5), (step, key)
    # Without it each process normalises its own 8 images: the test above can fail.
    local = two("local")
    assert local[1]["d_real"] != pytest.approx(expected[1]["d_real"], rel=1e-4)


def _fault(tmp_path: Path, kind: str, at_step: int) -> dict[str, str]:
    """Environment for tests/faulty_worker.py: rank 1 fails once before step at_step + 1."""
    flag = str(tmp_path / "fault-happened")
    return {"FAULT": kind, "FAULT_FLAG": flag, "FAULT_STEP": str(at_step), "FAULT_RANK": "1"}


@pytest.mark.slow
def test_a_crashed_worker_is_restarted_and_the_run_completes(tmp_path: Path) -> None:
    flag = tmp_path / "fault-happened"
    args = ["--max-restarts", "1", str(TESTS / "faulty_worker.py"), "train"]
    env = _fault(tmp_path, "crash", at_step=3)
    _torchrun(2, *args, *tiny_flags(tmp_path, steps=6, log_every=1), env=env)
    assert flag.exists()  # the worker did crash once
    run = _run_dir(tmp_path)  # the restarted group went on with the same run
    assert list(_steps(run)) == [1, 2, 3, 4, 5, 6]  # step 3 redone from the step-2 checkpoint
    assert torch.load(latest_checkpoint(run), weights_only=True)["step"] == 6
    log = (run / "log.txt").read_text()
    assert "torchrun restart 1" in log


@pytest.mark.slow
def test_a_nan_on_one_rank_rolls_every_rank_back(tmp_path: Path) -> None:
    flags = tiny_flags(tmp_path, steps=6, log_every=1, on_nan="rollback")
    env = _fault(tmp_path, "nan", at_step=2)
    _torchrun(2, str(TESTS / "faulty_worker.py"), "train", *flags, env=env)
    run = _run_dir(tmp_path)
    assert "rolled back to step 2" in (run / "log.txt").read_text()
    rows = _steps(run)
    assert list(rows) == [1, 2, 3, 4, 5, 6]  # step 3 redone after the rollback
    assert rows[6]["lr_g"] == pytest.approx(TINY_LR * 0.5)


# ---------------------------------------------------------------------------- global batches


@pytest.mark.parametrize("world", [2, 4])
def test_process_slices_make_up_the_single_process_batch(tiny_config: Config, world: int) -> None:
    cfg = with_settings(tiny_config, batch_size=4, flip=True)
    images = torch.randint(0, 256, (64, 1, 16, 16), dtype=torch.uint8)
    data = ImageSet(images, source="test")
    whole = RealBatches(
        data, with_settings(tiny_config, batch_size=4 * world, flip=True), torch.device("cpu")
    )
    parts = [RealBatches(data, cfg, torch.device("cpu"), r, world) for r in range(world)]
    for number in (0, 1, 7):  # 7 is in the second epoch at world 4
        assert torch.equal(torch.cat([p(number) for p in parts]), whole(number))


@pytest.mark.parametrize("world", [1, 3])
def test_noise_slices_make_up_the_global_noise(tiny_config: Config, world: int) -> None:
    def state(rank: int) -> TrainState:
        rng = torch.Generator().manual_seed(5)
        return TrainState(None, None, None, None, None, rng, None, rank=rank, world=world)  # type: ignore[arg-type]

    rng = torch.Generator().manual_seed(5)
    expected = torch.randn(4 * world, tiny_config.model.nz, generator=rng)
    slices = [draw_z(state(r), 4, tiny_config) for r in range(world)]
    assert torch.equal(torch.cat(slices), expected)


def test_too_few_images_for_the_global_batch_names_the_processes(tiny_config: Config) -> None:
    with pytest.raises(ConfigError, match="x 4 processes needs at least 128 images"):
        steps_per_epoch(with_settings(tiny_config, batch_size=32), 100, world=4)


# ---------------------------------------------------------------------------- collectives


def _in_group(rank: int, world: int, store: str, test, queue) -> None:
    """Spawned worker: join a gloo group of `world` through a file store and run `test`."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        queue.put((rank, test(Processes(torch.device("cpu"), rank, world))))
    except Exception as e:
        queue.put((rank, f"{type(e).__name__}: {e}"))
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path: Path, test, world: int = 2) -> list:
    """`test(procs)`'s result on each of `world` spawned ranks, in rank order."""
    queue = mp.get_context("spawn").SimpleQueue()
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = tmp_path / "store"
    mp.spawn(_in_group, (world, str(store), test, queue), nprocs=world)
    results = dict(queue.get() for _ in range(world))
    return [results[r] for r in range(world)]


def _rank0_fails(procs: Processes):
    def write() -> None:
        raise OSError("disk full")

    procs.on_main(write)
    return "went on"


def _signal_on_rank1(procs: Processes):
    caught = "SIGTERM" if procs.rank == 1 else None
    return procs.any_signal(caught)


def _share_and_gather(procs: Processes):
    shared = procs.on_main(lambda: "made on rank 0", share=True)
    return (
        shared,
        procs.gather(procs.rank * 10),
        procs.mean(torch.tensor([procs.rank * 2.0])).item(),
    )


@pytest.mark.slow
def test_collectives_stop_every_rank_together(tmp_path: Path) -> None:
    assert _spawn(tmp_path / "a", _rank0_fails) == ["OSError: disk full"] * 2
    assert _spawn(tmp_path / "b", _signal_on_rank1) == ["SIGTERM"] * 2
    shared = _spawn(tmp_path / "c", _share_and_gather)
    for value, gathered, mean in shared:
        assert value == "made on rank 0" and gathered == [0, 10] and mean == 1.0


def _sync_bn_grads(procs: Processes):
    """Each rank normalises its half of one batch; returns output, input grad, running stats."""
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4).contiguous(memory_format=torch.channels_last)
    mine = x[procs.rank * 4 : (procs.rank + 1) * 4].clone().requires_grad_(True)
    bn = SyncBatchNorm2d(3)
    nn.init.normal_(bn.weight)
    y = bn(mine)
    (y * torch.arange(y.numel()).view_as(y)).sum().backward()
    # as lists: tensors through a queue would need this process alive when they are read
    return [t.tolist() for t in (y, mine.grad, bn.running_mean, bn.running_var, bn.weight.grad)]


@pytest.mark.slow
def test_sync_batchnorm_equals_batchnorm_on_the_whole_batch(tmp_path: Path) -> None:
    torch.manual_seed(0)
    x = torch.randn(8, 3, 4, 4).requires_grad_(True)
    bn = nn.BatchNorm2d(3)
    nn.init.normal_(bn.weight)
    y = bn(x)
    (y * torch.cat([torch.arange(y.numel() // 2).view(4, 3, 4, 4)] * 2)).sum().backward()
    ranks = [[torch.tensor(t) for t in rank] for rank in _spawn(tmp_path, _sync_bn_grads)]
    assert torch.allclose(torch.cat([r[0] for r in ranks]), y.detach(), atol=1e-5)
    assert torch.allclose(torch.cat([r[1] for r in ranks]), x.grad, atol=1e-5)
    for rank in ranks:
        assert torch.allclose(rank[2], bn.running_mean, atol=1e-6)
        assert torch.allclose(rank[3], bn.running_var, atol=1e-6)
    # each rank's loss covers its half; DDP would sum (average) these weight gradients
    assert torch.allclose(sum(r[4] for r in ranks), bn.weight.grad, atol=1e-4)


def test_sync_batchnorm_alone_is_batchnorm() -> None:
    """Outside a process group (and in eval mode) it is an ordinary BatchNorm2d."""
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4)
    plain, synced = nn.BatchNorm2d(3), SyncBatchNorm2d(3)
    synced.load_state_dict(plain.state_dict())
    assert torch.equal(plain(x), synced(x))
    assert plain.state_dict().keys() == synced.state_dict().keys()


def _worker_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun worker `rank` under the launcher `parent` (from /proc), if started."""
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError):
            continue
        if int(stat[1]) == parent and f"RANK={rank}".encode() in environ:
            return int(proc.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds workers in /proc")
@pytest.mark.parametrize("target", ["worker 1", "torchrun"])
def test_sigterm_stops_the_group_at_one_step_with_a_checkpoint(tmp_path: Path, target) -> None:
    """SIGTERM to one worker, or to torchrun (as SLURM's --signal does; it passes it on)."""
    cmd = [*TORCHRUN, "2", "-m", "dcgan", "train", *tiny_flags(tmp_path, steps=100000)]
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(tmp_path.glob("runs/0*/stats.jsonl")):
            time.sleep(0.2)
        pid = launcher.pid if target == "torchrun" else _worker_pid(launcher.pid, rank=1)
        assert pid is not None, "worker 1 not found"
        os.kill(pid, signal.SIGTERM)
        out, _ = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    # torchrun reports its own SIGTERM as a failure; the workers exit 0 after checkpointing
    assert launcher.returncode == (1 if target == "torchrun" else 0), out[-3000:]
    run = _run_dir(tmp_path)
    saved = torch.load(latest_checkpoint(run), weights_only=True)
    assert 0 < saved["step"] < 100000
    assert f"stopped by SIGTERM at step {saved['step']}" in (run / "log.txt").read_text()


STALE = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_variables_without_torchrun_are_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name, value in {**STALE, "MASTER_PORT": str(_free_port())}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    assert main(["train", *tiny_flags(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "torchrun did not start this process" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_a_store_that_does_not_answer_is_named_in_seconds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from dcgan.training import distributed

    port = _free_port()  # nothing listens there: the agent that started the job is gone
    env = {**STALE, "MASTER_PORT": str(port), "TORCHELASTIC_RUN_ID": "stale"}
    for name, value in {**env, "TORCHELASTIC_USE_AGENT_STORE": "True"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(distributed, "STORE_CONNECT_SECONDS", 1)
    start = time.monotonic()
    assert main(["train", *tiny_flags(tmp_path)]) == 2
    assert time.monotonic() - start < 30
    err = capsys.readouterr().err
    assert f"torchrun's store at 127.0.0.1:{port} did not answer in 1 s" in err


def test_an_unreadable_restart_count_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    env = {**STALE, "MASTER_PORT": str(_free_port()), "TORCHELASTIC_RUN_ID": "x"}
    for name, value in {**env, "TORCHELASTIC_RESTART_COUNT": "x" * 1000}.items():
        monkeypatch.setenv(name, value)
    assert main(["train", *tiny_flags(tmp_path)]) == 2
    assert "TORCHELASTIC_RESTART_COUNT='xxx" in capsys.readouterr().err


def test_a_stale_restart_count_alone_does_not_matter(
    tiny_config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dcgan.training.loop import train

    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "x")
    assert train(tiny_config).step == 4
