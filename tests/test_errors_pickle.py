"""Every leanworker error survives pickling with its type, message and fields (issue 11: errors cross Ray nodes)."""

from __future__ import annotations

import inspect
import pickle

import pytest

import leanworker as lw
import leanworker.actors.run.journal  # noqa: F401  (ResumeMismatch)
import leanworker.host.capability  # noqa: F401  (CapabilityLoadError)


def every_error() -> list[type[lw.LeanWorkerError]]:
    found: list[type[lw.LeanWorkerError]] = []
    todo: list[type[lw.LeanWorkerError]] = [lw.LeanWorkerError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(set(found), key=lambda c: c.__qualname__)


def sample(cls: type[lw.LeanWorkerError]) -> lw.LeanWorkerError:
    """An instance with every constructor argument set to a recognisable value."""
    args: list[object] = []
    kwargs: dict[str, object] = {}
    init = cls.__init__
    parameters = [] if init is Exception.__init__ else list(inspect.signature(init).parameters.items())[1:]
    for name, parameter in parameters:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        value: object = 7 if name in ("exit_code", "signal", "limit_mib") else (
            1.5 if name in ("rss_mib", "retry_after") else f"{name} of {cls.__name__}")
        if parameter.kind is parameter.KEYWORD_ONLY:
            kwargs[name] = value
        else:
            args.append(value)
    if not args and not kwargs:
        args = [f"message of {cls.__name__}"]
    return cls(*args, **kwargs)


def test_the_list_covers_the_public_errors() -> None:
    names = {cls.__name__ for cls in every_error()}
    public = {name for name in lw.__all__ if isinstance(getattr(lw, name), type)
              and issubclass(getattr(lw, name), lw.LeanWorkerError)}
    assert public <= names and {"NodeLost", "CommandError", "ResumeMismatch", "CapabilityLoadError"} <= names


@pytest.mark.parametrize("cls", every_error(), ids=lambda c: c.__name__)
def test_an_error_survives_pickling_with_its_fields(cls: type[lw.LeanWorkerError]) -> None:
    error = sample(cls)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error) and copy.args == error.args
    assert vars(copy) == vars(error)


def test_a_command_error_keeps_its_code_and_worker_traceback() -> None:
    error = lw.CommandError("exception", "boom", traceback="Traceback...\n  File x\nValueError: boom")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message, copy.traceback) == ("exception", "boom", error.traceback)
    assert "ValueError: boom" in str(copy)
