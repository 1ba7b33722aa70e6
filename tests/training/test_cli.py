"""The training command line's choice of recipe."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from training import weights
from training.cli import _config_for, _weights_for, build_parser, run_name
from training.config import Phase, TrainingConfig, default_config

SERVED_CONFIG = (
    Path(__file__).resolve().parents[2] / "models/efficientnet_lite0/training_config.json"
)


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", *argv])


def test_without_a_config_file_it_trains_the_default_recipe() -> None:
    assert _config_for("efficientnet_lite0", _args()) == default_config("efficientnet_lite0")


def test_a_saved_config_retrains_that_model_with_flags_on_top(tmp_path: Path) -> None:
    saved = TrainingConfig(
        architecture="efficientnet_lite0",
        input_size=96,
        phases=(Phase("all", "all", epochs=7, learning_rate=3e-5),),
        precision="mixed_bfloat16",
    )
    path = tmp_path / "training_config.json"
    saved.save(path)

    config = _config_for("efficientnet_lite0", _args("--config", str(path), "--precision", "auto"))

    assert config == saved.with_overrides(precision="auto")


def test_the_served_model_was_trained_with_the_default_recipe() -> None:
    # What `python -m training train` trains is what is served. Beside it are recorded the
    # weights file's name and what "auto" precision resolved to on the machine that trained it.
    served = TrainingConfig.from_dict(json.loads(SERVED_CONFIG.read_text()))
    recorded = served.with_overrides(weights_path=None, precision="auto")
    assert recorded == default_config("efficientnet_lite0")
    assert _config_for("efficientnet_lite0", _args("--config", str(SERVED_CONFIG))) == served


def test_a_config_for_another_architecture_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "training_config.json"
    TrainingConfig(architecture="custom_cnn").save(path)
    with pytest.raises(SystemExit, match="trains custom_cnn, not vgg16"):
        _config_for("vgg16", _args("--config", str(path), "--architecture", "vgg16"))


def test_the_full_recipe_chooses_epochs_within_sources_and_holds_out_a_clinic() -> None:
    full = default_config("efficientnet_lite0")
    assert {phase.monitor for phase in full.phases} == {"val_within_source_auc"}
    assert full.holdout_sources == ("ham-isic2018-448px",)


def test_a_named_run_is_kept_apart_from_the_served_one() -> None:
    assert run_name("efficientnet_lite0", _args("--run-name", "lite0_320px")) == "lite0_320px"
    assert _args("--no-evaluate").no_evaluate


def test_missing_lite_weights_are_fetched_into_the_weights_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DERMATRIAGE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(weights, "SHARED_WEIGHTS_DIR", tmp_path / "shared")
    monkeypatch.setattr(weights, "REPO_ROOT", tmp_path / "repo")
    fetched: list[Path] = []

    def fake_fetch(out_path: Path) -> Path:
        fetched.append(out_path)
        out_path.touch()
        return out_path

    name = weights.LITE0_NPZ_NAME
    monkeypatch.setitem(weights.FETCHERS, "lite0", (fake_fetch, name, "requirement"))

    assert _weights_for("efficientnet_lite0", _args()) == tmp_path / name
    assert fetched == [tmp_path / name]
    # Once there, it is found rather than fetched again.
    assert _weights_for("efficientnet_lite0", _args()) == tmp_path / name
    assert len(fetched) == 1
