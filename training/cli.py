"""Command line: `python -m training compare|train|finalize|report|evaluate`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from inference.disclaimer import DISCLAIMER
from training.config import (
    ARCHITECTURES,
    EFFICIENTNETS,
    HEAD_REFIT_CHOICES,
    Architecture,
    Phase,
    TrainingConfig,
    default_config,
)
from training.data import (
    Dataset,
    default_data_dirs,
    load_dataset,
    read_split_csv,
    split_dataset,
)
from training.hardware import PRECISIONS

REPO_ROOT = Path(__file__).resolve().parent.parent
COMPARED: tuple[Architecture, ...] = ("efficientnet_lite0", "vgg16", "custom_cnn")
# Only EfficientNet artifacts are written under models/: the comparison models' files stay in
# the runs folder (VGG16's weights must not be committed).
ARTIFACT_ARCHITECTURES = EFFICIENTNETS


def _weights_for(architecture: Architecture, args: argparse.Namespace) -> Path | None:
    from training import weights

    if architecture == "efficientnet_lite0":
        return weights.resolve_or_fetch("lite0", args.lite0_weights)
    if architecture == "vgg16":
        return weights.resolve_or_fetch("vgg16", args.vgg16_weights)
    if architecture == "efficientnet_b0":
        # keras.applications takes "imagenet" (downloads) or a weights file; None = random.
        return args.b0_weights
    return None


def _config_for(architecture: Architecture, args: argparse.Namespace) -> TrainingConfig:
    if args.config is not None:
        # A saved training_config.json (one sits next to every artifact) retrains that model.
        config = TrainingConfig.from_dict(json.loads(args.config.read_text()))
        if config.architecture != architecture:
            raise SystemExit(
                f"{args.config} trains {config.architecture}, not {architecture}; "
                f"pass --architecture {config.architecture}"
            )
        return _with_flags(config, args)
    config = default_config(architecture).with_overrides(seed=args.seed)
    return _with_flags(config, args)


def run_name(architecture: Architecture, args: argparse.Namespace) -> str:
    """Folder name of a run and its evaluation; only a run named after its architecture becomes
    the served artifact."""
    return str(args.run_name or architecture)


def _with_flags(config: TrainingConfig, args: argparse.Namespace) -> TrainingConfig:
    if args.quick:
        # A smoke run on a handful of images: checks the plumbing, produces no usable model.
        config = config.with_overrides(
            max_images_per_subset=args.quick,
            batch_size=8,
            phases=tuple(
                Phase(p.name, p.trainable, 1, p.learning_rate, p.monitor, 1) for p in config.phases
            ),
        )
    if args.input_size:
        config = config.with_overrides(input_size=args.input_size)
    if args.effective_resolution:
        config = config.with_overrides(effective_resolution=args.effective_resolution)
    if args.precision:
        config = config.with_overrides(precision=args.precision)
    return config


def _run_one(architecture: Architecture, args: argparse.Namespace, *, train: bool) -> None:
    from training.pipeline import finalize
    from training.train import train as train_model

    dataset = load_dataset(args.data or default_data_dirs())
    name = run_name(architecture, args)
    run_dir = args.runs_dir / name
    saved_config = run_dir / "training_config.json"
    if train or not saved_config.is_file():
        config = _config_for(architecture, args)
    else:
        # Re-evaluating a run: use the config it was trained with, not today's defaults.
        config = TrainingConfig.from_dict(json.loads(saved_config.read_text()))
    config = config.with_overrides(
        holdout_sources=_holdout_sources(config, dataset, args.holdout_source)
    )
    split = split_dataset(
        dataset,
        seed=config.seed,
        validation_fraction=config.validation_fraction,
        test_fraction=config.test_fraction,
        holdout_sources=config.holdout_sources,
    )
    if train:
        weights_path = _weights_for(architecture, args)
        # Only the file name is recorded: the artifact must not carry this machine's paths.
        recorded_weights = Path(weights_path).name if weights_path else None
        config = config.with_overrides(weights_path=recorded_weights)
        config = train_model(config, split, run_dir, weights_path=weights_path).config
        if args.no_evaluate:
            print(f"[{name}] saved in {run_dir}; evaluate it with `finalize`", flush=True)
            return
    artifact_dir = (
        args.models_dir / architecture
        if architecture in ARTIFACT_ARCHITECTURES and name == architecture
        else None
    )
    record = finalize(
        run_dir=run_dir,
        config=config,
        dataset=dataset,
        split=split,
        artifact_dir=artifact_dir,
        comparison_dir=args.models_dir / "comparison" / name,
        plots_dir=args.models_dir / "plots",
        tta=args.tta,
        serving_size=args.serving_size,
        head_refit=args.head_refit,
        run_name=name,
    )
    overall = record["test"]["overall"]
    print(
        f"[{name}] test ROC AUC {overall['roc_auc']:.3f}, sensitivity "
        f"{overall['sensitivity']:.3f}, specificity {overall['specificity']:.3f} at threshold "
        f"{record['threshold']['threshold']:.4f}",
        flush=True,
    )


def _holdout_sources(
    config: TrainingConfig, dataset: Dataset, requested: list[str] | None
) -> tuple[str, ...]:
    """The sources held out: those asked for (each must be in the data), else the recipe's
    that the data has, so that other data folders train with the same recipe."""
    if requested is not None:
        return tuple(requested)
    kept = tuple(source for source in config.holdout_sources if source in dataset.sources)
    for source in sorted(set(config.holdout_sources) - set(kept)):
        print(f"note: the recipe holds out {source}, which these data folders lack", flush=True)
    return kept


def _report(args: argparse.Namespace) -> None:
    from training.report import write_report

    command = "python -m training compare"
    path = write_report(args.models_dir, command=command)
    print(f"wrote {path}")


def _serving_size(value: str) -> str:
    if value in ("auto", "train") or (value.isdigit() and int(value) >= 16):
        return value
    raise argparse.ArgumentTypeError(f"expected 'auto', 'train' or a size >= 16, not {value!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description=f"Train, evaluate and compare the lesion classifiers. {DISCLAIMER}",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--data",
            type=Path,
            action="append",
            default=None,
            help="a data folder (manifest.csv + images/, or benign/ and malignant/); repeat for "
            "several (default: DERMATRIAGE_DATA_DIR, else both shared dermoscopy folders)",
        )
        sub.add_argument(
            "--holdout-source",
            action="append",
            default=None,
            metavar="SOURCE",
            help="a source kept out of training and of every choice, scored as a clinic never "
            "seen; repeat for several (default: the recipe's, where the data has it)",
        )
        sub.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")
        sub.add_argument("--runs-dir", type=Path, default=REPO_ROOT / "runs")
        sub.add_argument("--seed", type=int, default=42)
        sub.add_argument(
            "--config",
            type=Path,
            default=None,
            help="train with a saved training_config.json instead of the default recipe "
            "(e.g. models/efficientnet_lite0/training_config.json reproduces the served model)",
        )
        sub.add_argument(
            "--tta",
            choices=("auto", "on", "off"),
            default="auto",
            help="test-time augmentation: 'auto' keeps it if it helps on validation",
        )
        sub.add_argument(
            "--head-refit",
            choices=HEAD_REFIT_CHOICES,
            default="auto",
            help="refit the final layer as a regularised logistic regression on the training "
            "images' features: 'auto' keeps the refit where it helps on validation",
        )
        sub.add_argument(
            "--serving-size",
            type=_serving_size,
            default="auto",
            help="input size the artifact is served at: 'auto' tries the training size and "
            "larger ones on validation, 'train' keeps the training size, or a size in pixels",
        )
        sub.add_argument("--input-size", type=int, default=None)
        sub.add_argument(
            "--precision",
            choices=("auto", *PRECISIONS),
            default=None,
            help="numeric precision; 'auto' is mixed_float16 on a GPU and float32 on a CPU",
        )
        sub.add_argument(
            "--effective-resolution",
            type=int,
            default=None,
            help="resolution every image is brought to before resizing to the input size",
        )
        sub.add_argument(
            "--quick",
            type=int,
            default=0,
            metavar="N",
            help="smoke run: N images per subset, one epoch per phase",
        )
        sub.add_argument("--lite0-weights", type=Path, default=None)
        sub.add_argument("--vgg16-weights", type=Path, default=None)
        sub.add_argument(
            "--b0-weights",
            default=None,
            help="EfficientNet-B0 weights: a file, or 'imagenet' where reachable",
        )

    compare = commands.add_parser("compare", help="train and evaluate all three; write the report")
    common(compare)
    compare.add_argument("--architectures", nargs="+", choices=ARCHITECTURES, default=COMPARED)
    compare.set_defaults(run_name=None, no_evaluate=False)
    for name, help_text in (
        ("train", "train and evaluate one architecture"),
        ("finalize", "re-evaluate an already trained run"),
    ):
        sub = commands.add_parser(name, help=help_text)
        common(sub)
        sub.add_argument("--architecture", choices=ARCHITECTURES, default="efficientnet_lite0")
        sub.add_argument(
            "--run-name",
            default=None,
            help="folder name under --runs-dir and in the report (default: the architecture); "
            "only the architecture's own name writes the served artifact",
        )
        sub.set_defaults(no_evaluate=False)
        if name == "train":
            sub.add_argument(
                "--no-evaluate",
                action="store_true",
                help="train and save the run only, e.g. on a GPU machine under another Keras "
                "backend; evaluate it later with `finalize` (calibration, CPU latency)",
            )
    report = commands.add_parser(
        "report", help="rewrite models/report.md and its test plots from saved evaluations"
    )
    report.add_argument("--models-dir", type=Path, default=REPO_ROOT / "models")

    gate = commands.add_parser(
        "gate",
        help="fit a model artifact's input gate again on the split it was trained with, and "
        "print what it turns away",
    )
    gate.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "efficientnet_lite0")
    gate.add_argument("--data", type=Path, action="append", default=None, help="a data folder")

    evaluate = commands.add_parser(
        "evaluate",
        help="score a model artifact on your own data folders, or on a subset of a saved split, "
        "and print its metrics per source at the artifact's threshold",
    )
    evaluate.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "efficientnet_lite0")
    evaluate.add_argument(
        "--data",
        type=Path,
        action="append",
        default=None,
        help="a data folder; repeat for several (default: DERMATRIAGE_DATA_DIR, else the shared "
        "folders)",
    )
    evaluate.add_argument(
        "--split",
        type=Path,
        default=None,
        help="a split.csv: score only its --subset (default: every image of the data folders)",
    )
    evaluate.add_argument("--subset", default="test")

    return parser


def _evaluate(args: argparse.Namespace) -> None:
    from inference import load_classifier
    from training.evaluation import evaluate_predictions
    from training.model_card import metrics_table

    classifier = load_classifier(args.model)
    dataset = load_dataset(args.data or default_data_dirs())
    samples = (
        read_split_csv(args.split, dataset).subset(args.subset)
        if args.split is not None
        else dataset.samples
    )
    probabilities: list[float] = []
    for start in range(0, len(samples), 64):
        batch = [sample.path for sample in samples[start : start + 64]]
        probabilities += [prediction.probability for prediction in classifier.predict(batch)]
    result = evaluate_predictions(
        [sample.label for sample in samples],
        probabilities,
        classifier.threshold,
        groups=[sample.source for sample in samples],
    )
    print(f"{classifier.version} at threshold {classifier.threshold:.4f}, {len(samples)} images")
    print("\n".join(metrics_table({"overall": result["overall"], **result["by_group"]})))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    command = "python -m training " + shlex.join(argv if argv is not None else sys.argv[1:])
    print("$ " + command, flush=True)
    if args.command == "compare":
        for architecture in args.architectures:
            _run_one(architecture, args, train=True)
        _report(args)
    elif args.command in ("train", "finalize"):
        _run_one(args.architecture, args, train=args.command == "train")
        if args.no_evaluate:
            return 0
        if args.command == "train" or args.models_dir.joinpath("comparison").is_dir():
            _report(args)
    elif args.command == "report":
        _report(args)
    elif args.command == "evaluate":
        _evaluate(args)
    elif args.command == "gate":
        _gate(args)
    return 0


def _gate(args: argparse.Namespace) -> None:
    from training.pipeline import refit_input_gate

    record = refit_input_gate(args.model, load_dataset(args.data or default_data_dirs()))
    for name, entry in record["real_images_turned_away"].items():
        print(f"real {name}: {entry['turned_away']} of {entry['images']} turned away")
    caught = record["not_dermoscopic_caught"]
    print(f"not dermoscopic: {caught['caught']} of {caught['images']} caught")
