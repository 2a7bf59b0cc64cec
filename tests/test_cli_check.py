"""``leanworker check`` as a person runs it (issue 20): the README's try-it command on the bundled simulator, said
to be simulated wherever it shows; a set-up that cannot work stops in one line; items files that give nothing to do
or repeat an id are refused; ``--resume`` checks each item exactly once."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from console import cli, cli_in_process, gone, interrupt_when, one_line_error, person_env


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def write_items(path: Path, items: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))


ITEMS = [
    {"id": "a", "code": "import Mathlib\ntheorem a : True := trivial"},
    {"id": "b", "code": "import Mathlib\n\ntheorem b : True := sorry"},
    {"id": 3, "code": "import Std\ndef c := ERROR"},
    {"id": "wrong", "code": "theorem w : 1 + 1 = 3 := rfl"},
]


def test_the_readme_try_it_commands_work_as_printed(home: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    block = readme.split("Try it without Lean", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    *setup, command = block.replace("\\\n", "").strip().splitlines()
    subprocess.run(["bash", "-c", "\n".join(setup)], cwd=home, check=True, timeout=30)
    assert command.startswith("leanworker ")
    done = cli(*shlex.split(command)[1:], cwd=home)
    assert done.code == 0 and sorted(json.loads(line)["status"] for line in done.out_lines) == ["ok", "sorry"]
    assert "SIMULATED" in done.err


def test_check_on_the_simulator_says_so_in_the_table_the_summary_and_every_row(home: Path) -> None:
    write_items(home / "items.jsonl", ITEMS)
    done = cli("check", "items.jsonl", "--simulator", cwd=home)
    assert done.code == 0, done.err
    rows = [json.loads(line) for line in done.out_lines]
    assert {row["id"]: row["status"] for row in rows} == {"a": "ok", "b": "sorry", 3: "error", "wrong": "ok"}
    assert all(row["simulated"] is True for row in rows)
    by_id = {row["id"]: row for row in rows}
    assert by_id["a"]["code_sha256"] == hashlib.sha256(str(ITEMS[0]["code"]).encode()).hexdigest()
    assert any(line.startswith("SIMULATED: these verdicts come from leanworker's REPL simulator") for line in
               done.err_lines), done.err
    assert "None" not in done.err
    data = cli("check", "items.jsonl", "--simulator", "--json", cwd=home).json()
    assert data["simulated"] is True and data["status"] == "ok" and data["checked"] == 4
    assert len(data["results"]) == 4 and all(row["simulated"] is True for row in data["results"])


def test_an_item_that_times_out_is_exit_1_and_the_others_keep_their_verdicts(home: Path) -> None:
    write_items(home / "items.jsonl", [*ITEMS[:2], {"id": "h", "code": "import Std\nHANG"}])
    done = cli("check", "items.jsonl", "--simulator", "--timeout", "0.5", "--output", "out.jsonl", cwd=home)
    assert done.code == 1, done.err
    statuses = {r["id"]: r["status"] for r in map(json.loads, (home / "out.jsonl").read_text().splitlines())}
    assert statuses == {"a": "ok", "b": "sorry", "h": "timeout"}
    assert "timeout" in done.out_lines[0] and done.out_lines[-1] == "results: out.jsonl"


def test_a_check_that_cannot_start_stops_in_one_line_that_names_the_fix(home: Path) -> None:
    write_items(home / "items.jsonl", ITEMS)
    # these three stop before any process starts (leanworker.cli.main in this process); the last, from the console
    # script end to end, once its REPL has run
    reason = one_line_error(cli_in_process("check", "items.jsonl", cwd=home, env=person_env(PATH="/usr/bin:/bin")),
                            "check")
    assert "--repl COMMAND" in reason and "--simulator" in reason and "SessionKey" not in reason
    reason = one_line_error(cli_in_process("check", "items.jsonl", "--repl", "/nonexistent/repl", cwd=home), "check")
    assert reason == "--repl /nonexistent/repl: no such file"
    reason = one_line_error(cli_in_process("check", "items.jsonl", "--simulator", "--workspace", "/nonexistent",
                                           cwd=home), "check")
    assert reason == "--workspace /nonexistent: no such directory"
    (home / "fails.sh").write_text("#!/bin/sh\necho 'the REPL cannot run here' >&2\nexit 3\n")
    (home / "fails.sh").chmod(0o755)
    write_items(home / "mathlib.jsonl", [ITEMS[0], ITEMS[1]])
    reason = one_line_error(cli("check", "mathlib.jsonl", "--repl", "./fails.sh", "--output", "out.jsonl", cwd=home),
                            "check")
    assert reason.startswith("cannot open a session of leanworker.lean:repl (imports Mathlib): importing Mathlib: "
                             "the REPL exited with status 3"), reason
    assert not (home / "out.jsonl").exists(), "nothing is written before the first session opens"


def test_items_files_with_nothing_to_do_or_a_repeated_id_are_refused(home: Path) -> None:
    (home / "empty.jsonl").write_text("\n\n")
    assert one_line_error(cli("check", "empty.jsonl", "--simulator", cwd=home), "check") == (
        'empty.jsonl has no items (one {"id": ..., "code": "..."} JSON object a line): nothing to check')
    write_items(home / "twice.jsonl", [ITEMS[0], ITEMS[1], {"id": "a", "code": "x"}, ITEMS[2], {"id": 3, "code": "y"}])
    assert one_line_error(cli_in_process("check", "twice.jsonl", "--simulator", cwd=home), "check") == (
        'twice.jsonl: 2 duplicate item ids: "a" (lines 1, 3); 3 (lines 4, 5); each id must be unique')
    (home / "bad.jsonl").write_text('{"id": 1, "code": "x"}\nnot json\n')
    assert one_line_error(cli_in_process("check", "bad.jsonl", "--simulator", cwd=home), "check").startswith(
        "bad.jsonl:2: not JSON")


def test_resume_checks_exactly_the_items_whose_id_and_code_have_no_result(home: Path) -> None:
    write_items(home / "items.jsonl", ITEMS)
    assert cli("check", "items.jsonl", "--simulator", "--output", "out.jsonl", cwd=home).code == 0
    first = (home / "out.jsonl").read_text().splitlines()
    changed = [ITEMS[0], {"id": "b", "code": "import Mathlib\ntheorem b : True := trivial"}, *ITEMS[2:],
               {"id": "new", "code": "def n := ERROR"}]
    write_items(home / "items.jsonl", changed)
    with open(home / "out.jsonl", "a") as out:
        out.write('{"id": "new", "status": "ok", "code_sha')  # a line torn by a kill: never a result
    done = cli("check", "items.jsonl", "--simulator", "--output", "out.jsonl", "--resume", "--json", cwd=home)
    data = done.json()
    assert done.code == 0 and data["skipped"] == 3 and data["items"] == 5, done.err
    rows = [json.loads(line) for line in (home / "out.jsonl").read_text().splitlines()]
    assert sorted(str(r["id"]) for r in rows) == ["3", "a", "b", "new", "wrong"], "one line an item, no stale one"
    assert {r["id"]: r["status"] for r in rows}["b"] == "ok" and {r["id"]: r["status"] for r in rows}["new"] == "error"
    kept = next(line for line in first if json.loads(line)["id"] == "a")
    assert kept in (home / "out.jsonl").read_text().splitlines(), "a done item's result is kept as it was"
    done = cli("check", "items.jsonl", "--simulator", "--output", "out.jsonl", "--resume", cwd=home)
    assert done.code == 0 and done.out_lines[0] == "nothing left to check: all 5 items have results in out.jsonl"
    assert len((home / "out.jsonl").read_text().splitlines()) == 5


def test_a_second_check_given_the_same_output_while_one_writes_it_is_refused_and_changes_nothing(home: Path) -> None:
    """One check writes results.jsonl (one result in, one item hanging in a session of its own); a second check
    given the same output, anew or with --resume, stops with one line and exit 2, and the file stays as the first
    wrote it."""
    write_items(home / "items.jsonl", [{"id": "a", "code": "theorem a : True := trivial"},
                                       {"id": "h", "code": "import Std\ntheorem h : True := trivial HANG"}])
    write_items(home / "more.jsonl", [{"id": "a", "code": "theorem a : True := trivial"},
                                      {"id": "b", "code": "theorem b : True := trivial"}])
    output = home / "results.jsonl"
    second: list[tuple[str, int, str]] = []

    def first_writes(pid: int) -> bool:
        if not (output.exists() and output.read_text().count("\n") == 1):
            return False
        for extra in ((), ("--resume",)):
            done = cli("check", "more.jsonl", "--simulator", "--output", "results.jsonl", *extra, cwd=home)
            second.append((output.read_text(), done.code, done.err))
        return True

    args = ("check", "items.jsonl", "--simulator", "--output", "results.jsonl")
    done, started = interrupt_when(args, home, first_writes)
    assert done.code == 130, done.err
    assert gone(started)
    for text, code, err in second:
        assert code == 2 and err == ("leanworker check: --output results.jsonl is being written by another check now: "
                                     "let it end, or write to another file\n"), (code, err)
        assert [json.loads(line)["id"] for line in text.splitlines()] == ["a"]
    assert [json.loads(line)["id"] for line in output.read_text().splitlines()] == ["a"]


def test_a_second_check_with_resume_that_would_drop_a_result_is_refused_before_it_rewrites_the_output(
        home: Path) -> None:
    """--resume drops a stale result (its id's code changed) by rewriting the results file (a new file put in its
    place): while another check writes that file, it is refused before that, so the file is not replaced under the
    first check (whose results would then go to a file no longer there) and no second check runs on it."""
    write_items(home / "items.jsonl", [{"id": "a", "code": "theorem a : True := trivial"},
                                       {"id": "h", "code": "import Std\ntheorem h : True := trivial HANG"}])
    write_items(home / "changed.jsonl", [{"id": "a", "code": "theorem a : 1 = 1 := rfl"}])  # a's code changed
    output = home / "results.jsonl"
    second: list[tuple[str, bool, int, str]] = []

    def first_writes(pid: int) -> bool:
        if not (output.exists() and output.read_text().count("\n") == 1):
            return False
        inode = output.stat().st_ino
        done = cli("check", "changed.jsonl", "--simulator", "--output", "results.jsonl", "--resume", cwd=home)
        second.append((output.read_text(), output.stat().st_ino != inode, done.code, done.err))
        return True

    done, started = interrupt_when(("check", "items.jsonl", "--simulator", "--output", "results.jsonl"), home,
                                   first_writes)
    assert done.code == 130, done.err
    assert gone(started)
    [(text, moved, code, err)] = second
    assert (code, err) == (2, "leanworker check: --output results.jsonl is being written by another check now: let "
                              "it end, or write to another file\n"), (code, err)
    assert not moved, "the results file was replaced under the check writing it"
    assert [json.loads(line)["id"] for line in text.splitlines()] == ["a"]
    assert [json.loads(line)["id"] for line in output.read_text().splitlines()] == ["a"]


def script(path: Path, text: str) -> str:
    path.write_text(text)
    path.chmod(0o755)
    return f"./{path.name}"


def test_a_repl_or_lean_that_does_not_run_stops_the_check_once_not_every_item(home: Path) -> None:
    """A program that resolves but dies at once (the README's old try-it command ran a ``python`` without
    leanworker) made every item ``crashed``: one line now, exit 2, nothing written."""
    exits = script(home / "exits.sh", "#!/bin/sh\necho 'No module named leanworker' >&2\nexit 1\n")
    plain = [{"id": n, "code": f"theorem t{n} : True := trivial"} for n in range(6)]
    write_items(home / "plain.jsonl", plain)  # no header: the session open sends the REPL nothing
    reason = one_line_error(cli("check", "plain.jsonl", "--repl", exits, "--output", "out.jsonl", cwd=home), "check")
    assert reason.startswith(f"--repl {exits}: the REPL does not run: the REPL exited with status 1"), reason
    assert "No module named leanworker" in reason and not (home / "out.jsonl").exists()
    headers = [{"id": n, "code": f"import Mod{n}\ntheorem t{n} : True := trivial"} for n in range(6)]
    write_items(home / "headers.jsonl", headers)  # a header each: the first open failing says nothing of the rest
    reason = one_line_error(cli("check", "headers.jsonl", "--repl", exits, cwd=home), "check")
    assert reason.startswith(f"--repl {exits}: the REPL does not run: "), reason
    silent = script(home / "silent.sh", "#!/bin/sh\nexec sleep 600\n")
    reason = one_line_error(cli("check", "plain.jsonl", "--repl", silent, "--import-timeout", "0.5", cwd=home),
                            "check")
    assert reason == f"--repl {silent}: no answer to an empty command within 0.5 s"
    reason = one_line_error(cli("check", "plain.jsonl", "--mode", "file", "--lean", exits, cwd=home), "check")
    assert reason == (f"--lean {exits}: does not run as lean: Lean exited with status 1 without an error message "
                      "(No module named leanworker)")


def test_a_repl_that_answers_is_never_stopped_by_the_first_check(home: Path) -> None:
    """Only the program's own fate stops a check: a REPL that answers, whatever it answers, checks every item; one
    item that crashes it costs that item alone."""
    write_items(home / "items.jsonl", [{"id": "crash", "code": "theorem c : True := CRASH"},
                                       {"id": "fine", "code": "theorem f : True := trivial"},
                                       {"id": "err", "code": "def e := ERROR"}])
    done = cli("check", "items.jsonl", "--simulator", "--workers", "1", cwd=home)
    statuses = {row["id"]: row["status"] for row in map(json.loads, done.out_lines)}
    assert done.code == 1 and statuses == {"crash": "crashed", "fine": "ok", "err": "error"}, done.err


def test_the_misbehaving_repl_fake_is_said_to_be_simulated_too(home: Path) -> None:
    write_items(home / "items.jsonl", ITEMS[:2])
    fake = f"{sys.executable} -m leanworker.fixtures.repl_fake"
    done = cli("check", "items.jsonl", "--repl", fake, "--json", cwd=home)
    data = done.json()
    assert done.code == 0 and data["simulated"] is True, done.err
    assert all(row["simulated"] is True for row in data["results"])


def test_resume_never_mixes_simulated_verdicts_with_lean_ones(home: Path) -> None:
    """Resuming on Lean a results file of the simulator would keep the simulator's verdicts as done (and say
    ``simulated: false``); and the other way round, real verdicts would be counted in a simulated check."""
    write_items(home / "items.jsonl", [{"id": 1, "code": "theorem a : 1 + 1 = 3 := rfl"},
                                       {"id": 2, "code": "theorem b : True := sorry"}])
    lean = script(home / "lean.sh", "#!/bin/sh\nexit 0\n")  # a "lean" that accepts everything: not simulated
    assert cli("check", "items.jsonl", "--simulator", "--output", "sim.jsonl", cwd=home).code == 0
    reason = one_line_error(cli("check", "items.jsonl", "--mode", "file", "--lean", lean, "--output", "sim.jsonl",
                                "--resume", cwd=home), "check")
    assert reason == ("--output sim.jsonl: holds 2 results of these items from the REPL simulator, and this check "
                      "runs on Lean: --resume would mix them (name another --output, or leave out --resume to start "
                      "afresh)")
    assert cli("check", "items.jsonl", "--mode", "file", "--lean", lean, "--output", "real.jsonl", cwd=home).code == 0
    reason = one_line_error(cli("check", "items.jsonl", "--simulator", "--output", "real.jsonl", "--resume",
                                cwd=home), "check")
    assert reason.startswith("--output real.jsonl: holds 2 results of these items from Lean, and this check runs on "
                             "the REPL simulator:")
    assert len((home / "real.jsonl").read_text().splitlines()) == 2, "the results are left as they were"


def test_an_items_file_with_a_byte_order_mark_is_read(home: Path) -> None:
    (home / "items.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(ITEMS[0]).encode() + b"\n")
    done = cli("check", "items.jsonl", "--simulator", cwd=home)
    assert done.code == 0 and [json.loads(line)["id"] for line in done.out_lines] == ["a"], done.err


def test_results_can_go_to_a_pipe_named_as_the_output(home: Path) -> None:
    """``--output /dev/stdout`` (a pipe here, as under ``| jq``) cannot be fsynced: that is no internal error."""
    write_items(home / "items.jsonl", ITEMS[:2])
    done = cli("check", "items.jsonl", "--simulator", "--output", "/dev/stdout", cwd=home)
    assert done.code == 0, done.err
    assert sorted(json.loads(line)["id"] for line in done.out_lines if line.startswith("{")) == ["a", "b"]
    assert done.out_lines[-1] == "results: /dev/stdout"
