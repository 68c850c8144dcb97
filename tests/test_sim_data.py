"""List data (spec-online §A): loaders on tiny raw files, the real ML-100K, splits, prepare."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from conftest import ML100K, require_shared
from sim_helpers import TINY_SYNTH, single_thread, write_text

from rlrec.errors import DataFormatError, OutputExistsError
from rlrec.sim.dataset import ListDataset, pad_left
from rlrec.sim.loaders.kuairand import KuaiRandListSource
from rlrec.sim.loaders.movielens import MovieLensListSource, RecBoleListSource
from rlrec.sim.loaders.obd import OBDListSource
from rlrec.sim.loaders.rl4rs import HEADER as RL4RS_HEADER
from rlrec.sim.loaders.rl4rs import RL4RSListSource
from rlrec.sim.loaders.synthetic import SyntheticListSource
from rlrec.sim.prepare import ListPrepareConfig, prepare_lists
from rlrec.sim.splits import ListSplitConfig, split_records


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    with single_thread():
        yield


def rows(df: pl.DataFrame) -> list[tuple]:
    """(user, seq, timestamp, history, exposure, labels) per record, in (user, seq) order."""
    df = df.sort(["user_id", "seq_idx"])
    return [
        (u, s, t, h, e, y)
        for u, s, t, h, e, y in df.select(
            "user_id", "seq_idx", "timestamp", "history", "exposure", "labels"
        ).iter_rows()
    ]


# ------------------------------------------------------------------------------------- ML-1M


@pytest.fixture
def ml1m_dir(tmp_path: Path) -> Path:
    """User 2 rates 7 movies (a timestamp tie, out-of-order rows); user 1 rates 3."""
    d = tmp_path / "ml-1m"
    write_text(
        d / "ratings.dat",
        [
            "1::10::4::10",
            "2::30::4::100",
            "2::10::2::100",
            "2::20::5::50",
            "2::40::4::300",
            "1::20::3::20",
            "2::50::3::200",
            "2::60::5::400",
            "1::30::5::30",
            "2::70::4::500",
        ],
    )
    write_text(d / "users.dat", ["1::F::1::10::48067", "2::M::56::16::70072"])
    write_text(
        d / "movies.dat",
        [
            "10::Toy Story (1995)::Animation|Children's|Comedy",
            "20::Misérables, Les (1995)::Drama",
            "30::Heat (1995)::Action|Crime|Thriller",
            "40::Sabrina (1954)::Comedy|Romance",
            "50::Twelve Monkeys (1995)::Drama|Sci-Fi",
            "60::Babe (1995)::Children's|Comedy|Drama",
            "70::Dead Man Walking (1995)::Drama",
        ],
        encoding="latin-1",
    )
    return d


class TestMovieLens:
    def test_lists_labels_histories_and_ids(self, ml1m_dir: Path) -> None:
        tables = MovieLensListSource(path=ml1m_dir, slate_size=3).load(seed=0)
        # items 10..70 → 1..7 (70 only in a dropped trailing list but still in the catalogue)
        assert tables.items.get_column("raw_id").to_list() == [10, 20, 30, 40, 50, 60, 70]
        assert tables.users.get_column("raw_id").to_list() == [1, 2]
        assert rows(tables.records) == [
            (0, 0, 30_000, [], [1, 2, 3], [1, 0, 1]),
            # stable sort: 20@50, then 30 and 10 tied at 100 in file order; rating 2 → negative
            (1, 0, 100_000, [], [2, 3, 1], [1, 1, 0]),
            # history = positives of the earlier list only; rating 3 → negative
            (1, 1, 400_000, [2, 3], [5, 4, 6], [0, 1, 1]),
        ]

    def test_default_k10_drops_partial_lists(self, ml1m_dir: Path) -> None:
        tables = MovieLensListSource(path=ml1m_dir).load(seed=0)
        assert tables.records.height == 0

    def test_drop_first_row_parity_flag(self, ml1m_dir: Path) -> None:
        src = MovieLensListSource(path=ml1m_dir, slate_size=3, drop_first_row=True)
        tables = src.load(seed=0)
        assert tables.notes["ratings"] == 9
        assert tables.records.get_column("user_id").to_list() == [1, 1]  # user 1 has only 2 left

    def test_random_codes_are_seeded(self, ml1m_dir: Path) -> None:
        a = MovieLensListSource(path=ml1m_dir, slate_size=3).load(seed=0)
        b = MovieLensListSource(path=ml1m_dir, slate_size=3).load(seed=0)
        c = MovieLensListSource(path=ml1m_dir, slate_size=3).load(seed=1)
        assert a.items.equals(b.items) and not a.items.equals(c.items)
        x = np.array(a.items.get_column("features").to_list())
        assert x.shape == (7, 32)

    def test_side_info(self, ml1m_dir: Path) -> None:
        src = MovieLensListSource(path=ml1m_dir, slate_size=3, features="side_info")
        tables = src.load(seed=0)
        users = tables.users.get_column("features").to_list()
        # gender (F, M), age (1, 56), occupation (10, 16) one-hot
        assert users == [[1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1]]
        items = np.array(tables.items.get_column("features").to_list())
        genres = ["Action", "Animation", "Children's", "Comedy", "Crime", "Drama", "Romance"]
        genres += ["Sci-Fi", "Thriller"]
        assert items.shape == (7, len(genres) + 1)
        assert items[1, : len(genres)].tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 0]  # Misérables: Drama
        years = np.array([1995, 1995, 1995, 1954, 1995, 1995, 1995], dtype=float)
        expected = (years - years.mean()) / years.std()
        np.testing.assert_allclose(items[:, -1], expected, rtol=1e-6)

    def test_malformed_rating_line_is_named(self, ml1m_dir: Path) -> None:
        path = ml1m_dir / "ratings.dat"
        path.write_text(path.read_text().replace("2::40::4::300", "2::40::x::300"))
        with pytest.raises(DataFormatError, match=r"ratings.dat:5: column 'rating'"):
            MovieLensListSource(path=ml1m_dir, slate_size=3).load(seed=0)


# ------------------------------------------------------------------------------------ ML-100K


def test_ml100k_real_data_matches_an_independent_pipeline() -> None:
    require_shared(ML100K)
    tables = RecBoleListSource(path=ML100K).load(seed=0)
    lines = (ML100K / "ml-100k.inter").read_text().splitlines()[1:]
    by_user: dict[int, list[tuple[float, int, int]]] = {}
    for row, line in enumerate(lines):
        u, i, r, t = line.split("\t")
        by_user.setdefault(int(u), []).append((float(t), row, int(i), int(float(r) > 3)))
    expected_records = sum(len(v) // 10 for v in by_user.values())
    assert tables.users.height == 943 and tables.items.height == 1682
    assert tables.records.height == expected_records == 9596
    # user with raw id 1: its first list = its 10 earliest ratings (ties in file order)
    first = sorted(by_user[1])[:10]
    raw_items = tables.items.get_column("raw_id").to_list()
    rec = tables.records.filter((pl.col("user_id") == 0) & (pl.col("seq_idx") == 0)).row(
        0, named=True
    )
    assert [raw_items[i - 1] for i in rec["exposure"]] == [int(x[2]) for x in first]
    assert rec["labels"] == [x[3] for x in first]
    positives = sum(sum(x[3] for x in sorted(v)[: len(v) // 10 * 10]) for v in by_user.values())
    assert int(tables.records.get_column("labels").list.sum().sum()) == positives == 53273


def test_ml100k_side_info_shapes() -> None:
    require_shared(ML100K)
    tables = RecBoleListSource(path=ML100K, features="side_info").load(seed=0)
    users = np.array(tables.users.get_column("features").to_list())
    items = np.array(tables.items.get_column("features").to_list())
    assert users.shape == (943, 1 + 2 + 21)  # age, gender, 21 occupations
    assert items.shape[0] == 1682 and np.isfinite(items).all()


# ----------------------------------------------------------------------------------- KuaiRand

KR_HEADER = (
    "user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,is_comment,is_forward,"
    "is_hate,long_view,play_time_ms,duration_ms,profile_stay_time,comment_stay_time,"
    "is_profile_enter,is_rand,tab"
)


def kr_row(user: int, video: int, time_ms: int, play: int, duration: int) -> str:
    return f"{user},{video},20220408,1000,{time_ms},1,0,0,0,0,0,0,{play},{duration},0,0,0,0,1"


@pytest.fixture
def kuairand_dir(tmp_path: Path) -> Path:
    d = tmp_path / "kr"
    write_text(
        d / "log_standard_4_08_to_4_21_1k.csv",
        [
            KR_HEADER,
            kr_row(7, 100, 5, 900, 1000),  # ratio 0.9 → positive
            kr_row(7, 200, 6, 1000, 1000),  # video 200 occurs twice only → dropped
            kr_row(7, 300, 6, 800, 1000),  # ratio 0.8 is not > 0.8 → negative
            kr_row(3, 100, 1, 0, 0),  # zero duration → negative, counted
        ],
    )
    write_text(
        d / "log_standard_4_22_to_5_08_1k.csv",
        [
            KR_HEADER,
            kr_row(7, 300, 6, 5000, 1000),  # tie with an earlier-file row: comes after it
            kr_row(7, 100, 2, 10, 1000),
            kr_row(3, 300, 2, 2000, 1000),
            kr_row(3, 200, 3, 2000, 1000),
            kr_row(3, 100, 4, 1000, 1000),
        ],
    )
    return d


class TestKuaiRand:
    def test_pipeline(self, kuairand_dir: Path) -> None:
        src = KuaiRandListSource(path=kuairand_dir, slate_size=2, min_item_count=3)
        tables = src.load(seed=0)
        assert tables.items.get_column("raw_id").to_list() == [100, 300]  # 200 filtered out
        assert tables.users.get_column("raw_id").to_list() == [3, 7]
        assert tables.notes["rows_with_nonpositive_duration"] == 1
        assert tables.notes["log_rows"] == 9 and tables.notes["rows_after_item_filter"] == 7
        # user 3: 100@1 (zero duration), 300@2 (ratio 2), 100@4 (ratio 1) → one list + 1 dropped
        # user 7: 100@2 (0.01), 100@5 (0.9), 300@6 (0.8, file 1), 300@6 (5.0, file 2) → two lists
        assert rows(tables.records) == [
            (0, 0, 2, [], [1, 2], [0, 1]),
            (1, 0, 5, [], [1, 1], [0, 1]),
            (1, 1, 6, [1], [2, 2], [0, 1]),
        ]

    def test_default_filter_is_50_occurrences(self, kuairand_dir: Path) -> None:
        with pytest.raises(DataFormatError, match="no video occurs at least 50 times"):
            KuaiRandListSource(path=kuairand_dir, slate_size=2).load(seed=0)

    def test_missing_column(self, kuairand_dir: Path) -> None:
        path = kuairand_dir / "log_standard_4_08_to_4_21_1k.csv"
        text = path.read_text().replace("duration_ms", "duration")
        path.write_text(text)
        with pytest.raises(DataFormatError, match=r":1: header lacks column\(s\) duration_ms"):
            KuaiRandListSource(path=kuairand_dir, min_item_count=1).load(seed=0)


# ------------------------------------------------------------------------------------- RL4RS


def rl4rs_line(ts: int, session: int, seq: int, items: str, labels: str, hist: str) -> str:
    return "@".join([str(ts), str(session), str(seq), items, labels, hist, "0,1,3", "x", "1"])


NINE = "1,2,3,4,5,6,7,8,9"


@pytest.fixture
def rl4rs_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rl4rs"
    write_text(
        d / "item_info.csv",
        ["item_id item_vec price location special_item"]
        + [f"{i} {i}.0,{-i}.5 10 1 0" for i in range(12, 0, -1)],
    )
    write_text(
        d / "rl4rs_dataset_b_rl.csv",
        [
            "@".join(RL4RS_HEADER),
            rl4rs_line(50, 16, 1, NINE, "1,1,1,0,0,0,0,0,1", "11,12"),
            rl4rs_line(60, 16, 2, "9,8,7,6,5,4,3,2,1", "0,0,0,0,0,0,0,0,0", "11,12,1"),
            rl4rs_line(10, 4, 1, "2,3,4,5,6,7,8,9,10", "1,1,1,1,1,1,1,1,1", ""),
        ],
    )
    return d


class TestRL4RS:
    def test_mapping(self, rl4rs_dir: Path) -> None:
        tables = RL4RSListSource(path=rl4rs_dir).load(seed=0)
        assert tables.items.get_column("raw_id").to_list() == list(range(1, 13))
        x = np.array(tables.items.get_column("features").to_list())
        assert x[2].tolist() == [3.0, -3.5]  # rows re-ordered by item id
        assert tables.users.get_column("raw_id").to_list() == [4, 16]
        np.testing.assert_allclose(
            tables.users.get_column("features").to_list()[0], np.log1p([0, 1, 3]), rtol=1e-6
        )
        assert rows(tables.records) == [
            (0, 0, 10, [], [2, 3, 4, 5, 6, 7, 8, 9, 10], [1] * 9),
            (1, 0, 50, [11, 12], list(range(1, 10)), [1, 1, 1, 0, 0, 0, 0, 0, 1]),
            (1, 1, 60, [11, 12, 1], list(range(9, 0, -1)), [0] * 9),
        ]

    @pytest.mark.parametrize(
        ("line", "match"),
        [
            (
                rl4rs_line(1, 5, 1, "1,2,3,4,5,6,7,8", "1,1,1,1,1,1,1,1", ""),
                r":3: column 'exposed_items': 8 exposed items, expected K = 9",
            ),
            (
                rl4rs_line(1, 5, 1, NINE, "1,1,1,1,1,1,1,1", ""),
                r":3: column 'user_feedback': 8 labels for 9 exposed items",
            ),
            (
                "1@5@1@" + NINE + "@" + NINE + "@@0,1",
                r":3: expected 9 '@'-separated fields, found 7",
            ),
            (
                rl4rs_line(1, 5, 1, NINE.replace("9", "z"), "0,0,0,0,0,0,0,0,0", ""),
                r":3: column 'exposed_items': expected comma-separated integers",
            ),
            (
                rl4rs_line(1, 5, 1, NINE.replace("9", "99"), "0,0,0,0,0,0,0,0,0", ""),
                r":3: column 'exposed_items': item 99 is not in item_info.csv",
            ),
            (
                rl4rs_line(1, 5, 1, NINE, "0,0,0,0,0,0,0,0,2", ""),
                r":3: column 'user_feedback': labels must be 0 or 1",
            ),
        ],
    )
    def test_bad_input_names_file_line_and_field(
        self, rl4rs_dir: Path, line: str, match: str
    ) -> None:
        path = rl4rs_dir / "rl4rs_dataset_b_rl.csv"
        lines = path.read_text().splitlines()
        lines.insert(2, line)
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(DataFormatError, match=match) as info:
            RL4RSListSource(path=rl4rs_dir).load(seed=0)
        assert "rl4rs_dataset_b_rl.csv" in str(info.value)

    def test_official_split(self, rl4rs_dir: Path) -> None:
        tables = RL4RSListSource(path=rl4rs_dir).load(seed=0)
        parts = split_records(tables.records, tables.users, ListSplitConfig(kind="rl4rs_official"))
        # session 4 % 10 = 4 ≤ 5 → train; session 16 % 10 = 6 → test
        assert parts["train"].get_column("user_id").to_list() == [0]
        assert parts["test"].get_column("user_id").to_list() == [1, 1]


# --------------------------------------------------------------------------------------- OBD

OBD_HEADER = (
    ",timestamp,item_id,position,click,propensity_score,"
    + ",".join(f"user_feature_{i}" for i in range(4))
    + ",user-item_affinity_0"
)


def obd_rows() -> list[str]:
    out = [OBD_HEADER]
    segs = [("a", "b", "c", "d"), ("a", "b", "c", "e")]
    for r in range(8):
        seg = segs[r % 2]
        ts = f"2019-11-24 00:00:{10 + r:02d}.500000+00:00"
        out.append(f"{r},{ts},{r % 4},{r % 3 + 1},{int(r in (2, 5))},0.0125,{','.join(seg)},0.0")
    return out


CONTEXT = [
    ",item_id,item_feature_0,item_feature_1,item_feature_2,item_feature_3",
    "0,0,-0.5,x,p,u",
    "1,1,0.25,y,p,u",
    "2,2,1.0,x,q,u",
    "3,3,0.0,y,q,v",
]


class TestOBD:
    def test_from_a_wheel_archive(self, tmp_path: Path) -> None:
        wheel = tmp_path / "obp-0.4.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr("obp/dataset/obd/random/all/all.csv", "\n".join(obd_rows()) + "\n")
            zf.writestr("obp/dataset/obd/random/all/item_context.csv", "\n".join(CONTEXT) + "\n")
        tables = OBDListSource(path=wheel, slate_size=2).load(seed=0)
        assert tables.users.get_column("raw_id").to_list() == ["a|b|c|d", "a|b|c|e"]
        # segment d: rows 0, 2, 4, 6 → items 0, 2, 0, 2 (dense 1, 3, 1, 3); click on row 2
        assert rows(tables.records) == [
            (0, 0, 1574553612500, [], [1, 3], [0, 1]),
            (0, 1, 1574553616500, [3], [1, 3], [0, 0]),
            (1, 0, 1574553613500, [], [2, 4], [0, 0]),
            (1, 1, 1574553617500, [], [2, 4], [1, 0]),
        ]
        users = tables.users.get_column("features").to_list()
        assert users == [[1, 1, 1, 1, 0], [1, 1, 1, 0, 1]]
        items = tables.items.get_column("features").to_list()
        assert items[1] == [0.25, 0, 1, 1, 0, 1, 0]  # feature_0, x|y, p|q, u|v

    def test_from_folder_and_bad_click(self, tmp_path: Path) -> None:
        d = tmp_path / "obd" / "random" / "all"
        write_text(d / "all.csv", obd_rows())
        write_text(d / "item_context.csv", CONTEXT)
        assert OBDListSource(path=tmp_path / "obd", slate_size=2).load(seed=0).records.height == 4
        lines = obd_rows()
        lines[3] = lines[3].replace(",0.0125,", ",0.0125,").replace(",1,0.0125", ",7,0.0125")
        write_text(d / "all.csv", lines)
        with pytest.raises(DataFormatError, match=r"all.csv:4: column 'click': invalid value '7'"):
            OBDListSource(path=d, slate_size=2).load(seed=0)


# ----------------------------------------------------------------------- splits and prepare


def test_time_split_boundary_and_histories(ml1m_dir: Path) -> None:
    tables = MovieLensListSource(path=ml1m_dir, slate_size=3).load(seed=0)
    parts = split_records(tables.records, tables.users, ListSplitConfig())
    # 3 records → floor(0.8·3) = 2 train, by (timestamp, user, seq)
    assert parts["train"].get_column("timestamp").to_list() == [30_000, 100_000]
    assert parts["test"].get_column("history").to_list() == [[2, 3]]  # train-period positives


def test_pad_left_clips_and_pads() -> None:
    ids, mask = pad_left(pl.Series([[1, 2, 3], [], [4]]), 2)
    assert ids.tolist() == [[2, 3], [0, 0], [0, 4]]
    assert mask.tolist() == [[True, True], [False, False], [False, True]]


def test_prepare_is_atomic_deterministic_and_loads(ml1m_dir: Path, tmp_path: Path) -> None:
    cfg = ListPrepareConfig(source=MovieLensListSource(path=ml1m_dir, slate_size=3))
    m1 = prepare_lists(cfg, tmp_path / "a")
    prepare_lists(cfg, tmp_path / "b")
    for f in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert m1["counts"] == {
        "records": 3,
        "users": 2,
        "interactions": 9,
        "positives": 6,
        "positive_rate": 6 / 9,
    }
    assert m1["splits"]["train"]["records"] == 2 and m1["n_items"] == 7
    with pytest.raises(OutputExistsError):
        prepare_lists(cfg, tmp_path / "a")
    before = (tmp_path / "a" / "manifest.json").read_bytes()
    bad = ListPrepareConfig(source=MovieLensListSource(path=tmp_path / "missing"))
    with pytest.raises(DataFormatError):
        prepare_lists(bad, tmp_path / "a", overwrite=True)
    assert (tmp_path / "a" / "manifest.json").read_bytes() == before  # nothing lost
    ds = ListDataset.load(tmp_path / "a")
    t = ds.tensors("all", max_history=2)
    assert t.history.tolist() == [[0, 0], [0, 0], [2, 3]]
    assert t.exposure.tolist() == [[1, 2, 3], [2, 3, 1], [5, 4, 6]]
    # response counts before each list: user 1's second list follows 3 shown, 2 liked
    assert t.seen.tolist() == [0, 0, 3] and t.positives.tolist() == [0, 0, 2]
    assert ds.item_features().shape == (8, 32) and float(ds.item_features()[0].abs().sum()) == 0
    (tmp_path / "a" / "test.parquet").write_bytes(b"garbage")
    with pytest.raises(DataFormatError, match="does not match the manifest"):
        ListDataset.load(tmp_path / "a")


def test_synthetic_is_seeded_and_plants_a_urm(tmp_path: Path) -> None:
    src = SyntheticListSource(**TINY_SYNTH)
    m = prepare_lists(ListPrepareConfig(source=src), tmp_path / "s")
    again = prepare_lists(ListPrepareConfig(source=src), tmp_path / "t")
    assert m["content_hash"] == again["content_hash"]
    other = prepare_lists(ListPrepareConfig(source=src, seed=1), tmp_path / "u")
    assert other["content_hash"] != m["content_hash"]
    assert (tmp_path / "s" / "planted_urm" / "model.safetensors").is_file()
    ds = ListDataset.load(tmp_path / "s")
    records = ds.records("all")
    assert records.get_column("exposure").list.len().unique().to_list() == [5]
    assert records.get_column("exposure").list.n_unique().min() == 5  # distinct items per list
    assert 0.2 < m["counts"]["positive_rate"] < 0.8
    assert torch.equal(ds.item_features()[0], torch.zeros(32))
