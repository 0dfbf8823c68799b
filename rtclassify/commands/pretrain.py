"""``rtclassify pretrain``: contrastive self-supervised pretraining of the CNN encoder on unlabelled audio."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from ..train import (MAX_EPOCHS, MAX_LR, MAX_MINUTES, MAX_PRETRAIN_HOURS, MAX_SEED, MAX_TEMPERATURE,
                     MIN_TEMPERATURE)
from ._args import nonempty, number, threads


NAME = "pretrain"
HELP = "self-supervised (SimCLR/CLMR-style contrastive) pretraining of the CNN encoder on unlabelled audio"
DESCRIPTION = """\
Pretrain the short-chunk CNN encoder on a folder of unlabelled audio (searched
recursively): two randomly augmented views of the same 1.5 s chunk (random
crop, polarity, noise, gain, filters, delay, pitch shift, reverb) must be
recognised among the other views of the batch (InfoNCE / NT-Xent loss on a
projection of the embedding). The encoder has the base bundle's configuration
and frontend. Writes OUT/encoder.pt and OUT/pretrain_history.json (the loss
every 10 steps). With --labelled DATA_DIR (an `rtclassify data build` folder)
it then trains the usual supervised head with the default model's training
loop, starting from the pretrained encoder, into OUT (last.pt, best.pt,
model.pt, history.json, curves.png), and exports OUT/bundle. An OUT that
already holds such a run is refused before any work unless --force. Needs the
'train' extra (torch, scipy).

examples:
  nice -n 10 rtclassify pretrain --data my_recordings/ --out runs/ssl \\
      --minutes 10
  rtclassify pretrain --data datasets/v1/train --out runs/ssl \\
      --labelled datasets/v1 --set train.time_budget_min=20
"""


def _positive(kind, hi=None):
    return number(kind, f"a {kind.__name__}", above=0, hi=hi)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--data", required=True, metavar="FOLDER", type=nonempty("a folder"),
                   help="folder of unlabelled audio files")
    p.add_argument("--out", required=True, metavar="DIR", type=nonempty("a folder"),
                   help="output folder (encoder.pt, pretrain_history.json; with --labelled also the supervised "
                        "run and its bundle)")
    p.add_argument("--force", action="store_true",
                   help="replace a pretraining run already in --out (the run's files are written over, and "
                        "those of the earlier run that this one does not write, such as an earlier --labelled "
                        "run's checkpoints and bundle, are removed when it ends)")
    p.add_argument("--bundle", metavar="IN", type=nonempty("a bundle folder or zip"),
                   help="bundle giving the frontend and CNN configuration (default: bundled)")
    p.add_argument("--minutes", type=_positive(float, MAX_MINUTES), default=10.0,
                   help=f"budget in minutes of CPU time (default 10; at most {MAX_MINUTES}, a week)")
    p.add_argument("--steps", type=_positive(int), default=None, help="stop after this many steps")
    p.add_argument("--epochs", type=_positive(float, MAX_EPOCHS), default=None,
                   help="stop after this many passes over the loaded audio (counted in 1.5 s chunks)")
    p.add_argument("--batch-size", type=_positive(int), default=32, help="chunks per batch (default 32)")
    p.add_argument("--lr", type=number(float, "a number", above=0, hi=MAX_LR), default=1e-3,
                   help=f"peak learning rate (default 1e-3; at most {MAX_LR:g})")
    p.add_argument("--temperature", type=number(float, "a number", lo=MIN_TEMPERATURE, hi=MAX_TEMPERATURE), default=0.2,
                   help=f"NT-Xent temperature, {MIN_TEMPERATURE:g}-{MAX_TEMPERATURE:g} (default 0.2)")
    p.add_argument("--max-hours", type=_positive(float, MAX_PRETRAIN_HOURS), default=1.0,
                   help=f"most audio loaded (default 1 h; at most {MAX_PRETRAIN_HOURS:g})")
    p.add_argument("--seed", type=number(int, "an integer", lo=0, hi=MAX_SEED), default=0,
                   help=f"random seed, 0..{MAX_SEED} (default 0)")
    p.add_argument("--threads", type=threads, default=1, help="torch threads (default 1)")
    p.add_argument("--labelled", metavar="DATA_DIR", type=nonempty("a folder"),
                   help="then train the supervised head on this data-builder folder")
    p.add_argument("--config", metavar="FILE", type=nonempty("a config file"),
                   help="training config of the supervised step (with --labelled; default: default.toml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a value of the supervised step's config (with --labelled; repeatable)")


def run(args) -> int:
    from ..errors import ParameterError, require

    require("torch", extra="train")
    from ..learn.pretrain import (PretrainParams, check_pretrain_out, check_supervised_step, pretrain,
                                  remove_stale_run_files, train_supervised_head)
    from ..model.bundle import load_bundle

    if args.batch_size < 2:
        raise ParameterError("--batch-size must be at least 2 (the other views of the batch are the negatives)")
    if not args.labelled and (args.config or args.set):
        raise ParameterError(f"{'--config' if args.config else '--set'} sets the supervised step, which runs "
                             f"only with --labelled DATA_DIR")
    # the supervised step's config and every output, before minutes of pretraining
    cfg = check_supervised_step(args.labelled, args.out, args.config, args.set) if args.labelled else None
    check_pretrain_out(args.out, bool(args.force), cfg)
    params = PretrainParams(minutes=args.minutes, max_steps=args.steps or 0, epochs=args.epochs or 0.0, batch_size=args.batch_size, lr=args.lr,
                            temperature=args.temperature, max_hours=args.max_hours, seed=args.seed,
                            threads=args.threads)
    bundle = load_bundle(args.bundle)
    started = time.time()
    try:
        path = pretrain(args.data, args.out, bundle=bundle, params=params)
    except KeyboardInterrupt:
        # stopped with its steps kept in a new encoder.pt: with --force, the earlier run's other files (its
        # supervised step, trained from the earlier encoder) go, so that the folder holds one run
        enc = Path(os.path.expanduser(args.out)) / "encoder.pt"
        if args.force and enc.is_file() and enc.stat().st_mtime >= started:
            remove_stale_run_files(enc.parent, started)
        raise
    print(f"encoder: {path}")
    if args.labelled:
        res = train_supervised_head(path, args.labelled, args.out, args.config, args.set)
        print(f"bundle: {res['bundle']}")
    if args.force:  # the earlier run's files that this one did not write over: the folder holds one run
        gone = remove_stale_run_files(path.parent, started)
        if gone:
            print(f"removed the earlier run's {', '.join(gone)} from {path.parent}")
    return 0
