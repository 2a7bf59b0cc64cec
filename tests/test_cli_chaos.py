"""``leanworker run|check ... --chaos RATE --seed S`` (issue 22): the whole job rehearsed under injected faults, as a
person runs it; the output stays exactly once, and the table and the JSON list the faults that fired and tell work
lost to them from real failures. The seeds are chosen so that no injected hang costs a 30 s request timeout."""

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
    done = cli(*RUN, "--chaos", "0.5", "--seed", "8", "--json", cwd=home)
    data = done.json()
    assert done.code in (0, 1), done.err
    summary, chaos = data["summary"], data["chaos"]
    assert (chaos["rate"], chaos["seed"]) == (0.5, 8)
    assert FaultPlan.from_json(json.dumps(chaos["plan"])) == FaultPlan.chaos(0.5, seed=8), "the JSON replays it"
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
    human = cli(*RUN, "--chaos", "0.5", "--seed", "8", cwd=home)
    assert "injected" in human.out_lines[0] and human.code == done.code
    assert any(line.startswith("chaos (rate 0.5, seed 8): faults injected: ") for line in human.out_lines)


ITEMS = [{"id": f"i{n}", "code": f"import Mathlib\ntheorem t{n} : True := trivial"} for n in range(6)]


def test_a_chaos_check_counts_the_items_lost_to_faults_apart(home: Path) -> None:
    (home / "items.jsonl").write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    done = cli("check", "items.jsonl", "--simulator", "--chaos", "0.5", "--seed", "28", "--json", cwd=home)
    data = done.json()
    chaos = data["chaos"]
    assert chaos["faults"] and chaos["seed"] == 28
    lost = [u["id"] for u in data["unchecked"] if u.get("injected")]
    assert sorted(chaos["lost"]) == sorted(lost) and len(lost) == len(data["unchecked"])
    assert data["checked"] + len(lost) == len(ITEMS) and data["by_status"].get("ok", 0) == data["checked"]
    assert done.code == (1 if lost else 0)


@pytest.mark.parametrize(("args", "line"), [
    (("--seed", "3"), "--seed needs --chaos"),
    (("--chaos", "1.5"), "error: argument --chaos: must be in [0, 1], got 1.5"),
])
def test_chaos_options_are_checked_first(home: Path, args: tuple[str, ...], line: str) -> None:
    assert one_line_error(cli(*RUN, *args, cwd=home), "run") == line
