"""Train several configs in one process group: ``python tests/dp_worker.py A.yaml B.yaml ...``
alone, or under ``torchrun --nproc_per_node=2`` (each config then runs data-parallel in turn)."""

from __future__ import annotations

import os
import sys

import torch.distributed as dist

from rlrec.config import build_config
from rlrec.train.config import TrainConfig
from rlrec.train.trainer import Trainer

if __name__ == "__main__":
    parallel = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if parallel:
        dist.init_process_group("gloo")
    for path in sys.argv[1:]:
        Trainer(build_config(TrainConfig, path=path)).fit()
    if parallel:
        dist.destroy_process_group()
