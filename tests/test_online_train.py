"""The online training loop, evaluation and CLI (spec-online §D.0, §D.9, §E.3) on tiny simulators."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml
from online_helpers import feature_urm, run_config, tiny_lists
from safetensors.torch import load_file
from sim_helpers import single_thread

from rlrec.errors import ConfigError
from rlrec.online.buffer import ReplayBuffer
from rlrec.online.evaluate import episode_metrics, evaluate_policy
from rlrec.online.trainer import OnlineTrainer
from rlrec.sim.build import evaluation_starts, make_simulator, rollout_fixed_users
from rlrec.sim.dataset import ListDataset
from rlrec.sim.env import EnvConfig
from rlrec.train.trainer import TrainingDiverged


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny list dataset and a URM under which users like items with a large first feature."""
    root = tmp_path_factory.mktemp("online")
    data = tiny_lists(root)
    return data, feature_urm(data, root / "urm")


FAST = {"actor_lr": 1e-3}
LEARN = {  # agent settings and iterations for a visible improvement in a few hundred steps
    "hac": ({"actor_lr": 1e-3, "behavior_lr": 1e-3}, 200),
    "ddpg": ({**FAST, "explore": {"noise_std": 0.5}}, 400),
    "td3": ({**FAST, "explore": {"noise_std": 0.5}}, 400),
    "a2c": (FAST, 200),
    "pgra": ({**FAST, "inverse_lr": 1e-3, "explore": {"noise_std": 0.5}}, 400),
    "online_sl": ({"behavior_lr": 1e-3}, 200),
    "offline_sl": (FAST, 200),
}


@pytest.mark.parametrize("kind", list(LEARN))
def test_every_agent_runs_and_improves_over_its_start(
    kind: str, world: tuple[Path, Path], tmp_path: Path
) -> None:
    data, urm = world
    settings, iterations = LEARN[kind]
    cfg = run_config(
        data,
        tmp_path / kind,
        urm,
        agent={"kind": kind, **settings},
        train={"iterations": iterations, "eval_every": iterations // 2},
    )
    trainer = OnlineTrainer(cfg)
    assert trainer.worlds.eval is not None
    start = evaluate_policy(trainer.agent, trainer.worlds.eval, cfg.eval)["total_reward_mean"]
    summary = trainer.fit()
    assert summary["iterations"] == iterations
    assert summary["eval"]["best"]["total_reward_mean"] > start + 1.0, (start, summary["eval"])
    records = [json.loads(line) for line in (tmp_path / kind / "metrics.jsonl").open()]
    assert sum(r["kind"] == "val" for r in records) == 2
    assert any("train_total_reward" in r for r in records if r["kind"] == "train")
    assert (tmp_path / kind / "best" / "model.safetensors").is_file()


def test_urm_top_k_beats_a_random_policy(world: tuple[Path, Path]) -> None:
    """The simulator rewards what its URM predicts (planted URM of the synthetic data)."""
    data, _ = world
    sim = make_simulator(data, num_envs=16, cfg=EnvConfig(auto_reset=False))
    starts = evaluation_starts(len(sim.pool), 64, seed=0)
    gen = torch.Generator().manual_seed(0)

    def urm_top_k(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = sim.z @ sim.item_emb[1:].T  # the URM's score of every item for every user
        return torch.topk(logits, sim.slate_size, dim=1).indices + 1

    def random_slate(obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.rand(sim.num_envs, sim.n_items, generator=gen).argsort(1)[:, :4] + 1

    best = rollout_fixed_users(sim, urm_top_k, starts, seed=3)
    rand = rollout_fixed_users(sim, random_slate, starts, seed=3)
    assert float(best["total_reward"].mean()) > float(rand["total_reward"].mean()) + 1.0
    assert float(best["depth"].double().mean()) > float(rand["depth"].double().mean())


def test_episode_metrics_hand_computed() -> None:
    m = episode_metrics(torch.tensor([2.0, 4.0, 9.0]), torch.tensor([2, 4, 10]), cost=0.2)
    assert m["total_reward_mean"] == pytest.approx(5.0)
    assert m["total_reward_var"] == pytest.approx((9 + 1 + 16) / 3)  # ddof 0, across sessions
    assert m["total_reward_se"] == pytest.approx((26 / 2) ** 0.5 / 3**0.5)
    assert m["depth_mean"] == pytest.approx(16 / 3)
    assert m["reward_per_step"] == pytest.approx(15 / 16)
    assert m["positive_rate"] == pytest.approx((15 / 16 + 0.2) / 1.2)


def records(run: Path) -> list[dict]:
    """A run's logged records without the wall-clock rate."""
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(ln).items() if k != "iterations_per_s"} for ln in lines]


@pytest.mark.parametrize("kind", ["hac", "offline_sl"])
def test_resume_ends_where_an_uninterrupted_run_ends(
    kind: str, world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, urm = world
    agent = {"kind": kind, "policy": {"dropout": 0.1}}
    full = run_config(data, tmp_path / "full", urm, agent=dict(agent), seed=3)
    OnlineTrainer(full).fit()

    cut = run_config(data, tmp_path / "cut", urm, agent=dict(agent), seed=3)
    original = OnlineTrainer._iteration

    def killed(self, obs):  # type: ignore[no-untyped-def]
        if self.step == 27:  # after the checkpoint at iteration 20
            raise KeyboardInterrupt
        return original(self, obs)

    monkeypatch.setattr(OnlineTrainer, "_iteration", killed)
    with pytest.raises(KeyboardInterrupt):
        OnlineTrainer(cut).fit()
    monkeypatch.setattr(OnlineTrainer, "_iteration", original)
    OnlineTrainer(cut, resume=True).fit()

    a = load_file(str(tmp_path / "full" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "cut" / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = json.loads((tmp_path / "full" / "summary.json").read_text())
    sb = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert sa["eval"] == sb["eval"] and sa["best_step"] == sb["best_step"]

    assert records(tmp_path / "full") == records(tmp_path / "cut")


def test_more_iterations_continue_a_finished_run_exactly(
    world: tuple[Path, Path], tmp_path: Path
) -> None:
    """20 iterations, then ``--resume`` with ``train.iterations`` 40, equals 40 at once (the first
    end is a validation step anyway); the grown budget is recorded, a smaller one refused."""
    data, urm = world
    OnlineTrainer(run_config(data, tmp_path / "full", urm, seed=3)).fit()
    OnlineTrainer(run_config(data, tmp_path / "ext", urm, seed=3, train={"iterations": 20})).fit()
    OnlineTrainer(run_config(data, tmp_path / "ext", urm, seed=3), resume=True).fit()

    a = load_file(str(tmp_path / "full" / "last" / "model.safetensors"))
    b = load_file(str(tmp_path / "ext" / "last" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    sa = json.loads((tmp_path / "full" / "summary.json").read_text())
    sb = json.loads((tmp_path / "ext" / "summary.json").read_text())
    assert sa["eval"] == sb["eval"] and sa["best_step"] == sb["best_step"]
    assert sb["iterations"] == 40

    assert records(tmp_path / "full") == records(tmp_path / "ext")
    meta = json.loads((tmp_path / "ext" / "run.json").read_text())
    assert meta["budget_history"] == [
        {
            "resumed_at_step": 20,
            "old": {"train.iterations": 20},
            "new": {"train.iterations": 40},
            "old_total": 20,
            "new_total": 40,
        }
    ]
    shorter = run_config(data, tmp_path / "ext", urm, seed=3, train={"iterations": 30})
    with pytest.raises(ConfigError, match="fewer than the 40"):
        OnlineTrainer(shorter, resume=True)


def test_offline_sl_reads_only_train_records(world: tuple[Path, Path], tmp_path: Path) -> None:
    data, urm = world
    cfg = run_config(data, tmp_path / "off", urm, agent={"kind": "offline_sl"})
    trainer = OnlineTrainer(cfg)
    ds = ListDataset.load(data)
    assert trainer.logged is not None and trainer.buffer is None
    train, test = ds.tensors("train", 8), ds.tensors("test", 8)
    assert len(trainer.logged) == len(train)
    assert int(trainer.logged.timestamp.max()) <= int(test.timestamp.min())
    batch = trainer._logged_batch(0)
    assert int(batch.timestamp.max()) <= int(test.timestamp.min())


def test_on_policy_a2c_never_samples_a_buffer(
    world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, urm = world

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("sampled from a replay buffer")

    monkeypatch.setattr(ReplayBuffer, "sample", forbidden)
    cfg = run_config(data, tmp_path / "a2c", urm, agent={"kind": "a2c"}, train={"iterations": 20})
    trainer = OnlineTrainer(cfg)
    assert trainer.buffer is None
    assert trainer.fit()["iterations"] == 20


def test_log_window_without_finished_sessions(world: tuple[Path, Path], tmp_path: Path) -> None:
    """A log window in which no session ends logs no ``episodes`` record (and does not fail)."""
    data, urm = world
    cfg = run_config(
        data, tmp_path / "r", urm, train={"iterations": 4, "log_every": 1, "eval_every": 4}
    )
    trainer = OnlineTrainer(cfg)
    trainer._episodes = []
    trainer._log_train({"critic_loss": 0.0})
    kinds = [
        json.loads(ln)["kind"] for ln in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    ]
    assert kinds == ["train"]


def test_a2c_rollouts_update_every_m_steps_on_all_their_transitions(
    world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, urm = world
    from rlrec.online.agents.a2c import A2C

    seen: list[tuple[int, ...]] = []
    original = A2C.update

    def spy(self, batch, step, gen):  # type: ignore[no-untyped-def]
        seen.append(tuple(batch.reward.shape))
        return original(self, batch, step, gen)

    monkeypatch.setattr(A2C, "update", spy)
    agent = {"kind": "a2c", "rollout_length": 4}
    cfg = run_config(data, tmp_path / "a2c", urm, agent=agent, train={"iterations": 20})
    assert OnlineTrainer(cfg).fit()["iterations"] == 20
    assert seen == [(4, cfg.train.num_envs)] * 5
    with pytest.raises(ConfigError, match="multiple of the agent's rollout_length"):
        run_config(data, tmp_path / "x", urm, agent={**agent, "rollout_length": 3})
    with pytest.raises(ConfigError, match="needs mode: on_policy"):
        run_config(data, tmp_path / "y", urm, agent={**agent, "mode": "replay"})


def test_divergence_stops_with_a_clear_error(
    world: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, urm = world
    cfg = run_config(data, tmp_path / "nan", urm, agent={"kind": "ddpg"})
    trainer = OnlineTrainer(cfg)
    original = trainer.agent.update

    def poisoned(batch, step, gen):  # type: ignore[no-untyped-def]
        logs = original(batch, step, gen)
        if step == 25:
            logs["critic_loss"] = torch.tensor(float("nan"))
        return logs

    monkeypatch.setattr(trainer.agent, "update", poisoned)
    with pytest.raises(TrainingDiverged, match=r"critic_loss became non-finite at iteration 25"):
        trainer.fit()
    assert (tmp_path / "nan" / "checkpoints" / "step_000000020").is_dir()


# ----------------------------------------------------------------------------------- CLI


def write_config(path: Path, data: Path, urm: Path, out: Path) -> Path:
    """A run config file with only the keys a user would write (agent settings common to all)."""
    full = run_config(data, out, urm).model_dump(mode="json")
    agent = {k: full["agent"][k] for k in ("kind", "policy", "critic")}
    keep = {k: full[k] for k in ("data", "urm", "out", "device", "train", "eval")}
    path.write_text(yaml.safe_dump({**keep, "agent": agent}))
    return path


def test_cli_train_and_evaluate(cli, world: tuple[Path, Path], tmp_path: Path) -> None:
    data, urm = world
    config = write_config(tmp_path / "run.yaml", data, urm, tmp_path / "run")
    r = cli("sim", "train", "--config", config, "--agent", "td3", "--set", "train.iterations=20")
    assert r.code == 0, r.err
    assert (
        f"wrote {tmp_path / 'run'}: 20 iterations" in r.out and "eval (best): total reward" in r.out
    )
    # not a terminal: plain progress lines, the last with the validation value
    assert "td3 iteration 20/20 (100%)" in r.err and "val total_reward_mean" in r.err
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["agent"]["kind"] == "td3"

    out = tmp_path / "eval" / "m.json"
    r = cli("sim", "evaluate", tmp_path / "run", "--episodes", "16", "--out", out)
    assert r.code == 0, r.err
    result = json.loads(out.read_text())
    assert result["users"] == 16 and result["metrics"]["episodes"] == 16
    assert (tmp_path / "eval" / "train_curves.png").stat().st_size > 1000
    again = cli("sim", "evaluate", tmp_path / "run", "--episodes", "16", "--no-plots")
    assert again.code == 0 and f"{result['metrics']['total_reward_mean']:.3f}" in again.out

    # without matplotlib: the metrics, a note instead of the curves; asked for explicitly, an error
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
        bare = cli("sim", "evaluate", tmp_path / "run", "--episodes", "16")
        assert bare.code == 0, bare.err
        assert "curves skipped: matplotlib is not installed" in bare.out
        assert f"{result['metrics']['total_reward_mean']:.3f}" in bare.out
        forced = cli("sim", "evaluate", tmp_path / "run", "--episodes", "16", "--plots")
        assert forced.code == 2 and "--plots needs matplotlib" in forced.err

    # the reference's training-time report from the logged training sessions
    report = tmp_path / "eval" / "online.json"
    r = cli("sim", "online-report", tmp_path / "run", "--window", "3", "--out", report)
    assert r.code == 0, r.err
    assert "mean of 1 run(s), window 3: total reward" in r.out
    lines = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = sum(len(x["slot"]) for x in lines if x["kind"] == "episodes")
    assert logged == sum(x.get("train_episodes", 0) for x in lines if x["kind"] == "train") > 0
    assert json.loads(report.read_text())["window"] == 3
    r = cli("sim", "online-report", tmp_path / "nothing")
    assert r.code == 2 and "not an rlrec sim run directory" in r.err

    # an existing run is neither overwritten nor lost without --resume/--overwrite
    before = (tmp_path / "run" / "summary.json").read_text()
    r = cli("sim", "train", "--config", config, "--agent", "td3", "--set", "train.iterations=20")
    assert r.code == 2 and "already exists; pass --resume" in r.err
    assert (tmp_path / "run" / "summary.json").read_text() == before
    r = cli("sim", "train", "--config", config, "--set", "train.iterations=20", "--resume")
    assert r.code == 2 and "different config" in r.err


def test_cli_bad_inputs_are_one_line_and_create_nothing(
    cli, world: tuple[Path, Path], tmp_path: Path
) -> None:
    data, urm = world
    config = write_config(tmp_path / "run.yaml", data, urm, tmp_path / "run")
    other = tiny_lists(tmp_path / "other", n_items=41)  # another item catalogue
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("agent: [kind: hac\n")
    cases = [
        (["--config", config, "--agent", "nope"], "Input tag 'nope' found using 'kind'"),
        (["--config", config, "--set", f"data={other}"], "different item catalogue"),
        (["--config", bad_yaml], "bad.yaml: not valid YAML"),
        (["--config", config, "--set", "agent.hyper_coef=-1"], "'agent.hac.hyper_coef'"),
        (["--config", config, "--set", "agent.nosuch=1"], "unknown config key 'agent.hac.nosuch'"),
        (["--config", config, "--resume", "--overwrite"], "at most one of --resume"),
        (["--config", config, "--resume"], "nothing to resume"),
        (["--config", config, "--set", "eval.users=100000"], "eval.users (100000) exceeds"),
    ]
    for args, message in cases:
        r = cli("sim", "train", *args)
        assert r.code == 2, (args, r.err)
        assert message in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)
        assert not (tmp_path / "run").exists(), args
    r = cli("sim", "evaluate", tmp_path / "nowhere")
    assert r.code == 2 and "not an rlrec sim run directory" in r.err


def test_env_settings_the_run_fixes_are_refused_not_ignored(tmp_path: Path) -> None:
    from rlrec.config import build_config
    from rlrec.online.config import OnlineTrainConfig

    base = {"data": str(tmp_path / "d"), "out": str(tmp_path / "o"), "device": "cpu"}
    with pytest.raises(
        ConfigError, match=r"env\.device 'cuda' differs from the run's device 'cpu'"
    ):
        build_config(OnlineTrainConfig, cli={**base, "env": {"device": "cuda"}})
    with pytest.raises(ConfigError, match=r"env\.auto_reset must be true"):
        build_config(OnlineTrainConfig, cli={**base, "env": {"auto_reset": False}})
    for device in ("auto", "cpu"):
        build_config(OnlineTrainConfig, cli={**base, "env": {"device": device}})
