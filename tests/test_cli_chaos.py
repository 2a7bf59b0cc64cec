"""``leanworker run|check ... --chaos RATE --seed S`` (issue 22): the whole job rehearsed under injected faults, as a
person runs it; the output stays exactly once, and the table and the JSON list the faults that fired and tell work
lost to them from real failures. The seeds are chosen so that no injected hang costs a 30 s request timeout (a seed
injects the same faults into the same batches however many workers run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import leanworker.fixtures
from console import cli, one_line_error
from leanworker.testing import FaultPlan

LAKE = Path(leanworker.fixtures.__file__).parent / "lake"
MATHLIB = "leanworker.fixtures.mathlib_scale:capability"
RUN = ("run", str(LAKE / "toml_multi"), "--capability", MATHLIB, "--command", "index", "--lib", "Beta", "--lib",
       "Gamma", "--max-batch-modules", "2", "--retries", "1", "--output", "rows.jsonl")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def test_a_chaos_run_writes_every_committed_row_once_and_lists_what_it_injected(home: Path) -> None:
    done = cli(*RUN, "--chaos", "0.5", "--seed", "4", "--json", cwd=home)
    data = done.json()
    assert done.code in (0, 1), done.err
    summary, chaos = data["summary"], data["chaos"]
    assert (chaos["rate"], chaos["seed"]) == (0.5, 4)
    assert FaultPlan.from_json(json.dumps(chaos["plan"])) == FaultPlan.chaos(0.5, seed=4), "the JSON replays it"
    assert chaos["faults"] and {f["kind"] for f in chaos["faults"]} <= {"crash", "memory", "slow", "garbage"}
    assert summary["faults"] == chaos["faults"] and summary["retries"] >= 1
    assert summary["quarantined"] == [], "no module of this project is poison: every loss was injected"
    assert chaos["lost"] == summary["injected"]
    assert (done.code == 0) == (summary["injected"] == [])
    rows = [json.loads(line) for line in (home / "rows.jsonl").read_text().splitlines()]
    assert len(rows) == summary["rows"] == len({(r["batch"], r["module_set"], r["stream"], r["seq"]) for r in rows})
    declared = sorted(r["payload"]["module"] for r in rows if r["stream"] == "declarations")
    assert len(declared) == len(set(declared)), "a module's rows written twice"
    assert len(declared) + len(summary["injected"]) == data["modules"], "every module committed once or lost"


ITEMS = [{"id": f"i{n}", "code": f"import Mathlib\ntheorem t{n} : True := trivial"} for n in range(6)]


def test_a_chaos_check_counts_the_items_lost_to_faults_apart_in_its_table(home: Path) -> None:
    (home / "items.jsonl").write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    done = cli("check", "items.jsonl", "--simulator", "--chaos", "0.5", "--seed", "10", cwd=home)
    rows = [json.loads(line) for line in done.out_lines]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)) and all(row["status"] == "ok" for row in rows), "each verdict printed once"
    header, _, counts, chaos, *rest = done.err_lines
    assert header.split()[-1] == "injected", header
    lost = [line.split(": ")[1] for line in rest if line.startswith("not checked (an injected fault): ")]
    assert lost and sorted(lost + ids) == sorted(item["id"] for item in ITEMS), "every item checked once or lost"
    assert counts.split()[-1] == str(len(lost)) and done.code == 1
    assert chaos.startswith("chaos (rate 0.5, seed 10): faults injected: ") and f"{len(lost)} items lost" in chaos


@pytest.mark.parametrize(("args", "line"), [
    (("--seed", "3"), "--seed needs --chaos"),
    (("--chaos", "1.5"), "error: argument --chaos: must be in [0, 1], got 1.5"),
])
def test_chaos_options_are_checked_first(home: Path, args: tuple[str, ...], line: str) -> None:
    assert one_line_error(cli(*RUN, *args, cwd=home), "run") == line
