"""HAC, the Hyper-Actor Critic (P-HAC §2.2–§2.6, Algorithm 1)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from rlrec.models.gather import table_rows
from rlrec.online import functional as Fn
from rlrec.online.agents.base import Logs
from rlrec.online.agents.ddpg import DDPG, DDPGConfig
from rlrec.online.buffer import Batch
from rlrec.online.layers import mlp
from rlrec.online.policy import greedy_slate, scores


class HACConfig(DDPGConfig):
    """HAC: critic on the effect action, actor on the hyper-action, alignment and supervision.

    Per update, in this order (P-HAC Algorithm 1 lines 7–9):

    1. critic on the effect action: ``Ẑ_a = (1/K) Σ_k sg(Φ(x_{a_k}))`` of the **stored slate**
       (inverse mean pooling, Eq. 6), ``L_TD = mean (Q(s_t, Ẑ_a) − y)²``,
       ``y = r + γ (1 − d) Q'(π'(u, h'))`` (Eq. 7);
    2. actor: ``L_QMax = −mean Q(s, Z)`` (Eq. 8, maximised), if ``actor_lr > 0``;
    3. alignment: ``L_Hyper = λ_h ‖Ẑ(topK(Z)) − Z‖²`` (Eq. 9; selection not differentiated,
       gradients into Z and Φ), with the actor optimiser, if ``hyper_coef > 0``;
    4. supervision: ``L_BCE = mean BCE(σ(⟨Φ(x_{a_k}), Z⟩), y_k)`` on the stored slate (Eq. 10 with
       its minus sign) with a separate Adam over the actor, if ``behavior_lr > 0``;
    5. Polyak ``τ = 0.01`` on the target actor and critic.

    Defaults (reference ``train_hac.sh``/``test.sh``): actor lr 1e-4, critic lr 1e-3, λ_h 0.1,
    behaviour lr 5e-5, σ 0.1, decay 1e-5. ``hyper_loss_reduction``: ``mean`` over the ``d_Z``
    dimensions (reference; λ_h = 0.1 was tuned with it) or ``sum_dims`` (the paper's squared norm).
    Ablations: ``behavior_lr: 0`` = HAC w/o L_BCE, ``hyper_coef: 0`` = HAC w/o L_Hyper.

    ``inverse``: the inverse module ``h`` of steps 1 and 3: ``mean_pool`` (P-HAC Eq. 6, parameter-free,
    the paper's most stable choice) or ``mlp_mean_pool`` (KuaiSim's: a learned MLP
    ``d → inverse_hidden → d`` on each kernel embedding, then the mean, ``Ẑ = (1/K) Σ_k g(Φ(x_{a_k}))``;
    trained by ``L_Hyper`` with the actor optimiser at ``actor_lr`` — KuaiSim's learning rate
    ``hyper_actor_coef`` is a bug).
    """

    kind: Literal["hac"] = "hac"  # type: ignore[assignment]
    hyper_coef: float = Field(0.1, ge=0.0)
    hyper_loss_reduction: Fn.HyperReduction = "mean"
    behavior_lr: float = Field(5e-5, ge=0.0)
    inverse: Literal["mean_pool", "mlp_mean_pool"] = "mean_pool"
    inverse_hidden: list[int] = Field(default_factory=lambda: [256])


class HAC(DDPG):
    """See :class:`HACConfig`."""

    cfg: HACConfig

    def build(self) -> None:
        super().build()
        self.inverse: torch.nn.Module | None = None
        if self.cfg.inverse == "mlp_mean_pool":
            d = self.cfg.policy.dim
            self.inverse = mlp(d, self.cfg.inverse_hidden, d).to(self.device)
            self.nets["inverse"] = self.inverse
            if "actor" in self.optimizers:
                self.optimizers["actor"].add_param_group({"params": self.inverse.parameters()})

    def pool(self, phi: torch.Tensor, slate: torch.Tensor) -> torch.Tensor:
        """The inverse module: ``Ẑ`` ``(B, d)`` of slates ``(B, K)`` under kernel table ``phi``."""
        if self.inverse is None:
            return Fn.mean_pool(phi, slate)
        return self.inverse(table_rows(phi, slate)).mean(1)

    @torch.no_grad()
    def critic_action(self, batch: Batch) -> torch.Tensor:
        """``Ẑ_a`` ``(B, d)``: the pooled kernel embeddings of the stored slate (current Φ, no
        gradient)."""
        return self.pool(self.actor.kernel_table(), batch.slate)

    def alignment_step(self, batch: Batch) -> Logs:
        """Step 3: pull ``Z`` and the kernel embeddings of its greedy slate together (actor optimiser;
        skipped when ``hyper_coef`` or ``actor_lr`` is 0)."""
        if self.cfg.hyper_coef <= 0 or "actor" not in self.optimizers:
            return {}
        phi = self.actor.kernel_table()
        _, z = self.encode(self.actor, batch.user, batch.history, phi)
        with torch.no_grad():
            chosen = greedy_slate(scores(phi, z), self.slate_size)
        z_hat = self.pool(phi, chosen)
        loss = self.cfg.hyper_coef * Fn.hyper_alignment(z_hat, z, self.cfg.hyper_loss_reduction)
        self.step(self.optimizers["actor"], loss)
        return {"hyper_loss": loss.detach()}


HACConfig.AGENT = HAC
