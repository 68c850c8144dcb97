"""Every shipped config file validates against its model."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlrec.config import build_config
from rlrec.data.prepare import PrepareConfig
from rlrec.data.synthetic import SynthConfig
from rlrec.demo import CONFIGS as DEMO_CONFIGS

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "data"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_data_config_is_valid(path: Path) -> None:
    if path.name == "synthetic.yaml":
        assert build_config(SynthConfig, path=path) == SynthConfig()  # documents the defaults
    else:
        cfg = build_config(PrepareConfig, path=path, cli={"source": {"path": "raw"}})
        assert cfg.split.ratios == (0.8, 0.1, 0.1)


TRAIN_CONFIGS = sorted(
    [
        p
        for p in (CONFIGS.parent).glob("*/*.yaml")
        if p.parent.name != "data" and not p.stem.endswith("_search")
    ]
    + list(DEMO_CONFIGS.glob("*.yaml"))
)
SEARCH_CONFIGS = sorted(CONFIGS.parent.glob("*/*_search.yaml"))


@pytest.mark.parametrize("path", SEARCH_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_search_config_is_valid(path: Path) -> None:
    """A sweep config with a ``search:`` section: its base trains, and every searched key at both
    ends of its range (or each choice) is a valid setting of that base."""
    from rlrec.experiments.sweep import SweepConfig
    from rlrec.train.config import TrainConfig

    cfg = build_config(SweepConfig, path=path)
    base = CONFIGS.parents[1] / cfg.base  # relative to the repository's root, where users run it
    assert cfg.search is not None and base.is_file()
    for key, param in cfg.search.space.items():
        for value in param.choices or [param.low, param.high]:
            build_config(TrainConfig, path=base, overrides=[f"{key}={value}"])


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_train_config_is_valid(path: Path) -> None:
    from rlrec.train.config import TrainConfig

    cfg = build_config(TrainConfig, path=path)
    assert cfg.train.batch_size == 256 and cfg.encoder.hidden == 64
    if path.parent.name in ("rc15", "retailrocket"):
        assert (
            cfg.objective.lr == (0.01 if path.parent.name == "rc15" else 0.005)
            or cfg.objective.kind == "dqn"
        )
        assert cfg.objective.kind != "sa2c" or cfg.objective.lr_phase2 == 0.001


def test_every_paper_table_cell_has_a_config() -> None:
    names = {f"{p.parent.name}/{p.stem}" for p in TRAIN_CONFIGS}
    for dataset in ("rc15", "retailrocket"):
        for encoder in ("gru", "caser", "nextitnet", "sasrec"):
            for method in ("supervised", "sqn", "sac", "snqn", "sa2c"):
                assert f"{dataset}/{method}_{encoder}" in names
        assert {
            f"{dataset}/table4_dqn_gru_qhead",
            f"{dataset}/table4_snqn_gru_qhead",
            f"{dataset}/table5_sa2c_gru_offpolicy",
        } <= names
    assert len([n for n in names if n.startswith("rc15/table6_")]) == 8


CCQL_CONFIGS = sorted((CONFIGS.parent / "ccql").glob("*/*.yaml"))


@pytest.mark.parametrize("path", CCQL_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_ccql_configs_carry_the_code_settings(path: Path) -> None:
    """P-CCQL configs (spec-offline §D.2): per-dataset CCQL settings, legacy flags on *_legacy."""
    from rlrec.train.config import TrainConfig

    cfg = build_config(TrainConfig, path=path)
    obj, dataset = cfg.objective, path.parent.name
    assert cfg.name == path.stem and cfg.train.keep_top == 5 and cfg.encoder.hidden == 64
    assert cfg.train.keep_top_by == "each_metric" and cfg.train.eval_every == 2000
    if obj.kind == "ccql":
        rr = dataset == "retailrocket"
        assert cfg.train.batch_size == (512 if rr else 256)
        assert (obj.lr, obj.lr_phase2, obj.warmup_steps) == (
            (0.01, 0.01, 50_000) if rr else (0.005, 0.001, 15_000)
        )
        assert cfg.train.grad_clip_value == 1.0 and obj.cql_alpha == 0.01
    legacy = path.stem.endswith("_legacy")
    if obj.kind in ("sac", "co", "ccql"):
        assert (obj.sac_weighting == "legacy_batch_mean") == legacy
        assert obj.target_dropout == legacy
    if obj.kind == "ccql":
        assert (obj.cql_variant == "legacy") == legacy
    if obj.kind in ("co", "ccql"):
        assert (obj.contrastive.augmentation == "permutation_legacy") == legacy


def test_every_ccql_table_row_has_its_configs() -> None:
    import yaml

    paper = yaml.safe_load((CONFIGS.parents[1] / "reproductions" / "paper_ccql.yaml").read_text())
    names = {f"{p.parent.name}/{p.stem}" for p in CCQL_CONFIGS}
    for table in paper["tables"].values():
        for row in table["rows"]:
            assert set(row["configs"]) <= names, row["label"]
            assert len(row["paper"]) == len(table["columns"])


@pytest.mark.parametrize(
    "path", sorted(CONFIGS.parent.glob("ccql/*/*_legacy.yaml")), ids=lambda p: str(p.parent.name)
)
def test_legacy_ccql_configs_use_the_authors_contrastive_loss(path: Path) -> None:
    """The code's SASRec-CO uses the TS2Vec-style loss on every dataset; its CCQL uses NT-Xent
    ("InfoNCECosine") on RC15 and the TS2Vec-style loss on RetailRocket."""
    from rlrec.train.config import TrainConfig

    obj = build_config(TrainConfig, path=path).objective
    if obj.kind not in ("co", "ccql"):
        return
    expected = "nt_xent" if obj.kind == "ccql" and path.parent.name == "rc15" else "ts2vec_legacy"
    assert obj.contrastive.loss == expected
    assert obj.contrastive.augmentation == "permutation_legacy"
    if obj.kind == "ccql":  # the code samples negatives from the whole catalogue
        assert not obj.exclude_history
        paper = build_config(TrainConfig, path=path.with_name("sasrec_ccql.yaml")).objective
        assert paper.exclude_history  # P-CCQL: items the user did not interact with


SIM = CONFIGS.parent / "sim"


@pytest.mark.parametrize(
    "path", sorted(SIM.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_shipped_sim_config_is_valid(path: Path) -> None:
    from rlrec.online.config import OnlineTrainConfig
    from rlrec.sim.prepare import ListPrepareConfig
    from rlrec.sim.urm_train import URMTrainConfig

    if path.parent.name == "data":
        raw = {} if path.name == "synthetic.yaml" else {"source": {"path": "raw"}}
        build_config(ListPrepareConfig, path=path, cli=raw)
    elif path.parent.name == "urm":
        build_config(URMTrainConfig, path=path)
    else:
        build_config(OnlineTrainConfig, path=path)


def test_the_parity_agent_trains_in_worlds_of_parity_urms() -> None:
    """``hac_code_parity`` restores every reference behaviour, its users' URMs included."""
    from rlrec.online.config import OnlineTrainConfig
    from rlrec.sim.urm_train import URMTrainConfig

    agent = build_config(OnlineTrainConfig, path=SIM / "agents" / "hac_code_parity.yaml")
    urms = {
        build_config(URMTrainConfig, path=p).out: build_config(URMTrainConfig, path=p)
        for p in SIM.glob("urm/*.yaml")
    }
    for path in (agent.urm, agent.eval_urm):
        urm = urms[path]
        assert urm.urm_legacy_double_sigmoid and urm.keep == "last"
        assert not urm.urm.key_padding_mask
        assert urm.data == agent.data  # the reference's world: random codes, the paper's URM
        assert not (urm.urm.item_bias or urm.urm.engagement or urm.urm.item_ids)
    from rlrec.sim.prepare import ListPrepareConfig

    parity = build_config(
        ListPrepareConfig,
        path=SIM / "data" / "ml100k_parity.yaml",
        cli={"source": {"path": "raw"}},
    )
    assert parity.source.features == "random_codes"
