"""Module names: Lean's identifier rules and the «» escape."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import leanworker as lw
from leanworker.planner.names import escape_component, join_components, sort_key, split_module_name


@pytest.mark.parametrize("name", ["Mathlib", "Mathlib.Data.Nat.Basic", "Foo'.Bar!?", "α.β₁", "_x.y_",
                                  "Core.«125»", "Core.«v4_0_0-m1»", "«a b».c", "ℝ.Basic", "Std"])
def test_valid_names_pass(name: str) -> None:
    assert lw.validate_module_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "A.", ".A", "A..B", "1abc", "A.125", "A.v4-0", "a b", "«»", "«open",
                                  "A.«x»y", "λ", "A.B-C"])
def test_invalid_names_raise_invalid_module_name(name: str) -> None:
    with pytest.raises(lw.InvalidModuleName):
        lw.validate_module_name(name)


def test_invalid_module_name_is_a_value_error_and_a_leanworker_error() -> None:
    with pytest.raises(ValueError):
        lw.validate_module_name("9")
    assert issubclass(lw.InvalidModuleName, lw.LeanWorkerError)


def test_components_are_escaped_only_when_they_must_be() -> None:
    assert escape_component("Basic") == "Basic"
    assert escape_component("125") == "«125»"
    assert escape_component("v4_0_0-m1") == "«v4_0_0-m1»"
    with pytest.raises(lw.InvalidModuleName):
        escape_component("a»b")


def test_sorting_is_component_by_component() -> None:
    names = ["A.BC", "A.B.C", "A", "A.B", "AB"]
    assert sorted(names, key=sort_key) == ["A", "A.B", "A.B.C", "A.BC", "AB"]


components = st.text(st.characters(blacklist_characters="»", blacklist_categories=("Cs",)), min_size=1, max_size=8)


@given(st.lists(components, min_size=1, max_size=5))
def test_escape_then_parse_gives_the_components_back(parts: list[str]) -> None:
    name = join_components(parts)
    assert split_module_name(name) == tuple(parts)
    assert lw.validate_module_name(name) == name


@given(st.text(max_size=20))
def test_any_text_validates_or_raises_invalid_module_name(text: str) -> None:
    try:
        parts = split_module_name(text)
    except lw.InvalidModuleName:
        return
    assert join_components(parts) == text or split_module_name(join_components(parts)) == parts
