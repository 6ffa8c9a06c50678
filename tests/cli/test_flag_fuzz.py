"""Every subcommand's flags, fuzzed: random flags of its parser with random values of their types
(and of wrong types) end in exit 0, or exit 2 with one line on stderr, never a traceback.

The flags come from `build_parser()` itself, so a new flag is fuzzed without touching this file.
Sources are a tiny run made once; the heavy work each command would start (training, generating,
Inception features, downloads) is replaced by a stub that stops the command, so only checking,
parsing and loading run for real.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import tiny_flags
from dcgan import api, latent, sampling
from dcgan.cli import build_parser, main
from dcgan.data import download
from dcgan.evaluation import evaluate, features, nearest, probe, reference
from dcgan.serve import server
from dcgan.training import loop

# 14 subcommands x 50 examples, about 10 s: in `make test` and CI, not `make test-fast`.
pytestmark = pytest.mark.slow

EXAMPLES = 50  # per subcommand; derandomized, so every run tries the same ones
SUBPARSERS: dict[str, argparse.ArgumentParser] = next(
    a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)
)


class Reached(Exception):
    """The arguments passed every check and the real work would start here."""


def _stop(*_args, **_kwargs):
    raise Reached


class _Features:
    sha256, resize = "0" * 64, "stub"

    def __init__(self, *_args, **_kwargs) -> None:
        pass


REAL_DCGAN = api.DCGAN


class _DCGAN(REAL_DCGAN):
    """`dcgan summary` would build networks of any size: stop there; `probe` loads for real."""

    def __init__(self, *_args, **_kwargs) -> None:
        raise Reached

    @classmethod
    def load(cls, directory):
        return REAL_DCGAN.load(directory)


STUBS = [
    (loop, "train", _stop),
    (api, "DCGAN", _DCGAN),
    (sampling, "write_images", _stop),
    *[(latent, name, _stop) for name in ("interpolate", "arithmetic", "walk", "sweep")],
    (features, "InceptionFeatures", _Features),
    (reference, "reference_features", _stop),
    (evaluate, "reference_features", _stop),  # as `evaluate.measure` calls it
    (evaluate, "real_images", _stop),
    (evaluate, "evaluate", _stop),
    (probe, "probe_run", _stop),
    (nearest, "nearest_grid", _stop),
    (download, "_fetch", _stop),
    (server, "make_server", _stop),  # `dcgan serve` would serve until stopped
]


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Paths a flag may name: a run and its files, a reference, missing and forbidden places."""
    root = tmp_path_factory.mktemp("flags")
    assert main(["train", *tiny_flags(root)]) == 0
    run = root / "runs" / "00000-fake-16"
    shutil.copytree(run, root / "pristine")
    ref = root / "ref.npz"
    feats = np.random.default_rng(0).normal(size=(16, 4))
    reference.save_reference(reference.make_reference(feats, {"dataset": "x"}), ref)
    named = [run, run / "generator.safetensors", run / "checkpoints" / "latest.pt"]
    named += [run / "config.yaml", ref, root, root / "missing", root / "out" / "x.png"]
    named += [root / "o.gif", root / "o", "/proc/forbidden", "/proc/forbidden/x.png"]
    return [str(p) for p in named]


text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=8
)
WORDS = ["auto", "cpu", "cuda", "fid", "kid,pr", "fid,kid,pr", "holdout", "train", "test", "all"]
WORDS += ["fake", "mnist", "npz", "celeba", "slerp", "lerp", "3:17", "0:1", "1,2,3", "0-9", "5-2"]
# Values that pass a flag's own checks, so examples get past the first flag to the others and
# to the work: what a user would most often type.
HINTS = {
    "source": [0, 1, 2],  # indices into `places`: the run, its export and its checkpoint
    "run": [0, 1, 2],
    "out": ["o.png", "o.gif", "o", "r.npz"],
    "pairs": ["3:17", "0:1"],
    "a": ["1,2,3", "0"],
    "b": ["4,5"],
    "c": ["6"],
    "dims": ["0-3", "0,5"],
    "method": ["slerp", "lerp"],
    "metrics": ["fid", "kid,pr"],
    "device": ["cpu"],
    "dataset": ["fake", "mnist-sample", "mnist"],
    "reference": ["auto", "train"],
    "format": ["onnx", "safetensors"],
}
SMALL = ["1", "2", "3", "4", "8"]


def values(action: argparse.Action, places: list[str]) -> st.SearchStrategy[str]:
    """Values that pass the flag's checks, values of its type (edge cases included) and junk of
    any type."""
    if action.type is int:
        typed = st.integers(-(2**70), 2**70).map(str) | st.sampled_from(["0", "-1", *SMALL])
    elif action.type is float:
        typed = st.floats(allow_nan=True, allow_infinity=True).map(str)
        typed |= st.sampled_from(["0", "0.5", "1e400", "-inf"])
    elif action.type is Path:
        typed = st.sampled_from(places)
    else:
        typed = st.sampled_from(WORDS + places)
    hint = [places[h] if isinstance(h, int) else h for h in HINTS.get(action.dest, [])]
    if action.type is int:
        hint = SMALL
    if not hint:
        return weighted(typed, 2, text)
    weight = 12 if action.required or not action.option_strings else 4  # mostly past its checks
    return weighted(st.sampled_from(hint), weight, typed, text)


def weighted(usual: st.SearchStrategy, weight: int, *others: st.SearchStrategy):
    """`usual` `weight` times as often as each of `others`."""
    pick = st.integers(0, weight + len(others) - 1)
    return pick.flatmap(lambda i: usual if i < weight else others[i - weight])


def occurrence(action: argparse.Action, places: list[str]) -> st.SearchStrategy[list[str]]:
    """One use of the action on a command line: its flag (if any) and its values."""
    count = {None: 1, 0: 0, 2: 2, "+": st.integers(1, 3), "?": st.integers(0, 1)}[action.nargs]
    counts = count if isinstance(count, st.SearchStrategy) else st.just(count)
    flag = st.sampled_from(action.option_strings or [None])
    args = counts.flatmap(lambda n: st.lists(values(action, places), min_size=n, max_size=n))
    return st.tuples(flag, args).map(lambda fa: ([fa[0]] if fa[0] else []) + fa[1])


@st.composite
def command_lines(draw, name: str, places: list[str]) -> list[str]:
    parser = SUBPARSERS[name]
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    required = [a for a in actions if a.required or not a.option_strings]
    optional = [a for a in actions if a not in required]
    chosen = draw(st.lists(st.sampled_from(optional), max_size=4)) if optional else []
    argv = [name]
    for action in required + chosen:
        argv += draw(occurrence(action, places))
    return argv


def _run(argv: list[str]) -> tuple[int | str, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code: int | str = main(argv)
        except SystemExit as e:  # argparse's own errors (2) and --help (0)
            code = e.code
        except Reached:
            code = "reached"
    return code, err.getvalue()


@pytest.mark.parametrize("name", sorted(SUBPARSERS))
def test_random_flags_of_each_subcommand_end_in_one_line_or_valid(
    name: str, places: list[str], tmp_path: Path, memory_limit: int
) -> None:
    run = Path(places[0])

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(command_lines(name, places))
    def check(argv: list[str]) -> None:
        code, err = _run(argv)
        assert "Traceback" not in err, (argv, err)
        assert code in (0, 2, "reached"), (argv, code, err)
        if code == 2:
            lines = err.splitlines()
            assert len(lines) == 1 and lines[0].startswith("dcgan"), (argv, err)

    with pytest.MonkeyPatch.context() as mp:
        for module, attribute, stub in STUBS:
            mp.setattr(module, attribute, stub)
        mp.chdir(tmp_path)  # a relative path a value names lands here
        check()
    pristine = run.parent.parent / "pristine"
    for path in pristine.rglob("*"):  # no command changed the run it read
        if path.is_file():
            assert (run / path.relative_to(pristine)).read_bytes() == path.read_bytes(), path


# Edge numbers for every numeric flag: zero, signs, the 32- and 64-bit edges and beyond, and
# floats at the ends of their range, all under a memory limit: a count that is not checked
# against the memory it implies fails here instead of swapping the machine.
HUGE_INTS = ["0", "-1", str(2**31), str(2**63 - 1), str(2**63), str(2**64 + 1), "9" * 40]
TINY_FLOATS = ["5e-324", "1e-300", "-0.0", "1e300", "1e400", "nan", "-inf"]
TINY_RUN = ["--dataset", "fake", "--image-size", "16", "--ngf", "8", "--ndf", "8", "--nz", "16"]
TINY_RUN += ["--batch-size", "8", "--steps", "4", "--device", "cpu"]
OPTIONAL = {"train": TINY_RUN, "export": ["--out", "m.onnx"]}


def _base(name: str, places: list[str]) -> list[str]:
    """A command line of `name` that passes every check: its required arguments' hints."""
    argv = [name]
    for action in SUBPARSERS[name]._actions:
        if not (action.required or not action.option_strings) or action.nargs == 0:
            continue
        hint = HINTS.get(action.dest, [*(action.choices or []), 0])[0]
        argv += [*action.option_strings[:1], places[hint] if isinstance(hint, int) else hint]
    return argv + OPTIONAL.get(name, [])


def _numeric(name: str) -> list[argparse.Action]:
    return [a for a in SUBPARSERS[name]._actions if a.type in (int, float) and a.option_strings]


@pytest.mark.parametrize("name", sorted(n for n in SUBPARSERS if _numeric(n)))
def test_huge_and_tiny_numbers_for_every_numeric_flag(
    name: str, places: list[str], tmp_path: Path, memory_limit: int
) -> None:
    base = _base(name, places)
    with pytest.MonkeyPatch.context() as mp:
        for module, attribute, stub in STUBS:
            if attribute != "train":  # train goes on for real until its run would be opened
                mp.setattr(module, attribute, stub)
        mp.setattr(loop, "open_run", _stop)
        mp.chdir(tmp_path)
        assert _run(base)[0] in (0, "reached"), base
        for action in _numeric(name):
            for value in HUGE_INTS if action.type is int else TINY_FLOATS:
                argv = [*base, action.option_strings[0], value]
                code, err = _run(argv)
                assert "Traceback" not in err, (argv, err)
                assert code in (0, 2, "reached"), (argv, code, err)
                if code == 2:
                    assert len(err.splitlines()) == 1, (argv, err)
