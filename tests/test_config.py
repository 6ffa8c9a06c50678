import re
from pathlib import Path

import pytest
import yaml

from dcgan.cli import main
from dcgan.config import Config, diff, dump_yaml, from_dict, leaf_fields, resolve, to_dict
from dcgan.errors import ConfigError


def test_defaults_follow_the_paper() -> None:
    t = Config().train
    assert (t.lr, t.beta1, t.beta2, t.loss) == (2e-4, 0.5, 0.999, "non-saturating")
    assert (t.batch_size, t.epochs, t.steps) == (64, 16, None)  # tuned for the demo
    m = Config().model
    assert (m.nz, m.ngf, m.ndf) == (100, 64, 64)


SHIPPED = sorted((Path(__file__).resolve().parent.parent / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_resolve(path: Path) -> None:
    """`make demo` and friends read these: a misspelt key or a wrong type would stop them."""
    cfg = resolve(path, {})
    assert cfg.data.dataset in ("mnist-sample", "folder")
    assert cfg.data.holdout >= 300  # FID on unseen images (a fifth of a small folder at least)
    assert cfg.train.steps is not None and cfg.train.steps > 0


@pytest.mark.parametrize(
    ("plain", "conditional"),
    [("demo.yaml", "demo-conditional.yaml"), ("folder-64.yaml", "folder-64-conditional.yaml")],
)
def test_a_conditional_recipe_is_its_recipe_with_the_published_pairing(
    plain: str, conditional: str
) -> None:
    """The conditional recipes are their unconditional recipe, conditioned by class-conditional
    BatchNorm and a projection D with spectral normalisation at 4x G's rate
    (docs/conditional.md)."""
    configs = Path(__file__).resolve().parent.parent / "configs"
    base, cond = resolve(configs / plain), resolve(configs / conditional)
    assert (cond.model.cond_g, cond.model.cond_d) == ("cbn", "projection")
    assert cond.model.conditional and cond.model.spectral_norm
    assert cond.train.lr_d == 4 * cond.train.lr_g
    same = ("loss", "steps", "batch_size", "ema", "augment", "augment_cutout")
    assert all(getattr(cond.train, k) == getattr(base.train, k) for k in same)
    kept = ("image_size", "channels", "ngf", "ndf", "mbstd_group")
    assert all(getattr(cond.model, k) == getattr(base.model, k) for k in kept)
    assert cond.data.dataset == base.data.dataset


def test_the_folder_recipe_is_64px_colour(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The command docs/own-pictures.md gives, as a dry run: the recipe with the user's folder."""
    recipe = Path(__file__).resolve().parent.parent / "configs" / "folder-64.yaml"
    argv = ["train", "--config", str(recipe), "--data-root", str(tmp_path), "--max-minutes", "30"]
    assert main([*argv, "--dry-run"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (cfg["model"]["image_size"], cfg["model"]["channels"]) == (64, 3)
    assert cfg["data"] | {"data_root": str(tmp_path), "dataset": "folder"} == cfg["data"]
    assert cfg["train"]["max_minutes"] == 30.0


def test_none_on_the_command_line_clears_a_number_the_recipe_set(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The colour recipe turns adaptive augmentation on; `--ada-target none` turns it off
    (with `--augment none`, which it would otherwise refuse); a bad number is one line."""
    recipe = Path(__file__).resolve().parent.parent / "configs" / "folder-64.yaml"
    argv = ["train", "--config", str(recipe), "--data-root", str(tmp_path), "--dry-run"]
    assert main(argv) == 0
    assert yaml.safe_load(capsys.readouterr().out)["train"]["ada_target"] == 0.6
    assert main([*argv, "--augment", "none", "--ada-target", "None"]) == 0
    train = yaml.safe_load(capsys.readouterr().out)["train"]
    assert (train["augment"], train["ada_target"]) == ("none", None)
    with pytest.raises(SystemExit):
        main([*argv, "--ada-target", "high"])
    assert capsys.readouterr().err.strip().endswith("invalid float value: 'high'")
    assert main([*argv, "--augment", "none"]) != 0
    assert "also pass --ada-target none" in capsys.readouterr().err


def test_precedence_defaults_yaml_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.001\n  batch_size: 32\nmodel:\n  image_size: 64\n")
    cfg = resolve(f, {"batch_size": 16})
    assert cfg.train.lr == 0.001  # from the file
    assert cfg.train.batch_size == 16  # flag beats file
    assert cfg.model.image_size == 64
    assert cfg.train.beta1 == 0.5  # default kept


def test_yaml_round_trip() -> None:
    cfg = resolve(None, {"betas_g": (0.0, 0.9), "grad_clip": 1.0, "image_size": 64})
    again = from_dict(yaml.safe_load(dump_yaml(cfg)))
    assert again == cfg and diff(cfg, again) == []
    assert again.train.betas_g == (0.0, 0.9)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"image_size": 48}, "image_size: 48"),
        ({"image_size": 8}, "image_size: 8"),
        ({"image_size": 1024}, "image_size: 1024"),
        ({"batch_size": 0}, "batch_size: 0"),
        ({"lr": -1e-3}, "lr: -0.001"),
        ({"lr_d": 0.0}, "lr_d: 0.0"),
        ({"beta1": 1.0}, "beta1: 1.0"),
        ({"channels": 0}, "channels: 0"),
        ({"real_label": 0.0}, "real_label: 0.0"),
        ({"real_label": 1.5}, "real_label: 1.5"),
        ({"d_dropout": 1.0}, "d_dropout: 1.0"),
        ({"mbstd_group": -1}, "mbstd_group: -1 must be in [0, 1024]"),
        ({"feature_matching_steps": -1}, "feature_matching_steps: -1 must be >= 0"),
        ({"loss": "wasserstein"}, "loss: 'wasserstein'"),
        ({"device": "tpu"}, "device: 'tpu'"),
        ({"z_dist": "cauchy"}, "z_dist: 'cauchy'"),
        ({"dataset": "imagenet-9000"}, "dataset: 'imagenet-9000'"),
        ({"epochs": 0}, "epochs: 0"),
        ({"steps": -5}, "steps: -5"),
        ({"seed": 2**64}, "seed: 18446744073709551616 is out of range"),
        ({"seed": -1}, "seed: -1 must be in [0, 2**63 - 1]"),
        ({"max_minutes": -1.0}, "max_minutes: -1.0 must be in [0, 525600.0]"),
        ({"batch_size": "big"}, "expected an integer"),
        ({"lr": "fast"}, "expected a number"),
        ({"deterministic": 1}, "expected true/false"),
        ({"betas_g": [0.5]}, "expected a list of 2"),
        ({"image_size": 32.0}, "expected an integer"),
        ({"learning_rate": 1}, "unknown setting 'learning_rate'"),
        ({"train": {"lrr": 1}}, "unknown setting 'train.lrr' (did you mean 'lr'?)"),
        ({"train": 3}, "must be a mapping"),
        ({None: 1}, "unknown setting None"),  # YAML's bare '?' is a null key
        ({"train": {1: 2}}, "unknown setting 'train.1'"),
    ],
)
def test_bad_values_are_one_line_errors(overrides: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve(None, overrides)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_yaml_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        resolve(bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        resolve(listy)
    with pytest.raises(ConfigError, match="cannot read config file"):
        resolve(tmp_path / "missing.yaml")
    null_key = tmp_path / "null.yaml"
    null_key.write_text("?\n")  # a mapping whose one key is null, found by test_fuzz
    with pytest.raises(ConfigError, match=r"null\.yaml: unknown setting None"):
        resolve(null_key)


def test_yaml_cannot_construct_python_objects(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    evil.write_text(f"train: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError):
        resolve(evil)
    assert not marker.exists()


def test_to_dict_is_plain_data() -> None:
    data = to_dict(resolve(None, {"betas_d": (0.1, 0.2)}))
    assert data["train"]["betas_d"] == [0.1, 0.2]
    assert yaml.safe_load(yaml.safe_dump(data)) == data


# ---------------------------------------------------------------------------- through the CLI


def test_dry_run_prints_the_resolved_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.0005\n")
    assert (
        main(["train", "--dry-run", "--config", str(f), "--batch-size", "64", "--no-deterministic"])
        == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["train"]["lr"] == 0.0005 and printed["train"]["batch_size"] == 64
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--image-size", "48"], "image_size: 48"),
        (["--batch-size", "0"], "batch_size: 0"),
        (["--lr", "-0.1"], "lr: -0.1"),
        (["--batch-size", "many"], "--batch-size: invalid int value"),
        (["--bogus", "1"], "unrecognized arguments: --bogus"),
        (["--config", "/nonexistent/c.yaml"], "cannot read config file"),
        (["--loss", "nope"], "loss: 'nope'"),
    ],
)
def test_cli_errors_are_one_line(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture
) -> None:
    try:
        code = main(["train", "--dry-run", *argv])
    except SystemExit as e:  # argparse's own errors exit from the parser
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_every_setting_has_its_help_once_beside_the_field() -> None:
    from dcgan.cli import build_parser

    fields = leaf_fields()
    assert all(f.metadata["help"].strip() for _, f in fields.values())
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    helps = {a.dest: a.help for a in train._actions}
    assert all(helps[name] == f.metadata["help"] for name, (_, f) in fields.items())


def test_a_yaml_alias_bomb_is_quoted_in_a_few_words(tmp_path: Path) -> None:
    """Nested aliases make a value of 9^8 strings from 300 bytes: the error must not print it."""
    parts, prev = ['&a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'], "a"
    for name in "bcdefgh":
        parts.append(f"&{name} [{', '.join([f'*{prev}'] * 9)}]")
        prev = name
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"train:\n  lr: [{', '.join(parts)}]\n")
    with pytest.raises(ConfigError, match=r"train\.lr: expected a number, got \[\[") as e:
        resolve(bomb)
    assert len(str(e.value)) < 250


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("ngf", 10**400, "ngf: an integer of 1329 bits is out of range"),
        ("seed", -(2**70), "is out of range (a 64-bit integer)"),
        ("ngf", "x" * 100_000, "expected an integer, got 'xxx"),
        ("loss", "x" * 100_000, "is longer than 4096 characters"),
        ("data_root", "x" * 5000, "is longer than 4096 characters"),
    ],
)
def test_huge_values_are_cut_in_messages(name: str, value: object, fragment: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(fragment)) as e:
        resolve(None, {name: value})
    assert len(str(e.value)) < 200
