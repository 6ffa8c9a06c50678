"""One prepared check of the CUDA path: the cuda tests, the step's speed against the reference
loop, GPU memory, FID on the GPU against the CPU, and the demo trained on the GPU.

    .venv/bin/python benchmarks/gpu_check.py [--out gpu-check]   # on a GPU machine, ~6 minutes
    .venv/bin/python benchmarks/gpu_check.py --dry-run   # its plumbing on the CPU, in seconds

Writes OUT/gpu-check.json and OUT/gpu-check.md (the table for docs/speed.md). In order:
1. `pytest -m cuda`: the tests that need a GPU (they skip with a reason elsewhere);
2. images/s of pytorch/examples' eager fp32 loop ("reference", as benchmarks/train_throughput.py
   writes it) against our default step and our step under `--compile`, at 32x32x1 batch 64 and
   128 and 64x64x3 batch 128: interleaved rounds, min / median / max, and the ratio per round;
3. the peak GPU memory of each loop at each shape;
4. configs/demo.yaml trained on the GPU: wall time and images/s (its stats.jsonl);
5. that run's FID (N = 1000 against its 1,000 held-out digits) evaluated on the GPU and on the
   CPU, which should agree to 0.1, and Inception features per second on each.
The dry run does all of it on the CPU with tiny sizes (batch 8, one short round, 4 demo steps,
N = 8 and KID in FID's place, without --compile), so a test runs it in CI; its figures mean
nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_throughput import config, project_loop, rate, reference_loop, summary

ROOT = Path(__file__).parent.parent
SHAPES = ((32, 1, 64), (32, 1, 128), (64, 3, 128))  # (image size, channels, batch)


def run_tests(dry_run: bool) -> dict:
    """`pytest -m cuda` in a child process: its counts and exit code."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider"]
    done = subprocess.run([*cmd, str(ROOT / "tests")], capture_output=True, text=True, cwd=ROOT)
    last = (done.stdout.strip().splitlines() or [""])[-1]
    return {"returncode": done.returncode, "summary": last, "dry_run": dry_run}


def loops(size: int, channels: int, batch: int, device: torch.device, dry_run: bool) -> dict:
    """The loops compared at one shape, each a zero-argument step. The dry run leaves out
    --compile, whose C++ compilation alone takes minutes on a small CPU."""
    cfg = config(size, channels, batch, device)
    steps = {
        "reference": reference_loop(cfg, loader=False, device=device),
        "ours": project_loop(cfg, device)[0],
    }
    if not dry_run:
        compiled = config(size, channels, batch, device, compile=True)
        steps["ours_compile"] = project_loop(compiled, device)[0]
    return steps


def peak_memory_mib(step, device: torch.device) -> float | None:
    """The most GPU memory one step of `step` holds at once (None on the CPU)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    step()
    torch.cuda.synchronize()
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def throughput(device: torch.device, rounds: int, seconds: float, dry_run: bool) -> list[dict]:
    rows = []
    for size, channels, batch in SHAPES:
        batch = 8 if dry_run else batch
        steps_of = loops(size, channels, batch, device, dry_run)
        for step in steps_of.values():
            rate(step, 3, batch)  # warm-up: cuDNN autotuning, compilation, the allocator
        row: dict = {"shape": f"{size}x{size}x{channels}", "batch": batch}
        row["peak_memory_mib"] = {n: peak_memory_mib(s, device) for n, s in steps_of.items()}
        per_round = max(1, round(seconds * rate(steps_of["reference"], 3, batch) / batch))
        rates: dict[str, list[float]] = {name: [] for name in steps_of}
        for _ in range(rounds):  # interleaved: a slow moment of the machine hits every loop
            for name, step in steps_of.items():
                rates[name].append(rate(step, per_round, batch))
        for name, values in rates.items():
            row[name] = summary(values)
        for name in [n for n in steps_of if n != "reference"]:
            ratios = [o / r for o, r in zip(rates[name], rates["reference"], strict=True)]
            row[f"{name}_to_reference"] = summary(ratios, digits=2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def dcgan(*args: object) -> None:
    """`python -m dcgan ARGS` in a child process, as a user runs it; its output on failure."""
    done = subprocess.run(
        [sys.executable, "-m", "dcgan", *map(str, args)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"dcgan {' '.join(map(str, args))} failed:\n{done.stderr[-2000:]}")


def demo(out: Path, device: torch.device, dry_run: bool) -> dict:
    """configs/demo.yaml trained on `device`: wall time and images/s; then its FID on `device`
    and on the CPU, and Inception's images/s on each (from the evaluation's own timing)."""
    tiny = ["--steps", "4", "--log-every", "2", "--sample-every", "4"] if dry_run else []
    start = time.perf_counter()
    dcgan("train", "--config", ROOT / "configs/demo.yaml", "--device", device.type,
          "--out", out / "runs", *tiny)  # fmt: skip
    result: dict = {"device": device.type, "train_seconds": round(time.perf_counter() - start, 1)}
    run = sorted((out / "runs").glob("0*"))[-1]  # this one: run numbers only grow
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in stats if "images_per_s" in r]
    result["images_per_s_median"] = round(statistics.median(rates), 1)
    # FID's covariances need N well above a few; the dry run's N = 8 takes KID's path instead
    n, metric = (8, "kid") if dry_run else (1000, "fid")
    for where in dict.fromkeys([device.type, "cpu"]):
        report = out / f"evaluate-{where}.json"
        begun = time.perf_counter()
        dcgan("evaluate", run, "--num-samples", n, "--num-real", n, "--metrics", metric,
              "--device", where, "--json", report)  # fmt: skip
        seconds = time.perf_counter() - begun
        metrics = json.loads(report.read_text())["metrics"]
        result[f"fid_{where}"] = metrics["fid" if metric == "fid" else "kid_mean"]
        result[f"evaluate_images_per_s_{where}"] = round(2 * n / seconds, 1)
    result["fid_gpu_minus_cpu"] = round(result[f"fid_{device.type}"] - result["fid_cpu"], 4)
    result["n"], result["metric"] = n, metric.upper()
    return result


def markdown(report: dict) -> str:
    lines = [f"GPU check: {report['device_name']}, {report['date']}, torch {report['torch']}", ""]
    lines += ["| shape | batch | reference | ours | ours --compile | ours / ref | compile / ref |"]
    lines += ["|---|---|---|---|---|---|---|"]
    for r in report["throughput"]:
        cells = [r["shape"], r["batch"]]
        for k in ("reference", "ours", "ours_compile"):
            cells.append(f"{r[k]['min']} / {r[k]['median']} / {r[k]['max']}" if k in r else "-")
        compiled = r.get("ours_compile_to_reference", {}).get("median", "-")
        cells += [f"**{r['ours_to_reference']['median']}**", compiled]
        lines.append("| " + " | ".join(map(str, cells)) + " |")
    d = report["demo"]
    lines += ["", f"Demo: {d['train_seconds']} s of training at a median "
              f"{d['images_per_s_median']} images/s; {d['metric']} (N = {d['n']}) on {d['device']} "
              f"{d['fid_' + d['device']]}, on the CPU {d['fid_cpu']}.",
              f"Tests marked cuda: {report['tests']['summary']}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-check"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0, help="~reference seconds a round")
    parser.add_argument("--dry-run", action="store_true", help="the CPU, tiny sizes: seconds")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device here; --dry-run checks the plumbing on the CPU")
    device = torch.device("cpu" if args.dry_run else "cuda")
    rounds, seconds = (1, 0.05) if args.dry_run else (args.rounds, args.seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU (dry run)"
    report = {"device_name": name, "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__}
    report["tests"] = run_tests(args.dry_run)
    report["throughput"] = throughput(device, rounds, seconds, args.dry_run)
    report["demo"] = demo(args.out, device, args.dry_run)
    (args.out / "gpu-check.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "gpu-check.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
