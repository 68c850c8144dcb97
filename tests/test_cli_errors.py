"""Bad input: one clear message naming the file (and line/column), exit 2, no traceback, no output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ts, write_lines


def assert_clean_failure(result, *fragments: str, out: Path | None = None) -> None:
    assert result.code == 2, result
    assert "Traceback" not in result.err + result.out
    errors = [line for line in result.err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and result.err.rstrip().splitlines()[-1] == errors[0], result.err
    for fragment in fragments:
        assert fragment in result.err, (fragment, result.err)
    if out is not None:
        assert not out.exists()
        assert not [p for p in out.parent.glob(f".{out.name}*")]  # no temporary directory left


def yc(tmp_path: Path, clicks: list[str], buys: list[str] | None = None) -> Path:
    d = tmp_path / "raw"
    write_lines(d / "yoochoose-clicks.dat", clicks)
    write_lines(d / "yoochoose-buys.dat", buys or [f"1,{ts(9)},214536500,100,1"])
    return d


GOOD = [f"1,{ts(0)},214536502,0", f"1,{ts(1)},214536500,0", f"1,{ts(2)},214536506,S"]


def prep(cli, raw: Path, out: Path, *extra: str):
    return cli(
        "data",
        "prepare",
        "yoochoose",
        "--raw",
        raw,
        "--out",
        out,
        "--set",
        "source.sample_sessions=null",
        *extra,
    )


def test_missing_file(cli, tmp_path: Path) -> None:
    d = tmp_path / "raw"
    d.mkdir()
    out = tmp_path / "ds"
    assert_clean_failure(
        prep(cli, d, out), "yoochoose-clicks.dat: YooChoose clicks file not found", out=out
    )


def test_empty_file(cli, tmp_path: Path) -> None:
    d = yc(tmp_path, GOOD)
    (d / "yoochoose-buys.dat").write_text("")
    out = tmp_path / "ds"
    assert_clean_failure(
        prep(cli, d, out), "yoochoose-buys.dat: YooChoose buys file is empty", out=out
    )


BAD_CLICKS = {
    "wrong separator": (
        [line.replace(",", "\t") for line in GOOD],
        "yoochoose-clicks.dat:1: expected 4 ','-separated fields, found 1; is the separator ','?",
    ),
    "extra field": (
        [*GOOD, f"2,{ts(3)},214536502,0,extra"],
        "yoochoose-clicks.dat:4: expected 4 ','-separated fields, found 5",
    ),
    "missing field": (
        [GOOD[0], f"2,{ts(3)},214536502"],
        "yoochoose-clicks.dat:2: expected 4 ','-separated fields, found 3",
    ),
    "non-numeric id": (
        [*GOOD, f"abc,{ts(3)},214536502,0"],
        "yoochoose-clicks.dat:4: column 'session_id': expected an integer, found 'abc'",
    ),
    "unparseable timestamp": (
        [*GOOD, "1,2014-13-07T10:00:00.000Z,214536502,0"],
        "yoochoose-clicks.dat:4: column 'timestamp': expected a timestamp",
    ),
    "empty item": (
        [*GOOD, f"1,{ts(3)},,0"],
        "yoochoose-clicks.dat:4: column 'item_id': empty value",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CLICKS))
def test_malformed_clicks_name_file_line_and_column(cli, tmp_path: Path, case: str) -> None:
    lines, message = BAD_CLICKS[case]
    out = tmp_path / "ds"
    assert_clean_failure(prep(cli, yc(tmp_path, lines), out), message, out=out)


def test_unparseable_generic_timestamp(cli, tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "log.csv", ["session_id,item_id,timestamp", "1,2,3", "1,3,yesterday"]
    )
    out = tmp_path / "ds"
    result = cli("data", "prepare", "generic", "--raw", path, "--out", out)
    assert_clean_failure(
        result, "log.csv:3: column 'timestamp': expected a number, found 'yesterday'", out=out
    )


def test_output_exists_is_refused_then_overwritten(cli, tmp_path: Path) -> None:
    d = yc(tmp_path, [*GOOD, *(line.replace("1,", f"{s},", 1) for s in (2, 3) for line in GOOD)])
    out = tmp_path / "ds"
    ok = prep(cli, d, out, "--set", "split.ratios=[0.34,0.33,0.33]")
    assert ok.code == 0, ok.err
    (out / "old.txt").write_text("left in rlrec's dataset")
    assert_clean_failure(prep(cli, d, out), f"{out}: output already exists; pass --overwrite")
    assert (out / "old.txt").exists()
    result = prep(cli, d, out, "--overwrite", "--set", "split.ratios=[0.34,0.33,0.33]")
    assert result.code == 0, result.err
    assert (out / "manifest.json").exists() and not (out / "old.txt").exists()


def test_a_split_without_sessions_is_an_error(cli, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    assert_clean_failure(
        prep(cli, yc(tmp_path, GOOD), out),
        "the train and val splits would have no sessions",
        out=out,
    )


def test_overwrite_never_deletes_a_directory_rlrec_did_not_make(cli, tmp_path: Path) -> None:
    d = yc(tmp_path, GOOD)
    out = tmp_path / "mine"
    out.mkdir()
    (out / "old.txt").write_text("the user's file")
    assert_clean_failure(prep(cli, d, out, "--overwrite"), f"{out}: not a directory rlrec made")
    assert (out / "old.txt").read_text() == "the user's file"


def test_filter_leaving_zero_sessions(cli, tmp_path: Path) -> None:
    d = yc(tmp_path, GOOD)
    out = tmp_path / "ds"
    assert_clean_failure(
        prep(cli, d, out, "--set", "source.min_clicks=5"),
        "yoochoose-clicks.dat: no session has at least 5 clicks (source.min_clicks)",
        out=out,
    )
    rr = write_lines(
        tmp_path / "events.csv", ["timestamp,visitorid,event,itemid,transactionid", "1,2,view,3,"]
    )
    result = cli("data", "prepare", "retailrocket", "--raw", rr, "--out", out)
    assert_clean_failure(result, "events.csv: no events left after filtering", out=out)


def test_unknown_config_key(cli, tmp_path: Path) -> None:
    d = yc(tmp_path, GOOD)
    out = tmp_path / "ds"
    assert_clean_failure(
        prep(cli, d, out, "--set", "source.min_click=2"),
        "unknown config key 'source.yoochoose.min_click'",
        out=out,
    )
    cfg = write_lines(tmp_path / "prep.yaml", ["split:", "  kind: random", "  sedd: 3"])
    assert_clean_failure(
        prep(cli, d, out, "--config", cfg),
        f"{cfg}: invalid config: unknown config key 'split.sedd'",
        out=out,
    )
    assert_clean_failure(
        cli("data", "synth", "--out", out, "--set", "n_session=3"),
        "unknown config key 'n_session'",
        out=out,
    )


def test_invalid_config_values(cli, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    assert_clean_failure(
        cli("data", "synth", "--out", out, "--set", "n_sessions=-1"), "'n_sessions'", out=out
    )
    assert_clean_failure(
        cli("data", "synth", "--out", out, "--set", "seed"), "expected KEY=VALUE", out=out
    )
    result = cli("data", "prepare", "nosuchsource", "--raw", tmp_path, "--out", out)
    assert_clean_failure(result, "'source'", out=out)
    assert_clean_failure(
        cli("data", "synth", "--out", out, "--config", tmp_path / "nope.yaml"),
        "config file not found",
    )


def test_stats_on_a_directory_that_is_not_a_dataset(cli, tmp_path: Path) -> None:
    assert_clean_failure(cli("data", "stats", tmp_path), "manifest.json: missing manifest")
    assert_clean_failure(cli("data", "stats", tmp_path / "nope"), "dataset directory not found")


def test_real_console_script_exits_2_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "rlrec", "data", "stats", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


def test_happy_path_synth_prepare_stats(cli, tmp_path: Path) -> None:
    raw, ds = tmp_path / "raw", tmp_path / "ds"
    assert (
        cli("data", "synth", "--out", raw, "--set", "n_sessions=50", "--set", "n_items=30").code
        == 0
    )
    assert (raw / "config.yaml").read_text().startswith("n_sessions: 50\n")
    result = cli(
        "data",
        "prepare",
        "synthetic",
        "--raw",
        raw,
        "--out",
        ds,
        "--set",
        "split.ratios=[0.6,0.2,0.2]",
    )
    assert result.code == 0, result.err
    assert "50 sessions (30 / 10 / 10 train/val/test)" in result.out
    assert "ratios:\n  - 0.6\n" in (ds / "config.yaml").read_text()
    result = cli("data", "stats", ds)
    assert result.code == 0 and "sequences" in result.out and "purchase in window" in result.out
    result = cli("data", "stats", ds, "--json")
    assert '"sequences": 50' in result.out


@pytest.mark.parametrize("args", [("--help",), ("data", "--help")])
def test_help(cli, args: tuple[str, ...]) -> None:
    result = cli(*args)
    assert result.code == 0 and "Usage" in result.out


def test_prepare_out_of_core_from_the_cli(cli, tmp_path: Path) -> None:
    """``--memory-limit`` (and ``auto``, which keeps a small log in memory) give the dataset the
    in-memory command writes, byte for byte."""
    d = yc(
        tmp_path, [*GOOD, *(line.replace("1,", f"{s},", 1) for s in range(2, 40) for line in GOOD)]
    )
    common = ("--set", "split.ratios=[0.34,0.33,0.33]")
    outs = {}
    for name, extra in (
        ("whole", ()),
        ("parts", ("--memory-limit", "2KB")),
        ("auto", ("--memory-limit", "auto")),
    ):
        outs[name] = tmp_path / name
        result = prep(cli, d, outs[name], *common, *extra)
        assert result.code == 0, result.err
    for name in ("parts", "auto"):
        for f in sorted(outs["whole"].iterdir()):
            assert f.read_bytes() == (outs[name] / f.name).read_bytes(), (name, f.name)
