"""Property tests: random values and types thrown at the config and the CLI always end in a
valid config or a one-line error that names the setting, never a traceback."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dcgan.cli import main
from dcgan.config import Config, leaf_fields, merge, resolve, validate
from dcgan.errors import ConfigError

LEAVES = sorted(leaf_fields())
SECTIONS = ("model", "data", "train", "output")

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
values = (
    scalars
    | st.lists(scalars, max_size=3)
    | st.dictionaries(st.text(max_size=5), scalars, max_size=2)
)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.dictionaries(st.sampled_from(LEAVES) | st.text(max_size=10), values, max_size=4))
def test_random_flat_settings_give_a_config_or_a_one_line_error(overrides: dict) -> None:
    try:
        cfg = validate(merge(Config(), overrides, "fuzz"))
    except ConfigError as e:
        assert "\n" not in str(e) and str(e)
        return
    assert isinstance(cfg, Config)


@FUZZ
@given(st.dictionaries(st.sampled_from(SECTIONS) | st.text(max_size=6), values, max_size=3))
def test_random_nested_settings_give_a_config_or_a_one_line_error(data: dict) -> None:
    try:
        validate(merge(Config(), data, "fuzz.yaml"))
    except ConfigError as e:
        assert "\n" not in str(e)


@FUZZ
@given(st.text(max_size=60))
def test_random_yaml_files_give_a_config_or_a_one_line_error(tmp_path_factory, text: str) -> None:
    path = tmp_path_factory.mktemp("yaml") / "c.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        resolve(path)
    except ConfigError as e:
        assert "\n" not in str(e) and "c.yaml" in str(e)
    except UnicodeEncodeError:
        pytest.skip("text hypothesis could not write as UTF-8")


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse's own errors exit 2
            code = e.code
    return code, err.getvalue()


flag_values = (
    st.integers(min_value=-(10**20), max_value=10**20).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(str)
    | st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=10
    )
    | st.sampled_from(["true", "false", "none", "auto", "-1", "0", "1e400", "fp8", "nan"])
)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(LEAVES), flag_values), min_size=1, max_size=3))
@pytest.mark.slow
def test_random_train_flags_dry_run_or_one_line_error(tmp_path_factory, flags) -> None:
    argv = ["train", "--dry-run", "--out", str(tmp_path_factory.mktemp("out"))]
    for name, value in flags:
        argv += [f"--{name.replace('_', '-')}={value}"]
    code, err = _cli(argv)
    assert code in (0, 2), (argv, err)
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, (argv, err)


def test_a_yaml_file_with_a_huge_integer_for_a_float(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"train": {"lr": 10**400}}))
    with pytest.raises(ConfigError, match="lr"):
        resolve(path)
