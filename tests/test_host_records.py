"""The worker host's records (``SessionSpec``, ``CommandInfo``) behave as the frozen dataclasses they were: made by
keyword or position with the same defaults, compared and hashed by their fields, shown by them, never assigned."""

from __future__ import annotations

import copy
import pickle
import platform
import sys

import pytest

from leanworker.host import CommandInfo, SessionSpec
from leanworker.host.serve import PYTHON_VERSION


def _command(ctx: object, request: object) -> None:
    return None


def test_a_session_spec_has_the_defaults_and_a_fresh_options_dict_each() -> None:
    spec = SessionSpec("tool:capability")
    assert (spec.workspace, spec.imports, spec.options) == (None, (), {})
    assert SessionSpec("tool:capability").options is not spec.options
    assert SessionSpec("a:b", "/w", ("X",), {"k": 1}) == SessionSpec(capability="a:b", workspace="/w", imports=("X",),
                                                                     options={"k": 1})


def test_records_are_equal_by_fields_and_only_to_their_own_class() -> None:
    spec = SessionSpec("a:b", options={"k": 1})
    assert spec == SessionSpec("a:b", options={"k": 1}) and spec != SessionSpec("a:b", options={"k": 2})
    assert spec != ("a:b", None, (), {"k": 1})
    info = CommandInfo("run", _command)
    assert info == CommandInfo("run", _command, "", ()) and hash(info) == hash(CommandInfo("run", _command))


def test_a_record_is_hashed_by_its_fields_so_a_spec_with_options_is_unhashable() -> None:
    with pytest.raises(TypeError, match="unhashable"):
        hash(SessionSpec("a:b"))


def test_a_record_cannot_be_assigned_or_deleted() -> None:
    spec = SessionSpec("a:b")
    with pytest.raises(AttributeError, match="cannot assign to field 'workspace'"):
        spec.workspace = "/elsewhere"  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot delete field 'imports'"):
        del spec.imports  # type: ignore[misc]
    assert spec.workspace is None and spec.imports == ()


def test_a_record_is_shown_copied_pickled_and_matched_by_its_fields() -> None:
    spec = SessionSpec("a:b", "/w", ("X",), {"k": 1})
    assert repr(spec) == "SessionSpec(capability='a:b', workspace='/w', imports=('X',), options={'k': 1})"
    assert copy.copy(spec) == spec and copy.deepcopy(spec) == spec and pickle.loads(pickle.dumps(spec)) == spec
    match spec:
        case SessionSpec(capability, workspace, imports):
            assert (capability, workspace, imports) == ("a:b", "/w", ("X",))
        case _:
            pytest.fail("a SessionSpec did not match its positional pattern")
    assert repr(CommandInfo("run", _command, "runs", ("rows",))).startswith("CommandInfo(name='run', function=<function")


def test_the_host_reports_the_python_version_platform_reports() -> None:
    assert PYTHON_VERSION == platform.python_version()


def test_a_record_is_copied_with_changes_as_a_dataclass_is_by_copy_replace() -> None:
    spec = SessionSpec("a:b", "/w", ("X",), {"k": 1})
    moved = spec.__replace__(workspace="/v", options={})
    assert moved == SessionSpec("a:b", "/v", ("X",)) and spec == SessionSpec("a:b", "/w", ("X",), {"k": 1})
    assert CommandInfo("run", _command).__replace__(streams=("rows",)) == CommandInfo("run", _command, "", ("rows",))
    with pytest.raises(TypeError, match="no_such_field"):
        spec.__replace__(no_such_field=1)
    if sys.version_info >= (3, 13):
        assert copy.replace(spec, imports=()) == SessionSpec("a:b", "/w", (), {"k": 1})
