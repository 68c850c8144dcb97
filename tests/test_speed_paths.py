"""The training loop's fast paths change no result, and its throughput is the training rate alone."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_config
from safetensors.torch import load_file

from rlrec import device as device_mod
from rlrec.device import available_cpus, set_threads
from rlrec.models.network import QNetwork
from rlrec.train.clock import window_means
from rlrec.train.trainer import Trainer

SASREC = {"kind": "sasrec", "hidden": 16, "dropout": 0.2}


def _weights(run: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"step_{step:09d}" / "model.safetensors"))


def _train(data: Path, out: Path, **train: object) -> Trainer:
    trainer = Trainer(
        tiny_train_config(
            data,
            out,
            encoder=SASREC,
            objective={"kind": "ccql", "warmup_steps": 6},
            train={"max_steps": 12, "eval_every": 12, **train},
        )
    )
    trainer.fit()
    return trainer


def test_log_interval_changes_no_weight(tiny_dataset: Path, tmp_path: Path) -> None:
    """Logged values are kept as tensors and averaged at the window's end: logging every step or
    every 5 gives the same weights, bit for bit, and the same window averages."""
    _train(tiny_dataset, tmp_path / "every", log_every=1)
    _train(tiny_dataset, tmp_path / "five", log_every=5)
    a, b = _weights(tmp_path / "every", 12), _weights(tmp_path / "five", 12)
    assert all(torch.equal(a[k], b[k]) for k in a)
    records = [
        json.loads(x) for x in (tmp_path / "every" / "metrics.jsonl").read_text().split("\n") if x
    ]
    per_step = [r for r in records if r["kind"] == "train"]
    five = [
        json.loads(x) for x in (tmp_path / "five" / "metrics.jsonl").read_text().split("\n") if x
    ]
    first = next(r for r in five if r["kind"] == "train")
    assert first["step"] == 5
    assert first["loss"] == pytest.approx(sum(r["loss"] for r in per_step[:5]) / 5, rel=1e-12)


def test_foreach_adam_is_the_per_parameter_loop_bit_for_bit() -> None:
    """The trainer's Adam (``foreach``) against torch's per-parameter loop on a real network."""
    from rlrec.models.encoders import build_encoder
    from rlrec.models.encoders.base import EncoderConfig

    torch.manual_seed(0)
    nets = [
        QNetwork(build_encoder(EncoderConfig(kind="sasrec", hidden=16, dropout=0.0), 30, 5), 30)
    ]
    nets.append(
        QNetwork(build_encoder(EncoderConfig(kind="sasrec", hidden=16, dropout=0.0), 30, 5), 30)
    )
    nets[1].load_state_dict(nets[0].state_dict())
    opts = [
        torch.optim.Adam(nets[0].parameters(), lr=0.01, foreach=False),
        torch.optim.Adam(nets[1].parameters(), lr=0.01, foreach=True),
    ]
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        state = torch.randint(0, 30, (8, 5), generator=gen)
        lengths = torch.randint(1, 6, (8,), generator=gen)
        for net, opt in zip(nets, opts, strict=True):
            opt.zero_grad()
            net.logits(net(state, lengths)).logsumexp(1).mean().backward()
            opt.step()
    for p, q in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        assert torch.equal(p, q)


def test_fused_adam_is_the_same_update_to_rounding(tiny_dataset: Path, tmp_path: Path) -> None:
    _train(tiny_dataset, tmp_path / "default")
    _train(tiny_dataset, tmp_path / "fused", fused_adam=True)
    a, b = _weights(tmp_path / "default", 12), _weights(tmp_path / "fused", 12)
    assert any(not torch.equal(a[k], b[k]) for k in a)  # a different kernel ran
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4), k


def test_throughput_leaves_out_validation_time(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A validation that takes 0.4 s more is reported apart; the training rate does not see it."""
    slow = Trainer.evaluate_split

    def evaluate_slowly(self: Trainer, split: str) -> dict[str, float]:
        if split == "val":
            time.sleep(0.4)
        return slow(self, split)

    monkeypatch.setattr(Trainer, "evaluate_split", evaluate_slowly)
    run = tmp_path / "run"
    Trainer(
        tiny_train_config(
            tiny_dataset, run, train={"max_steps": 20, "eval_every": 5, "log_every": 10}
        )
    ).fit()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["validation_seconds_this_session"] >= 4 * 0.4
    train_s = summary["train_seconds_this_session"]
    assert summary["transitions_per_s"] == pytest.approx(20 * 32 / train_s)
    wall = train_s + summary["validation_seconds_this_session"]
    assert summary["seconds_per_epoch"] >= wall / 20 * summary["steps_per_epoch"] * 0.99
    records = [json.loads(x) for x in (run / "metrics.jsonl").read_text().split("\n") if x]
    for record in (r for r in records if r["kind"] == "train"):  # each window: 10 steps, 2 evals
        assert 10 * 32 / record["transitions_per_s"] < train_s  # its own training time only


def test_window_means_over_the_steps_that_logged_each_value() -> None:
    steps = [
        {"loss": torch.tensor(1.0), "ce": torch.tensor(2.0)},
        {"loss": torch.tensor(3.0)},
    ]
    assert window_means(steps) == {"loss": 2.0, "ce": 2.0}


def test_threads_follow_affinity_and_cgroup_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    assert device_mod._cgroup_cpu_quota(v2) == 2
    (v2 / "cpu.max").write_text("max 100000\n")
    assert device_mod._cgroup_cpu_quota(v2) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert device_mod._cgroup_cpu_quota(v1) == 3
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert device_mod._cgroup_cpu_quota(v1) is None

    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(device_mod.os, "sched_getaffinity", lambda pid: {0, 1, 2})
        monkeypatch.setattr(device_mod, "_cgroup_cpu_quota", lambda root=None: None)
        assert available_cpus() == 3
        monkeypatch.setattr(device_mod, "_cgroup_cpu_quota", lambda root=None: 1)
        assert available_cpus() == 1
        torch.set_num_threads(2)
        assert set_threads(None) == 1 and torch.get_num_threads() == 1  # capped
        assert set_threads(2) == 2 and torch.get_num_threads() == 2  # asked for: honoured
    finally:
        torch.set_num_threads(before)


RL_OBJECTIVES = {
    "sqn": {"kind": "sqn"},
    "dqn": {"kind": "dqn"},
    "snqn": {"kind": "snqn"},
    "sac": {"kind": "sac", "warmup_steps": 0},
    "sa2c": {"kind": "sa2c", "pretrain_steps": 0},
    "co": {"kind": "co", "warmup_steps": 0},
    "ccql_sampled": {"kind": "ccql", "warmup_steps": 0, "negative_td": True},
    "ccql_full": {"kind": "ccql", "warmup_steps": 0, "cql_variant": "full"},
    "ccql_legacy": {"kind": "ccql", "warmup_steps": 0, "cql_variant": "legacy"},
}


@pytest.mark.parametrize("name", list(RL_OBJECTIVES))
def test_q_at_the_used_items_equals_the_full_head(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The TD and conservative terms read Q at a few items (``QNetwork.q_at``); loss and gradients
    equal those of the full catalogue head followed by a gather, to float rounding."""
    from rlrec.objectives import LossInputs
    from rlrec.objectives.functional import sample_negatives
    from rlrec.seeding import generator

    cfg = tiny_train_config(
        tiny_dataset, tmp_path / "run", encoder=SASREC, objective=RL_OBJECTIVES[name]
    )
    trainer = Trainer(cfg)
    obj, data = cfg.objective, trainer.train_data
    batch = data.batch(torch.arange(64))
    negatives = None
    if obj.n_negatives:
        gen = generator(0, "test")
        negatives = sample_negatives(batch.action, trainer.n_items, obj.n_negatives, gen)
    main, target = trainer.nets[0], trainer.nets[-1] if len(trainer.nets) > 1 else trainer.target
    with torch.no_grad():  # non-zero biases (they start at zero), so each one counts
        for net in (main, target):
            if net.q_head is not None:
                net.q_head.bias.normal_(0.0, 0.5)

    def loss_and_grads(stats: bool) -> tuple[dict[str, torch.Tensor], list[torch.Tensor]]:
        torch.manual_seed(3)  # the same dropout masks for both computations
        main.zero_grad()
        out = obj.compute_loss(
            LossInputs(
                main,
                target,
                batch,
                negatives,
                0,
                trainer.beta,
                generator(0, "aug"),
                catalogue_stats=stats,
            )
        )
        out.loss.backward()
        grads = [
            p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in main.parameters()
        ]
        return {"loss": out.loss.detach(), **out.logs}, grads

    fast, fast_grads = loss_and_grads(stats=False)
    assert "q_mean" not in fast  # catalogue statistics only when asked for
    from rlrec.models.network import QNetwork

    monkeypatch.setattr(QNetwork, "q_at", lambda self, s, items: self.q(s).gather(1, items))
    full, full_grads = loss_and_grads(stats=True)
    assert {"q_mean", "q_max", "q_abs_max"} <= full.keys()
    for key, value in fast.items():
        assert value.item() == pytest.approx(full[key].item(), rel=1e-5, abs=1e-6), key
    for a, b in zip(fast_grads, full_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    trainer.claim.fail()
    trainer.claim.close()
