"""The worker finds the user's capability module wherever the parent found it, whatever the working directories
(issue 12, item 1); when it cannot, the error says where it looked and what to set."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

TOOL = textwrap.dedent("""
    from leanworker.host import Capability

    capability = Capability("my-tool", version="1.0.0")

    @capability.command("hello")
    def hello(ctx, request):
        return "hello from my_tool"
""")

PARENT = textwrap.dedent("""
    import sys
    import leanworker as lw

    workspace = sys.argv[1]
    with lw.Worker(lw.SessionKey("my_tool:capability", workspace=workspace)) as worker:
        print(worker.call("hello"), flush=True)
""")


@contextmanager
def importable_from(folder: Path, *modules: str) -> Iterator[None]:
    """``folder`` on this process's import path inside the block; ``modules`` forgotten after it."""
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for name in modules:
            sys.modules.pop(name, None)


def test_a_capability_beside_the_script_is_found_from_any_directory(tmp_path: Path) -> None:
    project, elsewhere, workspace = (tmp_path / name for name in ("project", "elsewhere", "workspace"))
    for directory in (project, elsewhere, workspace):
        directory.mkdir()
    (project / "my_tool.py").write_text(TOOL)
    (project / "parent.py").write_text(PARENT)
    done = subprocess.run([sys.executable, str(project / "parent.py"), str(workspace)], cwd=elsewhere,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "hello from my_tool"


def test_a_capability_nobody_can_import_says_where_the_worker_looked(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import leanworker as lw
        try:
            lw.Worker(lw.SessionKey("no_such_tool_anywhere:capability"))
        except lw.CommandError as exc:
            print(exc.code, "|", exc.message)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    code, message = done.stdout.split(" | ", 1)
    assert code == "capability_load"
    assert "cannot import 'no_such_tool_anywhere'" in message and "looked in:" in message
    assert "PYTHONPATH" in message


def test_a_capability_that_does_not_compile_is_reported_at_its_own_file_and_line(tmp_path: Path) -> None:
    import pytest

    from leanworker.host.capability import CapabilityLoadError, load_capability

    (tmp_path / "broken_tool.py").write_text("from leanworker.host import Capability\n\ndef f(:\n    pass\n")
    (tmp_path / "tab_tool.py").write_text("if True:\n\tx = 1\n        y = 2\n")
    with importable_from(tmp_path, "broken_tool", "tab_tool"):
        with pytest.raises(CapabilityLoadError) as broken:
            load_capability("broken_tool:capability")
        with pytest.raises(CapabilityLoadError) as tabs:
            load_capability("tab_tool:capability")
    assert str(broken.value).startswith("'broken_tool' was found but does not compile: SyntaxError: ")
    assert str(broken.value).endswith(f"({tmp_path / 'broken_tool.py'}, line 3)")
    assert "capability.py" not in str(broken.value)
    assert str(tabs.value).startswith("'tab_tool' was found but does not compile: TabError: ")
    assert str(tabs.value).endswith(f"({tmp_path / 'tab_tool.py'}, line 3)")


def test_a_capability_a_package_loads_on_first_use_that_fails_to_import_is_a_capability_load_error(
        tmp_path: Path) -> None:
    import pytest

    from leanworker.host.capability import CapabilityLoadError, load_capability

    package = tmp_path / "lazy_tool"
    package.mkdir()
    (package / "__init__.py").write_text(  # names loaded on first use (PEP 562), as leanworker.lean does
        "import importlib\n\ndef __getattr__(name):\n"
        "    if name == 'capability':\n        return importlib.import_module('lazy_tool.impl').capability\n"
        "    raise AttributeError(name)\n")
    (package / "impl.py").write_text("import no_such_dependency_anywhere\n")
    with importable_from(tmp_path, "lazy_tool", "lazy_tool.impl"):
        with pytest.raises(CapabilityLoadError) as broken:
            load_capability("lazy_tool:capability")
        with pytest.raises(CapabilityLoadError) as missing:
            load_capability("lazy_tool:other")
    assert str(broken.value).startswith("'lazy_tool:capability' was found but raised while importing: "
                                        "ModuleNotFoundError: No module named 'no_such_dependency_anywhere' (")
    assert str(broken.value).endswith(f"({package / 'impl.py'}, line 1)")
    assert str(missing.value).startswith("module 'lazy_tool' has no attribute 'other'")
