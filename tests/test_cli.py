"""The command line, run as a user runs it: a real process, JSON on stdout, exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import leanworker.fixtures

LAKE = Path(leanworker.fixtures.__file__).parent / "lake"


def run(*args: str) -> tuple[int, Any, str]:
    done = subprocess.run([sys.executable, "-m", "leanworker", *args], capture_output=True, text=True, timeout=120)
    try:
        data = json.loads(done.stdout) if "--json" in args else done.stdout
    except json.JSONDecodeError:
        data = None
    return done.returncode, data, done.stderr


def test_discover_json_lists_libraries_modules_fingerprint_and_diagnostics() -> None:
    code, data, _ = run("discover", str(LAKE / "unreadable"), "--json")
    assert code == 1 and data["status"] == "error"  # parts of that lakefile cannot be read
    assert [m["name"] for m in data["modules"]] == ["Fine", "Fine.Part"]
    assert {lib["name"]: lib["readable"] for lib in data["libs"]} == {"Computed": False, "Appended": False,
                                                                      "Fine": True}
    assert data["fingerprint"]["source_count"] == 2 and len(data["fingerprint"]["digest"]) == 64
    assert {d["code"] for d in data["diagnostics"]} >= {"lakefile.unreadable", "lakefile.conditional_lib"}


def test_discover_json_is_stable_across_runs() -> None:
    first = run("discover", str(LAKE / "lean_globs"), "--json")[1]
    second = run("discover", str(LAKE / "lean_globs"), "--json")[1]
    assert first == second and first["modules"][0]["path"] == "src/Core.lean"


def test_plan_json_has_batches_with_keys_and_fingerprints() -> None:
    code, data, _ = run("plan", str(LAKE / "toml_multi"), "--lib", "Beta", "--lib", "Gamma", "--max-batch-modules",
                        "2", "--json")
    assert code == 0
    assert [b["modules"] for b in data["batches"]] == [["Beta.One", "Beta.Two"], ["Gamma", "Gamma.G1"], ["Loose"]]
    assert data["batches"][0]["key"]["capability"] == "leanworker.fixtures.mathlib_scale:capability"
    assert data["modules"] == 5 and len(data["fingerprint"]) == 64


def test_a_human_table_on_a_terminal_and_a_typed_error_without_a_project(tmp_path: Path) -> None:
    code, text, _ = run("discover", str(LAKE / "lean_globs"))
    assert code == 0 and "Core.«v4_0_0-m1»" in text and "library" in text
    code, data, _ = run("discover", str(tmp_path), "--json")
    assert code == 2 and data == {"status": "error", "error": "LakeDiscoveryError",
                                  "message": f"no lakefile.lean or lakefile.toml in {tmp_path.resolve()} or any "
                                             "directory above it"}


def test_doctor_json_reports_checks() -> None:
    code, data, _ = run("doctor", "--json")
    assert code == 0 and data["status"] == "ok"
    assert {c["name"] for c in data["checks"]} >= {"python", "session", "parent_death_signal"}


def test_discover_and_plan_exit_1_when_part_of_the_lakefile_cannot_be_read() -> None:
    code, data, stderr = run("discover", str(LAKE / "unbalanced"), "--json")
    assert code == 1 and data["status"] == "error"
    errors = [d for d in data["diagnostics"] if d["severity"] == "error"]
    assert len(errors) == 1 and errors[0]["line"] == 8 and "Verso" in errors[0]["message"]
    assert len(data["libs"]) == 14 and [lib["name"] for lib in data["libs"] if not lib["readable"]] == ["Verso"]
    code, text, stderr = run("plan", str(LAKE / "unbalanced"))
    assert code == 1 and "error" in stderr and "modules may be missing" in stderr
    code, data, _ = run("discover", str(LAKE / "toml_broken"), "--json")
    assert code == 1 and data["status"] == "error" and data["diagnostics"][0]["code"] == "lakefile.unreadable"
    code, data, _ = run("discover", str(LAKE / "lean_globs"), "--json")
    assert code == 0 and data["status"] == "ok"


def test_discover_and_plan_help_state_the_exit_status() -> None:
    for command in ("discover", "plan"):
        code, text, _ = run(command, "--help")
        assert code == 0 and "Exit status 1" in " ".join(text.split())


def test_run_executes_a_plan_and_exits_0_when_every_batch_committed(tmp_path: Path) -> None:
    output = tmp_path / "rows.jsonl"
    args = ("run", str(LAKE / "toml_multi"), "--capability", "leanworker.fixtures.mathlib_scale:capability",
            "--command", "index", "--lib", "Beta", "--lib", "Gamma", "--max-batch-modules", "2", "--output",
            str(output), "--json")
    code, data, _ = run(*args)
    assert code == 0 and data["status"] == "ok"
    assert data["summary"]["batches_committed"] == 3 and data["summary"]["rows"] == len(output.read_text().splitlines())
    code, data, _ = run(*args, "--resume")
    assert code == 0 and data["summary"]["batches_skipped"] == 3 and data["summary"]["batches_committed"] == 0


def test_run_exits_1_when_batches_fail_and_2_on_bad_usage() -> None:
    code, data, _ = run("run", str(LAKE / "toml_multi"), "--capability", "leanworker.fixtures.mathlib_scale:capability",
                        "--command", "no_such_command", "--json")
    assert code == 1 and data["status"] == "failed" and data["failures"][0]["error"] == "CommandError"
    code, _, stderr = run("run", str(LAKE / "toml_multi"), "--capability", "no-colon", "--command", "index")
    assert code == 2 and stderr.startswith("leanworker run: --capability must be module:attribute")
    code, _, stderr = run("run", str(LAKE / "toml_multi"), "--capability", "a:b", "--command", "x", "--resume")
    assert code == 2 and "--resume needs --output" in stderr


@pytest.mark.parametrize(("args", "first_line"), [
    (("probe", "--limit", "0"), "leanworker probe: error: argument --limit: must be >= 1, got 0"),
    (("probe", "--limit", "-1"), "leanworker probe: error: argument --limit: must be >= 1, got -1"),
    (("probe", "--import-ms", "-5"), "leanworker probe: error: argument --import-ms: must be >= 0, got -5"),
    (("probe", "--modules-file", "/nonexistent/modules.txt"),
     "leanworker probe: error: argument --modules-file: no such file: /nonexistent/modules.txt"),
    (("plan", ".", "--max-batch-modules", "0"),
     "leanworker plan: error: argument --max-batch-modules: must be >= 1, got 0"),
    (("doctor", "--capability", "nocolon"),
     "leanworker doctor: error: argument --capability: must be module:attribute (for example my_tool:capability), "
     "got 'nocolon'"),
    (("trace", "render", "/nonexistent/trace.json"),
     "leanworker trace render: cannot read /nonexistent/trace.json: No such file or directory"),
])
def test_bad_command_line_input_is_one_line_on_stderr_and_exit_2(args: tuple[str, ...], first_line: str) -> None:
    code, _, stderr = run(*args)
    assert code == 2 and stderr.splitlines() == [first_line], stderr


def test_trace_render_refuses_files_that_are_not_traces_and_says_where_it_wrote(tmp_path: Path) -> None:
    (tmp_path / "text.json").write_text("not json\n")
    (tmp_path / "other.json").write_text('{"a": 1}\n')
    code, _, stderr = run("trace", "render", str(tmp_path / "text.json"))
    assert code == 2 and stderr.startswith(f"leanworker trace render: {tmp_path / 'text.json'} is not JSON")
    code, _, stderr = run("trace", "render", str(tmp_path / "other.json"))
    assert code == 2 and "is JSON but not a leanworker trace" in stderr and len(stderr.splitlines()) == 1
    trace = tmp_path / "ok.jsonl"
    trace.write_text('{"t": 0.0, "kind": "spawn", "actor": "w/child.1"}\n')
    done = subprocess.run([sys.executable, "-m", "leanworker", "trace", "render", str(trace)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0 and str(tmp_path / "timeline.html") in done.stdout


def test_run_with_ray_but_without_the_extra_says_how_to_install_it() -> None:
    code = ("import sys\nsys.modules['ray'] = None  # as if the ray extra were not installed\n"
            "from leanworker.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    done = subprocess.run([sys.executable, "-c", code, "run", str(LAKE / "toml_multi"), "--capability", "a:b",
                           "--command", "index", "--ray", "auto"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines()[0] == "leanworker run: --ray needs Ray: pip install 'leanworker[ray]'"


def test_importing_scaleout_without_ray_names_the_extra() -> None:
    code = ("import sys\nsys.modules['ray'] = None\n"
            "try:\n    import leanworker.scaleout\nexcept ImportError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "leanworker.scaleout needs Ray: pip install 'leanworker[ray]'", done.stderr
