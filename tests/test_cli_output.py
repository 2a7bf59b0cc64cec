"""The command line's plain words and tables, as pure functions: tables fit the width (cut in the middle, said so),
counts agree with their nouns, and no ``None`` or Python repr reaches a person."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from leanworker.cli._output import elide, fit_widths, human, plural, table, wrap_figures


def test_counts_agree_with_their_nouns() -> None:
    assert [plural(n, "batch") for n in (0, 1, 2)] == ["0 batches", "1 batch", "2 batches"]
    assert plural(1, "module") == "1 module" and plural(3, "planned batch", "planned batches") == "3 planned batches"


def test_figures_are_plain_words() -> None:
    assert human(None) == "-" and human(True) == "yes" and human(False) == "no"
    assert human({"declarations": 16, "probes": 15}) == "declarations 16, probes 15"
    assert human(["ok", "sorry"]) == "ok, sorry" and human({}) == "-" and human({"a": None}) == "a -"


@settings(deadline=None, database=None)
@given(st.text(min_size=0, max_size=80), st.integers(min_value=0, max_value=90))
def test_elide_keeps_both_ends_and_never_exceeds_the_width(text: str, width: int) -> None:
    cut = elide(text, width)
    assert len(cut) <= max(width, 0) or cut == text and len(text) <= width
    if len(text) <= width:
        assert cut == text
    elif width >= 3:
        assert cut.count("…") >= 1 and text.startswith(cut.split("…")[0])


@settings(deadline=None, database=None)
@given(st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=8), st.integers(10, 400))
def test_fitted_widths_stay_within_the_budget_unless_the_minimums_do_not_fit(natural: list[int], budget: int) -> None:
    minimum = [min(n, 8) for n in natural]
    widths = fit_widths(natural, minimum, budget)
    assert all(m <= w <= n for w, m, n in zip(widths, minimum, natural))
    assert sum(widths) <= budget or widths == minimum


def test_a_table_fits_its_width_and_says_when_it_cut() -> None:
    rows = [["0", "Mathlib." + "VeryLongName." * 10 + "End", "x"], ["1", "Short", "y"]]
    text = table(["batch", "first", "imports"], rows, width=60)
    lines = text.splitlines()
    assert all(len(line) <= 60 for line in lines) and "…" in lines[2] and lines[2].rstrip().endswith("x")
    assert lines[-1] == "(… marks text cut to fit 60 columns; --json has it all)"
    assert "cut to fit" not in table(["a"], [["b"]], width=60)


def test_figures_wrap_between_figures_or_after_a_comma_never_inside_a_word() -> None:
    lines = wrap_figures(["rows 47", "per_stream declarations 16, features 16, probes 15", "elapsed_s 0.004"], 40)
    assert all(len(line) <= 40 for line in lines)
    assert "elapsed_s 0.004" in lines[-1] and not any(line.startswith(" ") for line in lines)
    assert " ".join(lines).replace("; ", ";").count(";") == 2
