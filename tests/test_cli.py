"""The command line as a person meets it (issue 20): the installed ``leanworker`` script, run from a folder of
their own with a PATH that does not hold the venv, judged on its exit status (0, 1, 2, 130), its words, its line
counts, and never a traceback. Where a test checks many refusals made before any work (bad usage, ``--help``, a file
checked first), one case runs the script end to end and the others run ``leanworker.cli.main`` in this process
(``console.cli_in_process``: the same parser and checks, the same words on stdout and stderr)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import leanworker.fixtures
from console import COLUMNS, LEANWORKER, cli, cli_in_process, one_line_error, person_env

LAKE = Path(leanworker.fixtures.__file__).parent / "lake"
MATHLIB = "leanworker.fixtures.mathlib_scale:capability"
COMMANDS = ("probe", "discover", "plan", "run", "check", "doctor", "trace")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A person's own folder, outside the repository."""
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


def as_nobody() -> tuple[str, ...]:
    """Run as an unprivileged user (root reads everything, so 'permission denied' needs another user)."""
    return ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups") if os.geteuid() == 0 else ()


# -- discover and plan -----------------------------------------------------------------------------------------------

def test_discover_json_lists_libraries_modules_fingerprint_and_diagnostics(home: Path) -> None:
    done = cli("discover", str(LAKE / "unreadable"), "--json", cwd=home)
    data = done.json()
    assert done.code == 1 and data["status"] == "error"  # parts of that lakefile cannot be read
    assert [m["name"] for m in data["modules"]] == ["Fine", "Fine.Part"]
    assert {lib["name"]: lib["readable"] for lib in data["libs"]} == {"Computed": False, "Appended": False,
                                                                      "Fine": True}
    assert data["fingerprint"]["source_count"] == 2 and len(data["fingerprint"]["digest"]) == 64
    assert {d["code"] for d in data["diagnostics"]} >= {"lakefile.unreadable", "lakefile.conditional_lib"}
    second = cli("discover", str(LAKE / "lean_globs"), "--json", cwd=home).json()
    assert second == cli("discover", str(LAKE / "lean_globs"), "--json", cwd=home).json()
    assert second["modules"][0]["path"] == "src/Core.lean"


@pytest.mark.parametrize("extra", [(), ("--json",)], ids=["table", "json"])
def test_a_stdout_that_cannot_take_the_output_is_one_line_and_exit_1(home: Path, extra: tuple[str, ...]) -> None:
    """Stdout on a full device: "cannot write to stdout" and why, exit status 1; not an internal error, not a
    traceback (an error found before any work keeps its own line and exit 2)."""
    def discover(path: Path) -> subprocess.CompletedProcess[str]:
        with open("/dev/full", "w") as full:
            return subprocess.run([str(LEANWORKER), "discover", str(path), *extra], cwd=home, env=person_env(),
                                  stdout=full, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, timeout=60)

    done = discover(LAKE / "toml_multi")
    assert done.returncode == 1, done.stderr
    assert done.stderr == "leanworker discover: cannot write to stdout: No space left on device\n", done.stderr
    missing = discover(home / "missing")
    assert missing.returncode == 2, missing.stderr
    assert missing.stderr == f"leanworker discover: {home / 'missing'}: no such file or directory\n", missing.stderr


def test_a_command_started_with_its_stdout_closed_does_its_work_and_exits_0(home: Path) -> None:
    """`leanworker discover PATH >&-`: Python has no stdout then, and print writes nothing; the command runs as it
    would with one (exit 0, nothing on stderr), not as an internal error."""
    closed = ["sh", "-c", 'exec "$0" "$@" >&-', str(LEANWORKER)]  # the command with its descriptor 1 closed
    for extra in ((), ("--json",)):
        done = subprocess.run([*closed, "discover", str(LAKE / "toml_multi"), *extra], cwd=home, env=person_env(),
                              capture_output=True, stdin=subprocess.DEVNULL, text=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, ""), (extra, done.returncode, done.stderr)


def test_plan_json_has_batches_with_keys_and_fingerprints(home: Path) -> None:
    done = cli("plan", str(LAKE / "toml_multi"), "--lib", "Beta", "--lib", "Gamma", "--max-batch-modules",
                      "2", "--json", cwd=home)
    data = done.json()
    assert done.code == 0
    assert [b["modules"] for b in data["batches"]] == [["Beta.One", "Beta.Two"], ["Gamma", "Gamma.G1"], ["Loose"]]
    assert data["batches"][0]["key"]["capability"] == MATHLIB == data["capability"]
    assert data["modules"] == 5 and len(data["fingerprint"]) == 64


def test_human_tables_and_a_typed_error_without_a_project(home: Path) -> None:
    done = cli("discover", str(LAKE / "lean_globs"), cwd=home)
    assert done.code == 0 and "Core.«v4_0_0-m1»" in done.out and "library" in done.out
    done = cli("discover", str(home), "--json", cwd=home)
    assert done.code == 2 and done.json() == {
        "status": "error", "error": "LakeDiscoveryError",
        "message": f"no lakefile.lean or lakefile.toml in {home.resolve()} or any directory above it"}
    assert len(done.err_lines) == 1
    done = cli("plan", str(LAKE / "toml_multi"), cwd=home)
    assert "the default: a simulated fixture; --capability names yours" in " ".join(done.out.split())


def test_discover_and_plan_exit_1_when_part_of_the_lakefile_cannot_be_read(home: Path) -> None:
    done = cli("discover", str(LAKE / "unbalanced"), "--json", cwd=home)
    data = done.json()
    assert done.code == 1 and data["status"] == "error"
    errors = [d for d in data["diagnostics"] if d["severity"] == "error"]
    assert len(errors) == 1 and errors[0]["line"] == 8 and "Verso" in errors[0]["message"]
    assert len(data["libs"]) == 14 and [lib["name"] for lib in data["libs"] if not lib["readable"]] == ["Verso"]
    done = cli("plan", str(LAKE / "unbalanced"), cwd=home)
    assert done.code == 1 and "error" in done.err and "modules may be missing" in done.err
    done = cli("discover", str(LAKE / "toml_broken"), "--json", cwd=home)
    assert done.code == 1 and done.json()["diagnostics"][0]["code"] == "lakefile.unreadable"


def test_a_project_with_no_modules_is_nothing_to_do_for_discover_plan_and_run(home: Path) -> None:
    empty = home / "empty"
    empty.mkdir()
    (empty / "lakefile.lean").write_text("")
    done = cli_in_process("discover", str(empty), cwd=home)  # discover and plan in this process, run end to end
    assert done.code == 2 and "None" not in done.out + done.err and "unnamed package" in done.out
    assert "no lean-toolchain file" in done.out
    assert done.err_lines == [f"leanworker discover: {empty}: no modules (its lakefile declares no lean_lib): "
                              "nothing to do"]
    done = cli_in_process("plan", str(empty), cwd=home)
    assert done.code == 2 and "0 modules in 0 batches" in done.out and "nothing to do" in done.err
    assert "None" not in done.out + done.err
    reason = one_line_error(cli("run", str(empty), "--capability", MATHLIB, "--command", "index",
                                       cwd=home), "run")
    assert reason.endswith("nothing to do")


def test_tables_fit_the_terminal_and_speak_plainly(home: Path) -> None:
    names = [f"Mathlib.{'VeryLongAreaName' * 3}{i}.{'Topic' * 6}{j}" for i in range(3) for j in range(3)]
    from leanworker.fixtures.mathlib_tree import build_mathlib_tree

    build_mathlib_tree(home / "long", names)
    done = cli("plan", str(home / "long"), "--mode", "per_header", cwd=home)
    assert done.code == 0, done.err
    assert all(len(line) <= COLUMNS for line in done.out_lines), max(done.out_lines, key=len)
    assert "…" in done.out and "--json has it all" in done.out
    data = cli("plan", str(home / "long"), "--mode", "per_header", "--json", cwd=home).json()
    assert set(names) <= {m for b in data["batches"] for m in b["modules"]}, "--json keeps every name in full"
    done = cli("plan", str(LAKE / "toml_multi"), "--lib", "Beta", cwd=home)
    assert done.out_lines[0].startswith("2 modules in 1 batch (shared mode), 1 session key,"), done.out
    assert "None" not in done.out


# -- help, version, usage -------------------------------------------------------------------------------------------

def test_version_and_a_bare_leanworker_print_what_it_is(home: Path) -> None:
    from leanworker import __version__

    done = cli("--version", cwd=home)
    assert done.code == 0 and done.out.strip() == f"leanworker {__version__}"
    done = cli(cwd=home)
    assert done.code == 2 and done.err.startswith("usage: leanworker")
    assert all(re.search(rf"^\s+{command}\s+\S", done.err, re.M) for command in COMMANDS), done.err
    assert "exit status: 0" in done.err


# The modules that run the commands (and add their options): each is loaded only once its command is chosen.
COMMAND_MODULES = {"leanworker.cli._probe", "leanworker.cli._project", "leanworker.cli._run", "leanworker.cli._check",
                   "leanworker.cli._trace", "leanworker.serve.command"}


def test_a_command_loads_only_the_module_that_runs_it_and_the_public_parser_has_every_command() -> None:
    code = ("import sys\n"
            "from leanworker.cli import build_parser\n"
            "parser = build_parser(lazy=True)\n"
            "print(' '.join(sys.modules))\n"
            "parser.parse_args(['discover', '.'])\n"
            "print(' '.join(sys.modules))\n"
            "build_parser()\n"
            "print(' '.join(sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    at_start, after_discover, after_public = (set(line.split()) for line in done.stdout.splitlines())
    assert "leanworker.cli._main" in at_start and not at_start & COMMAND_MODULES, sorted(at_start & COMMAND_MODULES)
    assert after_discover & COMMAND_MODULES == {"leanworker.cli._project"}, sorted(after_discover & COMMAND_MODULES)
    assert after_public >= COMMAND_MODULES, sorted(COMMAND_MODULES - after_public)


@pytest.mark.parametrize("command", ["probe", "discover", "plan", "run", "check", "serve", "doctor", "trace",
                                     "trace render"])
def test_the_public_parser_prints_each_commands_help_as_the_command_does(
        command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from leanworker.cli import build_parser

    helps = []
    for parser in (build_parser(lazy=True), build_parser()):
        with pytest.raises(SystemExit):
            parser.parse_args([*command.split(), "--help"])
        helps.append(capsys.readouterr().out)
    assert helps[0] == helps[1] and "--json" in helps[0]


def help_entries(text: str) -> dict[str, str]:
    """Each option of a --help text and its help, joined across lines."""
    section = text.split("options:", 1)[1]
    entries: dict[str, str] = {}
    current = None
    for line in section.splitlines():
        match = re.match(r"^  (-[^ ].*?)(?:  +(.*))?$", line)
        if match:
            current = match.group(1).split(",")[-1].split()[0]
            entries[current] = match.group(2) or ""
        elif current and line.startswith("    "):
            entries[current] += " " + line.strip()
        elif not line.strip():
            current = None
    return entries


def test_every_option_of_every_command_says_what_it_does_and_its_default(home: Path) -> None:
    listed = re.findall(r"^    (\w+)  ", cli_in_process(cwd=home).err, re.M)  # every command the bare usage lists
    assert set(COMMANDS) <= set(listed), listed
    for command in (*[c for c in listed if c != "trace"], "trace render"):
        run = cli if command == "run" else cli_in_process  # one command's help from the console script
        done = run(*command.split(), "--help", cwd=home)
        assert done.code == 0, done.err
        entries = help_entries(done.out)
        assert "--json" in entries and len(entries) >= 3, (command, entries)
        for option, text in entries.items():
            if option != "--help":
                assert re.search(r"\(default[: ]", text) or "(required)" in text, (command, option, text)
        positionals = done.out.split("positional arguments:", 1)[1].split("options:")[0] if "positional" in \
            done.out else ""
        assert all(len(line.split()) > 1 for line in positionals.strip().splitlines()[:1]), (command, positionals)


def test_json_is_accepted_after_any_subcommand(home: Path, tmp_path: Path) -> None:
    trace = home / "run.jsonl"
    trace.write_text('{"t": 0.0, "kind": "spawn", "actor": "w/child.1"}\n')
    for run, args in ((cli, ("trace", "render", "run.jsonl", "--json")),  # the console script, end to end
                      (cli_in_process, ("trace", "--json", "render", "run.jsonl")),
                      (cli_in_process, ("trace", "render", "--json", "run.jsonl"))):
        done = run(*args, cwd=home)
        assert done.code == 0 and done.json()["events"] == 1, (args, done.err)
    assert cli_in_process("discover", "--json", str(LAKE / "toml_multi"), cwd=home).json()["status"] == "ok"


# Run by the console script, end to end: a value the parser refuses, and an option the command refuses once parsed.
# The other cases run leanworker.cli.main in this process (the same parser and checks, without a process each).
BAD_VALUES_END_TO_END = {("run", "P", "--capability", "a:b", "--command", "x", "--workers", "0"),
                         ("run", "P", "--capability", "a:b", "--command", "x", "--resume")}


BAD_VALUES = [
    (("run", "P", "--capability", "a:b", "--command", "x", "--workers", "0"),
     "leanworker run: error: argument --workers: must be >= 1, got 0"),
    (("run", "P", "--capability", "a:b", "--command", "x", "--retries", "-1"),
     "leanworker run: error: argument --retries: must be >= 0, got -1"),
    (("run", "P", "--capability", "a:b", "--command", "x", "--max-batch-modules", "0"),
     "leanworker run: error: argument --max-batch-modules: must be >= 1, got 0"),
    (("run", "P", "--capability", "no-colon", "--command", "index"),
     "leanworker run: error: argument --capability: must be module:attribute (for example my_tool:capability), "
     "got 'no-colon'"),
    (("check", "items.jsonl", "--timeout", "0"), "leanworker check: error: argument --timeout: must be a number > 0, "
                                                 "got 0"),
    (("check", "items.jsonl", "--workers", "two"), "leanworker check: error: argument --workers: not a whole number: "
                                                   "'two'"),
    (("probe", "--limit", "0"), "leanworker probe: error: argument --limit: must be >= 1, got 0"),
    (("probe", "--import-ms", "-5"), "leanworker probe: error: argument --import-ms: must be >= 0, got -5"),
    (("probe", "--modules-file", "/nonexistent/modules.txt"),
     "leanworker probe: error: argument --modules-file: no such file: /nonexistent/modules.txt"),
    (("plan", ".", "--max-batch-modules", "0"),
     "leanworker plan: error: argument --max-batch-modules: must be >= 1, got 0"),
    (("doctor", "--capability", "nocolon"),
     "leanworker doctor: error: argument --capability: must be module:attribute (for example my_tool:capability), "
     "got 'nocolon'"),
    (("run", "P", "--capability", "a:b", "--command", "x", "--resume"), "leanworker run: --resume needs --output"),
    (("check", "items.jsonl", "--lean", "lean"), "leanworker check: --lean goes with --mode file"),
    (("check", "items.jsonl", "--mode", "file", "--simulator"),
     "leanworker check: --simulator goes with --mode repl, not --mode file"),
    (("probe", "--modules-file", "."), "leanworker probe: error: argument --modules-file: is a directory, not a file: ."),
    (("plan", ".", "--base-import", "Foo Bar"),
     "leanworker plan: error: argument --base-import: 'Foo Bar': component 'Foo Bar' is not a Lean identifier (escape "
     "it as «Foo Bar»)"),
    (("run", "P", "--capability", "a:b", "--command", "x", "--ray", "localhost:99999"),
     "leanworker run: --ray localhost:99999: port 99999 is out of range (1 to 65535)"),
]


def test_the_bad_values_run_end_to_end_are_among_the_cases() -> None:
    assert BAD_VALUES_END_TO_END <= {args for args, _ in BAD_VALUES}, "a case meant to run end to end is not a case"


@pytest.mark.parametrize(("args", "line"), BAD_VALUES)
def test_each_bad_value_is_named_alone_in_one_line_with_exit_2(home: Path, args: tuple[str, ...], line: str) -> None:
    run = cli if args in BAD_VALUES_END_TO_END else cli_in_process
    done = run(*args, cwd=home)
    assert done.code == 2 and done.err_lines == [line] and done.out == "", done.err


# -- files: checked before any work ---------------------------------------------------------------------------------

def test_every_file_is_checked_first_one_line_naming_path_and_reason(home: Path) -> None:
    (home / "sub").mkdir()
    run = ("run", str(LAKE / "toml_multi"), "--capability", MATHLIB, "--command", "index")
    cases = [
        ((*run, "--output", "sub"), "run", "--output sub: is a directory (name a file in it)"),
        ((*run, "--output", "missing/out.jsonl"), "run", "--output missing/out.jsonl: the directory missing does not "
                                                         "exist"),
        ((*run, "--ray", "bogus://addr"), "run", "--ray bogus://addr: not a Ray address (use 'local', 'auto', "
                                                 "HOST:PORT or ray://HOST:PORT)"),
        (("check", "nothere.jsonl"), "check", "ITEMS nothere.jsonl: no such file"),
        (("check", "sub"), "check", "ITEMS sub: is a directory, not a file"),
        (("trace", "render", "nothere.json"), "trace render", "trace nothere.json: no such file"),
        (("probe", "--trace", "missing/t.json"), "probe", "--trace missing/t.json: the directory missing does not "
                                                          "exist"),
    ]
    trace = home / "t.jsonl"
    trace.write_text('{"t": 0.0, "kind": "spawn", "actor": "w/child.1"}\n')
    cases += [(("trace", "render", "t.jsonl", "-o", "missing/x.html"), "trace render",
               "--output missing/x.html: the directory missing does not exist"),
              (("trace", "render", "t.jsonl", "-o", "sub"), "trace render", "--output sub: is a directory (name a "
                                                                            "file in it)")]
    for index, (args, command, reason) in enumerate(cases):
        run = cli if index == 0 else cli_in_process  # the first from the console script, end to end
        assert one_line_error(run(*args, cwd=home), command) == reason, args


def test_no_output_is_ever_one_of_the_commands_own_inputs(home: Path) -> None:
    project = home / "project"
    shutil.copytree(LAKE / "toml_multi", project)
    lakefile, source = (project / "lakefile.toml").read_text(), (project / "Alpha" / "Basic.lean").read_text()
    run = ("run", "project", "--capability", MATHLIB, "--command", "index")
    reason = one_line_error(cli(*run, "--output", "project/lakefile.toml", cwd=home), "run")
    assert reason == ("--output project/lakefile.toml: is the project's lakefile.toml; writing there would destroy it "
                      "(name another file)")
    reason = one_line_error(cli_in_process(*run, "--output", "project/Alpha/Basic.lean", cwd=home), "run")
    assert reason.startswith("--output project/Alpha/Basic.lean: is the source of module Alpha.Basic;")
    assert (project / "lakefile.toml").read_text() == lakefile
    assert (project / "Alpha" / "Basic.lean").read_text() == source
    (home / "items.jsonl").write_text('{"id": 1, "code": "theorem a : True := trivial"}\n')
    reason = one_line_error(cli_in_process("check", "items.jsonl", "--simulator", "--output", "./items.jsonl",
                                           cwd=home), "check")
    assert reason == "--output ./items.jsonl: is the items file; writing there would destroy it (name another file)"
    trace = '{"t": 0.0, "kind": "spawn", "actor": "w/child.1"}\n'
    (home / "t.jsonl").write_text(trace)
    reason = one_line_error(cli_in_process("trace", "render", "t.jsonl", "-o", "t.jsonl", cwd=home), "trace render")
    assert reason == "--output t.jsonl: is the trace; writing there would destroy it (name another file)"
    assert (home / "items.jsonl").read_text().startswith('{"id": 1') and (home / "t.jsonl").read_text() == trace


@pytest.fixture
def open_folder() -> Iterator[Path]:
    """A folder any user may enter (pytest's own are root's alone)."""
    folder = Path(tempfile.mkdtemp(prefix="leanworker-person-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for path in folder.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(folder)


def test_unreadable_files_and_directories_are_named_not_raised(open_folder: Path) -> None:
    home = open_folder / "home"
    project = home / "project"
    (project / "Alpha" / "Secret").mkdir(parents=True)
    (project / "lakefile.toml").write_text('name = "p"\n[[lean_lib]]\nname = "Alpha"\n')
    (project / "Alpha.lean").write_text("import Alpha.Basic\n")
    (project / "Alpha" / "Basic.lean").write_text("def x := 1\n")
    (project / "Alpha" / "Secret" / "Hidden.lean").write_text("def y := 2\n")
    (home / "items.jsonl").write_text('{"id": 1, "code": "theorem a : True := trivial"}\n')
    (project / "Alpha" / "Secret").chmod(0o000)
    (home / "items.jsonl").chmod(0o000)
    (home / "ro").mkdir()
    (home / "ro").chmod(0o555)
    prefix = as_nobody()
    done = cli("discover", "project", cwd=home, prefix=prefix)
    assert done.code == 0 and "Alpha.Basic" in done.out, done.err
    assert done.err_lines == [f"warning: walk.unreadable: cannot list {project / 'Alpha' / 'Secret'}: "
                              "Permission denied"]
    done = cli("check", "items.jsonl", "--simulator", cwd=home, prefix=prefix)
    assert one_line_error(done, "check") == "ITEMS items.jsonl: not readable (permission denied)"
    done = cli("run", "project", "--capability", MATHLIB, "--command", "index", "--output", "ro/out.jsonl",
                      cwd=home, prefix=prefix)
    assert one_line_error(done, "run") == "--output ro/out.jsonl: cannot create files in ro (permission denied)"


# -- run ------------------------------------------------------------------------------------------------------------

def test_run_executes_a_plan_exits_0_and_resumes_exactly_once(home: Path) -> None:
    args = ("run", str(LAKE / "toml_multi"), "--capability", MATHLIB, "--command", "index", "--lib", "Beta", "--lib",
            "Gamma", "--max-batch-modules", "2", "--output", "rows.jsonl")
    done = cli(*args, "--json", cwd=home)
    data = done.json()
    assert done.code == 0 and data["status"] == "ok", done.err
    summary = data["summary"]
    assert summary["batches_committed"] == 3 and summary["rows"] == len((home / "rows.jsonl").read_text().splitlines())
    assert 1 <= summary["sessions_opened"] <= 2 and summary["elapsed"] == round(summary["elapsed"], 3)
    done = cli(*args, "--resume", cwd=home)
    assert done.code == 0 and "nothing left to run: every batch was committed to rows.jsonl" in done.out
    assert "committed rows" not in done.out
    resumed = cli(*args, "--resume", "--json", cwd=home).json()["summary"]
    assert resumed["batches_skipped"] == 3 and resumed["sessions_opened"] == 0, "nothing to run: no session opened"
    done = cli(*args, cwd=home)
    assert done.code == 0 and done.out_lines[-1].startswith("committed rows: rows.jsonl (")
    assert "3 batches" in done.out_lines[-1]


def test_a_probe_with_no_modules_to_probe_says_so_in_one_line(home: Path) -> None:
    (home / "none.txt").write_text("\n")
    (home / "binary.txt").write_bytes(b"\xff\xfe\x00")
    (home / "items.txt").write_text('{"id": 1}\n')
    (home / "empty").mkdir()
    (home / "empty" / "lakefile.lean").write_text("")
    cases = [(("--modules-file", "none.txt"), "--modules-file none.txt: no modules in it: nothing to probe"),
             (("--modules-file", "binary.txt"), "--modules-file binary.txt: not UTF-8 text (one module name a line)"),
             (("--modules-file", "items.txt"), "--modules-file items.txt: '{\"id\":': component '{\"id\":' is not a Lean "
                                               "identifier (escape it as «{\"id\":»)"),
             (("--lake-root", "empty"), f"Lake project {home / 'empty'}: no modules in it: nothing to probe")]
    for index, (args, reason) in enumerate(cases):
        run = cli if index == 0 else cli_in_process  # the first from the console script, end to end
        assert one_line_error(run("probe", *args, cwd=home), "probe") == reason, args


def test_run_says_why_it_exits_1_when_part_of_the_lakefile_could_not_be_read(home: Path) -> None:
    done = cli("run", str(LAKE / "unreadable"), "--capability", MATHLIB, "--command", "index", cwd=home)
    assert done.code == 1 and "committed" in done.out, done.err
    assert done.err_lines[-1] == "leanworker run: 3 errors reading lakefile.lean: modules may be missing (exit status 1)"
    unread = [line for line in done.err_lines if line.startswith("error: lakefile.")]
    assert len(unread) == 3 and any("lean_lib Computed" in line for line in unread), done.err


def test_run_loads_a_capability_from_the_current_directory(home: Path) -> None:
    (home / "my_tool.py").write_text(
        "from leanworker.host import Capability\n"
        "capability = Capability('my-tool', version='1.0.0')\n"
        "@capability.command('index')\n"
        "def index(ctx, request):\n"
        "    for module in request['modules']:\n"
        "        ctx.row('declarations', {'module': module})\n"
        "    return {'modules': len(request['modules'])}\n")
    done = cli("run", str(LAKE / "toml_multi"), "--capability", "my_tool:capability", "--command", "index",
                      "--json", cwd=home)
    assert done.code == 0 and done.json()["summary"]["rows"] == 3, done.err


def test_a_set_up_that_cannot_work_stops_once_before_any_batch(home: Path) -> None:
    (home / "raises.py").write_text("import json\nvalue = 1 / 0\n")
    (home / "closed.py").write_text(
        "from leanworker.host import Capability\n"
        "capability = Capability('closed', version='1.0.0')\n"
        "@capability.session\n"
        "def open_session(spec):\n"
        "    raise RuntimeError('no licence for this machine')\n"
        "@capability.command('index')\n"
        "def index(ctx, request):\n"
        "    return {}\n")
    run = ("run", str(LAKE / "toml_multi"), "--lib", "Beta", "--lib", "Gamma", "--max-batch-modules", "1",
           "--command", "index", "--output", "rows.jsonl", "--capability")
    reason = one_line_error(cli(*run, "nosuch_tool:capability", cwd=home), "run")
    assert reason.startswith("--capability nosuch_tool:capability: cannot import 'nosuch_tool': no module named "
                             "'nosuch_tool'. The worker (working directory")
    looked = reason.split("looked in: ")[1].split(". ")[0].split(", ")
    assert len(looked) == len(set(looked)) and str(LAKE / "toml_multi") in looked, looked
    reason = one_line_error(cli(*run, "raises:capability", cwd=home), "run")
    assert reason == (f"--capability raises:capability: 'raises' was found but raised while importing: "
                      f"ZeroDivisionError: division by zero ({home / 'raises.py'}, line 2)")
    reason = one_line_error(cli(*run, "closed:capability", cwd=home), "run")
    assert reason == "cannot open a session of closed:capability: RuntimeError: no licence for this machine"
    reason = one_line_error(cli(*run, MATHLIB, "--command", "indx", cwd=home), "run")
    assert reason == (f"--command indx: {MATHLIB} has no such command (its commands: doctor, extract, features, "
                      "index, probe, version)")
    assert not (home / "rows.jsonl").exists() or (home / "rows.jsonl").read_text() == ""


def test_run_exits_1_when_batches_fail_and_says_committed_rows_only_when_there_were(home: Path) -> None:
    (home / "flaky.py").write_text(
        "from leanworker.host import Capability\n"
        "from leanworker.errors import CommandError\n"
        "capability = Capability('flaky', version='1.0.0')\n"
        "@capability.command('index')\n"
        "def index(ctx, request):\n"
        "    raise CommandError('refused', 'this module is not indexable: ' + request['modules'][0])\n")
    done = cli("run", str(LAKE / "toml_multi"), "--lib", "Beta", "--lib", "Gamma", "--max-batch-modules", "2",
                      "--capability", "flaky:capability", "--command", "index", "--output", "rows.jsonl", cwd=home)
    assert done.code == 1 and "committed rows" not in done.out
    assert "no rows were committed to rows.jsonl" in done.out
    failed = [line for line in done.err_lines if line.startswith("failed: ")]
    assert len(failed) == 3 and all(len(line) <= COLUMNS for line in failed), done.err


# -- doctor, trace ---------------------------------------------------------------------------------------------------

def test_doctor_json_reports_checks(home: Path) -> None:
    done = cli("doctor", "--json", cwd=home)
    assert done.code == 0 and done.json()["status"] == "ok"
    assert {c["name"] for c in done.json()["checks"]} >= {"python", "session", "parent_death_signal"}


def test_trace_alone_names_the_subcommand_it_needs(home: Path) -> None:
    assert one_line_error(cli("trace", cwd=home), "trace") == "error: the following arguments are required: {render}"


def test_trace_render_refuses_what_is_not_a_trace_and_an_empty_one(home: Path) -> None:
    (home / "text.json").write_text("not json\n")
    (home / "other.json").write_text('{"a": 1}\n')
    (home / "empty.jsonl").write_text("")
    assert one_line_error(cli("trace", "render", "text.json", cwd=home), "trace render").startswith(
        "text.json is not JSON")
    assert "is JSON but not a leanworker trace" in one_line_error(cli_in_process("trace", "render", "other.json",
                                                                                cwd=home), "trace render")
    assert one_line_error(cli_in_process("trace", "render", "empty.jsonl", cwd=home), "trace render") == (
        "empty.jsonl holds no events: nothing to render")
    (home / "ok.jsonl").write_text('{"t": 0.0, "kind": "spawn", "actor": "w/child.1"}\n')
    done = cli_in_process("trace", "render", "ok.jsonl", cwd=home)
    assert done.code == 0 and done.out_lines == [f"1 event rendered to {home / 'timeline.html'}"]


def test_trace_render_says_what_a_trace_is_for_json_of_another_shape(home: Path) -> None:
    for name, text in (("list.json", "[]\n"), ("numbers.json", "[1, 2]\n"), ("items.jsonl", '{"id": 1, "code": "x"}\n')):
        (home / name).write_text(text)
        run = cli if name == "list.json" else cli_in_process  # the first from the console script, end to end
        reason = one_line_error(run("trace", "render", name, cwd=home), "trace render")
        assert reason == (f"{name} is JSON but not a leanworker trace (JSON lines of events, or Chrome trace JSON, as "
                          "probe --trace and lw.Tracer write them)"), reason


def test_a_ray_address_where_no_ray_answers_stops_in_one_line_at_once(home: Path) -> None:
    """Ray's own connect retries an address where no cluster answers for about ten minutes, with Ctrl-C held back
    while it does: the address is tried first."""
    import socket
    import threading

    pytest.importorskip("ray")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    run = ("run", str(LAKE / "toml_multi"), "--capability", MATHLIB, "--command", "index", "--ray")
    reason = one_line_error(cli(*run, f"127.0.0.1:{free}", cwd=home, timeout=60), "run")
    assert reason == f"--ray 127.0.0.1:{free}: cannot connect: nothing listens at 127.0.0.1:{free} (connection refused)"
    with socket.socket() as server:  # something that is not Ray: a plain HTTP/1 server
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        def answer_http() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        thread = threading.Thread(target=answer_http, daemon=True)
        thread.start()
        reason = one_line_error(cli(*run, f"ray://127.0.0.1:{port}", cwd=home, timeout=60), "run")
        thread.join(timeout=10)
    assert reason == (f"--ray ray://127.0.0.1:{port}: cannot connect: 127.0.0.1:{port} answers, but not as a Ray "
                      "cluster does (it is no gRPC server: check the port)")


def test_the_readme_and_docs_hold_no_placeholder(home: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        left = [line for line in page.read_text(encoding="utf-8").splitlines()
                if re.fullmatch(r"[A-Z][A-Z0-9]*_[A-Z0-9_]+", line.strip())]  # such as SERVE_TABLE
        assert not left, (page.name, left)


def test_run_with_ray_but_without_the_extra_says_how_to_install_it(home: Path) -> None:
    (home / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None  # as without the ray extra\n")
    env = person_env(PYTHONPATH=str(home))
    done = cli("run", str(LAKE / "toml_multi"), "--capability", "a:b", "--command", "index", "--ray", "auto",
                      cwd=home, env=env)
    assert one_line_error(done, "run") == "--ray needs Ray: pip install 'leanworker[ray]'"


def test_importing_scaleout_without_ray_names_the_extra(home: Path) -> None:
    import subprocess
    import sys

    code = ("import sys\nsys.modules['ray'] = None\n"
            "try:\n    import leanworker.scaleout\nexcept ImportError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "leanworker.scaleout needs Ray: pip install 'leanworker[ray]'", done.stderr


def test_run_output_must_be_a_regular_file(home: Path) -> None:
    """A FIFO as --output blocked the run for good (opening it waits for a reader); a device got a journal beside it
    in /dev."""
    os.mkfifo(home / "rows.fifo")
    done = cli("run", str(LAKE / "toml_multi"), "--capability", MATHLIB, "--command", "index", "--output",
               "rows.fifo", cwd=home, timeout=30)
    assert one_line_error(done, "run") == ("--output rows.fifo: not a regular file (exactly-once output reopens, "
                                           "truncates and fsyncs its file)")
    (home / "items.jsonl").write_text('{"id": 1, "code": "theorem a : True := trivial"}\n')
    done = cli("check", "items.jsonl", "--simulator", "--output", "rows.fifo", "--resume", cwd=home, timeout=30)
    assert one_line_error(done, "check") == ("--output rows.fifo: not a regular file (--resume reads back the results "
                                             "it holds)")


def test_doctor_lines_fit_the_terminal(home: Path) -> None:
    for args in ((), ("--capability", "nosuch_tool:capability")):
        done = cli("doctor", *args, cwd=home)
        assert done.code in (0, 1) and all(len(line) <= COLUMNS for line in done.out_lines), done.out
        assert "session" in done.out
    assert "nosuch_tool" in done.out and done.out_lines[1].startswith("  [error  ] session_open: CommandError:")


def test_run_elapsed_counts_the_first_session_it_opened_before_the_batches(home: Path) -> None:
    """The first session is opened before the run (a set-up that cannot work stops there): its time, an import of
    minutes for Mathlib, was left out of the summary, which said 0.0 s."""
    (home / "slow_open.py").write_text(
        "import time\n"
        "from leanworker.host import Capability\n"
        "capability = Capability('slow-open', version='1.0.0')\n"
        "@capability.session\n"
        "def open_session(spec):\n"
        "    time.sleep(1.0)\n"
        "@capability.command('index')\n"
        "def index(ctx, request):\n"
        "    return {'modules': len(request['modules'])}\n")
    done = cli("run", str(LAKE / "toml_multi"), "--capability", "slow_open:capability", "--command", "index",
               "--workers", "1", "--json", cwd=home)
    summary = done.json()["summary"]
    assert done.code == 0 and summary["sessions_opened"] == 1 and summary["elapsed"] >= 1.0, summary
