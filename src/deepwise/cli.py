"""The ``deepwise`` command: ready-made recipes, trained with a progress bar into a run folder.

    deepwise recipes                       # what can be trained
    deepwise train digits-cnn              # train; writes runs/digits-cnn-<timestamp>/
    deepwise train digits-cnn --resume runs/digits-cnn-20261123-120000
    deepwise evaluate RUN_DIR              # test metrics of the best weights
    deepwise predict RUN_DIR INPUT         # an image (digits), a prompt (chars-lstm), ... per recipe
    deepwise report RUN_DIR                # (re)build RUN_DIR/report.html
    deepwise bench                         # benchmarks against PyTorch (needs a source checkout)

Exit codes: 0 success, 1 failure (one line; --debug shows the traceback), 2 usage error,
130 interrupted: ``deepwise train`` catches Ctrl-C, finishes the batch, writes RUN_DIR/last.ckpt and
says how to resume (a second Ctrl-C aborts at once, keeping the last checkpoint written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import deepwise as dw
from deepwise import callbacks, recipes
from deepwise.diagnostics import ReportError, build_report
from deepwise.io import atomic_write_bytes


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


def _recipes_table() -> str:
    rows = [("recipe", "task", "data", "model", "expected result", "time (2 cores)")]
    for name in recipes.names():
        r = recipes.get(name)
        rows.append((name + (" (default)" if name == recipes.DEFAULT else ""), r.task, r.data_desc,
                     r.model_desc, r.expected, r.typical_time))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deepwise", description="Train ready-made deep learning recipes and look inside them.")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("recipes", help="list the ready-made recipes")

    t = sub.add_parser("train", help="train a recipe into a run folder")
    t.add_argument("recipe", help="recipe name (see `deepwise recipes`)")
    t.add_argument("--epochs", type=int, help="number of epochs (recipe default otherwise)")
    t.add_argument("--batch-size", type=int, help="mini-batch size")
    t.add_argument("--lr", type=float, help="learning rate")
    t.add_argument("--seed", type=int, help="random seed (runs with the same seed are identical)")
    t.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where to train")
    t.add_argument("--out", help="run folder (default runs/<recipe>-<timestamp>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="test metrics of a run's best weights")
    e.add_argument("run_dir")

    pr = sub.add_parser("predict", help="predict one input with a run's best weights")
    pr.add_argument("run_dir")
    pr.add_argument("input", help="what the recipe predicts from: an image or .npy file (digits), a text prompt "
                    "(chars-lstm), a number of months or a file of values (co2-lstm), a bit string (sequence-gru)")

    r = sub.add_parser("report", help="(re)build the HTML report of a run")
    r.add_argument("run_dir")

    b = sub.add_parser("bench", help="benchmark deepwise against PyTorch (source checkout)")
    b.add_argument("groups", nargs="*", help="benchmark groups (default: all)")
    return p


def _recipe(name):
    try:
        return recipes.get(name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def _load_run(run_dir):
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} is not a deepwise run folder (no config.json)")
    with open(path) as fh:
        config = json.load(fh)
    return config, _recipe(config["recipe"])


def _trainer_for(recipe, config, model):
    return recipe.trainer(model, config)


def _write_json(path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def cmd_train(args):

    if args.resume:
        config, recipe = _load_run(args.resume)
        if recipe.name != args.recipe:
            raise UsageError(f"{args.resume} is a run of {recipe.name}, not {args.recipe}")
        run_dir = args.resume
        if args.epochs:
            config["epochs"] = args.epochs
    else:
        recipe = _recipe(args.recipe)
        config = dict(recipe.defaults)
        for key in ("epochs", "batch_size", "lr", "seed"):
            value = getattr(args, key)
            if value is not None:
                config[key] = value
        config.update(recipe=recipe.name, device=args.device)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = args.out or os.path.join(os.environ.get("DEEPWISE_RUNS", "runs"), f"{recipe.name}-{stamp}")
        if os.path.exists(os.path.join(run_dir, "config.json")):
            raise UsageError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
        os.makedirs(run_dir, exist_ok=True)
        _write_json(os.path.join(run_dir, "config.json"), config)

    dw.manual_seed(config["seed"])
    splits = recipe.data(config)
    model = recipe.model(config)
    trainer = _trainer_for(recipe, config, model)
    cbs = list(recipe.callbacks(config, run_dir))
    watchers = []
    if recipe.monitor is not None:  # a GAN has no loss that says which epoch is best: it keeps the last
        cbs.append(callbacks.ModelCheckpoint(os.path.join(run_dir, "best.safetensors"), monitor=recipe.monitor,
                                             save_best_only=True))
        # look inside while it learns: the report explains what these notice, in plain words
        # near convergence gradients get tiny and one batch can jump 20x without harm: only flag big spikes
        watchers = [callbacks.GradientMonitor(every=10, verbose=0, spike_factor=100.0),
                    callbacks.OverfittingAdvisor(verbose=0)]
        cbs += watchers
    print(f"training {recipe.name} for {config['epochs']} epochs -> {run_dir}", flush=True)
    try:
        # Ctrl-C: finish the batch, write run_dir/last.ckpt and return (the run folder is ours to write)
        history = trainer.fit(
            *splits.train, epochs=config["epochs"], batch_size=config["batch_size"],
            validation_data=splits.val, callbacks=cbs, verbose=0 if args.quiet else 1,
            checkpoint_dir=run_dir, resume_from=run_dir if args.resume else None, checkpoint_on_interrupt=True,
        )
    except KeyboardInterrupt:  # a second Ctrl-C: the trainer re-raises at once, without a new checkpoint
        history = None
    if history is None or history.interrupted:
        has_checkpoint = os.path.exists(os.path.join(run_dir, "last.ckpt"))
        if history is not None:
            history.to_csv(os.path.join(run_dir, "history.csv"))
            print(f"\ninterrupted: checkpoint written in {run_dir}", file=sys.stderr)
        elif has_checkpoint:
            print(f"\naborted: the last checkpoint in {run_dir} is from before the interrupt", file=sys.stderr)
        else:
            print(f"\naborted before the first checkpoint: nothing to resume in {run_dir}", file=sys.stderr)
        if has_checkpoint:
            print(f"resume with: deepwise train {recipe.name} --resume {run_dir}", file=sys.stderr)
        return 130
    history.to_csv(os.path.join(run_dir, "history.csv"))
    dw.save(model.state_dict(), os.path.join(run_dir, "last.safetensors"))
    if os.path.exists(os.path.join(run_dir, "best.safetensors")):
        model.load_state_dict(dw.load(os.path.join(run_dir, "best.safetensors")))
    metrics = recipe.final_metrics(trainer, splits, config)
    if watchers:
        found = [text for w in watchers for text in w.diagnosis_text()]
        metrics["diagnosis"] = found or [
            "GradientMonitor and OverfittingAdvisor watched this run and found no problem: no vanishing or "
            "exploding gradients, no dead or saturated units, and no sign of overfitting."]
    _write_json(os.path.join(run_dir, "metrics.json"), metrics)
    shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
    print("test (best weights): " + ", ".join(f"{k[5:] if k.startswith('test_') else k} {v:.4f}"
                                              for k, v in shown.items()))
    _report(run_dir, quiet=True)
    return 0


def _report(run_dir, quiet=False):
    try:
        path = build_report(run_dir)
    except ReportError as exc:
        if quiet:
            print(f"report skipped: {exc}")
            return None
        raise
    print(f"report: {path}")
    return path


def _restore(run_dir):
    config, recipe = _load_run(run_dir)
    dw.manual_seed(config["seed"])
    model = recipe.model(config)
    for name in ("best.safetensors", "last.safetensors"):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            model.load_state_dict(dw.load(path))
            break
    else:
        raise FileNotFoundError(f"{run_dir} has no weights yet (best.safetensors / last.safetensors)")
    return config, recipe, _trainer_for(recipe, config, model)


def cmd_evaluate(args):
    config, recipe, trainer = _restore(args.run_dir)
    splits = recipe.data(config)
    x, y = splits.test
    for k, v in trainer.evaluate(x, y, batch_size=256).items():
        print(f"test {k}: {float(v):.4f}")
    return 0


def cmd_predict(args):
    config, recipe, trainer = _restore(args.run_dir)
    print(recipe.predict(trainer, args.input, config))
    return 0


def cmd_report(args):
    _report(args.run_dir)
    return 0


def cmd_bench(args):
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(os.getcwd(), "benchmarks"), os.path.join(here, "..", "..", "benchmarks")]
    for folder in candidates:
        if os.path.exists(os.path.join(folder, "run.py")):
            sys.path.insert(0, os.path.abspath(folder))
            import run as bench_run  # noqa: PLC0415

            bench_run.main(args.groups)
            return 0
    raise FileNotFoundError(
        "deepwise bench needs the benchmarks/ folder of a source checkout; run it from the repository root")


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "report": cmd_report,
            "bench": cmd_bench}


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "recipes":
            print(_recipes_table())
            return 0
        return COMMANDS[args.command](args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"deepwise: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for people; the traceback with --debug
        if args.debug:
            raise
        print(f"deepwise: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
