"""The hyper-actor, slate selection, exploration (spec-online §C.6) and the replay buffer (§D.0)."""

from __future__ import annotations

import pytest
import torch
from sim_helpers import single_thread
from torch import nn

from rlrec.online.buffer import Batch, ReplayBuffer
from rlrec.online.layers import TransformerLayer, attention_bias
from rlrec.online.policy import (
    ExplorationConfig,
    HyperActor,
    PolicyConfig,
    choose_slate,
    coins,
    greedy_slate,
    mask_items,
    perturb,
    sample_slate,
    scores,
)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with single_thread():
        yield


N, DI, DU, H, B = 30, 6, 3, 10, 5


def make_actor(**cfg: object) -> HyperActor:
    torch.manual_seed(0)
    items = torch.cat([torch.zeros(1, DI), torch.randn(N, DI)])
    policy = PolicyConfig(dim=8, n_heads=2, ff_dim=16, user_hidden=[8], max_history=H, **cfg)
    return HyperActor(policy, items, DU).eval()


def histories() -> torch.Tensor:
    h = torch.randint(1, N + 1, (B, H), generator=torch.Generator().manual_seed(1))
    h[0, :7] = 0  # a short history
    h[1] = 0  # an empty one
    return h


def forward(actor: HyperActor, user: torch.Tensor, hist: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return actor(user, hist, hist > 0, actor.kernel_table())


class TestActor:
    def test_shapes_and_scores(self) -> None:
        actor = make_actor()
        user = torch.randn(B, DU)
        s, z = forward(actor, user, histories())
        assert s.shape == (B, 8) and z.shape == (B, 8)
        score = scores(actor.kernel_table(), z)
        assert score.shape == (B, N)
        slate = greedy_slate(score, 4)
        assert slate.shape == (B, 4) and int(slate.min()) >= 1 and int(slate.max()) <= N
        assert all(len(set(row)) == 4 for row in slate.tolist())

    def test_empty_history_with_user_token_is_finite(self) -> None:
        actor = make_actor()
        s, z = forward(actor, torch.randn(B, DU), torch.zeros(B, H, dtype=torch.long))
        assert torch.isfinite(s).all() and torch.isfinite(z).all()

    def test_padding_mask_hides_padded_slots(self) -> None:
        actor = make_actor()
        user, hist = torch.randn(B, DU), histories()
        s, _ = forward(actor, user, hist)
        phi = actor.kernel_table().clone()
        phi[0] += 5.0  # the image of the padding features changes
        s2, _ = actor(user, hist, hist > 0, phi)
        assert torch.allclose(s, s2, atol=1e-6)

    def test_causal_mask(self) -> None:
        """Without a user token, the output at position t ignores the more recent items."""
        actor = make_actor(encoder="sasrec_hac_code")
        hist = histories()
        changed = hist.clone()
        changed[:, -1] = (hist[:, -1] % N) + 1  # only the most recent item differs
        phi = actor.kernel_table()
        outs = []
        for h in (hist, changed):
            x = actor.emb_norm(phi[h] + actor.position.weight)
            bias = attention_bias(None, H, x.device)
            for layer in actor.layers:
                x = layer(x, bias)
            outs.append(x)
        assert torch.allclose(outs[0][:, :-1], outs[1][:, :-1], atol=1e-6)
        assert not torch.allclose(outs[0][:, -1], outs[1][:, -1])

    def test_hac_code_preset_ignores_user_features(self) -> None:
        actor = make_actor(encoder="sasrec_hac_code")
        assert actor.user_encoder is None and isinstance(actor.head, nn.Identity)
        hist = histories()
        s1, z1 = forward(actor, torch.randn(B, DU), hist)
        _, z2 = forward(actor, torch.randn(B, DU), hist)
        assert torch.equal(z1, z2) and torch.equal(z1, s1)
        paper = make_actor()
        assert not torch.allclose(
            forward(paper, torch.randn(B, DU), hist)[1], forward(paper, torch.randn(B, DU), hist)[1]
        )

    def test_explicit_flags_win_over_the_encoder_preset(self) -> None:
        cfg = PolicyConfig(encoder="sasrec_hac_code", hyper_head="linear")
        assert (cfg.hyper_head, cfg.use_user_token, cfg.padding_mask) == ("linear", False, False)


def test_transformer_layer_matches_torch_encoder_layer() -> None:
    torch.manual_seed(0)
    mine = TransformerLayer(8, 2, 16, 0.1).eval()
    ref = nn.TransformerEncoderLayer(8, 2, 16, 0.1, batch_first=True).eval()
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(mine.qkv.weight)
        ref.self_attn.in_proj_bias.copy_(mine.qkv.bias)
        ref.self_attn.out_proj.weight.copy_(mine.out.weight)
        ref.self_attn.out_proj.bias.copy_(mine.out.bias)
        for a, b in ((ref.linear1, mine.ff1), (ref.linear2, mine.ff2)):
            a.weight.copy_(b.weight)
            a.bias.copy_(b.bias)
    x = torch.randn(3, 7, 8)
    causal = nn.Transformer.generate_square_subsequent_mask(7)
    expected = ref(x, src_mask=causal, is_causal=True)
    assert torch.allclose(mine(x, attention_bias(None, 7, x.device)), expected, atol=1e-5)
    # the training path (explicit attention with dropout) computes the same function when nothing
    # is dropped
    mine.train()
    mine.p = 1e-9
    for m in (mine.drop, mine.drop1, mine.drop2):
        m.p = 0.0
    assert torch.allclose(mine(x, attention_bias(None, 7, x.device)), expected, atol=1e-5)


class TestSlates:
    def test_top_k_is_the_argsort_with_ties_by_lower_id(self) -> None:
        score = torch.randn(6, N)
        ref = torch.argsort(score, dim=1, descending=True)[:, :5] + 1
        assert torch.equal(greedy_slate(score, 5), ref)
        tied = torch.tensor([[1.0, 3.0, 3.0, 0.0, 3.0, 2.0]])
        assert greedy_slate(tied, 4).tolist() == [[2, 3, 5, 6]]
        assert greedy_slate(torch.zeros(2, 5), 3).tolist() == [[1, 2, 3]] * 2

    def test_sampling_never_repeats_and_follows_the_softmax(self) -> None:
        gen = torch.Generator().manual_seed(0)
        score = torch.log(torch.tensor([[0.7, 0.2, 0.05, 0.05]])).expand(4000, 4)
        slate = sample_slate(score, 3, gen)
        assert all(len(set(row)) == 3 for row in slate.tolist())
        first = torch.bincount(slate[:, 0], minlength=5)[1:].float() / 4000
        assert first.tolist() == pytest.approx([0.7, 0.2, 0.05, 0.05], abs=0.03)
        big = sample_slate(torch.randn(50, N), N, gen)  # the whole catalogue, no repeat
        assert all(sorted(row) == list(range(1, N + 1)) for row in big.tolist())

    def test_history_items_can_be_masked(self) -> None:
        score = torch.zeros(2, 6)
        masked = mask_items(score, torch.tensor([[0, 0, 2, 5], [0, 0, 0, 0]]))
        assert greedy_slate(masked, 4).tolist() == [[1, 3, 4, 6], [1, 2, 3, 4]]

    def test_per_user_and_per_batch_coins(self) -> None:
        gen = torch.Generator().manual_seed(0)
        per_batch = [coins(64, 0.5, "per_batch", gen, torch.device("cpu")) for _ in range(50)]
        assert all(bool(c.all()) or not bool(c.any()) for c in per_batch)
        assert 5 < sum(bool(c.all()) for c in per_batch) < 45
        per_user = coins(4000, 0.3, "per_user", gen, torch.device("cpu"))
        assert float(per_user.float().mean()) == pytest.approx(0.3, abs=0.03)
        score = torch.randn(64, N)
        greedy = greedy_slate(score, 4)
        mixed = choose_slate(score, 4, 0.5, "per_user", gen)
        same = (mixed == greedy).all(1)
        assert 10 < int(same.sum()) < 54  # some users sampled, some greedy
        assert torch.equal(choose_slate(score, 4, 1.0, "per_user", gen), greedy)


class TestExploration:
    def test_gaussian_noise(self) -> None:
        z = torch.zeros(20_000, 4)
        cfg = ExplorationConfig(noise_std=0.1)
        out = perturb(z, cfg, 0.0, torch.Generator().manual_seed(0))
        assert float(out.mean()) == pytest.approx(0.0, abs=0.003)
        assert float(out.std()) == pytest.approx(0.1, rel=0.02)
        clipped = perturb(
            z, ExplorationConfig(noise_std=1.0, noise_clip=0.2), 0.0, torch.Generator()
        )
        assert float(clipped.abs().max()) == pytest.approx(0.2)

    def test_reference_uniform_noise(self) -> None:
        z = torch.ones(20_000, 4)
        cfg = ExplorationConfig(hyper_noise="hac_uniform", noise_std=0.1)
        noise = perturb(z, cfg, 0.0, torch.Generator().manual_seed(0)) - 1.0
        assert float(noise.mean()) == pytest.approx(0.05, abs=0.002)  # biased: mean σ/2
        assert float(noise.min()) >= 0.0 and float(noise.max()) < 0.1 + 1e-6

    def test_epsilon_one_ignores_the_actor(self) -> None:
        cfg = ExplorationConfig(noise_std=0.1)
        a = perturb(torch.full((8, 4), 5.0), cfg, 1.0, torch.Generator().manual_seed(3))
        b = perturb(torch.full((8, 4), -5.0), cfg, 1.0, torch.Generator().manual_seed(3))
        assert torch.equal(a, b) and float(a.abs().max()) < 1.0

    def test_epsilon_schedule(self) -> None:
        cfg = ExplorationConfig(epsilon_start=1.0, epsilon_end=0.0, epsilon_steps=100)
        assert [cfg.epsilon(i) for i in (0, 50, 100, 500)] == [1.0, 0.5, 0.0, 0.0]


def test_replay_buffer_ring_and_seeded_sampling() -> None:
    buf = ReplayBuffer(capacity=5, history=3, state_dim=2, hyper_dim=2, slate_size=2)

    def batch(start: int, n: int) -> Batch:
        ids = torch.arange(start, start + n)
        return Batch(
            user=ids,
            history=ids[:, None].expand(n, 3),
            next_history=ids[:, None].expand(n, 3) + 1,
            state=ids[:, None].float().expand(n, 2),
            hyper=-ids[:, None].float().expand(n, 2),
            slate=ids[:, None].expand(n, 2) + 1,
            response=torch.ones(n, 2),
            reward=ids.float(),
            terminated=ids % 2 == 0,
            truncated=torch.zeros(n, dtype=torch.bool),
        )

    buf.push(batch(0, 3))
    assert len(buf) == 3
    buf.push(batch(3, 4))  # 7 pushed into 5 slots: 0 and 1 overwritten
    assert len(buf) == 5 and sorted(buf.user.tolist()) == [2, 3, 4, 5, 6]
    a = buf.sample(64, torch.Generator().manual_seed(0))
    b = buf.sample(64, torch.Generator().manual_seed(0))
    assert torch.equal(a.user, b.user) and set(a.user.tolist()) <= {2, 3, 4, 5, 6}
    assert a.history.dtype == torch.int64 and a.response.dtype == torch.float32
    assert torch.equal(a.next_history[:, 0], a.user + 1) and torch.equal(a.reward, a.user.float())
    assert torch.equal(a.terminated, a.user % 2 == 0)


def test_attention_bias_by_hand() -> None:
    """Query i may see key j iff j ≤ i and j is a real token, and always its own position."""
    mask = torch.tensor([[False, True, True], [True, False, True]])
    bias = attention_bias(mask, 3, torch.device("cpu"))
    assert bias.shape == (2, 1, 3, 3)
    open_ = bias[:, 0] == 0
    expected = torch.tensor(
        [
            [[True, False, False], [False, True, False], [False, True, True]],
            [[True, False, False], [True, True, False], [True, False, True]],
        ]
    )
    assert torch.equal(open_, expected)
    assert set(bias.unique().tolist()) == {0.0, -1e9}
    causal = attention_bias(None, 3, torch.device("cpu"))
    assert torch.equal(causal == 0, torch.ones(3, 3, dtype=torch.bool).tril())


def test_last_position_layer_equals_the_full_layer() -> None:
    """``forward_last`` (the state needs only the last output) is the full layer's last row."""
    from rlrec.online.layers import TransformerLayer, attention_bias

    torch.manual_seed(0)
    layer = TransformerLayer(32, 4, 64, 0.1).eval()
    x = torch.randn(5, 12, 32)
    mask = torch.rand(5, 12) > 0.3
    mask[:, -1] = True
    for bias in (attention_bias(mask, 12, x.device), attention_bias(None, 12, x.device)):
        with torch.no_grad():
            assert torch.allclose(layer(x, bias)[:, -1], layer.forward_last(x, bias), atol=1e-5)
