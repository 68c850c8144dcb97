"""Config machinery: YAML + dotted overrides, unknown keys rejected, resolved config dumped."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rlrec.config import build_config, config_to_yaml, deep_merge, parse_overrides
from rlrec.data.prepare import PrepareConfig
from rlrec.errors import ConfigError


def test_parse_overrides_nests_and_parses_yaml_values() -> None:
    tree = parse_overrides(["a.b=1", "a.c=[1, 2]", "d=null", "e=text", "a.f=0.5"])
    assert tree == {"a": {"b": 1, "c": [1, 2], "f": 0.5}, "d": None, "e": "text"}


def test_conflicting_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match="set both as a value and a section"):
        parse_overrides(["a=1", "a.b=2"])


def test_deep_merge_later_wins() -> None:
    assert deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": 4}) == {
        "a": {"b": 1, "c": 3},
        "d": 4,
    }


def test_file_then_cli_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("source: {kind: retailrocket, path: a.csv}\nseed: 3\nsplit: {kind: time}\n")
    cfg = build_config(
        PrepareConfig, path=path, cli={"source": {"path": "b.csv"}}, overrides=["seed=4"]
    )
    assert cfg.source.kind == "retailrocket" and str(cfg.source.path) == "b.csv"
    assert cfg.seed == 4 and cfg.split.kind == "time"
    resolved = yaml.safe_load(config_to_yaml(cfg.resolved()))
    assert resolved["filters"] == {"min_session_events": 3, "min_item_events": 3, "iterate": False}
    assert (
        build_config(PrepareConfig, path=path).resolved().model_dump()
        == PrepareConfig.model_validate(
            yaml.safe_load(config_to_yaml(build_config(PrepareConfig, path=path).resolved()))
        ).model_dump()
    )  # the dumped config loads back to the same object


def test_errors_name_the_key_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("source: {kind: movielens, path: x}\nsplit: {ratios: [0.5, 0.5, 0.5]}\n")
    with pytest.raises(
        ConfigError, match=r"p.yaml: invalid config: 'split.ratios': Value error, ratios must"
    ):
        build_config(PrepareConfig, path=path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        build_config(PrepareConfig, path=path)
    path.write_text("source: {kind: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        build_config(PrepareConfig, path=path)
    with pytest.raises(ConfigError, match=r"split\.file is required for kind 'file'"):
        build_config(
            PrepareConfig,
            cli={"source": {"kind": "movielens", "path": "x"}, "split": {"kind": "file"}},
        )
