"""The agents' updates on tiny hand-made batches (spec-online §D.9): targets, step order, which
parameters each step changes, skipped steps, the parity flags."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from sim_helpers import single_thread
from torch import nn

from rlrec.online import functional as Fn
from rlrec.online.agents import A2C, CONFIG_OF, DDPG, HAC, PGRA, TD3, Agent
from rlrec.online.buffer import Batch
from rlrec.online.config import OnlineTrainConfig
from rlrec.online.policy import scores
from rlrec.sim.dataset import ListTensors


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with single_thread():
        yield


N, K, DI, DU, H, U = 12, 3, 4, 3, 6, 5
POLICY = {"dim": 8, "n_heads": 2, "ff_dim": 16, "user_hidden": [8], "max_history": H}
NO_DROPOUT = {"dropout": 0.0, "user_dropout": 0.0}


def make(kind: str, **cfg: Any) -> Any:
    """A tiny agent (no dropout, so updates can be recomputed by hand)."""
    torch.manual_seed(0)
    items = torch.cat([torch.zeros(1, DI), torch.randn(N, DI)])
    users = torch.randn(U, DU)
    spec: dict[str, Any] = {"policy": {**POLICY, **NO_DROPOUT}, **cfg}
    if kind not in ("online_sl", "offline_sl"):
        spec.setdefault("critic", {"hidden": [16, 8], "dropout": 0.0})
    return CONFIG_OF[kind].model_validate(spec).create(items, users, K)


def batch(n: int = 6, seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)
    history = torch.randint(1, N + 1, (n, H), generator=g)
    history[0, :4] = 0
    next_history = torch.cat([history[:, 1:], torch.randint(1, N + 1, (n, 1), generator=g)], 1)
    slate = torch.stack([torch.randperm(N, generator=g)[:K] + 1 for _ in range(n)])
    return Batch(
        user=torch.randint(0, U, (n,), generator=g),
        history=history,
        next_history=next_history,
        state=torch.randn(n, 8, generator=g),
        hyper=torch.randn(n, 8, generator=g),
        slate=slate,
        response=(torch.rand(n, K, generator=g) < 0.5).float(),
        reward=torch.rand(n, generator=g),
        terminated=torch.arange(n) % 2 == 1,
        truncated=torch.zeros(n, dtype=torch.bool),
    )


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def changed(module: nn.Module, before: dict[str, torch.Tensor], prefix: str = "") -> bool:
    return any(
        not torch.equal(v, before[k]) for k, v in module.named_parameters() if k.startswith(prefix)
    )


def capture_critic_steps(agent: Any) -> list[dict[str, torch.Tensor]]:
    """Record the (state, action, target) of every critic step of ``agent``."""
    calls: list[dict[str, torch.Tensor]] = []
    original = agent.critic_step

    def spy(opt, critic, state, action, target):  # type: ignore[no-untyped-def]
        calls.append({"state": state.clone(), "action": action.clone(), "target": target.clone()})
        return original(opt, critic, state, action, target)

    agent.critic_step = spy
    return calls


class TestTargets:
    @pytest.mark.parametrize("legacy", [False, True])
    def test_terminal_mask_both_settings(self, legacy: bool) -> None:
        agent = make("ddpg", legacy_done_mask=legacy, gamma=0.5)
        b = batch(2)  # transition 0 continues, transition 1 ends the session
        with torch.no_grad(), agent.acting(agent.actor_target, agent.critic_target):
            s_next, z_next = agent.encode(
                agent.actor_target, b.user, b.next_history, agent.actor_target.kernel_table()
            )
            q_next = agent.critic_target(s_next, z_next)
        calls = capture_critic_steps(agent)
        agent.update(b, 0, torch.Generator())
        r = b.reward
        if legacy:  # y = r + γ d Q'
            expected = [float(r[0]), float(r[1] + 0.5 * q_next[1])]
        else:  # y = r + γ (1 − d) Q'
            expected = [float(r[0] + 0.5 * q_next[0]), float(r[1])]
        assert calls[0]["target"].tolist() == pytest.approx(expected, abs=1e-6)

    def test_ddpg_uses_the_stored_noisy_z_and_hac_the_pooled_slate(self) -> None:
        b = batch()
        ddpg, hac = make("ddpg"), make("hac")
        ddpg_calls, hac_calls = capture_critic_steps(ddpg), capture_critic_steps(hac)
        phi = hac.actor.kernel_table().detach()
        ddpg.update(b, 0, torch.Generator())
        hac.update(b, 0, torch.Generator())
        assert torch.equal(ddpg_calls[0]["action"], b.hyper)
        pooled = phi[b.slate].mean(1)  # Ẑ_a = (1/K) Σ Φ(x_{a_k}) of the stored slate
        assert torch.allclose(hac_calls[0]["action"], pooled, atol=1e-6)
        assert not torch.allclose(hac_calls[0]["action"], b.hyper)

    def test_critic_state_source(self) -> None:
        b = batch()
        stale = make("ddpg", critic_state_source="buffer")
        calls = capture_critic_steps(stale)
        stale.update(b, 0, torch.Generator())
        assert torch.equal(calls[0]["state"], b.state)
        fresh = make("ddpg")
        with torch.no_grad():
            expected = fresh.encode(fresh.actor, b.user, b.history, fresh.actor.kernel_table())[0]
        calls = capture_critic_steps(fresh)
        fresh.update(b, 0, torch.Generator())
        assert torch.allclose(calls[0]["state"], expected, atol=1e-6)


def mean_q(critic: nn.Module, agent: Any, b: Batch) -> float:
    """``mean Q(s, Z)`` of ``critic`` on the current actor's noise-free ``(s, Z)`` (no gradient)."""
    with torch.no_grad():
        s, z = agent.encode(agent.actor, b.user, b.history, agent.actor.kernel_table())
        return float(critic(s, z).mean())


class TestActorAscent:
    """``L_QMax = −mean Q(s, Z)``: the actor climbs the critic (a sign flip must fail here)."""

    @pytest.mark.parametrize("kind", ["ddpg", "hac", "pgra"])
    def test_one_actor_step_raises_the_q_of_a_fixed_critic(self, kind: str) -> None:
        agent = make(kind)
        b = batch(16)
        critic = snapshot(agent.critic)
        before = mean_q(agent.critic, agent, b)
        loss = agent.actor_q_step(agent.optimizers["actor"], agent.critic, b)
        after = mean_q(agent.critic, agent, b)
        assert float(loss) == pytest.approx(-before, rel=1e-5)
        assert not changed(agent.critic, critic)  # the critic is fixed during the actor step
        assert after > before + 1e-6

    @pytest.mark.parametrize("kind", ["ddpg", "hac", "pgra"])
    def test_update_logs_minus_q_of_the_freshly_trained_critic(self, kind: str) -> None:
        agent = make(kind)
        b = batch(16)
        probe = copy.deepcopy(agent)
        probe.td_update(b)  # the critic step update() takes first (deterministic: no dropout)
        expected = -mean_q(probe.critic, agent, b)  # with the actor before its step
        logs = agent.update(b, 0, torch.Generator())
        assert abs(expected) > 0.1  # far from 0, so the sign of the loss is visible
        assert float(logs["actor_loss"]) == pytest.approx(expected, rel=1e-5)


class TestHACSteps:
    def test_step_order(self) -> None:
        agent = make("hac")
        order: list[str] = []
        for name in (
            "td_update",
            "actor_q_step",
            "alignment_step",
            "supervised_step",
            "soft_update",
        ):
            original = getattr(agent, name)

            def spy(*args: Any, _name: str = name, _f: Any = original, **kw: Any) -> Any:
                order.append(_name)
                return _f(*args, **kw)

            setattr(agent, name, spy)
        logs = agent.update(batch(), 0, torch.Generator())
        assert order == [
            "td_update",
            "actor_q_step",
            "alignment_step",
            "supervised_step",
            "soft_update",
        ]
        assert {"critic_loss", "actor_loss", "hyper_loss", "behavior_loss"} <= set(logs)

    def test_critic_step_changes_only_the_critic(self) -> None:
        agent: HAC = make("hac")
        actor, critic = snapshot(agent.actor), snapshot(agent.critic)
        agent.td_update(batch())
        assert changed(agent.critic, critic) and not changed(agent.actor, actor)

    def test_actor_step_changes_only_the_actor(self) -> None:
        agent: HAC = make("hac")
        actor, critic = snapshot(agent.actor), snapshot(agent.critic)
        agent.actor_q_step(agent.optimizers["actor"], agent.critic, batch())
        assert changed(agent.actor, actor) and not changed(agent.critic, critic)

    def test_alignment_step_changes_encoder_and_kernel(self) -> None:
        agent: HAC = make("hac")
        actor, critic = snapshot(agent.actor), snapshot(agent.critic)
        b = batch()
        phi = agent.actor.kernel_table().detach()
        with torch.no_grad():
            _, z = agent.encode(agent.actor, b.user, b.history, phi)
            top = torch.argsort(scores(phi, z), dim=1, descending=True)[:, :K] + 1
            expected = 0.1 * float(((phi[top].mean(1) - z) ** 2).mean())
        logs = agent.alignment_step(b)
        assert float(logs["hyper_loss"]) == pytest.approx(expected, rel=1e-5)
        assert changed(agent.actor, actor, "kernel.") and changed(agent.actor, actor, "layers.")
        assert not changed(agent.critic, critic)

    def test_mlp_mean_pool_inverse_is_learned_by_the_alignment(self) -> None:
        """KuaiSim's inverse: Ẑ = mean_k g(Φ(x_{a_k})) for the critic and L_Hyper; g learns."""
        agent: HAC = make("hac", inverse="mlp_mean_pool", inverse_hidden=[16])
        assert agent.inverse is not None and "inverse" in agent.nets
        b = batch()
        phi = agent.actor.kernel_table().detach()
        with torch.no_grad():
            pooled = agent.inverse(phi[b.slate]).mean(1)
        calls = capture_critic_steps(agent)
        before = snapshot(agent.inverse)
        agent.update(b, 0, torch.Generator())
        assert torch.allclose(calls[0]["action"], pooled, atol=1e-6)
        assert changed(agent.inverse, before)
        frozen: HAC = make("hac", inverse="mlp_mean_pool", inverse_hidden=[16], hyper_coef=0.0)
        assert frozen.inverse is not None
        before = snapshot(frozen.inverse)
        frozen.update(b, 0, torch.Generator())
        assert not changed(frozen.inverse, before)  # only L_Hyper trains it

    def test_supervision_uses_the_stored_slate_and_labels(self) -> None:
        agent: HAC = make("hac")
        critic = snapshot(agent.critic)
        b = batch()
        phi = agent.actor.kernel_table().detach()
        with torch.no_grad():
            _, z = agent.encode(agent.actor, b.user, b.history, phi)
            logits = (phi[b.slate] * z[:, None]).sum(-1)
            p = torch.sigmoid(logits)
            expected = float(-(b.response * p.log() + (1 - b.response) * (1 - p).log()).mean())
        loss = agent.supervised_step(
            agent.optimizers["behavior"], b.user, b.history, b.slate, b.response
        )
        assert float(loss) == pytest.approx(expected, rel=1e-5)
        assert not changed(agent.critic, critic)

    def test_polyak_after_the_update(self) -> None:
        agent: HAC = make("hac", tau=0.25)
        old = snapshot(agent.actor_target)
        agent.update(batch(), 0, torch.Generator())
        for name, p in agent.actor.named_parameters():
            expected = old[name] + 0.25 * (p.detach() - old[name])
            assert torch.allclose(dict(agent.actor_target.named_parameters())[name], expected)

    @pytest.mark.parametrize(
        ("settings", "absent"),
        [
            ({"hyper_coef": 0.0}, {"hyper_loss"}),
            ({"behavior_lr": 0.0}, {"behavior_loss"}),
            ({"actor_lr": 0.0}, {"actor_loss", "hyper_loss"}),
            ({"actor_lr": 0.0, "behavior_lr": 0.0}, {"actor_loss", "hyper_loss", "behavior_loss"}),
        ],
    )
    def test_zero_rates_skip_exactly_their_step(self, settings: dict, absent: set[str]) -> None:
        agent: HAC = make("hac", **settings)
        before = snapshot(agent.actor)
        logs = agent.update(batch(), 0, torch.Generator())
        expected = {"critic_loss", "actor_loss", "hyper_loss", "behavior_loss"} - absent
        assert expected <= set(logs) and not absent & set(logs)
        assert changed(agent.actor, before) == bool(expected - {"critic_loss"})


class TestTD3:
    def test_target_smoothing_min_and_delayed_actor(self) -> None:
        agent: TD3 = make("td3", gamma=0.9, target_noise=0.3, target_noise_clip=0.1)
        b = batch()
        with torch.no_grad(), agent.acting(agent.actor_target, *agent.critic_targets):
            s_next, z_next = agent.encode(
                agent.actor_target, b.user, b.next_history, agent.actor_target.kernel_table()
            )
            z_s = Fn.smoothed_action(z_next, 0.3, 0.1, torch.Generator().manual_seed(5))
            assert float((z_s - z_next).abs().max()) <= 0.1 + 1e-6
            q_min = torch.minimum(
                agent.critic_targets[0](s_next, z_s), agent.critic_targets[1](s_next, z_s)
            )
            y = b.reward + 0.9 * (~b.terminated) * q_min
        calls = capture_critic_steps(agent)
        actor, targets = snapshot(agent.actor), snapshot(agent.actor_target)
        logs = agent.update(b, 0, torch.Generator().manual_seed(5))
        assert len(calls) == 2 and all(torch.allclose(c["target"], y, atol=1e-6) for c in calls)
        assert all(torch.equal(c["action"], b.hyper) for c in calls)
        assert "actor_loss" not in logs  # update 0: critics only, no Polyak
        assert not changed(agent.actor, actor) and not changed(agent.actor_target, targets)
        old_actor = copy.deepcopy(agent.actor)
        logs = agent.update(b, 1, torch.Generator().manual_seed(6))  # update 1: the delayed actor
        with torch.no_grad():
            s, z = agent.encode(old_actor, b.user, b.history, old_actor.kernel_table())
            expected = -torch.minimum(agent.critics[0](s, z), agent.critics[1](s, z)).mean()
        assert float(logs["actor_loss"]) == pytest.approx(float(expected), rel=1e-5)
        assert changed(agent.actor, actor) and changed(agent.actor_target, targets)

    def test_q1_objective(self) -> None:
        agent: TD3 = make("td3", actor_objective="q1", policy_delay=1)
        b = batch()
        old_actor = copy.deepcopy(agent.actor)
        logs = agent.update(b, 0, torch.Generator())
        with torch.no_grad():
            s, z = agent.encode(old_actor, b.user, b.history, old_actor.kernel_table())
            expected = -agent.critics[0](s, z).mean()
        assert float(logs["actor_loss"]) == pytest.approx(float(expected), rel=1e-5)


class TestA2C:
    @pytest.mark.parametrize("kind", ["independent", "plackett_luce"])
    def test_policy_gradient_loss(self, kind: str) -> None:
        agent: A2C = make("a2c", slate_log_prob=kind, gamma=0.9)
        b = batch()
        with torch.no_grad():
            phi = agent.actor.kernel_table()
            s, z = agent.encode(agent.actor, b.user, b.history, phi)
            s_next, _ = agent.encode(
                agent.actor, b.user, b.next_history, phi
            )  # on-policy: online actor
            agent.critic_target.eval()
            y = b.reward + 0.9 * (~b.terminated) * agent.critic_target(s_next)
            agent.critic_target.train()
            v = agent.critic(s)
            advantage = (y - v).clamp(-1, 1)
            log_p = Fn.slate_log_prob(scores(phi, z), b.slate, kind)
        logs = agent.update(b, 0, torch.Generator())
        assert float(logs["critic_loss"]) == pytest.approx(float((v - y).pow(2).mean()), rel=1e-5)
        assert float(logs["actor_loss"]) == pytest.approx(
            float(-(log_p * advantage).mean()), rel=1e-5
        )

    def test_on_policy_does_not_average_a_target_actor(self) -> None:
        on, replay = make("a2c"), make("a2c", mode="replay")
        assert on.cfg.data_source == "on_policy" and replay.cfg.data_source == "replay"
        assert all(t is not on.actor_target for t, _ in on.targets)
        assert any(t is replay.actor_target for t, _ in replay.targets)


class TestPGRA:
    def test_inverse_step_learns_and_changes_only_g_and_the_kernel(self) -> None:
        agent: PGRA = make("pgra", inverse_lr=1e-2)
        b = batch(16)
        actor, critic = snapshot(agent.actor), snapshot(agent.critic)
        inverse = snapshot(agent.inverse)
        losses = [float(agent.alignment_step(b)["inverse_loss"]) for _ in range(60)]
        assert losses[-1] < losses[0] - 0.1 and losses[-1] < min(losses[:10])
        assert changed(agent.inverse, inverse) and changed(agent.actor, actor, "kernel.")
        kept = {k: v for k, v in actor.items() if not k.startswith("kernel.")}
        assert not any(
            not torch.equal(p, kept[k]) for k, p in agent.actor.named_parameters() if k in kept
        )
        assert not changed(agent.critic, critic)


def test_online_and_offline_sl_train_only_the_actor_by_bce() -> None:
    online = make("online_sl")
    assert set(online.optimizers) == {"behavior"} and set(online.nets) == {"actor"}
    before = snapshot(online.actor)
    logs = online.update(batch(), 0, torch.Generator())
    assert set(logs) == {"behavior_loss"} and changed(online.actor, before)
    offline = make("offline_sl")
    b = batch()
    zeros = torch.zeros(len(b.user))
    logged = ListTensors(
        b.user, b.history, b.history > 0, b.slate, b.response, b.user, zeros, zeros
    )
    assert set(offline.update(logged, 0, torch.Generator())) == {"behavior_loss"}
    assert offline.cfg.data_source == "logged"


class TestParity:
    def test_pad_lookup_only_for_replayed_histories(self) -> None:
        agent: Agent = make("hac", buffer_pad_lookup="hac_last_item")
        h = torch.tensor([[0, 0, 3, 4, 5, 6]])
        ids, mask = agent.lookup(h, replayed=True)
        assert ids.tolist() == [[N, N, 3, 4, 5, 6]] and mask.tolist() == [
            [False, False] + [True] * 4
        ]
        assert agent.lookup(h, replayed=False)[0].tolist() == h.tolist()

    def test_dropout_when_acting(self) -> None:
        agent: DDPG = make("ddpg", dropout_when_acting=True)
        with agent.acting(agent.actor):
            assert agent.actor.training
        plain = make("ddpg")
        with plain.acting(plain.actor):
            assert not plain.actor.training
        assert plain.actor.training  # back in train mode

    def test_hac_code_parity_preset(self, tmp_path: Any) -> None:
        cfg = OnlineTrainConfig.model_validate(
            {
                "data": tmp_path,
                "out": tmp_path / "run",
                "preset": "hac_code_parity",
                "agent": {"kind": "a2c", "explore": {"noise_std": 0.2}, "legacy_done_mask": False},
            }
        )
        a = cfg.agent
        assert (cfg.env.zero_reward_cost, cfg.env.urm_legacy_dropout) == (0.1, True)
        assert (a.mode, a.critic_state_source, a.buffer_pad_lookup, a.dropout_when_acting) == (
            "replay",
            "buffer",
            "hac_last_item",
            True,
        )
        assert a.legacy_done_mask is False  # explicit keys win
        assert (a.explore.hyper_noise, a.explore.coin, a.explore.noise_std) == (
            "hac_uniform",
            "per_batch",
            0.2,
        )
        assert a.explore.topk_rate == 0.0  # A2C's own default survives the preset
        assert (a.policy.encoder, a.policy.use_user_token, a.policy.hyper_head) == (
            "sasrec_hac_code",
            False,
            "identity",
        )
