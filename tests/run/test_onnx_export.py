"""`dcgan export`: ONNX files that onnxruntime runs like PyTorch, the safetensors export with its
model card, and one-line errors."""

from __future__ import annotations

import builtins
import inspect
from pathlib import Path

import pytest
import torch

from dcgan.cli import main
from dcgan.config import ModelConfig
from dcgan.nn.models import Generator
from dcgan.run.checkpoint import export_generator, load_export
from dcgan.run.onnx_export import TOLERANCE, export

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _exported(tmp_path: Path, **model) -> tuple[Generator, Path]:
    """A tiny G exported to tmp_path, with weights that make its images span [-1, 1] (DCGAN's
    init draws near-zero images, which any graph would match) and its classes differ, and
    BatchNorm statistics that are not the defaults."""
    torch.manual_seed(0)
    generator = Generator(ModelConfig(ngf=8, **model))
    for module in generator.modules():
        if isinstance(module, (torch.nn.ConvTranspose2d, torch.nn.Embedding)):
            module.reset_parameters()
    labels = torch.arange(16) % generator.cfg.num_classes if model.get("conditional") else None
    with torch.no_grad():
        for _ in range(20):  # moves BatchNorm's running statistics
            z = torch.randn(16, generator.cfg.nz)
            generator.train()(*[t for t in (z, labels) if t is not None])
    export_generator(generator.eval(), tmp_path, {"z_dist": "normal"})
    return generator, tmp_path / "generator.safetensors"


def _run_onnx(path: Path, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {"z": z.numpy()} | ({} if labels is None else {"labels": labels.numpy()})
    return torch.from_numpy(session.run(["images"], feed)[0])


@pytest.mark.slow
@pytest.mark.parametrize(("size", "channels"), [(16, 1), (16, 3), (32, 1), (32, 3)])
def test_onnx_matches_pytorch(tmp_path: Path, size: int, channels: int) -> None:
    generator, source = _exported(tmp_path, image_size=size, channels=channels, nz=12)
    done = export(source, "onnx", tmp_path / "g.onnx")
    assert done.max_abs_diff is not None and done.max_abs_diff <= TOLERANCE
    model = onnx.load(str(done.path))
    onnx.checker.check_model(model)
    ops = {node.op_type for node in model.graph.node}
    assert "ConvTranspose" in ops and "MatMul" not in ops  # plain convolutions, no routes
    assert [i.name for i in model.graph.input] == ["z"]
    props = {p.key: p.value for p in model.metadata_props}
    assert props["nz"] == "12" and props["z_dist"] == "normal"
    for batch in (1, 5):  # the batch axis is dynamic
        z = torch.randn(batch, 12)
        got = _run_onnx(done.path, z)
        with torch.no_grad():
            expected = generator.eval()(z)
        assert got.shape == (batch, channels, size, size)
        assert (got - expected).abs().max() <= TOLERANCE
        assert got.min() >= -1 and got.max() <= 1 and got.std() > 0.05


def _conditional_ok() -> bool:
    fields = getattr(ModelConfig, "__dataclass_fields__", {})
    forward = inspect.signature(Generator.forward).parameters
    return "conditional" in fields and "labels" in forward


@pytest.mark.slow
@pytest.mark.skipif(not _conditional_ok(), reason="Generator takes no class labels yet")
def test_conditional_onnx_takes_labels(tmp_path: Path) -> None:
    cfg = {"image_size": 16, "channels": 1, "nz": 8, "conditional": True, "num_classes": 3}
    generator, source = _exported(tmp_path, **cfg)
    done = export(source, "onnx", tmp_path / "c.onnx")
    assert done.max_abs_diff <= TOLERANCE
    inputs = [i.name for i in onnx.load(str(done.path)).graph.input]
    assert inputs == ["z", "labels"]
    z, labels = torch.randn(5, 8), torch.tensor([0, 1, 2, 1, 0])
    with torch.no_grad():
        expected = generator.eval()(z, labels)
    assert (_run_onnx(done.path, z, labels) - expected).abs().max() <= TOLERANCE
    other = _run_onnx(done.path, z, (labels + 1) % 3)
    assert (other - expected).abs().max() > 1e-3  # the class changes the images


def test_cli_exports_a_run_checkpoint_and_safetensors(tmp_path: Path, capsys) -> None:
    generator, source = _exported(tmp_path / "run", image_size=16, channels=1, nz=8)
    assert main(["export", str(source.parent), "--format", "onnx", "--opset", "13"]) == 0
    out = capsys.readouterr().out
    assert (source.parent / "generator.onnx").is_file() and "max abs difference" in out
    target = tmp_path / "elsewhere" / "model.safetensors"
    assert main(["export", str(source), "--format", "safetensors", "--out", str(target)]) == 0
    again, meta = load_export(target)
    state = generator.state_dict()
    assert all(torch.equal(state[k], v) for k, v in again.state_dict().items())
    assert meta["z_dist"] == "normal"
    card = (target.parent / "README.md").read_text()
    assert (
        "model.safetensors" in card
        and f"{sum(p.numel() for p in generator.parameters()):,}" in card
    )


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["export", "{tmp}/missing", "--format", "onnx"], "SOURCE:"),
        (["export", "{tmp}/run", "--format", "tflite"], "--format:"),
        (["export", "{tmp}/run", "--format", "onnx", "--opset", "99"], "--opset:"),
        (["export", "{tmp}/run", "--format", "onnx", "--out", "{tmp}/g.txt"], "--out:"),
        (["export", "{tmp}/run/generator.json", "--format", "onnx"], "generator.json"),
        (["export", "{tmp}/run", "--format", "safetensors"], "the source's own export"),
        (["export", "{tmp}/run/generator.safetensors", "--format", "safetensors"], "own export"),
    ],
)
@pytest.mark.slow
def test_errors_are_one_line(tmp_path: Path, capsys, argv: list[str], expected: str) -> None:
    _exported(tmp_path / "run", image_size=16, channels=1, nz=8)
    code = main([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and expected in err, err


@pytest.mark.slow
def test_missing_onnx_package_is_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    _exported(tmp_path / "run", image_size=16, channels=1, nz=8)
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    assert main(["export", str(tmp_path / "run"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'dcgan[onnx]'" in err and "onnxruntime" in err
    assert not (tmp_path / "run" / "generator.onnx").exists()
