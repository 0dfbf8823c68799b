"""``rtclassify export``: turn a training checkpoint into a model bundle."""

from __future__ import annotations

from ._args import nonempty

NAME = "export"
HELP = "export a training checkpoint (model.pt) as a bundle: model.onnx + model.json"
DESCRIPTION = (
    "Export the model.pt written at the end of `rtclassify train` as a bundle folder (or a .zip): an "
    "opset-17 ONNX graph with outputs probs and embedding, and model.json with labels, frontend, "
    "thresholds, decoder defaults, provenance, metrics and the training config. ONNX Runtime and torch "
    "are checked to agree within 1e-4. --out is a new or empty folder (or a new .zip); --force replaces a bundle "
    "there, whole, and a folder that holds other files is never written into."
)


def add_arguments(parser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="model.pt from a training run")
    parser.add_argument("--out", required=True, metavar="BUNDLE", type=nonempty("a bundle folder or .zip"),
                        help="bundle folder or .zip to write (a new or empty folder; see --force)")
    parser.add_argument("--force", action="store_true",
                        help="replace an existing bundle at --out (a folder holding other files is still refused)")
    parser.add_argument("--name", default=None, help="bundle name (default: the one in the checkpoint)")
    parser.add_argument("--include-weights", action="store_true",
                        help="also store the torch weights (weights.pt) for the torch backend")


def run(args) -> int:
    from ..errors import require

    require("torch", extra="train")
    require("onnx", extra="train")
    from ..model.bundle_write import check_bundle_out
    from ..train.export import check_checkpoint_path, export_bundle

    check_bundle_out(args.out, "--out", force=args.force, shipped=False)
    check_checkpoint_path(args.checkpoint)
    out = export_bundle(args.checkpoint, args.out, name=args.name, include_weights=args.include_weights)
    print(f"bundle written: {out}")
    return 0
