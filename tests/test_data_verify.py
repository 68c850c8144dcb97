"""``rlrec data verify``: the registry of raw data sets agrees with the loaders, and files are
checked against it (ok / mismatch / missing / unchecked) in folders and in archives."""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path
from typing import get_args

import pytest
from conftest import ML100K, require_shared
from test_cli_errors import assert_clean_failure

from rlrec.data import registry
from rlrec.data.loaders import SOURCE_KINDS
from rlrec.data.loaders.movielens import MovieLensSource
from rlrec.data.loaders.recbole import RecBoleSource
from rlrec.data.loaders.retailrocket import RetailRocketSource
from rlrec.data.loaders.yoochoose import YooChooseSource
from rlrec.data.registry import DataSet, ExpectedFile, find_dataset
from rlrec.data.verify import verify
from rlrec.errors import RlrecError
from rlrec.sim.loaders import LIST_SOURCE_KINDS
from rlrec.sim.loaders.kuairand import KuaiRandListSource
from rlrec.sim.loaders.movielens import MovieLensListSource, RecBoleListSource
from rlrec.sim.loaders.obd import OBDListSource
from rlrec.sim.loaders.rl4rs import RL4RSListSource

RECBOLE_PREFIX = "recbole/dataset_example/ml-100k"
HELLO_SHA256 = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"  # b"hello\n"


def touch(folder: Path, *names: str) -> Path:
    """Placeholder files (one line each) at the relative paths ``names``."""
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text("placeholder\n")
    return folder


def present(folder: Path, key: str) -> set[str]:
    """The paths ``verify`` found of the data set ``key`` in ``folder``."""
    return {c.path for c in verify(folder, key).files if c.status != "missing"}


def names_under(folder: Path, files: list[Path]) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in files}


def writable_copy(source: Path, target: Path) -> Path:
    """A copy of the (read-only) shared folder that the test may change."""
    shutil.copytree(source, target, copy_function=shutil.copyfile)
    target.chmod(0o755)
    return target


# ----------------------------------------------------------------------- the registry and the loaders


def test_registry_files_are_what_the_offline_loaders_read(tmp_path: Path) -> None:
    cases = {
        "ml-100k-recbole": RecBoleSource,
        "ml-100k": MovieLensSource,
        "ml-1m": MovieLensSource,
        "yoochoose": YooChooseSource,
        "retailrocket": RetailRocketSource,
    }
    for key, source in cases.items():
        required = [f.path for f in find_dataset(key).files if f.need == "required"]
        folder = touch(tmp_path / key, *required)
        assert names_under(folder, source(path=folder).input_files()) == set(required), key
        assert present(folder, key) == set(required), key


def test_registry_files_are_what_the_list_loaders_read(tmp_path: Path) -> None:
    """Every file of the data set (required and optional) is one the list loader reads."""
    cases = {
        "ml-100k-recbole": RecBoleListSource(path=tmp_path / "rb", features="side_info"),
        "ml-1m": MovieLensListSource(path=tmp_path / "ml1m", features="side_info"),
        "ml-100k": MovieLensListSource(path=tmp_path / "ml100k"),
        "kuairand": KuaiRandListSource(path=tmp_path / "kr", include_random_log=True),
    }
    concrete = {"log_standard_*.csv": "log_standard_4_08_to_4_21_1k.csv"}
    concrete["log_random_*.csv"] = "log_random_4_22_to_5_08_1k.csv"
    for key, source in cases.items():
        folder = source.path  # type: ignore[attr-defined]
        touch(folder, *(concrete.get(f.path, f.path) for f in find_dataset(key).files))
        read = names_under(folder, source.input_files())
        assert read == present(folder, key), key
        assert len(read) == len(find_dataset(key).files), key


def test_rl4rs_one_of_the_data_file_names_and_item_info(tmp_path: Path) -> None:
    files = find_dataset("rl4rs").files
    group = [f.path for f in files if f.need == "one of"]
    (item_info,) = [f.path for f in files if f.need == "required"]
    for name in group:
        folder = touch(tmp_path / name, name, item_info)
        read = names_under(folder, RL4RSListSource(path=folder).input_files())
        assert read == present(folder, "rl4rs") == {name, item_info}
        assert verify(folder).passed


def test_obd_campaign_files_are_where_the_loader_looks(tmp_path: Path) -> None:
    """Each (policy, campaign) the loader accepts has its log and item context in the registry,
    at the paths the loader reads, in a tree and in the wheel layout."""
    fields = OBDListSource.model_fields
    combos = [
        (policy, campaign)
        for policy in get_args(fields["behavior_policy"].annotation)
        for campaign in get_args(fields["campaign"].annotation)
    ]
    registered = {f.path for f in find_dataset("obd").files}
    assert len(registered) == 2 * len(combos)
    for policy, campaign in combos:
        log = f"{policy}/{campaign}/{campaign}.csv"
        folder = touch(
            tmp_path / f"{policy}-{campaign}", log, f"{policy}/{campaign}/item_context.csv"
        )
        source = OBDListSource(path=folder, behavior_policy=policy, campaign=campaign)
        assert names_under(folder, source.input_files()) == present(folder, "obd") <= registered


def test_every_command_names_a_source_kind() -> None:
    kinds = {"data prepare": SOURCE_KINDS, "sim prepare": LIST_SOURCE_KINDS}
    for ds in registry.DATASETS:
        assert ds.commands, ds.key
        for command in ds.commands:
            rlrec, group, verb, kind = command.split()
            assert rlrec == "rlrec" and kind in kinds[f"{group} {verb}"], command


def test_registry_keys_are_unique_and_hashes_are_well_formed() -> None:
    keys = [ds.key for ds in registry.DATASETS]
    assert len(keys) == len(set(keys))
    hashed = [f for ds in registry.DATASETS for f in ds.files if f.sha256]
    assert len(hashed) == 3 + 12  # ML-100K's RecBole files and the OBD sample: measured, no more
    assert all(f.bytes for f in hashed)
    with pytest.raises(ValueError, match="64 lower-case hex"):
        ExpectedFile("x.csv", sha256="4EDB74E2")
    with pytest.raises(ValueError, match="glob pattern"):
        ExpectedFile("log_*.csv", sha256=HELLO_SHA256)


# -------------------------------------------------------------------- hashing, on a registry entry


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> DataSet:
    """A registered data set of tiny files: ``a.txt`` (required, the hash of ``hello\\n``),
    ``sub/b.txt`` (optional, hashed) and ``c.txt`` (optional, no hash), under ``pkg/fake``."""
    assert hashlib.sha256(b"hello\n").hexdigest() == HELLO_SHA256
    dataset = DataSet(
        key="fake",
        title="A fake data set",
        source="tests",
        commands=("rlrec data prepare generic",),
        terms="none",
        files=(
            ExpectedFile("a.txt", "required", 6, HELLO_SHA256),
            ExpectedFile("sub/b.txt", "optional", 6, HELLO_SHA256),
            ExpectedFile("c.txt", "optional"),
        ),
        archive_prefix="pkg/fake",
    )
    monkeypatch.setattr(registry, "DATASETS", (*registry.DATASETS, dataset))
    return dataset


def statuses(folder: Path, key: str | None = None) -> dict[str, str]:
    return {c.path: c.status for c in verify(folder, key).files}


def test_hashes_decide_ok_and_mismatch(fake: DataSet, tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"hello\n")
    (folder / "c.txt").write_bytes(b"anything")
    report = verify(folder)
    assert report.dataset is fake and report.passed
    assert statuses(folder) == {"a.txt": "ok", "sub/b.txt": "missing", "c.txt": "unchecked"}
    (check,) = [c for c in report.files if c.path == "a.txt"]
    assert (check.bytes, check.sha256) == (6, HELLO_SHA256)

    (folder / "a.txt").write_bytes(b"hellO\n")  # same size, other bytes
    report = verify(folder)
    assert statuses(folder)["a.txt"] == "mismatch" and not report.passed
    assert report.problems == [
        f"a.txt has SHA-256 {hashlib.sha256(b'hellO' + bytes([10])).hexdigest()}, "
        f"recorded {HELLO_SHA256}"
    ]
    (folder / "a.txt").write_bytes(b"hello\n\n")
    assert verify(folder).problems == ["a.txt has 7 bytes, recorded 6"]


def test_a_missing_required_file_fails(fake: DataSet, tmp_path: Path) -> None:
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "b.txt").write_bytes(b"hello\n")
    report = verify(folder)
    assert report.dataset is fake
    assert statuses(folder) == {"a.txt": "missing", "sub/b.txt": "ok", "c.txt": "missing"}
    assert not report.passed and report.problems == ["a.txt is missing"]
    with pytest.raises(RlrecError, match=r"fake does not verify: a.txt is missing$"):
        report.raise_if_failed()


def test_archives_and_folders_above_the_prefix(fake: DataSet, tmp_path: Path) -> None:
    archive = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("pkg/fake/a.txt", b"hello\n")
        zf.writestr("pkg/fake/sub/b.txt", b"hellO\n")
        zf.writestr("pkg/other.py", b"")
    report = verify(archive)
    assert report.location == f"{archive}!pkg/fake/"
    assert statuses(archive) == {"a.txt": "ok", "sub/b.txt": "mismatch", "c.txt": "missing"}
    assert report.problems == [
        f"sub/b.txt has SHA-256 {hashlib.sha256(b'hellO' + bytes([10])).hexdigest()}, "
        f"recorded {HELLO_SHA256}"
    ]
    above = tmp_path / "extracted"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(above)
    assert statuses(above) == statuses(archive)
    assert verify(above).location == str(above / "pkg" / "fake")


def test_cli_json_then_one_error_line(fake: DataSet, cli, tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.txt").write_bytes(b"HELLO\n")
    result = cli("data", "verify", folder, "--json")
    assert_clean_failure(result, f"error: {folder}: fake does not verify: a.txt has SHA-256")
    doc = json.loads(result.out)
    assert doc["dataset"] == "fake" and doc["passed"] is False
    assert [(f["path"], f["status"]) for f in doc["files"]] == [
        ("a.txt", "mismatch"),
        ("sub/b.txt", "missing"),
        ("c.txt", "missing"),
    ]
    assert doc["files"][0]["recorded_sha256"] == HELLO_SHA256


# ------------------------------------------------------------------------ detection and bad input


def test_u_data_alone_is_ml_100k_unchecked(cli, tmp_path: Path) -> None:
    folder = touch(tmp_path / "raw", "u.data")
    report = verify(folder)
    assert report.dataset.key == "ml-100k" and report.passed
    assert statuses(folder) == {"u.data": "unchecked"}
    result = cli("data", "verify", folder)
    assert result.code == 0, result
    assert "unchecked" in result.out and "rlrec records no hash for this file" in result.out
    assert result.out.rstrip().splitlines()[-1] == "ml-100k: passed (1 unchecked)"


def test_a_zip_unpacked_into_a_folder_is_descended_into(tmp_path: Path) -> None:
    """GroupLens' ml-1m.zip unpacks into ml-1m/; the folder above it is accepted too."""
    touch(tmp_path / "dl", "ml-1m/users.dat")
    report = verify(tmp_path / "dl")
    assert report.dataset.key == "ml-1m" and report.location == str(tmp_path / "dl" / "ml-1m")
    assert statuses(tmp_path / "dl") == {
        "ratings.dat": "missing",
        "users.dat": "unchecked",
        "movies.dat": "missing",
    }
    assert report.problems == ["ratings.dat is missing"]


def test_obd_needs_one_campaign_log(tmp_path: Path) -> None:
    folder = touch(tmp_path / "obd", "random/all/item_context.csv")
    report = verify(folder, "obd")
    assert not report.passed
    assert report.problems[-1].startswith("none of bts/all/all.csv, ")
    assert report.problems[0].startswith("random/all/item_context.csv has 12 bytes")


@pytest.mark.parametrize(
    ("setup", "args", "fragments"),
    [
        ("empty", (), ["no registered data set's files found here", "ml-100k-recbole: ", "obd: "]),
        ("tie", (), ["ml-100k: u.data; ml-1m: ratings.dat", "choose one with --dataset"]),
        ("empty", ("--dataset", "nope"), ["unknown data set 'nope' (known: ml-100k-recbole, "]),
        ("text", (), ["expected a data folder or a .whl/.zip archive"]),
        ("badzip", (), ["not a readable zip/wheel archive"]),
        ("absent", (), ["absent: not found"]),
    ],
)
def test_bad_input_is_one_error_line(
    cli, tmp_path: Path, setup: str, args: tuple[str, ...], fragments: list[str]
) -> None:
    target = {
        "empty": tmp_path / "empty",
        "tie": touch(tmp_path / "tie", "u.data", "ratings.dat"),
        "text": touch(tmp_path, "notes.txt") / "notes.txt",
        "badzip": touch(tmp_path, "broken.zip") / "broken.zip",
        "absent": tmp_path / "absent",
    }[setup]
    if setup == "empty":
        target.mkdir()
    assert_clean_failure(cli("data", "verify", target, *args), *fragments)


def test_help_lists_the_registered_keys(cli) -> None:
    result = cli("data", "verify", "--help")
    assert result.code == 0, result
    text = " ".join(result.out.split())
    for ds in registry.DATASETS:
        assert f"{ds.key}: {ds.title}" in text, ds.key


# ------------------------------------------------------------------------- the shared ML-100K files


def test_shared_ml_100k_verifies(cli) -> None:
    require_shared(ML100K)
    report = verify(ML100K)
    assert report.dataset.key == "ml-100k-recbole" and report.passed
    assert statuses(ML100K) == dict.fromkeys(
        ["ml-100k.inter", "ml-100k.item", "ml-100k.user"], "ok"
    )
    result = cli("data", "verify", ML100K)
    assert result.code == 0, result
    assert result.out.rstrip().splitlines()[-1] == "ml-100k-recbole: passed (3 ok)"
    assert "4edb74e2a811" in result.out and "GroupLens" in result.out


def test_one_changed_byte_is_a_mismatch(cli, tmp_path: Path) -> None:
    copy = writable_copy(require_shared(ML100K), tmp_path / "ml-100k")
    inter = copy / "ml-100k.inter"
    data = bytearray(inter.read_bytes())
    data[-2] = ord("0") if data[-2] != ord("0") else ord("1")
    inter.write_bytes(bytes(data))
    assert statuses(copy) == {
        "ml-100k.inter": "mismatch",
        "ml-100k.item": "ok",
        "ml-100k.user": "ok",
    }
    result = cli("data", "verify", copy)
    assert_clean_failure(result, "ml-100k-recbole does not verify: ml-100k.inter has SHA-256 ")
    assert "ml-100k.item" not in result.err
    assert "mismatch" in result.out and "FAILED" in result.out


def test_the_shared_files_without_the_inter_file_fail(tmp_path: Path) -> None:
    copy = writable_copy(require_shared(ML100K), tmp_path / "ml-100k")
    (copy / "ml-100k.inter").unlink()
    report = verify(copy)
    assert report.dataset.key == "ml-100k-recbole"
    assert statuses(copy)["ml-100k.inter"] == "missing"
    assert report.problems == ["ml-100k.inter is missing"]


def test_a_zip_of_the_shared_files_in_the_wheel_layout_passes(cli, tmp_path: Path) -> None:
    archive = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(require_shared(ML100K).glob("ml-100k.*")):
            zf.write(path, f"{RECBOLE_PREFIX}/{path.name}")
        zf.writestr("recbole/__init__.py", "")
    report = verify(archive)
    assert report.dataset.key == "ml-100k-recbole" and report.passed
    assert {c.status for c in report.files} == {"ok"}
    assert report.location == f"{archive}!{RECBOLE_PREFIX}/"
    assert cli("data", "verify", archive).code == 0


def test_the_docs_table_lists_every_data_set_and_whether_it_is_hashed() -> None:
    text = (Path(__file__).resolve().parents[1] / "docs" / "data.md").read_text()
    section = text.split("## Where the data come from", 1)[1].split("\n## ", 1)[0]
    rows = {
        cells[0].strip("`"): cells
        for line in section.splitlines()
        if line.startswith("| `") and (cells := [c.strip() for c in line.strip("|").split("|")])
    }
    assert set(rows) == {ds.key for ds in registry.DATASETS}
    for ds in registry.DATASETS:
        hashed = "yes" if any(f.sha256 for f in ds.files) else "no"
        assert rows[ds.key][3] == hashed, ds.key
        assert all(f"`{command}`" in rows[ds.key][4] for command in ds.commands), ds.key
