"""The three architectures compared: EfficientNet (Lite0 or B0), VGG16 and a custom CNN.

EfficientNet-B0's ImageNet weights cannot be obtained on an offline machine, so the served model
uses EfficientNet-Lite0 as an honest stand-in: the same block table as B0 without
squeeze-and-excitation and with ReLU6 instead of swish (Google's mobile variant, ImageNet top-1
75.1% against B0's 77.1%). B0 stays available for anyone who has its weights.

Every model takes raw RGB pixels in 0..255; normalisation is part of the model, so inference
feeds decoded pixels and nothing else. Every model ends in one linear unit: the malignancy
logit. Calibration (temperature) and the sigmoid are applied outside, from the artifact's
metadata.
"""

from __future__ import annotations

import math
from pathlib import Path

import keras
from keras import layers

from inference.artifact import LOGIT_LAYER, POOLING_LAYER
from training.config import ARCHITECTURES, Architecture
from training.lite_blocks import HEAD_FILTERS, STAGES, STEM_FILTERS, StageArgs

HEAD_LAYER_NAMES = ("head_dropout", "head_dense", LOGIT_LAYER)
# Named as inference expects: it reads the feature maps at this layer's input.
POOL_LAYER = POOLING_LAYER

DISPLAY_NAMES: dict[str, str] = {
    "efficientnet_lite0": "EfficientNet-Lite0 (ImageNet; stand-in for EfficientNet-B0)",
    "efficientnet_b0": "EfficientNet-B0",
    "vgg16": "VGG16 (ImageNet conv base)",
    "custom_cnn": "Custom CNN (trained from scratch)",
}


_CONV_INIT = keras.initializers.VarianceScaling(scale=2.0, mode="fan_out", distribution="normal")


def _correct_pad(size: int, kernel_size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """TF "same" padding for a stride-2 conv, made explicit (keras' correct_pad rule)."""
    adjust = 1 - size % 2
    half = kernel_size // 2
    return ((half - adjust, half), (half - adjust, half))


def _lite_block(
    x: keras.KerasTensor,
    args: StageArgs,
    filters_in: int,
    strides: int,
    drop_rate: float,
    name: str,
) -> keras.KerasTensor:
    inputs = x
    filters = filters_in * args.expand_ratio
    if args.expand_ratio != 1:
        x = layers.Conv2D(
            filters,
            1,
            padding="same",
            use_bias=False,
            kernel_initializer=_CONV_INIT,
            name=name + "expand_conv",
        )(x)
        x = layers.BatchNormalization(name=name + "expand_bn")(x)
        x = layers.Activation("relu6", name=name + "expand_activation")(x)
    if strides == 2:
        x = layers.ZeroPadding2D(
            _correct_pad(x.shape[1], args.kernel_size), name=name + "dwconv_pad"
        )(x)
        padding = "valid"
    else:
        padding = "same"
    x = layers.DepthwiseConv2D(
        args.kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        depthwise_initializer=_CONV_INIT,
        name=name + "dwconv",
    )(x)
    x = layers.BatchNormalization(name=name + "bn")(x)
    x = layers.Activation("relu6", name=name + "activation")(x)
    x = layers.Conv2D(
        args.filters_out,
        1,
        padding="same",
        use_bias=False,
        kernel_initializer=_CONV_INIT,
        name=name + "project_conv",
    )(x)
    x = layers.BatchNormalization(name=name + "project_bn")(x)
    if strides == 1 and filters_in == args.filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=name + "drop")(x)
        x = layers.add([x, inputs], name=name + "add")
    return x


def efficientnet_lite0_base(input_size: int, drop_connect_rate: float = 0.2) -> keras.Model:
    """An EfficientNet-Lite0 feature extractor, layer names as in keras' EfficientNetB0."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    # The official Lite normalisation: (x - 127) / 128.
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="lite_rescaling")(inputs)
    x = layers.ZeroPadding2D(_correct_pad(input_size, 3), name="stem_conv_pad")(x)
    x = layers.Conv2D(
        STEM_FILTERS,
        3,
        strides=2,
        padding="valid",
        use_bias=False,
        kernel_initializer=_CONV_INIT,
        name="stem_conv",
    )(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.Activation("relu6", name="stem_activation")(x)

    total_blocks = sum(stage.repeats for stage in STAGES)
    block_index = 0
    for stage, args in enumerate(STAGES):
        for repeat in range(args.repeats):
            filters_in = args.filters_in if repeat == 0 else args.filters_out
            strides = args.strides if repeat == 0 else 1
            x = _lite_block(
                x,
                args,
                filters_in,
                strides,
                drop_rate=drop_connect_rate * block_index / total_blocks,
                name=f"block{stage + 1}{chr(97 + repeat)}_",
            )
            block_index += 1

    x = layers.Conv2D(
        HEAD_FILTERS,
        1,
        padding="same",
        use_bias=False,
        kernel_initializer=_CONV_INIT,
        name="top_conv",
    )(x)
    x = layers.BatchNormalization(name="top_bn")(x)
    x = layers.Activation("relu6", name="top_activation")(x)
    return keras.Model(inputs, x, name="efficientnet_lite0")


def _efficientnet_b0_base(input_size: int, weights: str | None) -> keras.Model:
    # keras' B0 normalises inside the model too and accepts "imagenet" or a weights file path.
    return keras.applications.EfficientNetB0(
        include_top=False, weights=weights, input_shape=(input_size, input_size, 3)
    )


def _vgg16_base(input_size: int, weights_path: Path | None) -> keras.Model:
    from training import weights as weights_io

    inputs = keras.Input((input_size, input_size, 3), name="image")
    # VGG16's ImageNet preprocessing is caffe-style: BGR with channel means removed. Subtracting
    # the means (RGB order) here and flipping the first kernel's input channels below gives the
    # same function on RGB input with stock layers only, so the saved model needs no custom code.
    x = layers.Normalization(
        mean=[123.68, 116.779, 103.939], variance=[1.0, 1.0, 1.0], name="vgg_mean"
    )(inputs)
    vgg = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(input_size, input_size, 3)
    )
    if weights_path is not None:
        weights_io.load_vgg16_conv_weights(vgg, weights_path)
        first = vgg.get_layer("block1_conv1")
        kernel, bias = first.get_weights()
        first.set_weights([kernel[:, :, ::-1, :], bias])
    return keras.Model(inputs, vgg(x), name="vgg16")


def custom_cnn_base(input_size: int) -> keras.Model:
    """A small from-scratch CNN: four conv stages with BatchNorm, the comparison baseline."""
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x = layers.Rescaling(1.0 / 255.0, name="cnn_rescaling")(inputs)
    for stage, filters in enumerate((16, 32, 64, 128), start=1):
        for conv in (1, 2):
            x = layers.Conv2D(
                filters, 3, padding="same", use_bias=False, name=f"cnn{stage}_conv{conv}"
            )(x)
            # A short momentum: with a few thousand images the default 0.99 leaves the
            # inference-time statistics lagging far behind the weights for many epochs.
            x = layers.BatchNormalization(momentum=0.9, name=f"cnn{stage}_bn{conv}")(x)
            x = layers.Activation("relu", name=f"cnn{stage}_relu{conv}")(x)
        x = layers.MaxPooling2D(2, name=f"cnn{stage}_pool")(x)
    return keras.Model(inputs, x, name="custom_cnn")


def build_base(
    architecture: Architecture, input_size: int, *, weights_path: Path | None = None
) -> keras.Model:
    """Build a backbone, loading ImageNet weights from `weights_path` when one is given."""
    from training import weights as weights_io

    if architecture == "efficientnet_lite0":
        base = efficientnet_lite0_base(input_size)
        if weights_path is not None:
            weights_io.load_npz_weights(base, weights_path)
        return base
    if architecture == "efficientnet_b0":
        b0_weights = None if weights_path is None else str(weights_path)
        return _efficientnet_b0_base(input_size, b0_weights)
    if architecture == "vgg16":
        return _vgg16_base(input_size, weights_path)
    if architecture == "custom_cnn":
        return custom_cnn_base(input_size)
    raise ValueError(f"unknown architecture {architecture!r}; choose one of {ARCHITECTURES}")


def build_classifier(
    base: keras.Model, *, architecture: Architecture, dropout: float = 0.3, hidden_units: int = 0
) -> keras.Model:
    """Put a new binary head on `base`: pooled features -> dropout -> one malignancy logit."""
    inputs = keras.Input(base.input_shape[1:], name="image")
    x = layers.GlobalAveragePooling2D(name=POOL_LAYER)(base(inputs))
    if hidden_units:
        x = layers.Dense(hidden_units, activation="relu", name="head_dense")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    # Float32 even under mixed precision: the logit feeds the loss and the calibration.
    logit = layers.Dense(1, dtype="float32", name=LOGIT_LAYER)(x)
    return keras.Model(inputs, logit, name=f"{architecture}_classifier")


def count_parameters(model: keras.Model) -> int:
    """Total number of weights (trainable or not)."""
    return int(sum(math.prod(w.shape) for w in model.weights))
