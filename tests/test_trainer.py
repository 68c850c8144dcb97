"""The training loop: every encoder × objective learns, resume is exact, divergence is caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_config
from safetensors.torch import load_file

from rlrec.data.dataset import PreparedDataset
from rlrec.data.transitions import Transitions
from rlrec.objectives import LossInputs
from rlrec.objectives.functional import sample_negatives
from rlrec.objectives.sqn import SQNConfig
from rlrec.train.trainer import Trainer, TrainingDiverged, build_network

ENCODERS = ["gru", "caser", "nextitnet", "sasrec"]
OBJECTIVES = {
    "supervised": {},
    "sqn": {},
    "sac": {"warmup_steps": 20},
    "snqn": {},
    "sa2c": {"pretrain_steps": 0},
    "dqn": {},
    "co": {"warmup_steps": 20},
    "ccql": {"warmup_steps": 20},
}
ACTOR_CRITIC = ("sac", "sa2c", "co", "ccql")  # their CE weight moves with the critic


@pytest.mark.parametrize("objective", list(OBJECTIVES))
@pytest.mark.parametrize("encoder", ENCODERS)
def test_every_encoder_and_objective_decreases_its_loss(
    tiny_dataset: Path, tmp_path: Path, encoder: str, objective: str
) -> None:
    """Fit one fixed batch for 30 steps: the loss must go down.

    The actor-critic phases weight the CE per sample by a quantity that moves with the critic
    (SAC: raw Q; SA2C: the clipped advantage), so their total is not a fixed objective; for them the
    actor's cross-entropy on the batch must go down instead. SA2C runs its actor phase from the
    start (its pre-training is SNQN, tested as such); SAC, CO and CCQL keep their warm-up of 20
    steps, as the methods prescribe — weighting CE by a fresh critic's raw Q, which can be negative, is gradient
    ascent on CE (the weakness that motivates SA2C's advantage).
    """
    cfg = tiny_train_config(
        tiny_dataset,
        tmp_path,
        encoder={"kind": encoder, "hidden": 16},
        objective={"kind": objective, **OBJECTIVES[objective]},
    )
    ds = PreparedDataset.load(tiny_dataset)
    data = Transitions(ds.split("train"), ds.state_size, ds.pad_id)
    torch.manual_seed(0)
    obj = cfg.objective
    nets = [build_network(cfg, ds.n_items, ds.state_size) for _ in range(2 if obj.double_q else 1)]
    optimizers = [torch.optim.Adam(n.parameters(), lr=0.005) for n in nets]
    batch = data.batch(torch.arange(64))
    gen = torch.Generator().manual_seed(0)
    negatives = (
        sample_negatives(batch.action, ds.n_items, obj.n_negatives, gen)
        if obj.n_negatives
        else None
    )
    losses = []  # of network 0 (the pair alternates roles; each net has its own series)
    for step in range(40):
        i = step % len(nets)
        main, target = nets[i], (nets[1 - i] if len(nets) == 2 else None)
        rng = torch.Generator().manual_seed(step)  # the augmentations' draws
        out = obj.compute_loss(LossInputs(main, target, batch, negatives, step, rng=rng))
        optimizers[i].zero_grad()
        out.loss.backward()
        optimizers[i].step()
        if i == 0:
            tracked = out.logs["ce"] if objective in ACTOR_CRITIC else out.loss
            losses.append(tracked.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-4:]) < sum(losses[:4]), losses


def test_fit_writes_run_and_evaluates_test(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = tiny_train_config(
        tiny_dataset, tmp_path / "run", objective={"kind": "sa2c", "pretrain_steps": 20}
    )
    summary = Trainer(cfg).fit()
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "run.json",
        "items.parquet",
        "metrics.jsonl",
        "train.csv",
        "val.csv",
        "test.csv",
        "summary.json",
    ):
        assert (run / name).is_file(), name
    assert (run / "best" / "model.safetensors").is_file()
    assert not (run / "best" / "optim.safetensors").exists()  # serving needs weights only
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*")) == [
        "step_000000030",
        "step_000000040",
    ]
    assert summary["steps"] == 40 and summary["best_step"] in (10, 20, 30, 40)
    assert 0.0 <= summary["test"]["hr_purchase@10"] <= 1.0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "val"] == [10, 20, 30, 40]
    train_logs = [r for r in records if r["kind"] == "train"]
    assert {
        "loss",
        "ce",
        "td_pos",
        "td_neg",
        "q_pos",
        "q_neg",
        "grad_norm",
        "transitions_per_s",
    } <= set(train_logs[-1])
    # the phase switch created a fresh optimiser with the phase-2 learning rate
    state = json.loads((run / "checkpoints" / "step_000000040" / "state.json").read_text())
    assert {"net0.phase0", "net0.phase1", "net1.phase0", "net1.phase1"} == set(state["optimizers"])
    assert state["optimizers"]["net0.phase1"][0]["lr"] == 0.001


def test_resume_after_a_kill_ends_where_an_uninterrupted_run_ends(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    full = tiny_train_config(
        tiny_dataset, tmp_path / "full", encoder={"kind": "sasrec", "hidden": 16}
    )
    Trainer(full).fit()

    cfg = tiny_train_config(
        tiny_dataset, tmp_path / "killed", encoder={"kind": "sasrec", "hidden": 16}
    )
    original = Trainer._train_step

    def dies_at_step_25(self, pos):
        if self.step == 25:
            raise KeyboardInterrupt
        return original(self, pos)

    monkeypatch.setattr(Trainer, "_train_step", dies_at_step_25)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg).fit()
    monkeypatch.setattr(Trainer, "_train_step", original)
    assert (
        json.loads((tmp_path / "killed" / "checkpoints" / "latest.json").read_text())["step"] == 20
    )
    Trainer(cfg, resume=True).fit()

    a = load_file(str(tmp_path / "full" / "checkpoints" / "step_000000040" / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / "checkpoints" / "step_000000040" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    summary_a = json.loads((tmp_path / "full" / "summary.json").read_text())
    summary_b = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary_a["test"] == summary_b["test"]
    vals = [
        json.loads(x)["step"]
        for x in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
        if '"val"' in x
    ]
    assert vals == [10, 20, 30, 40]  # the replayed steps were not logged twice


def test_divergence_stops_with_the_last_good_checkpoint(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_train_config(tiny_dataset, tmp_path / "run", objective={"kind": "sqn"})
    original = SQNConfig.compute_loss

    def nan_at_15(self, inputs):
        out = original(self, inputs)
        if inputs.step == 15:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(SQNConfig, "compute_loss", nan_at_15)
    with pytest.raises(
        TrainingDiverged,
        match=r"loss became nan at step 15 \(sqn\); the last good checkpoint is .*step_000000010",
    ):
        Trainer(cfg).fit()
    assert (tmp_path / "run" / "checkpoints" / "step_000000010" / "model.safetensors").is_file()


def test_same_seed_same_weights_other_seed_other_weights(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    runs = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        Trainer(
            tiny_train_config(
                tiny_dataset, tmp_path / name, seed=seed, train={"max_steps": 10, "eval_every": 10}
            )
        ).fit()
        runs[name] = load_file(
            str(tmp_path / name / "checkpoints" / "step_000000010" / "model.safetensors")
        )
    assert all(torch.equal(runs["a"][k], runs["b"][k]) for k in runs["a"])
    assert not all(torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])


def test_polyak_target_mode(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = tiny_train_config(
        tiny_dataset, tmp_path / "run", objective={"kind": "snqn", "double_q_mode": "polyak"}
    )
    Trainer(cfg).fit()
    tensors = load_file(
        str(tmp_path / "run" / "checkpoints" / "step_000000040" / "model.safetensors")
    )
    assert any(k.startswith("target.") for k in tensors) and not any(
        k.startswith("net1.") for k in tensors
    )


def test_polyak_update_values_by_hand(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After every optimiser step: target = (1 − τ)·target_before + τ·main_after."""
    tau = 0.3
    cfg = tiny_train_config(
        tiny_dataset,
        tmp_path / "run",
        objective={"kind": "snqn", "double_q_mode": "polyak", "polyak_tau": tau},
        train={"max_steps": 3, "eval_every": 3},
    )
    original = Trainer._train_step
    checked: list[int] = []

    def spy(self: Trainer, global_pos: torch.Tensor) -> dict[str, torch.Tensor]:
        assert self.target is not None and len(self.nets) == 1
        target_before = [p.detach().clone() for p in self.target.parameters()]
        main_before = [p.detach().clone() for p in self.nets[0].parameters()]
        logs = original(self, global_pos)
        main_after = [p.detach() for p in self.nets[0].parameters()]
        assert any(not torch.equal(a, b) for a, b in zip(main_after, main_before, strict=True))
        for t_after, t_before, m_after in zip(
            self.target.parameters(), target_before, main_after, strict=True
        ):
            expected = (1 - tau) * t_before + tau * m_after
            torch.testing.assert_close(t_after.detach(), expected, rtol=1e-5, atol=1e-7)
        checked.append(self.step)
        return logs

    monkeypatch.setattr(Trainer, "_train_step", spy)
    Trainer(cfg).fit()
    assert checked == [0, 1, 2]


def test_early_stopping_keeps_the_best_checkpoint(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tiny_train_config(
        tiny_dataset,
        tmp_path / "run",
        train={"max_steps": 60, "eval_every": 10, "patience": 2, "tensorboard": False},
    )
    original = Trainer.evaluate_split
    scores = iter([0.5, 0.7, 0.6, 0.4, 0.9, 0.9])

    def scripted(self, split):
        metrics = original(self, split)
        if split == "val":
            metrics["ndcg_purchase@10"] = next(scores)
        return metrics

    monkeypatch.setattr(Trainer, "evaluate_split", scripted)
    summary = Trainer(cfg).fit()
    assert summary["steps"] == 40  # 0.7 at step 20, then two evaluations without improvement
    assert summary["best_step"] == 20 and summary["best_val"] == 0.7
    assert json.loads((tmp_path / "run" / "best" / "state.json").read_text())["step"] == 20


def test_top_k_checkpoints_are_kept_and_evaluated_on_test(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = Trainer.evaluate_split
    scores = iter([0.5, 0.7, 0.6, 0.4, 0.65, 0.2])

    def scripted(self, split):
        metrics = original(self, split)
        if split == "val":
            metrics["ndcg_purchase@10"] = next(scores)
            metrics["hr_click@5"] = 1.0 if self.step == 40 else 0.0
        return metrics

    monkeypatch.setattr(Trainer, "evaluate_split", scripted)
    cfg = tiny_train_config(tiny_dataset, tmp_path / "run", train={"max_steps": 60, "keep_top": 3})
    summary = Trainer(cfg).fit()
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "top").iterdir()) == [
        "step_000000020",
        "step_000000030",
        "step_000000050",
    ]
    top = summary["top"]
    assert [t["step"] for t in top] == [20, 50, 30]  # best validation score first
    assert [t["val"]["ndcg_purchase@10"] for t in top] == [0.7, 0.65, 0.6]
    assert top[0]["test"] == summary["test"] and summary["best_step"] == 20
    assert top[0]["test"] != top[1]["test"]  # each kept checkpoint is evaluated on its own

    # keep_top_by: each_metric also keeps the checkpoints that lead any other ranking metric
    scores = iter([0.5, 0.7, 0.6, 0.4, 0.65, 0.2])
    cfg = tiny_train_config(
        tiny_dataset,
        tmp_path / "each",
        train={"max_steps": 60, "keep_top": 1, "keep_top_by": "each_metric"},
    )
    summary = Trainer(cfg).fit()
    kept = {t["step"] for t in summary["top"]}
    assert {20, 40} <= kept  # 20 leads ndcg_purchase@10, 40 leads hr_click@5


def test_stability_flags_are_logged_and_can_stop_the_run(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    cfg = tiny_train_config(
        tiny_dataset,
        tmp_path / "run",
        objective={"kind": "sqn"},
        train={"stability": {"q_bound_factor": 1e-6, "stop_on_flag": True}},
    )
    summary = Trainer(cfg).fit()
    flags = summary["stability"]["flags"]
    assert summary["stability"]["flagged"] and [f["kind"] for f in flags] == ["q_out_of_range"]
    assert flags[0]["step"] == 5  # the first log window (log_every 5) already exceeds 2e-6
    assert flags[0]["threshold"] == pytest.approx(1e-6 * 1.0 / (1 - 0.5))  # factor·max|r|/(1−γ)
    assert summary["steps"] == 5  # stopped at the flag
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    stab = [r for r in records if r["kind"] == "stability"]
    assert len(stab) == 1 and stab[0]["flag"] == "q_out_of_range"
    train = [r for r in records if r["kind"] == "train"][-1]
    assert {"q_pos", "q_mean", "q_max", "q_abs_max", "td_pos", "grad_norm", "ce"} <= set(train)


def test_degenerate_scores_are_flagged_in_the_log_and_summary(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    """A network whose every score ties (all weights zero, learning rate zero) is flagged."""
    cfg = tiny_train_config(
        tiny_dataset,
        tmp_path / "run",
        objective={"kind": "supervised", "lr": 1e-300},
        train={"batch_size": 32, "max_steps": 10, "eval_every": 5, "log_every": 5},
    )
    trainer = Trainer(cfg)
    with torch.no_grad():
        for p in trainer.nets[0].parameters():
            p.zero_()
    summary = trainer.fit()
    assert summary["test"]["tied_target_share"] == 1.0
    flagged = summary["degenerate_scores"]
    assert flagged["flagged"] and {e["split"] for e in flagged["evaluations"]} == {"val", "test"}
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    warnings = [r for r in records if r["kind"] == "warning"]
    assert warnings and "degenerate scores" in warnings[0]["message"]


def test_ng_off_popularity_follows_the_eval_options(tiny_dataset: Path, tmp_path: Path) -> None:
    """NG_off's β has SA2C's options (scope, smoothing); the default is the train split, +1."""
    import numpy as np

    from rlrec.data.popularity import item_popularity

    ds = PreparedDataset.load(tiny_dataset)
    default = Trainer(tiny_train_config(tiny_dataset, tmp_path / "a"))
    np.testing.assert_array_equal(default._eval_beta, item_popularity(ds, "train", 1.0))
    cfg = tiny_train_config(
        tiny_dataset, tmp_path / "b", eval={"ng_off_pop_scope": "all", "ng_off_pop_smoothing": 5.0}
    )
    custom = Trainer(cfg)
    np.testing.assert_array_equal(custom._eval_beta, item_popularity(ds, "all", 5.0))
    assert not np.array_equal(custom._eval_beta, default._eval_beta)
    default.claim.close()
    custom.claim.close()
