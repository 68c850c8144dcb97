"""The simulator (spec-online §B.3–B.10): reward, leave model, history, refill, seeding, CRN, Gym."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from sim_helpers import TINY_SYNTH, controlled_sim, single_thread

import rlrec.sim  # noqa: F401  (registers rlrec/ListRec-v0)
from rlrec.sim import functional as Fn
from rlrec.sim.build import evaluation_starts, make_simulator, rollout_fixed_users
from rlrec.sim.env import EnvConfig, ListRecSimulator
from rlrec.sim.gym_env import ListRecEnv, ListRecVectorEnv
from rlrec.sim.urm import URM


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with single_thread():
        yield


POS, NEG = 1, -1
SIGNS = [POS] * 10 + [NEG] * 10  # items 1..10 always clicked, 11..20 never


def run_to_end(sim, slate: list[int], limit: int = 50) -> tuple[int, list[float], bool]:
    """Show the same slate until the single user leaves: (depth, rewards, terminated)."""
    sim.reset(seed=0)
    rewards = []
    for _ in range(limit):
        out = sim.step(torch.tensor([slate]))
        rewards.append(float(out.reward[0]))
        if bool(out.done[0]):
            return int(out.episode_depth[0]), rewards, bool(out.terminated[0])
    raise AssertionError("no termination")


class TestRewardAndLeaveModel:
    def test_list_reward_values(self) -> None:
        y = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
        assert Fn.list_reward(y, 0.2).tolist() == pytest.approx([0.4, 1.0, -0.2])
        assert Fn.list_reward(y, 0.1).tolist() == pytest.approx([0.45, 1.0, -0.1])
        r = Fn.list_reward(torch.tensor([[1] * 8 + [0]]), 0.1)  # RL4RS, 8 of 9
        assert float(r[0]) == pytest.approx(7.9 / 9)
        assert float(Fn.sweet_point(r, 0.9)[0]) == pytest.approx(1 - abs(7.9 / 9 - 0.9))
        assert float(Fn.sweet_point(torch.tensor([1.0]), 0.9)[0]) == pytest.approx(0.9)

    def test_all_positive_lasts_exactly_20_steps(self) -> None:
        sim = controlled_sim(SIGNS, 10, EnvConfig(max_depth=100))
        depth, rewards, terminated = run_to_end(sim, list(range(1, 11)))
        assert (depth, terminated) == (20, True)
        assert rewards == [1.0] * 20

    @pytest.mark.parametrize(("cost", "first_temper"), [(0.2, 7.0), (0.1, 8.0)])
    def test_all_negative_leaves_at_step_2(self, cost: float, first_temper: float) -> None:
        sim = controlled_sim(SIGNS, 10, EnvConfig(zero_reward_cost=cost))
        sim.reset(seed=0)
        out = sim.step(torch.tensor([list(range(11, 21))]))
        assert float(sim.temper[0]) == pytest.approx(first_temper)
        assert not bool(out.done[0])
        out = sim.step(torch.tensor([list(range(11, 21))]))
        assert bool(out.terminated[0]) and int(out.episode_depth[0]) == 2
        assert float(out.episode_return[0]) == pytest.approx(-2 * cost)

    def test_one_negative_per_list_depth_10(self) -> None:
        sim = controlled_sim(SIGNS, 10, EnvConfig(zero_reward_cost=0.1))
        depth, rewards, _ = run_to_end(sim, [*range(1, 10), 11])
        assert depth == 10 and rewards[0] == pytest.approx(0.89)

    def test_rl4rs_sweet_point_depth_16(self) -> None:
        cfg = EnvConfig(zero_reward_cost=0.1, reward_transform="sweet_point")
        sim = controlled_sim(SIGNS, 9, cfg)
        sim.reset(seed=0)
        for _ in range(15):
            sim.step(torch.tensor([[*range(1, 9), 11]]))
        assert float(sim.temper[0]) == pytest.approx(2.0)
        depth, rewards, _ = run_to_end(sim, [*range(1, 9), 11])
        assert depth == 16 and rewards[0] == pytest.approx(1 - abs(7.9 / 9 - 0.9))

    def test_cpu_formula_and_truncation(self) -> None:
        sim = controlled_sim(SIGNS, 10, EnvConfig(temper_formula="hac_cpu"))
        sim.reset(seed=0)
        sim.step(torch.tensor([[*range(1, 8), 11, 12, 13]]))
        assert float(sim.temper[0]) == pytest.approx(20 - (3 + 1))  # n_neg + 1
        sim = controlled_sim(SIGNS, 10, EnvConfig(initial_temper=100, max_depth=5))
        depth, _, terminated = run_to_end(sim, list(range(1, 11)))
        assert (depth, terminated) == (5, False)


class TestHistoryAndRefill:
    def test_append_positives(self) -> None:
        hist = torch.tensor([[0, 0, 7, 8], [1, 2, 3, 4]])
        mask = hist > 0
        slate = torch.tensor([[11, 12, 13], [21, 22, 23]])
        resp = torch.tensor([[1, 0, 1], [1, 1, 1]])
        h, m = Fn.append_positives(hist, mask, slate, resp)
        assert h.tolist() == [[7, 8, 11, 13], [4, 21, 22, 23]]
        assert m.tolist() == [[True] * 4, [True] * 4]
        h, m = Fn.append_positives(hist, mask, slate, torch.zeros_like(resp))
        assert h.tolist() == hist.tolist() and m.tolist() == mask.tolist()
        h, m = Fn.append_positives(hist, mask, slate, torch.tensor([[0, 1, 0], [0, 0, 0]]))
        assert h[0].tolist() == [0, 7, 8, 12] and m[0].tolist() == [False, True, True, True]

    def test_refill_returns_old_users_next_state_and_reports_each_episode_once(self) -> None:
        starts = [[1], [2, 3], [4, 5, 6]]
        sim = controlled_sim(SIGNS, 10, EnvConfig(), num_envs=2, histories=starts)
        obs = sim.reset(seed=3)
        first_users = obs["user"].tolist()
        slate = torch.tensor([[7, *range(11, 20)]] * 2)  # one positive (7), nine negatives
        out = sim.step(slate)
        assert not bool(out.done.any())
        out = sim.step(slate)  # temper 20 → 8.2 → -3.6: everybody leaves
        assert out.terminated.tolist() == [True, True]
        assert out.episode_depth.tolist() == [2, 2]
        assert out.episode_return.tolist() == pytest.approx([-0.16, -0.16])
        assert [e["slot"] for e in out.episodes] == [0, 1]
        for slot, user in enumerate(first_users):
            start = [h for h in starts[user]]
            expected = ([0] * 5 + start + [7, 7])[-5:]
            assert out.next_obs["history"][slot].tolist() == expected
            assert out.next_obs["user"][slot] == user
        # refilled: fresh temper, new start state
        assert sim.temper.tolist() == [20.0, 20.0] and sim.depth.tolist() == [0, 0]
        for slot in range(2):
            u = int(out.obs["user"][slot])
            assert out.obs["history"][slot].tolist() == ([0] * 5 + starts[u])[-5:]
        out = sim.step(slate)
        assert not bool(out.done.any())  # no episode reported twice

    def test_no_refill_when_evaluating_fixed_users(self) -> None:
        sim = controlled_sim(SIGNS, 10, EnvConfig(), num_envs=2, histories=[[1], [2]])
        sim.reset(seed=0, starts=torch.tensor([0, 1]))
        neg = list(range(11, 21))
        sim.step(torch.tensor([neg, list(range(1, 11))]))
        out = sim.step(torch.tensor([neg, list(range(1, 11))]))
        assert out.done.tolist() == [True, False]
        out = sim.step(torch.tensor([neg, list(range(1, 11))]))
        assert out.active.tolist() == [False, True] and out.reward[0] == 0
        assert sim.active.tolist() == [False, True]

    def test_bad_slates_are_rejected(self) -> None:
        sim = controlled_sim(SIGNS, 10, EnvConfig())
        sim.reset(seed=0)
        with pytest.raises(ValueError, match=r"item ids must be in 1\.\.20"):
            sim.step(torch.tensor([list(range(12, 22))]))
        with pytest.raises(ValueError, match="slate must have shape"):
            sim.step(torch.tensor([[1, 2, 3]]))


# ----------------------------------------------------------------- realistic (planted) URM


@pytest.fixture(scope="module")
def planted_sim_args() -> dict:
    return {"synthetic": TINY_SYNTH, "seed": 0}


def policy(obs: dict[str, torch.Tensor], n_items: int = 60, k: int = 5) -> torch.Tensor:
    """A deterministic function of the observation (no randomness)."""
    items = torch.arange(1, n_items + 1)
    key = obs["history"].sum(1, keepdim=True) + 1
    return torch.topk(-((items * key) % 61).float(), k, dim=1).indices + 1


def test_probabilities_equal_the_urm_forward(planted_sim_args: dict) -> None:
    sim = make_simulator(num_envs=6, **planted_sim_args)
    obs = sim.reset(seed=4)
    slate = policy(obs)
    x = sim.item_features
    expected = torch.sigmoid(
        sim.urm(obs["user_features"], x[obs["history"]], obs["history_mask"], x[slate])
    )
    torch.testing.assert_close(sim.probabilities(slate), expected, rtol=1e-5, atol=1e-6)
    for _ in range(3):  # after history updates and refills, still the same function
        obs = sim.step(slate).obs
        slate = policy(obs)
    expected = torch.sigmoid(
        sim.urm(obs["user_features"], x[obs["history"]], obs["history_mask"], x[slate])
    )
    torch.testing.assert_close(sim.probabilities(slate), expected, rtol=1e-5, atol=1e-6)


def test_urm_options_in_the_simulator_track_the_response_counts(planted_sim_args: dict) -> None:
    """With item offsets, user ids and the engagement term on, the simulator's probabilities are
    still the URM's forward, fed the counts the simulator keeps: the start record's, plus K shown
    and the positives drawn at every step."""
    base = make_simulator(num_envs=5, cfg=EnvConfig(auto_reset=False), **planted_sim_args)
    cfg = base.urm.cfg.model_copy(update={"item_bias": True, "user_ids": True, "engagement": True})
    n_users = base.user_features.shape[0]
    urm = URM(cfg, base.user_features.shape[1], base.item_features.shape[1], base.n_items, n_users)
    urm.load_state_dict(base.urm.state_dict(), strict=False)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        urm.item_offset.weight.copy_(torch.randn(urm.item_offset.weight.shape, generator=gen))
        urm.user_id_embed.weight.copy_(torch.randn(urm.user_id_embed.weight.shape, generator=gen))
        urm.engagement_weight.fill_(0.8)
        urm.prior_rate.fill_(0.4)
    pool = base.pool
    pool = type(pool)(pool.user, pool.history, pool.history_mask, pool.seen + 7, pool.positives)
    sim = ListRecSimulator(
        urm.eval(),
        base.item_features,
        base.user_features,
        pool,
        num_envs=5,
        slate_size=5,
        cfg=EnvConfig(auto_reset=False),
    )
    obs = sim.reset(seed=3)
    start = sim.start.clone()
    seen, positives = pool.seen[start].clone(), pool.positives[start].clone()
    x = sim.item_features
    for _ in range(3):
        slate = policy(obs)
        torch.testing.assert_close(sim.seen, seen)
        torch.testing.assert_close(sim.positives, positives)
        expected = torch.sigmoid(
            urm(
                obs["user_features"],
                x[obs["history"]],
                obs["history_mask"],
                x[slate],
                obs["history"],
                slate,
                obs["user"],
                seen,
                positives,
            )
        )
        torch.testing.assert_close(sim.probabilities(slate), expected, rtol=1e-5, atol=1e-6)
        out = sim.step(slate)
        seen = seen + 5 * out.active
        positives = positives + out.response.sum(1)
        obs = out.obs
    assert float(positives.sum()) > float(pool.positives[start].sum())  # responses were counted


def test_vector_env_equals_single_user_runs(planted_sim_args: dict) -> None:
    n, seed, steps = 4, 10, 25
    venv = ListRecVectorEnv(num_envs=n, tensors=True, **planted_sim_args)
    obs, _ = venv.reset(seed=seed)
    vec = [[] for _ in range(n)]
    for _ in range(steps):
        obs, reward, term, _, info = venv.step(policy(obs))
        for i in range(n):
            vec[i].append((float(reward[i]), info["response"][i].tolist(), bool(term[i])))
    for i in range(n):
        env = ListRecEnv(**planted_sim_args)
        o, _ = env.reset(seed=seed + i)
        single = []
        for _ in range(steps):
            hist = torch.as_tensor(o["history"])[None]
            action = policy({"history": hist})[0].numpy()
            o, r, te, tr, info = env.step(action)
            single.append((r, info["response"].tolist(), te))
            if te or tr:
                o, _ = env.reset()
        assert single == vec[i], f"slot {i}"
    assert sum(t for run in vec for _, _, t in run) > 0  # episodes did end and refill


def test_seeded_rollouts_are_reproducible(planted_sim_args: dict) -> None:
    def rollout(seed: int) -> list[float]:
        sim = make_simulator(num_envs=8, **planted_sim_args)
        obs, rewards = sim.reset(seed=seed), []
        for _ in range(10):
            out = sim.step(policy(obs))
            rewards += out.reward.tolist()
            obs = out.obs
        return rewards

    assert rollout(1) == rollout(1)
    assert rollout(1) != rollout(2)


def test_common_random_numbers(planted_sim_args: dict) -> None:
    sim = make_simulator(num_envs=4, cfg=EnvConfig(auto_reset=False), **planted_sim_args)
    starts = evaluation_starts(len(sim.pool), 10, seed=0)
    base = rollout_fixed_users(sim, policy, starts, seed=7)
    # the same slates in reverse order: identical responses, hence identical sessions
    flipped = rollout_fixed_users(sim, lambda o: policy(o).flip(1), starts, seed=7)
    assert torch.equal(base["total_reward"], flipped["total_reward"])
    assert torch.equal(base["depth"], flipped["depth"])
    # batch size and slot do not matter either
    wide = make_simulator(num_envs=10, cfg=EnvConfig(auto_reset=False), **planted_sim_args)
    again = rollout_fixed_users(wide, policy, starts.flip(0), seed=7)
    assert torch.equal(again["total_reward"].flip(0), base["total_reward"])
    other = rollout_fixed_users(sim, policy, starts, seed=8)
    assert not torch.equal(other["total_reward"], base["total_reward"])


class TestGymnasium:
    def test_env_checker_passes(self, planted_sim_args: dict) -> None:
        from gymnasium.utils.env_checker import check_env

        check_env(ListRecEnv(**planted_sim_args), skip_render_check=True)

    def test_make_vec_registered_and_spaces(self, planted_sim_args: dict) -> None:
        env = gym.make_vec("rlrec/ListRec-v0", num_envs=3, **planted_sim_args)
        assert isinstance(env.unwrapped, ListRecVectorEnv)
        obs, _ = env.reset(seed=0)
        assert obs in env.observation_space
        env.action_space.seed(0)
        finished = 0
        for _ in range(12):
            obs, reward, term, _, info = env.step(env.action_space.sample())
            assert obs in env.observation_space and reward.shape == (3,)
            assert info["response"].shape == (3, 5) and info["probs"].shape == (3, 5)
            if term.any():
                finished += int(term.sum())
                i = int(np.flatnonzero(term)[0])
                assert info["_final_obs"][i] and set(info["final_obs"][i]) == set(obs)
                assert info["episode"]["depth"][i] >= 1
        assert finished > 0
        single = gym.make("rlrec/ListRec-v0", **planted_sim_args)
        assert single.reset(seed=1)[0] in single.observation_space


def test_a_state_saved_without_response_counts_still_loads(planted_sim_args: dict) -> None:
    sim = make_simulator(num_envs=4, **planted_sim_args)
    sim.reset(seed=2)
    sim.step(policy(sim.observation()))
    state = sim.state_dict()
    old = {k: v for k, v in state.items() if k not in ("seen", "positives")}
    other = make_simulator(num_envs=4, **planted_sim_args)
    other.load_state_dict(old)
    torch.testing.assert_close(other.history, sim.history)
    assert torch.equal(other.ret, sim.ret)
