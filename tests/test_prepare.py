"""prepare → dataset directory: encoding, splits, popularity, manifest, determinism, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from conftest import ML100K, require_shared, ts, write_lines

import rlrec.data.parts as parts_module
from rlrec.data.dataset import PreparedDataset
from rlrec.data.filters import FilterConfig
from rlrec.data.loaders.generic import ColumnMap, GenericSource
from rlrec.data.loaders.recbole import RecBoleSource
from rlrec.data.loaders.synthetic import SyntheticSource
from rlrec.data.loaders.yoochoose import YooChooseSource
from rlrec.data.parts import RowGroupWriter
from rlrec.data.prepare import BYTES_PER_EVENT, PrepareConfig, parse_size, prepare
from rlrec.data.splits import SplitConfig, cut_points
from rlrec.data.stats import dataset_stats
from rlrec.data.synthetic import SynthConfig, write_synthetic
from rlrec.errors import ConfigError, DataFormatError, OutputExistsError, RlrecError


def all_events(ds: PreparedDataset) -> pl.DataFrame:
    return pl.concat(
        [ds.frame(s).with_columns(pl.lit(s).alias("split")) for s in ("train", "val", "test")]
    )


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "raw"
    write_synthetic(SynthConfig(n_sessions=300, n_items=80, n_topics=4, seed=1), out)
    return out


THIRDS = SplitConfig(ratios=(0.34, 0.33, 0.33))  # one session per split of the 3-session fixture


def test_yoochoose_encoding_order_pad_and_popularity(yoochoose_dir: Path, tmp_path: Path) -> None:
    cfg = PrepareConfig(
        source=YooChooseSource(path=yoochoose_dir, sample_sessions=None), split=THIRDS
    )
    manifest = prepare(cfg, tmp_path / "ds")
    ds = PreparedDataset.load(tmp_path / "ds")
    raw = [214536500, 214536502, 214536506, 214662742, 214825110, 214999999]
    assert ds.items.get_column("item_id").to_list() == raw  # LabelEncoder order over clicks+buys
    assert ds.items.get_column("item").to_list() == list(range(6))
    assert ds.n_items == ds.pad_id == manifest["pad_id"] == 6
    events = all_events(ds).sort("session_id", maintain_order=True)
    s1 = events.filter(pl.col("session_id") == 1)
    assert s1.get_column("item").to_list() == [1, 0, 0, 2]
    assert s1.get_column("is_buy").to_list() == [0, 0, 1, 0]
    counts = ds.items.get_column("count_all").to_list()
    assert counts == [4, 2, 2, 2, 1, 1] and sum(counts) == manifest["counts"]["events"] == 12
    train_events = ds.frame("train").group_by("item").len()
    expected = dict(zip(*train_events.get_columns(), strict=True))
    got = dict(zip(ds.items.get_column("item"), ds.items.get_column("count_train"), strict=True))
    assert all(got[i] == expected.get(i, 0) for i in got)
    assert manifest["counts"] == {
        "raw_events": 12,
        "sessions": 3,
        "events": 12,
        "clicks": 10,
        "purchases": 2,
    }
    stats = dataset_stats(ds)
    assert stats["all"]["purchase_in_window"] == 0.5  # 214536500 was clicked before; 214999999 not


def test_identical_inputs_give_identical_bytes(synth_dir: Path, tmp_path: Path) -> None:
    cfg = PrepareConfig(source=SyntheticSource(path=synth_dir))
    prepare(cfg, tmp_path / "a")
    prepare(cfg, tmp_path / "b")
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["inputs"][0]["name"] == "events.parquet"
    assert set(manifest["files"]) == {
        "train.parquet",
        "val.parquet",
        "test.parquet",
        "items.parquet",
        "splits.parquet",
    }


@pytest.mark.parametrize("n", [1, 9, 10, 11, 943, 195_523])
def test_cut_points_follow_the_reference(n: int) -> None:
    a, b = cut_points(n, (0.8, 0.1, 0.1))
    assert (a, b) == (int(n * 0.8), int(n * 0.9))


@pytest.mark.parametrize("seed", [0, 7])
def test_random_split_is_the_seeded_reference_shuffle(
    synth_dir: Path, tmp_path: Path, seed: int
) -> None:
    cfg = PrepareConfig(source=SyntheticSource(path=synth_dir), seed=seed)
    prepare(cfg, tmp_path / "ds")
    ds = PreparedDataset.load(tmp_path / "ds")
    ids = np.sort(all_events(ds).get_column("session_id").unique().to_numpy())
    np.random.RandomState(seed).shuffle(ids)
    a, b = cut_points(len(ids), (0.8, 0.1, 0.1))
    for name, part in (("train", ids[:a]), ("val", ids[a:b]), ("test", ids[b:])):
        assert sorted(ds.frame(name).get_column("session_id").unique().to_list()) == sorted(part)


def test_seeds_change_the_split_and_splits_are_disjoint(synth_dir: Path, tmp_path: Path) -> None:
    sets = {}
    for seed in (0, 1):
        prepare(
            PrepareConfig(source=SyntheticSource(path=synth_dir), seed=seed), tmp_path / str(seed)
        )
        ds = PreparedDataset.load(tmp_path / str(seed))
        parts = [
            set(ds.frame(s).get_column("session_id").unique()) for s in ("train", "val", "test")
        ]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        assert len(parts[0] | parts[1] | parts[2]) == 300
        assert [len(p) for p in parts] == [240, 30, 30]
        sets[seed] = parts[2]
    assert sets[0] != sets[1]


def test_time_split_orders_sessions_by_start(synth_dir: Path, tmp_path: Path) -> None:
    cfg = PrepareConfig(source=SyntheticSource(path=synth_dir), split=SplitConfig(kind="time"))
    prepare(cfg, tmp_path / "ds")
    ds = PreparedDataset.load(tmp_path / "ds")
    start = {
        s: ds.frame(s).group_by("session_id").agg(pl.col("timestamp").min())
        for s in ("train", "val", "test")
    }
    assert start["train"]["timestamp"].max() <= start["val"]["timestamp"].min()
    assert start["val"]["timestamp"].max() <= start["test"]["timestamp"].min()


def test_split_file_reproduces_a_split(synth_dir: Path, tmp_path: Path) -> None:
    prepare(PrepareConfig(source=SyntheticSource(path=synth_dir), seed=3), tmp_path / "a")
    again = PrepareConfig(
        source=SyntheticSource(path=synth_dir),
        split=SplitConfig(kind="file", file=tmp_path / "a" / "splits.parquet"),
    )
    prepare(again, tmp_path / "b")
    for name in ("train.parquet", "val.parquet", "test.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    # the same assignment written by hand as CSV
    csv = tmp_path / "split.csv"
    pl.read_parquet(tmp_path / "a" / "splits.parquet").write_csv(csv)
    prepare(again.model_copy(update={"split": SplitConfig(kind="file", file=csv)}), tmp_path / "c")
    assert (tmp_path / "a" / "test.parquet").read_bytes() == (
        tmp_path / "c" / "test.parquet"
    ).read_bytes()


def test_failed_prepare_leaves_nothing(synth_dir: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial.csv"
    partial.write_text("session_id,split\n1,train\n2,test\n")
    cfg = PrepareConfig(
        source=SyntheticSource(path=synth_dir), split=SplitConfig(kind="file", file=partial)
    )
    with pytest.raises(DataFormatError, match=r"298 session\(s\) of the data have no split"):
        prepare(cfg, tmp_path / "out" / "ds")
    assert not (tmp_path / "out").exists()  # failed before anything was written


def test_existing_output_is_kept_unless_overwrite(synth_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    cfg = PrepareConfig(source=SyntheticSource(path=synth_dir))
    prepare(cfg, out)
    (out / "extra.txt").write_text("added later")
    with pytest.raises(OutputExistsError):
        prepare(cfg, out)
    assert (out / "extra.txt").exists()
    prepare(cfg, out, overwrite=True)
    assert not (out / "extra.txt").exists() and (out / "manifest.json").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary, backup or lock left
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(RlrecError, match="not a directory rlrec made"):
        prepare(cfg, foreign, overwrite=True)
    assert (foreign / "precious.txt").read_text() == "keep me"


def test_load_rejects_corruption_and_foreign_directories(synth_dir: Path, tmp_path: Path) -> None:
    prepare(PrepareConfig(source=SyntheticSource(path=synth_dir)), tmp_path / "ds")
    with pytest.raises(DataFormatError, match="missing manifest"):
        PreparedDataset.load(tmp_path)
    with (tmp_path / "ds" / "val.parquet").open("ab") as fh:
        fh.write(b"x")
    with pytest.raises(DataFormatError, match=r"val.parquet: file content does not match"):
        PreparedDataset.load(tmp_path / "ds")
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    manifest["format_version"] = 99
    (tmp_path / "ds" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataFormatError, match="format version 99 is not supported"):
        PreparedDataset.load(tmp_path / "ds")
    (tmp_path / "ds" / "manifest.json").write_text("{not json")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        PreparedDataset.load(tmp_path / "ds")


def test_real_ml100k_protocol(tmp_path: Path) -> None:
    """User = session, rating ≥ 4 = purchase, users split 8:1:1 with seed 0, ties in file order."""
    require_shared(ML100K)
    manifest = prepare(PrepareConfig(source=RecBoleSource(path=ML100K)), tmp_path / "ml")
    assert manifest["counts"] == {
        "raw_events": 100_000,
        "sessions": 943,
        "events": 100_000,
        "clicks": 44_625,
        "purchases": 55_375,
    }
    assert manifest["n_items"] == 1682
    assert [manifest["splits"][s]["sessions"] for s in ("train", "val", "test")] == [754, 94, 95]
    ds = PreparedDataset.load(tmp_path / "ml")
    raw = pl.read_csv(
        ML100K / "ml-100k.inter",
        separator="\t",
        has_header=False,
        skip_rows=1,
        new_columns=["user", "item", "rating", "t"],
    )
    user = ds.frame("train").get_column("session_id")[0]
    expected = raw.filter(pl.col("user") == user).sort("t", maintain_order=True).get_column("item")
    got = ds.frame("train").filter(pl.col("session_id") == user).get_column("item")
    assert ds.items.get_column("item_id").gather(got).to_list() == expected.to_list()
    stats = dataset_stats(ds)
    assert (
        stats["all"]["sequences"] == 943
        and stats["training"]["transitions"] == manifest["splits"]["train"]["events"]
    )


def test_stats_count_the_batches_training_runs(synth_dir: Path, tmp_path: Path) -> None:
    """An epoch is floor(transitions / batch) steps: the trainer drops the last partial batch."""
    from rlrec.data.transitions import Transitions

    prepare(PrepareConfig(source=SyntheticSource(path=synth_dir)), tmp_path / "ds")
    ds = PreparedDataset.load(tmp_path / "ds")
    n = len(Transitions(ds.split("train"), ds.state_size, ds.pad_id))
    stats = dataset_stats(ds, batch_size=7)
    assert n % 7 and stats["training"]["batches_per_epoch"] == n // 7


# ------------------------------------------------------------------- out of core (--memory-limit)


def write_yoochoose_log(directory: Path, n_sessions: int, seed: int) -> Path:
    """A YooChoose-shaped raw log: short and long sessions, ids out of order, many timestamp ties
    (whole seconds), duplicate rows, buys in a quarter of the sessions (some tied with a click)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, n_sessions)
    ids = rng.permutation(np.arange(1, 4 * n_sessions, 4))[:n_sessions]
    session = np.repeat(ids, lengths)
    second = rng.integers(0, 40, len(session))
    item = 214_000_000 + rng.zipf(1.5, len(session)) % 300
    clicks = [f"{s},{ts(int(t))},{i},0" for s, t, i in zip(session, second, item, strict=True)]
    clicks += clicks[: len(clicks) // 20]  # duplicate rows, appended (later in source order)
    buyers = rng.choice(ids, n_sessions // 4, replace=False)
    buys = [
        f"{s},{ts(int(rng.integers(0, 40)))},{214_000_000 + int(rng.integers(0, 320))},5,1"
        for s in buyers
    ]
    write_lines(directory / "yoochoose-clicks.dat", clicks)
    write_lines(directory / "yoochoose-buys.dat", buys)
    return directory


def same_directory(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


OUT_OF_CORE_CASES = {
    "yoochoose sampled": lambda raw: YooChooseSource(path=raw["yc"], sample_sessions=300),
    "yoochoose unsampled": lambda raw: YooChooseSource(path=raw["yc"], sample_sessions=None),
    "synthetic": lambda raw: SyntheticSource(path=raw["synth"]),
    "generic parts": lambda raw: GenericSource(
        path=raw["parts"],
        columns=ColumnMap(session="s", item="i", timestamp="t", is_buy="b"),
        timestamp_unit="ms",
    ),
}


@pytest.fixture(scope="module")
def raw_logs(tmp_path_factory: pytest.TempPathFactory, synth_dir: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ooc")
    events = pl.read_parquet(synth_dir / "events.parquet")
    parts = root / "parts"
    for k, lo in enumerate(range(0, events.height, 700)):
        folder = parts / f"day={k}"
        folder.mkdir(parents=True)
        events.slice(lo, 700).select(
            pl.col("session_id").cast(pl.String).alias("s"),  # text ids, integers: read as Int64
            pl.col("item_id").alias("i"),
            pl.col("timestamp").alias("t"),
            pl.col("is_buy").alias("b"),
        ).write_parquet(folder / f"part-{k:05d}.parquet")
    return {
        "yc": write_yoochoose_log(root / "yc", 1_000, seed=3),
        "synth": synth_dir,
        "parts": parts,
    }


@pytest.mark.parametrize("case", list(OUT_OF_CORE_CASES))
@pytest.mark.parametrize(
    "split, filters",
    [
        (SplitConfig(), None),
        (
            SplitConfig(kind="time", ratios=(0.6, 0.2, 0.2)),
            FilterConfig(min_session_events=3, min_item_events=4, iterate=True),
        ),
        (SplitConfig(), FilterConfig(min_session_events=2, min_item_events=6)),
    ],
    ids=["random split", "time split, iterated filters", "filters once"],
)
def test_out_of_core_prepare_is_byte_identical(
    case: str,
    split: SplitConfig,
    filters: FilterConfig | None,
    raw_logs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Prepared in parts of ~150 events (over ten parts, sessions cut at range boundaries) the
    dataset is the in-memory one byte for byte, row groups of 97 rows included."""
    monkeypatch.setattr(parts_module, "ROW_GROUP", 97)
    cfg = PrepareConfig(source=OUT_OF_CORE_CASES[case](raw_logs), split=split, filters=filters)
    whole = prepare(cfg, tmp_path / "whole")
    seen: list[str] = []
    parted = prepare(
        cfg, tmp_path / "parts", memory_limit=150 * BYTES_PER_EVENT, progress=seen.append
    )
    assert whole == parted
    same_directory(tmp_path / "whole", tmp_path / "parts")
    n_parts = int(next(m for m in seen if " events in " in m).split(" in ")[1].split()[0])
    assert n_parts >= 10
    assert not any(p.name.startswith(".") and p.is_dir() for p in (tmp_path / "parts").iterdir())
    files = pq.ParquetFile(tmp_path / "parts" / "train.parquet")
    assert files.metadata.num_row_groups == -(-files.metadata.num_rows // 97)


def test_row_groups_do_not_depend_on_how_rows_arrive(tmp_path: Path) -> None:
    rows = pl.DataFrame({"a": np.arange(1000), "b": np.arange(1000) % 7})
    paths = []
    for k, cuts in enumerate(([1000], [1, 998, 1], [333] * 3 + [1])):
        paths.append(tmp_path / f"{k}.parquet")
        writer = RowGroupWriter(paths[-1], rows)
        lo = 0
        for n in cuts:
            writer.write(rows.slice(lo, n))
            lo += n
        writer.close()
    assert paths[0].read_bytes() == paths[1].read_bytes() == paths[2].read_bytes()
    assert pl.read_parquet(paths[2]).equals(rows)


def test_out_of_core_errors_name_the_line_and_the_source(
    raw_logs: dict[str, Path], tmp_path: Path
) -> None:
    raw = tmp_path / "yc"
    raw.mkdir()
    clicks = (raw_logs["yc"] / "yoochoose-clicks.dat").read_text().splitlines()
    clicks[1500] = "17,2014-04-07T10:00:00.000Z,notanumber,0"
    write_lines(raw / "yoochoose-clicks.dat", clicks)
    (raw / "yoochoose-buys.dat").write_text((raw_logs["yc"] / "yoochoose-buys.dat").read_text())
    cfg = PrepareConfig(source=YooChooseSource(path=raw, sample_sessions=None))
    with pytest.raises(DataFormatError, match=r"yoochoose-clicks.dat:1501: column 'item_id'"):
        prepare(cfg, tmp_path / "out", memory_limit=40 * BYTES_PER_EVENT)
    assert not (tmp_path / "out").exists()
    csv = write_lines(tmp_path / "log.csv", ["session_id,item_id,timestamp", "1,2,3", "1,3,4"])
    in_memory = PrepareConfig(source=GenericSource(path=csv))
    with pytest.raises(ConfigError, match="generic source is read into memory"):
        prepare(in_memory, tmp_path / "csv", memory_limit=10**9)


@pytest.mark.parametrize(
    "text, size",
    [("6GB", 6 * 10**9), ("512 MiB", 512 * 2**20), ("2e9", 2 * 10**9), ("1.5kb", 1500)],
)
def test_memory_limit_sizes(text: str, size: int) -> None:
    assert parse_size(text, "--memory-limit") == size


@pytest.mark.parametrize("text", ["", "6 parsecs", "-1GB", "0", "GB"])
def test_memory_limit_rejects_what_is_not_a_size(text: str) -> None:
    with pytest.raises(ConfigError, match="--memory-limit"):
        parse_size(text, "--memory-limit")
