"""The user-response model (spec-online §B.1–B.2): architecture, loss, metrics, training, storage."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from sim_helpers import TINY_SYNTH, single_thread
from torch import nn

from rlrec.errors import DataFormatError
from rlrec.sim import functional as Fn
from rlrec.sim.build import make_simulator
from rlrec.sim.loaders.synthetic import SyntheticListSource
from rlrec.sim.metrics import expected_calibration_error, log_loss, macro_auc, roc_auc
from rlrec.sim.prepare import ListPrepareConfig, prepare_lists
from rlrec.sim.urm import URM, URMConfig
from rlrec.sim.urm_store import load_urm
from rlrec.sim.urm_train import URMTrainConfig, URMTrainer


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("urm") / "data"
    prepare_lists(ListPrepareConfig(source=SyntheticListSource(**TINY_SYNTH)), out)
    return out


def reference_forward(m: URM, u, xh, mask, xa) -> torch.Tensor:
    """The URM written with torch's nn.MultiheadAttention (the reference's building block)."""
    f, h = m.cfg.dim, m.cfg.n_heads
    sa = nn.MultiheadAttention(f, h, batch_first=True)
    ca = nn.MultiheadAttention(f, h, batch_first=True)
    for mha, mine in ((sa, m.self_attn), (ca, m.cross_attn)):
        mha.in_proj_weight.data.copy_(mine.in_proj.weight)
        mha.in_proj_bias.data.copy_(mine.in_proj.bias)
        mha.out_proj.weight.data.copy_(mine.out_proj.weight)
        mha.out_proj.bias.data.copy_(mine.out_proj.bias)
    e = m.user_encoder(u)
    hist = m.item_embed(xh)
    pad = None if mask is None else ~mask
    o, _ = sa(hist, hist, hist, key_padding_mask=pad, need_weights=False)
    z, _ = ca(e[:, None], o, o, key_padding_mask=pad, need_weights=False)
    z = z[:, 0]
    if m.fuse is not None:
        z = m.fuse(torch.cat([z, e], -1))
    return (m.item_embed(xa) * z[:, None]).sum(-1)


class TestArchitecture:
    @pytest.mark.parametrize("fuse", ["concat_linear", "none"])
    def test_equals_multihead_attention_reference(self, fuse: str) -> None:
        torch.manual_seed(0)
        m = URM(URMConfig(dim=8, n_heads=2, hidden_dims=[6], fuse_user=fuse, max_history=4), 3, 5)
        m.eval()
        u, xh, xa = torch.randn(4, 3), torch.randn(4, 4, 5), torch.randn(4, 6, 5)
        mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1], [0, 1, 0, 1]]).bool()
        with torch.no_grad():
            torch.testing.assert_close(m(u, xh, mask, xa), reference_forward(m, u, xh, mask, xa))

    def test_reference_mode_without_mask(self) -> None:
        torch.manual_seed(1)
        cfg = URMConfig(dim=8, n_heads=2, hidden_dims=[6], key_padding_mask=False, max_history=4)
        m = URM(cfg, 3, 5).eval()
        u, xh, xa = torch.randn(2, 3), torch.randn(2, 4, 5), torch.randn(2, 3, 5)
        mask = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]]).bool()
        with torch.no_grad():
            expected = reference_forward(m, u, xh, None, xa)  # padding enters as E(x)
            torch.testing.assert_close(m(u, xh, mask, xa), expected)

    def test_padding_is_invisible_and_empty_history_is_finite(self) -> None:
        torch.manual_seed(2)
        m = URM(URMConfig(dim=8, n_heads=2, hidden_dims=[6], max_history=4), 3, 5).eval()
        u, xa = torch.randn(1, 3), torch.randn(1, 3, 5)
        xh = torch.randn(1, 4, 5)
        mask = torch.tensor([[0, 0, 1, 1]]).bool()
        other = xh.clone()
        other[0, :2] = torch.randn(2, 5)  # different content in the padded slots
        with torch.no_grad():
            torch.testing.assert_close(m(u, xh, mask, xa), m(u, other, mask, xa))
            empty = m(u, xh, torch.zeros(1, 4, dtype=torch.bool), xa)
            assert torch.isfinite(empty).all()
            # empty history: cross-attention output 0, so z = fuse([0; e])
            e = m.user_encoder(u)
            assert m.fuse is not None
            z = m.fuse(torch.cat([torch.zeros_like(e), e], -1))
            torch.testing.assert_close(empty, (m.item_embed(xa) * z[:, None]).sum(-1))

    @pytest.mark.parametrize(("fuse", "masked"), [("concat_linear", True), ("none", False)])
    def test_pooled_interest_is_interest_from_pooled_folded(self, fuse: str, masked: bool) -> None:
        """The simulator's one-product map equals the URM's layers, empty histories included."""
        torch.manual_seed(3)
        cfg = URMConfig(dim=8, n_heads=2, hidden_dims=[6], fuse_user=fuse, key_padding_mask=masked)
        m = URM(cfg, 3, 5).eval()
        e, pooled = torch.randn(5, 8), torch.randn(5, 2, 8)
        mask = torch.tensor([[1, 1], [0, 1], [0, 0], [1, 0], [0, 0]]).bool()
        with torch.no_grad():
            want = m.interest_from_pooled(e, pooled, mask)
            got = m.pooled_interest()(pooled, e, mask)
        assert want.abs().max() > 0.1
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)

    def test_query_map_is_cross_query(self) -> None:
        torch.manual_seed(4)
        m = URM(URMConfig(dim=8, n_heads=2, hidden_dims=[6]), 3, 5).eval()
        e = torch.randn(5, 8)
        weight, bias = m.query_map()
        with torch.no_grad():
            want = m.cross_query(e)
        assert weight.shape == (8, 16) and want.abs().max() > 0.1
        torch.testing.assert_close((e @ weight + bias).view(5, 2, 8), want, rtol=1e-5, atol=1e-6)


class TestLoss:
    def test_bce_hand_computed(self) -> None:
        logits = torch.tensor([[0.0, math.log(3.0)]])
        labels = torch.tensor([[1.0, 0.0]])
        # -log σ(0) = log 2; -log(1 - σ(log 3)) = -log(1/4) = log 4
        expected = (math.log(2) + math.log(4)) / 2
        assert float(Fn.urm_bce(logits, labels, False)) == pytest.approx(expected, rel=1e-6)

    def test_legacy_double_sigmoid_hand_computed(self) -> None:
        logits = torch.tensor([[0.0, math.log(3.0)]])
        labels = torch.tensor([[1.0, 0.0]])
        # reference: logits-BCE on σ(s) = (0.5, 0.75)
        a = -math.log(1 / (1 + math.exp(-0.5)))
        b = -math.log(1 - 1 / (1 + math.exp(-0.75)))
        assert float(Fn.urm_bce(logits, labels, True)) == pytest.approx((a + b) / 2, rel=1e-6)

    def test_regulariser_is_sum_of_means_of_squares(self) -> None:
        tensors = [torch.tensor([1.0, 3.0]), torch.tensor([[2.0]])]
        assert float(Fn.mean_square_sum(tensors)) == pytest.approx((1 + 9) / 2 + 4)
        m = URM(URMConfig(dim=4, n_heads=1, hidden_dims=[]), 2, 2)
        names = {id(p) for p in m.regularised()}
        assert m.fuse is not None and all(id(p) not in names for p in m.fuse.parameters())
        assert len(m.regularised()) == 2 + 2 + 4 + 4  # encoder, embedding, both attentions


class TestMetrics:
    def test_auc_with_ties(self) -> None:
        scores = torch.tensor([0.1, 0.4, 0.35, 0.8, 0.4])
        labels = torch.tensor([0, 0, 1, 1, 1])
        # positive/negative pairs: (0.35>0.1 ✓, 0.35<0.4 ✗), (0.8 ✓✓), (0.4>0.1 ✓, 0.4=0.4 ½)
        assert roc_auc(scores, labels) == pytest.approx(4.5 / 6)
        assert math.isnan(roc_auc(scores, torch.ones(5)))

    def test_macro_auc_log_loss_ece(self) -> None:
        s = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
        y = torch.tensor([[0, 1], [1, 0], [0, 1]])
        assert macro_auc(s, y) == pytest.approx(1.0)
        p = torch.tensor([0.5, 0.5])
        assert log_loss(p, torch.tensor([1, 0])) == pytest.approx(math.log(2))
        # bins: 0.15 and 0.25 in bins 1 and 2 with labels 0 → |0.15| and |0.25| weighted 1/2 each
        assert expected_calibration_error(torch.tensor([0.15, 0.25]), torch.tensor([0, 0])) == (
            pytest.approx(0.2)
        )


class TestTraining:
    @staticmethod
    def small(data: Path, out: Path, **extra: Any) -> URMTrainConfig:
        """Three epochs of a small URM on the synthetic lists."""
        urm = URMConfig(dim=8, n_heads=2, hidden_dims=[16], max_history=10)
        return URMTrainConfig(data=data, out=out, urm=urm, epochs=3, lr=3e-3, device="cpu", **extra)

    def test_fit_reports_and_saves_without_pickle(self, synth_data: Path, tmp_path: Path) -> None:
        cfg = self.small(synth_data, tmp_path / "urm")
        seen: list[int] = []
        summary = URMTrainer(cfg, on_epoch=lambda e, n, m: seen.append(e)).fit()
        assert seen == [1, 2, 3]
        hist = summary["history"]
        aucs = [h["val_auc"] for h in hist]
        assert summary["selected_epoch"] == 1 + max(range(3), key=lambda i: (aucs[i], -i))
        for key in ("val_log_loss", "val_ece", "val_mean_prob", "val_positive_rate"):
            assert all(math.isfinite(h[key]) for h in hist)
        assert max(aucs) > 0.6  # the planted URM is learnable
        files = sorted(p.name for p in (tmp_path / "urm").iterdir())
        assert files == [
            ".rlrec-output.json",
            "config.yaml",
            "metrics.jsonl",
            "model.safetensors",
            "urm.json",
        ]
        meta = json.loads((tmp_path / "urm" / "urm.json").read_text())
        assert meta["format"] == "rlrec.urm" and meta["selected_epoch"] == summary["selected_epoch"]
        loaded = load_urm(tmp_path / "urm")
        assert not loaded.model.training
        assert loaded.item_features.shape == (61, 32)
        # the saved weights are the selected epoch's: same validation AUC when recomputed
        from rlrec.sim.dataset import ListDataset
        from rlrec.sim.urm_train import predict_logits

        ds = ListDataset.load(synth_data)
        val = ds.tensors("test", 10)
        logits = predict_logits(loaded.model, val, loaded.item_features, ds.user_features(), 64)
        assert roc_auc(logits, val.labels) == pytest.approx(summary["selected"]["val_auc"])

    def test_keep_best_log_loss(self, synth_data: Path, tmp_path: Path) -> None:
        cfg = self.small(synth_data, tmp_path / "urm", keep="best_log_loss")
        summary = URMTrainer(cfg).fit()
        losses = [h["val_log_loss"] for h in summary["history"]]
        assert summary["selected_epoch"] == 1 + min(range(3), key=lambda i: (losses[i], i))

    def test_catalogue_mismatch_is_refused(self, synth_data: Path, tmp_path: Path) -> None:
        other = tmp_path / "other"
        prepare_lists(
            ListPrepareConfig(source=SyntheticListSource(**{**TINY_SYNTH, "n_items": 70})), other
        )
        with pytest.raises(DataFormatError, match="different item catalogue") as info:
            make_simulator(synth_data, other / "planted_urm", num_envs=2)
        assert "70 items" in str(info.value) and "60 items" in str(info.value)
        same_size = tmp_path / "reseeded"
        prepare_lists(
            ListPrepareConfig(source=SyntheticListSource(**TINY_SYNTH), seed=5), same_size
        )
        with pytest.raises(DataFormatError, match="different item catalogue"):
            make_simulator(synth_data, same_size / "planted_urm", num_envs=2)

    def test_corrupted_urm_files(self, synth_data: Path, tmp_path: Path) -> None:
        with pytest.raises(DataFormatError, match="URM directory not found"):
            load_urm(tmp_path / "nope")
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / "urm.json").write_text("{}")
        with pytest.raises(DataFormatError, match=r"model\.safetensors missing"):
            load_urm(tmp_path / "bad")


def test_item_id_embedding_option(synth_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(3)
    m = URM(URMConfig(dim=8, n_heads=2, hidden_dims=[], item_ids=True, max_history=3), 2, 4, 6)
    assert (
        m.item_id_embed is not None and float(m.item_id_embed.weight[0].detach().abs().sum()) == 0
    )
    assert any(p is m.item_id_embed.weight for p in m.regularised())
    x = torch.randn(7, 4)
    x[0] = 0
    ids_h, ids_a = torch.tensor([[0, 2, 5]]), torch.tensor([[1, 6]])
    mask = ids_h > 0
    with torch.no_grad():
        with_ids = m(torch.randn(1, 2), x[ids_h], mask, x[ids_a], ids_h, ids_a)
        emb, _ = m.item_tables(x)
        torch.testing.assert_close(emb[6], m.item_embed(x[6]) + m.item_id_embed.weight[6])
    assert with_ids.shape == (1, 2)
    with pytest.raises(ValueError, match="embeds item ids"):
        m(torch.randn(1, 2), x[ids_h], mask, x[ids_a])
    cfg = URMTrainConfig(
        data=synth_data,
        out=tmp_path / "urm_ids",
        urm=URMConfig(dim=8, n_heads=2, hidden_dims=[8], item_ids=True, max_history=10),
        epochs=1,
        device="cpu",
    )
    URMTrainer(cfg).fit()
    sim = make_simulator(synth_data, tmp_path / "urm_ids", num_envs=3)
    obs = sim.reset(seed=0)
    slate = torch.tensor([[1, 2, 3, 4, 5]] * 3)
    x = sim.item_features
    expected = torch.sigmoid(
        sim.urm(
            obs["user_features"],
            x[obs["history"]],
            obs["history_mask"],
            x[slate],
            obs["history"],
            slate,
        )
    )
    torch.testing.assert_close(sim.probabilities(slate), expected, rtol=1e-5, atol=1e-6)


def test_check_urm_report(synth_data: Path) -> None:
    from rlrec.sim.urm_train import check_urm

    report = check_urm(synth_data / "planted_urm", synth_data)
    # the planted URM generated these labels: well calibrated and informative
    assert report["auc"] > 0.7 and report["ece"] < 0.1
    assert abs(report["sampled_positives_per_list"] - report["logged_positives_per_list"]) < 0.5


def test_item_bias_user_ids_and_engagement_by_hand() -> None:
    """``s_j = ⟨E(x_j), z⟩ + b_j + b₀ + w·(logit r_u − logit p̄)``, ``e = g(u) + U_u``."""
    torch.manual_seed(5)
    cfg = URMConfig(dim=4, n_heads=1, hidden_dims=[], max_history=3)
    plain = URM(cfg, 2, 3, n_items=6, n_users=4)
    full_cfg = cfg.model_copy(update={"item_bias": True, "user_ids": True, "engagement": True})
    full = URM(full_cfg, 2, 3, n_items=6, n_users=4)
    full.load_state_dict(plain.state_dict(), strict=False)
    u, x = torch.randn(2, 2), torch.randn(7, 3)
    ids_h, ids_a, users = (
        torch.tensor([[0, 2, 5], [1, 1, 3]]),
        torch.tensor([[1, 6], [4, 2]]),
        torch.tensor([0, 3]),
    )
    mask = ids_h > 0
    seen, positives = torch.tensor([0.0, 30.0]), torch.tensor([0.0, 27.0])
    with torch.no_grad():
        # zero-initialised additions: the paper's function
        args = (u, x[ids_h], mask, x[ids_a])
        torch.testing.assert_close(full(*args, ids_h, ids_a, users, seen, positives), plain(*args))
        full.item_offset.weight.copy_(torch.arange(7.0)[:, None] / 10)
        full.global_offset.fill_(-0.3)
        full.engagement_weight.fill_(0.5)
        full.prior_rate.fill_(0.6)
        got = full(*args, ids_h, ids_a, users, seen, positives)
        rate = torch.tensor([0.6, (27 + 6) / (30 + 10)])  # (positives + 10 p̄) / (seen + 10)
        lift = 0.5 * (torch.logit(rate) - torch.logit(torch.tensor(0.6)))
        want = plain(*args) + ids_a / 10 - 0.3 + lift[:, None]
        torch.testing.assert_close(got, want)
        assert float(lift[0]) == 0.0  # no earlier lists: the prior's rate, no lift
        full.user_id_embed.weight[3] = 1.0  # user 3's embedding moves only user 3's scores
        moved = full(*args, ids_h, ids_a, users, seen, positives)
        torch.testing.assert_close(moved[0], got[0])
        assert not torch.allclose(moved[1], got[1])
    with pytest.raises(ValueError, match="response counts"):
        full(*args, ids_h, ids_a, users)


def test_patience_stops_after_the_best_epoch(synth_data: Path, tmp_path: Path) -> None:
    cfg = URMTrainConfig(
        data=synth_data,
        out=tmp_path / "urm",
        urm=URMConfig(dim=8, n_heads=2, hidden_dims=[8], item_ids=True, max_history=10),
        epochs=12,
        lr=0.05,
        patience=2,
        keep="best_log_loss",
        baselines=False,
        device="cpu",
    )
    summary = URMTrainer(cfg).fit()
    best, ran = summary["selected_epoch"], summary["epochs_run"]
    assert ran == min(12, best + 2) and len(summary["history"]) == ran
    assert ran < 12  # a learning rate this high overfits the tiny data early
    losses = [h["val_log_loss"] for h in summary["history"]]
    assert losses[best - 1] == min(losses)


def test_baselines_are_reported_beside_the_urm(synth_data: Path, tmp_path: Path) -> None:
    cfg = URMTrainConfig(
        data=synth_data,
        out=tmp_path / "urm",
        urm=URMConfig(dim=8, n_heads=2, hidden_dims=[8], max_history=10),
        epochs=1,
        device="cpu",
    )
    URMTrainer(cfg).fit()
    meta = json.loads((tmp_path / "urm" / "urm.json").read_text())
    assert set(meta["baselines"]) == {"global_rate", "item_rate", "user_item_bias", "logistic_mf"}
    for report in meta["baselines"].values():
        assert {"auc", "auc_per_position", "log_loss", "ece"} <= set(report)
    assert meta["baselines"]["global_rate"]["auc"] == 0.5


def test_holdout_users_are_left_out_of_the_fit(synth_data: Path, tmp_path: Path) -> None:
    from rlrec.sim.urm_train import held_out_users

    cfg = URMTrainConfig(
        data=synth_data,
        out=tmp_path / "urm",
        role="eval",
        holdout_users=0.25,
        urm=URMConfig(dim=8, n_heads=2, hidden_dims=[8], max_history=10),
        epochs=1,
        baselines=False,
        device="cpu",
    )
    trainer = URMTrainer(cfg)
    held = held_out_users(trainer.dataset.n_users, 0.25, 0)
    assert int(held.sum()) == round(0.25 * trainer.dataset.n_users)
    assert not held[trainer.train_data.user].any()  # never fitted on
    assert len(trainer.val_data) > 0 and held[trainer.val_data.user].all()  # validated on them only
    everyone = trainer.dataset.tensors("all", 10)
    assert len(trainer.train_data) == int((~held[everyone.user]).sum())
    summary = trainer.fit()
    assert summary["holdout_users"] == 0.25 and math.isfinite(summary["selected"]["val_auc"])
