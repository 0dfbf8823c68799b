"""``rtclassify train``: train the short-chunk CNN from a TOML config and export its bundle."""

from __future__ import annotations

from ._args import nonempty

NAME = "train"
HELP = "train the tagging CNN from a TOML config (needs the 'train' extra)"
DESCRIPTION = (
    "Train the short-chunk CNN on a dataset made by `rtclassify data build`, following a TOML config "
    "(see rtclassify/train/configs/default.toml). Writes checkpoints (last.pt, best.pt, model.pt), "
    "history.json and curves.png to the run folder, exports the bundle and evaluates it on the test split. "
    "Relative paths in the config are taken from the current directory."
)


def add_arguments(parser) -> None:
    parser.add_argument("--config", metavar="FILE", type=nonempty("a config file"),
                        help="TOML training config (required unless --data)")
    parser.add_argument("--resume", action="store_true", help="continue from the run folder's last.pt")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (TOML syntax), e.g. --set train.epochs=3; repeatable")
    parser.add_argument("--no-export", action="store_true", help="stop after training (no bundle, no test)")
    parser.add_argument("--no-test", action="store_true", help="export the bundle but skip the test split")
    from ..learn.finetune import add_arguments as add_finetune_arguments

    add_finetune_arguments(parser)


def run(args) -> int:
    from ..errors import require

    require("torch", extra="train")
    if args.data is not None:
        from ..learn.finetune import run as run_finetune

        return run_finetune(args)
    if not args.config:
        from ..errors import ParameterError

        raise ParameterError("train: give --config FILE (the default model's recipe) or --data FOLDER|CSV "
                             "(fine-tuning on your own labelled audio)")
    from ..learn.finetune import check_config_run

    check_config_run(args)
    from ..train.trainer import load_config, run_training

    cfg = load_config(args.config, args.set)
    run_training(cfg, resume=args.resume, export=not args.no_export, evaluate_test=not args.no_test,
                 force=bool(args.force))
    return 0
