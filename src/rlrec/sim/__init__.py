"""List-wise online RL: list data, the user-response model and the batched Gymnasium simulator.

Importing this package registers ``rlrec/ListRec-v0`` with Gymnasium (entry points given as strings,
so torch and the simulator load only when an environment is made), after which
``gymnasium.make_vec("rlrec/ListRec-v0", num_envs=...)`` and ``gymnasium.make(...)`` work.
"""

from __future__ import annotations

ENV_ID = "rlrec/ListRec-v0"


def register_envs() -> None:
    """Register ``rlrec/ListRec-v0`` with Gymnasium (idempotent)."""
    import gymnasium

    if ENV_ID not in gymnasium.registry:
        gymnasium.register(
            id=ENV_ID,
            entry_point="rlrec.sim.gym_env:ListRecEnv",
            vector_entry_point="rlrec.sim.gym_env:ListRecVectorEnv",
        )


register_envs()
