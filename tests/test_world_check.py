"""The world check: random, most-popular and oracle slates on the same users (synthetic world)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sim_helpers import TINY_SYNTH, single_thread

from rlrec.online.policy import greedy_slate
from rlrec.online.world_check import world_check
from rlrec.sim.build import evaluation_starts, make_simulator
from rlrec.sim.env import EnvConfig
from rlrec.sim.loaders.synthetic import SyntheticListSource
from rlrec.sim.prepare import ListPrepareConfig, prepare_lists


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("world") / "data"
    prepare_lists(ListPrepareConfig(source=SyntheticListSource(**TINY_SYNTH)), out)
    return out


def test_oracle_beats_random_and_popular_by_the_planted_margin(synth: Path) -> None:
    with single_thread():
        result = world_check(synth, None, users=40, start_split="all", seed=0)
        # the planted model's own gap on the first request: mean top-K probability vs the mean
        sim = make_simulator(synth, num_envs=40, cfg=EnvConfig(auto_reset=False, start_split="all"))
        starts = evaluation_starts(len(sim.pool), 40, 0)
        sim.reset(seed=0, starts=starts)
        probs = sim.catalogue_probabilities()
        top = probs.gather(1, greedy_slate(probs, 5) - 1).mean()  # ids 1..N → columns
        gap = float(top - probs.mean())
    m = result["policies"]
    assert gap > 0.05  # the planted world has preferences to find
    for other in ("random", "popular"):
        assert m["oracle"]["total_reward_mean"] > m[other]["total_reward_mean"]
        # at least half the planted first-step gap in the positive rate over whole sessions
        assert m["oracle"]["positive_rate"] - m["random"]["positive_rate"] > gap / 2
    assert result["oracle_margin_in_se"] > 3


def test_catalogue_probabilities_equal_slate_probabilities(synth: Path) -> None:
    sim = make_simulator(synth, num_envs=3)
    sim.reset(seed=1)
    every = sim.catalogue_probabilities(chunk=7)
    slate = torch.tensor([[1, 9, 60, 2, 33]] * 3)
    torch.testing.assert_close(every.gather(1, slate - 1), sim.probabilities(slate))


def test_cli_world_check_writes_json(cli, synth: Path, tmp_path: Path) -> None:
    out = tmp_path / "world.json"
    args = ["sim", "world-check", "--data", synth, "-n", "20", "--split"]
    result = cli(*args, "all", "--out", out)
    assert result.code == 0, result.err
    assert "oracle" in result.out and "popular" in result.out
    saved = json.loads(out.read_text())
    assert set(saved["policies"]) == {"random", "popular", "oracle"}
    bad = cli(*args, "nope")
    assert bad.code == 2 and "--split must be train, test or all" in bad.err
