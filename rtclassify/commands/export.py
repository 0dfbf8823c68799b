"""``rtclassify export``: turn a training checkpoint into a model bundle."""

from __future__ import annotations

NAME = "export"
HELP = "export a training checkpoint (model.pt) as a bundle: model.onnx + model.json"
DESCRIPTION = (
    "Export the model.pt written at the end of `rtclassify train` as a bundle folder (or a .zip): an "
    "opset-17 ONNX graph with outputs probs and embedding, and model.json with labels, frontend, "
    "thresholds, decoder defaults, provenance, metrics and the training config. ONNX Runtime and torch "
    "are checked to agree within 1e-4."
)


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="model.pt from a training run")
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder or .zip to write")
    parser.add_argument("--name", default=None, help="bundle name (default: the one in the checkpoint)")
    parser.add_argument("--include-weights", action="store_true",
                        help="also store the torch weights (weights.pt) for the torch backend")


def run(args) -> int:
    from pathlib import Path

    from ..errors import ParameterError, require

    require("torch", extra="train")
    require("onnx", extra="train")
    from ..train.export import export_bundle

    from ..model.bundle_write import check_bundle_out

    check_bundle_out(args.out, "--out")
    if not Path(args.checkpoint).is_file():
        raise ParameterError(f"checkpoint {args.checkpoint} not found")
    out = export_bundle(args.checkpoint, args.out, name=args.name, include_weights=args.include_weights)
    print(f"bundle written: {out}")
    return 0
