"""Online list-wise RL in the simulator (P-HAC; docs/online.md): the hyper-actor, critics, one
replay buffer, the agents (HAC, DDPG, TD3, A2C, PG-RA, Online SL, Offline SL), one training loop
and the evaluation protocol."""
