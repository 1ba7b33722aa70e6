"""What the model card and the report say beyond the metric tables."""

from __future__ import annotations

from typing import Any

import pytest

from training.model_card import within_source_roc_auc, within_source_sentence


def _record(validation: dict[str, float | None], test: dict[str, float | None]) -> dict[str, Any]:
    return {
        subset: {"by_group": {name: {"roc_auc": auc} for name, auc in groups.items()}}
        for subset, groups in (("validation", validation), ("test", test))
    }


def test_the_within_source_figure_averages_the_sources_that_have_one() -> None:
    record = _record({"a": 0.9, "b": 0.8, "c": None}, {"a": 0.95, "b": 0.85})
    assert within_source_roc_auc(record, "validation") == pytest.approx(0.85)
    assert within_source_roc_auc(record, "test") == pytest.approx(0.9)
    sentence = within_source_sentence(record)
    assert sentence.startswith(
        "ROC AUC within each source, averaged over the sources: validation 0.850, test 0.900."
    )
    assert "the figure to expect on one clinic's images" in sentence


def test_with_one_source_there_is_no_within_source_figure() -> None:
    record = _record({"a": 0.9, "b": None}, {"a": 0.95, "b": 0.85})
    assert within_source_roc_auc(record, "validation") is None
    assert within_source_sentence(record) == ""
