"""Training costs that need not grow with the catalogue: the sampled softmax of the CE head
(``objective.ce_negatives``: the estimator, the candidates, every CE objective training with it)
and the double-Q target's maximum in column chunks (``objective.target_chunk``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_config

from rlrec.errors import ConfigError
from rlrec.models.network import QNetwork
from rlrec.objectives.ce_sampling import draw_candidates
from rlrec.objectives.functional import cross_entropy, sampled_cross_entropy
from rlrec.train.trainer import Trainer


def sce(s, weight, bias, action, items, log_expected):  # type: ignore[no-untyped-def]
    """:func:`sampled_cross_entropy` from the whole head."""
    rows = (weight[action], bias[action]), (weight[items], bias[items])
    return sampled_cross_entropy(s, *rows, action, items, log_expected)


def tiny_head(n: int = 6, h: int = 3, b: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, h, generator=g)
    weight = torch.randn(n, h, generator=g)
    bias = torch.randn(n, generator=g)
    action = torch.randint(0, n, (b,), generator=g)
    return s, weight, bias, action


def normaliser_draws(sampler: str, logq: bool, probs: torch.Tensor, draws: int, count: int):
    """``Ẑ_b = e^{CE_b + l⁺_b}`` (the sampled normaliser) of each of ``draws`` candidate draws,
    ``[draws, B]``, and the full softmax's ``Z_b``."""
    s, weight, bias, action = tiny_head()
    logits = s @ weight.T + bias
    gen = torch.Generator().manual_seed(1)
    out = []
    for _ in range(draws):
        c = draw_candidates(sampler, count, 6, action, probs, gen, logq, torch.device("cpu"))
        ce = sce(s, weight, bias, action, c.items, c.log_expected)
        out.append(torch.exp(ce + logits.gather(1, action[:, None]).squeeze(1)))
    return torch.stack(out), torch.exp(logits).sum(1)


PROBS = torch.tensor([0.4, 0.25, 0.15, 0.1, 0.06, 0.04], dtype=torch.float64)


@pytest.mark.parametrize("sampler", ["uniform", "popularity"])
def test_log_q_normaliser_is_the_full_softmax_in_expectation(sampler: str) -> None:
    z_hat, z = normaliser_draws(sampler, True, PROBS, draws=5_000, count=3)
    se = z_hat.std(0) / math.sqrt(z_hat.shape[0])
    assert torch.all((z_hat.mean(0) - z).abs() < 4 * se), (z_hat.mean(0), z, se)


def test_without_log_q_the_normaliser_is_biased() -> None:
    z_hat, z = normaliser_draws("popularity", False, PROBS, draws=5_000, count=3)
    se = z_hat.std(0) / math.sqrt(z_hat.shape[0])
    assert torch.any((z_hat.mean(0) - z).abs() > 10 * se)


def test_many_candidates_approach_the_full_cross_entropy() -> None:
    s, weight, bias, action = tiny_head(n=50)
    full = cross_entropy(s @ weight.T + bias, action)
    gen = torch.Generator().manual_seed(2)
    c = draw_candidates("uniform", 20_000, 50, action, None, gen, True, torch.device("cpu"))
    sampled = sce(s, weight, bias, action, c.items, c.log_expected)
    # importance sampling over 20,000 draws of 50 items: a few hundredths of Monte-Carlo error
    assert torch.allclose(sampled, full, atol=0.1)


def test_the_logged_action_is_never_its_own_negative() -> None:
    s, weight, bias, action = tiny_head()
    a = int(action[0])
    other = (a + 1) % 6
    log_expected = torch.tensor([0.3, -0.2])
    hit = sce(s[:1], weight, bias, action[:1], torch.tensor([a, other]), log_expected)
    alone = sce(s[:1], weight, bias, action[:1], torch.tensor([other]), log_expected[1:])
    assert torch.allclose(hit, alone)
    pos = (s[0] @ weight[a] + bias[a]).reshape(1)
    neg = s[0] @ weight[other] + bias[other] - log_expected[1]
    assert torch.allclose(alone, torch.logaddexp(pos, neg) - pos)


def test_candidates_of_each_sampler() -> None:
    gen = torch.Generator().manual_seed(0)
    actions = torch.tensor([5, 2, 2, 0, 1])
    cpu = torch.device("cpu")
    c = draw_candidates("in_batch", 3, 6, actions, PROBS, gen, True, cpu)
    assert c.items.tolist() == [5, 2, 2] and c.log_expected is not None
    assert torch.allclose(c.log_expected, torch.log(3 * PROBS[[5, 2, 2]]).float())
    c = draw_candidates("uniform", 4, 6, actions, None, gen, True, cpu)
    assert c.log_expected is not None and torch.allclose(
        c.log_expected, torch.full((4,), math.log(4 / 6))
    )
    draws = draw_candidates("popularity", 50_000, 6, actions, PROBS, gen, False, cpu)
    assert draws.log_expected is None
    freq = torch.bincount(draws.items, minlength=6).double() / 50_000
    assert torch.allclose(freq, PROBS, atol=0.01)
    with pytest.raises(ValueError, match="in_batch"):
        draw_candidates("in_batch", 6, 6, actions, PROBS, gen, True, cpu)


OBJECTIVES = {
    "supervised": {},
    "sqn": {},
    "sac": {"warmup_steps": 2},
    "snqn": {},
    "sa2c": {"pretrain_steps": 2, "ips_smooth": 0.5},
    "co": {"warmup_steps": 2},
    "ccql": {"warmup_steps": 2},
}


@pytest.mark.parametrize("sampler", ["uniform", "popularity", "in_batch"])
@pytest.mark.parametrize("objective", list(OBJECTIVES))
def test_every_ce_objective_trains_on_sampled_candidates(
    tiny_dataset: Path,
    tmp_path: Path,
    objective: str,
    sampler: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = {"full": 0}
    full = QNetwork.logits

    def counting(self: QNetwork, s: torch.Tensor) -> torch.Tensor:
        calls["full"] += 1
        return full(self, s)

    monkeypatch.setattr(QNetwork, "logits", counting)
    obj = {"kind": objective, **OBJECTIVES[objective], "ce_negatives": 16, "ce_sampler": sampler}
    cfg = tiny_train_config(
        tiny_dataset,
        tmp_path / "run",
        objective=obj,
        train={"max_steps": 4, "eval_every": 4, "log_every": 1, "tensorboard": False},
    )
    trainer = Trainer(cfg)
    before = calls["full"]
    for step in range(4):
        trainer.step = step
        logs = trainer._train_step(torch.arange(32 * step, 32 * (step + 1)))
        assert logs and all(math.isfinite(float(v)) for v in logs.values()), logs
    # the CE never scores the whole catalogue; only SA2C's off-policy weight π(a|s) needs it
    assert calls["full"] - before == (2 if objective == "sa2c" else 0)


def test_sampled_ce_config_errors(tiny_dataset: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no CE head"):
        tiny_train_config(
            tiny_dataset, tmp_path, objective={"kind": "dqn", "eval_head": "q", "ce_negatives": 8}
        )
    cfg = tiny_train_config(
        tiny_dataset,
        tmp_path,
        objective={"kind": "supervised", "ce_negatives": 64, "ce_sampler": "in_batch"},
    )
    with pytest.raises(ConfigError, match="in_batch candidates come from the batch"):
        Trainer(cfg)


def test_chunked_best_action_equals_one_pass() -> None:
    from rlrec.objectives.base import best_action

    class Heads(torch.nn.Module):
        def __init__(self, n: int, h: int) -> None:
            super().__init__()
            self.n_items, self.q_head = n, torch.nn.Linear(h, n)

        def q(self, s: torch.Tensor) -> torch.Tensor:
            return self.q_head(s)

    torch.manual_seed(0)
    net = Heads(103, 8)
    s = torch.randn(64, 8)
    full = best_action(net, s)  # type: ignore[arg-type]
    assert torch.equal(full, net.q(s).argmax(1))
    for chunk in (1, 10, 50, 102, 103, 500):
        assert torch.equal(best_action(net, s, chunk), full), chunk  # type: ignore[arg-type]
    with torch.no_grad():  # equal maxima in different chunks: the lowest index, as argmax
        net.q_head.weight.zero_()
        net.q_head.bias.zero_()
        net.q_head.bias[[7, 40, 90]] = 1.0
    assert torch.equal(best_action(net, s, 10), torch.full((64,), 7))  # type: ignore[arg-type]


def test_snqn_with_a_chunked_target_trains_the_same(tiny_dataset: Path, tmp_path: Path) -> None:
    losses = {}
    for chunk in (0, 7):
        cfg = tiny_train_config(
            tiny_dataset,
            tmp_path / f"run{chunk}",
            objective={"kind": "snqn", "target_chunk": chunk},
            train={"max_steps": 3, "eval_every": 3, "log_every": 1, "tensorboard": False},
        )
        trainer = Trainer(cfg)
        losses[chunk] = []
        for step in range(3):
            trainer.step = step
            logs = trainer._train_step(torch.arange(32 * step, 32 * (step + 1)))
            losses[chunk].append(float(logs["loss"]))
    assert losses[0] == pytest.approx(losses[7], rel=1e-5)


def _one_run(tiny_dataset: Path, out: Path, sparse: bool, steps: int):  # type: ignore[no-untyped-def]
    cfg = tiny_train_config(
        tiny_dataset,
        out,
        encoder={"kind": "gru", "hidden": 16},
        objective={"kind": "snqn", "ce_negatives": 8, "double_q_mode": "polyak"},  # one main net
        train={"max_steps": 4, "eval_every": 4, "tensorboard": False, "sparse_items": sparse},
    )
    torch.manual_seed(0)
    trainer = Trainer(cfg)
    for net in trainer.nets:  # the same start for both runs
        torch.manual_seed(1)
        for p in net.parameters():
            torch.nn.init.normal_(p, std=0.1)
    snapshots = [[p.detach().clone() for p in trainer.nets[0].parameters()]]
    batches = [torch.arange(0, 16), torch.arange(200, 216)]
    for step in range(steps):
        trainer.step = step
        trainer._train_step(batches[step])
        snapshots.append([p.detach().clone() for p in trainer.nets[0].parameters()])
    return trainer, snapshots


def test_sparse_items_lazy_adam(tiny_dataset: Path, tmp_path: Path) -> None:
    """The first update equals dense Adam's (on touched rows; untouched rows stay, as they do
    under dense Adam's first step); later, a row a step does not touch does not move (lazy)."""
    _, d_snaps = _one_run(tiny_dataset, tmp_path / "dense", False, 1)
    sparse, s_snaps = _one_run(tiny_dataset, tmp_path / "sparse", True, 2)
    net = sparse.nets[0]
    assert net.encoder.item_emb.sparse and net.sparse_q and net.sparse_ce
    names = [n for n, _ in net.named_parameters()]
    emb = names.index("encoder.item_emb.weight")
    for i in range(len(names)):  # step 1: the same update as dense Adam, row for row
        assert torch.allclose(s_snaps[1][i], d_snaps[1][i], atol=1e-7, rtol=0), names[i]
    moved = (s_snaps[1][emb] != s_snaps[0][emb]).any(1)
    assert 0 < int(moved.sum()) < moved.numel()  # some rows, not all
    # step 2 under the lazy Adam: rows it does not touch keep their values exactly
    touched2 = (s_snaps[2][emb] != s_snaps[1][emb]).any(1)
    assert touched2.any() and not touched2.all()
    data = sparse.train_data
    state2 = data.batch(torch.arange(200, 216)).state
    seen2 = torch.zeros_like(touched2)
    seen2[state2.flatten()] = True
    assert not (touched2 & ~seen2).any()  # nothing outside step 2's histories moved
    assert (moved & ~seen2).any()  # (among them rows step 1 moved, which dense Adam would move)


@pytest.mark.parametrize("moments", ["float32", "bfloat16"])
def test_sparse_items_resume_after_a_kill_ends_where_an_uninterrupted_run_ends(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moments: str
) -> None:
    """The lazy Adam's moments go into the checkpoint and come back on resume (bfloat16 ones with
    the same stochastic rounding: the noise is keyed by the step, not by a stored RNG state)."""
    import json

    from safetensors.torch import load_file

    from rlrec.config import deep_merge

    base = {
        "objective": {"kind": "snqn", "ce_negatives": 8, "ce_sampler": "popularity"},
        "train": {
            "max_steps": 8,
            "eval_every": 4,
            "tensorboard": False,
            "sparse_items": True,
            "sparse_moments": moments,
        },
    }
    Trainer(tiny_train_config(tiny_dataset, tmp_path / "full", **base)).fit()
    cfg = tiny_train_config(tiny_dataset, tmp_path / "killed", **base)
    original = Trainer._train_step

    def dies_at_step_6(self, pos):  # type: ignore[no-untyped-def]
        if self.step == 6:
            raise KeyboardInterrupt
        return original(self, pos)

    monkeypatch.setattr(Trainer, "_train_step", dies_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg).fit()
    monkeypatch.setattr(Trainer, "_train_step", original)
    Trainer(cfg, resume=True).fit()
    last = "checkpoints/step_000000008"
    a = load_file(str(tmp_path / "full" / last / "model.safetensors"))
    b = load_file(str(tmp_path / "killed" / last / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    optim = load_file(str(tmp_path / "killed" / last / "optim.safetensors"))
    sparse_state = [v for k, v in optim.items() if ".sparse/" in k and "exp_avg" in k]
    assert sparse_state  # the lazy Adam's state is saved, in its own dtype
    assert {v.dtype for v in sparse_state} == {getattr(torch, moments)}
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert math.isfinite(summary["test"]["ndcg_purchase@10"])
    bad = tiny_train_config(
        tiny_dataset, tmp_path / "bad", **deep_merge(base, {"train": {"grad_clip_value": 1.0}})
    )
    with pytest.raises(ConfigError, match="sparse_items"):
        Trainer(bad)
    no_sparse = deep_merge(base, {"train": {"sparse_items": False}})
    if moments != "float32":  # bfloat16 moments without the lazy Adam would change nothing
        with pytest.raises(ConfigError, match="sparse_moments applies"):
            Trainer(tiny_train_config(tiny_dataset, tmp_path / "dense", **no_sparse))


def test_lazy_adam_is_adam_on_rows_touched_every_step_and_lazy_elsewhere() -> None:
    from rlrec.train.lazy_adam import LazyAdam

    torch.manual_seed(0)
    w_dense = torch.nn.Parameter(torch.randn(10, 4))
    w_lazy = torch.nn.Parameter(w_dense.detach().clone())
    dense, lazy = torch.optim.Adam([w_dense], lr=0.01), LazyAdam([w_lazy], lr=0.01)
    always = torch.tensor([1, 4, 4, 7])  # duplicates sum, as in an embedding's backward
    for step in range(5):
        idx = always if step % 2 == 0 else torch.cat([always, torch.tensor([9])])
        g = torch.randn(len(idx), 4)
        for w, opt, sparse in ((w_dense, dense, False), (w_lazy, lazy, True)):
            opt.zero_grad()
            (torch.nn.functional.embedding(idx, w, sparse=sparse) * g).sum().backward()
            opt.step()
        if step == 0:
            untouched = w_lazy.detach().clone()
    rows = torch.tensor([1, 4, 7])
    assert torch.allclose(w_lazy[rows], w_dense[rows], atol=1e-6, rtol=0)  # Adam, exactly
    others = torch.tensor([0, 2, 3, 5, 6, 8])
    assert torch.equal(w_lazy[others], untouched[others])  # never touched: never moved
    # row 9, touched at steps 1 and 3: dense Adam keeps moving it by momentum, lazy Adam does not
    assert not torch.allclose(w_lazy[9], w_dense[9], atol=1e-6)


def test_target_over_the_candidate_pool(
    tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``target_max: candidates``: the selector's choice is the best of the CE candidates and the
    batch's logged actions, found without scoring the catalogue."""
    import rlrec.objectives.snqn as snqn
    from rlrec.objectives.base import candidate_pool

    seen = []
    original = snqn.q_terms

    def recording(cfg, inputs, *args):  # type: ignore[no-untyped-def]
        terms = original(cfg, inputs, *args)
        net, b = inputs.main, inputs.batch
        with torch.no_grad():  # the selector's view (eval mode), before the optimiser step
            net.eval()
            q = net.q(net(b.next_state, b.len_next_state))
            net.train()
        seen.append((inputs, terms, q))
        return terms

    monkeypatch.setattr(snqn, "q_terms", recording)
    monkeypatch.setattr(
        "rlrec.objectives.base.best_action",
        lambda *a: pytest.fail("the catalogue was scored"),
    )
    obj = {"kind": "snqn", "ce_negatives": 8, "target_max": "candidates"}
    trainer = Trainer(tiny_train_config(tiny_dataset, tmp_path / "run", objective=obj))
    trainer.step = 0
    trainer._train_step(torch.arange(32))
    inputs, terms, q = seen[0]
    pool = candidate_pool(inputs.ce_candidates.items, inputs.batch.action)
    assert len(pool) < inputs.main.n_items
    assert torch.equal(terms.best_next, pool[q[:, pool].argmax(dim=1)])
    with pytest.raises(ConfigError, match="needs ce_negatives"):
        tiny_train_config(
            tiny_dataset, tmp_path, objective={"kind": "snqn", "target_max": "candidates"}
        )


def test_stochastic_rounding_to_bfloat16_is_unbiased_and_seeded() -> None:
    from rlrec.train.lazy_adam import round_to_bfloat16

    x = torch.tensor([1.0 + 2**-9, -3.0 - 3 * 2**-9, 0.999, 1e-30, float("inf")])  # between bf16s
    lo = x.to(torch.bfloat16, copy=True)  # round to nearest, one neighbour
    draws = torch.stack(
        [round_to_bfloat16(x, torch.Generator().manual_seed(s)).float() for s in range(4000)]
    )
    assert draws.shape == (4000, *x.shape) and draws.dtype == torch.float32
    for j in range(4):
        values = draws[:, j].unique()
        assert len(values) == 2  # only the two neighbouring bfloat16 values
        assert lo[j].float() in values
    # the mean of the draws is x within 4 standard errors of the two-point distribution
    finite = draws[:, :4].double()
    gap = finite.max(0).values - finite.min(0).values
    se = gap / 2 / math.sqrt(len(draws))
    assert ((finite.mean(0) - x[:4].double()).abs() < 4 * se).all()
    assert torch.isinf(draws[:, 4]).all()
    gen = torch.Generator().manual_seed(1)
    again = round_to_bfloat16(x, torch.Generator().manual_seed(1))
    assert torch.equal(round_to_bfloat16(x, gen), again)  # seeded


def test_lazy_adam_with_bfloat16_moments_tracks_float32() -> None:
    """bfloat16 moments: the same update within bfloat16's resolution, moments stored in bfloat16,
    and ``v`` still decays by β₂ (round-to-nearest would freeze it)."""
    from rlrec.train.lazy_adam import LazyAdam

    torch.manual_seed(0)
    w32 = torch.nn.Parameter(torch.randn(50, 8))
    w16 = torch.nn.Parameter(w32.detach().clone())
    w0 = w32.detach().clone()
    opt32 = LazyAdam([w32], lr=0.01)
    opt16 = LazyAdam([w16], lr=0.01, moment_dtype=torch.bfloat16, seed=3)
    idx = torch.arange(0, 50, 2)
    for step in range(300):
        g = torch.randn(len(idx), 8) * (10.0 if step == 0 else 0.01)  # a spike, then small
        for w, opt in ((w32, opt32), (w16, opt16)):
            opt.zero_grad()
            (torch.nn.functional.embedding(idx, w, sparse=True) * g).sum().backward()
            opt.step()
    state16 = opt16.state[w16]
    assert state16["exp_avg"].dtype == torch.bfloat16
    v32, v16 = opt32.state[w32]["exp_avg_sq"][idx], state16["exp_avg_sq"][idx].float()
    # after the spike v decays by 0.999 per step (300 steps: to 74 % of its peak); each rounding
    # adds up to 0.2 % noise, a random walk of a few % per entry, but no bias on average
    assert torch.allclose(v16, v32, rtol=0.15)
    assert abs((v16 / v32).mean().item() - 1) < 0.01
    moved32, moved16 = w32.detach() - w0, w16.detach() - w0
    assert (moved16 - moved32).abs().mean() < 0.05 * moved32.abs().mean()
    assert torch.equal(w16[1::2], w32[1::2])  # untouched rows: untouched
    # reloading keeps bfloat16 moments (torch casts optimiser state to the parameter's dtype)
    fresh = LazyAdam([w16], lr=0.01, moment_dtype=torch.bfloat16, seed=3)
    fresh.load_state_dict(opt16.state_dict())
    assert fresh.state[w16]["exp_avg_sq"].dtype == torch.bfloat16
