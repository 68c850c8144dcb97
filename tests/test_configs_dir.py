"""Every shipped config file validates against its model."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlrec.config import build_config
from rlrec.data.prepare import PrepareConfig
from rlrec.data.synthetic import SynthConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_data_config_is_valid(path: Path) -> None:
    if path.name == "synthetic.yaml":
        assert build_config(SynthConfig, path=path) == SynthConfig()  # documents the defaults
    else:
        cfg = build_config(PrepareConfig, path=path, cli={"source": {"path": "raw"}})
        assert cfg.split.ratios == (0.8, 0.1, 0.1)
