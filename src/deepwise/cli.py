"""The ``deepwise`` command: ready-made recipes, trained with a progress bar into a run folder.

    deepwise recipes                       # what can be trained
    deepwise train digits-cnn              # train; writes runs/digits-cnn-<timestamp>/
    deepwise train digits-cnn --resume runs/digits-cnn-20261123-120000
    deepwise evaluate RUN_DIR              # test metrics of the best weights
    deepwise predict RUN_DIR INPUT         # an image (digits), a prompt (chars-lstm), ... per recipe
    deepwise predict RUN_DIR [--output F]  # generative recipes (gan-digits): a new file in RUN_DIR, or F
    deepwise report RUN_DIR                # (re)build RUN_DIR/report.html
    deepwise export RUN_DIR out.onnx       # the run's model as ONNX, checked in onnxruntime
    deepwise bench [--rounds N]            # benchmarks against PyTorch (benchmarks/ of a source checkout)
    deepwise run [--see-inside] SCRIPT [ARGS...]   # a PyTorch script, unmodified, on deepwise

Every argument is checked before anything is written: a usage error leaves no run folder behind.
A command never overwrites a file it did not create unless told to (``predict --output F --force``).

Exit codes: 0 success, 1 failure (one line; --debug shows the traceback), 2 usage error,
130 interrupted: ``deepwise train`` catches Ctrl-C, finishes the batch, writes RUN_DIR/last.ckpt and
prints the one command (shell-quoted) that resumes it (a second Ctrl-C aborts at once, keeping the last
checkpoint written), 141 when the reader of the output went away (``deepwise ... | head``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import subprocess
import sys
import textwrap
import time

import numpy as np

import deepwise as dw
from deepwise import backend, callbacks, distributed, recipes, run_script
from deepwise.diagnostics import ReportError, build_report, model_overview
from deepwise.io import atomic_write_bytes
from deepwise.train import load_training_checkpoint, parallel, run_folder
from deepwise.train.progress import terminal_columns, wrap_items


class UsageError(Exception):
    """Bad command-line input: exit code 2."""


def _text_width() -> int:
    return max(40, min(100, terminal_columns(sys.stdout) - 1))


def _recipes_table() -> str:
    """One block per recipe, wrapped to the terminal (at most 100 columns)."""
    width = _text_width()
    out = [textwrap.fill("Recipes (`deepwise train NAME` trains one; times on 2 CPU cores):", width)]
    for name in recipes.names():
        r = recipes.get(name)
        title = name + (" (default)" if name == recipes.DEFAULT else "")
        out.append("")
        out.append(textwrap.fill(f"{title} - {r.task}, {r.typical_time}", width, subsequent_indent="    "))
        for label, text in (("data", r.data_desc), ("model", r.model_desc), ("expected", r.expected)):
            out.append(textwrap.fill(text, width, initial_indent=f"    {label:<9} ", subsequent_indent=" " * 14))
    return "\n".join(out)


def _int_at_least(low):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    return parse


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deepwise", description="Train ready-made deep learning recipes and look inside them.")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("recipes", help="list the ready-made recipes")

    t = sub.add_parser("train", help="train a recipe into a run folder")
    t.add_argument("recipe", help="recipe name (see `deepwise recipes`)")
    t.add_argument("--epochs", type=_int_at_least(1), help="number of epochs (recipe default otherwise)")
    t.add_argument("--batch-size", type=_int_at_least(1), help="mini-batch size")
    t.add_argument("--lr", type=_positive_float, help="learning rate")
    t.add_argument("--seed", type=_int_at_least(0), help="random seed (runs with the same seed are identical)")
    t.add_argument("--device", choices=["cpu", "cuda"], help="where to train (default: cpu; cuda needs CuPy)")
    t.add_argument("--out", help="run folder (default runs/<recipe>-<timestamp>)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint "
                   "(with its own settings; --epochs trains it longer)")
    t.add_argument("--quiet", action="store_true", help="no progress display")

    e = sub.add_parser("evaluate", help="test metrics of a run's best weights")
    e.add_argument("run_dir")

    pr = sub.add_parser("predict", help="predict one input with a run's best weights")
    pr.add_argument("run_dir")
    pr.add_argument("input", nargs="?", help="what the recipe predicts from: an image or .npy file (digits), a text "
                    "prompt (chars-lstm, chars-gpt), a number of months or a file of values (co2-lstm), a bit string "
                    "(sequence-gru), an English date (translate-dates), a sentence (sentiment); generative "
                    "recipes (gan-digits) read none")
    pr.add_argument("--output", "-o", metavar="PATH", help="where a generative recipe writes its file (default: a "
                    "new file in RUN_DIR, e.g. RUN_DIR/samples.png)")
    pr.add_argument("--force", action="store_true", help="overwrite the --output file if it exists")

    r = sub.add_parser("report", help="(re)build the HTML report of a run")
    r.add_argument("run_dir")

    ex = sub.add_parser("export", help="export a run's model to ONNX and check it in onnxruntime")
    ex.add_argument("run_dir")
    ex.add_argument("output", help="the .onnx file to write")
    ex.add_argument("--opset", type=int, default=17, help="ONNX opset version, 13 to 21 (default 17)")
    ex.add_argument("--force", action="store_true", help="overwrite the output file if it exists")

    b = sub.add_parser("bench", help="benchmark deepwise against PyTorch (benchmarks/ of a source checkout)")
    b.add_argument("groups", nargs="*", help="benchmark groups (default: all)")
    b.add_argument("--rounds", type=_int_at_least(1), help="alternating worker rounds per framework (default 3)")
    b.add_argument("--threads", type=_int_at_least(1), nargs="+", help="thread counts to run (default: all "
                   "cores, then 1)")
    b.add_argument("--benchmarks", metavar="DIR", help="the benchmarks folder to run (default: ./benchmarks, "
                   "one in a folder above, or the one of the checkout deepwise is installed from)")
    rn = sub.add_parser("run", help="run an unmodified PyTorch script with deepwise standing in for torch")
    rn.add_argument("--see-inside", action="store_true", help="watch every model/optimizer the script makes "
                    "(gradient health, overfitting) and print the findings at the end, with a report")
    rn.add_argument("--report-dir", metavar="DIR", help="where --see-inside writes its findings (default "
                    "runs/run-<script>-<timestamp>)")
    rn.add_argument("script", help="the Python file to run")
    rn.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments passed on to the script")
    p.subcommands = sub.choices  # usage errors show the usage of their own command
    return p


def _recipe(name):
    try:
        return recipes.get(name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def _load_run(run_dir):
    """The run's settings (recipe defaults filled in) and its recipe; errors name config.json."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isdir(run_dir):
        raise FileNotFoundError(f"{run_dir} is not a deepwise run folder (no such folder)")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} is not a deepwise run folder (no config.json)")
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path} is damaged: not valid JSON ({str(exc)[:200]}); the run's settings cannot be "
                         "read") from None
    if not isinstance(config, dict) or not isinstance(config.get("recipe"), str):
        raise ValueError(f"{path} does not hold a deepwise run's settings (no \"recipe\" entry)")
    try:
        recipe = recipes.get(config["recipe"])
    except KeyError as exc:
        raise ValueError(f"{path}: {exc.args[0]}") from None
    return {**recipe.defaults, **config}, recipe


def _trainer_for(recipe, config, model):
    return recipe.trainer(model, config)


def _write_json(path, obj):
    atomic_write_bytes(path, (json.dumps(obj, indent=2) + "\n").encode())


def _plural(n, word):
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _print_items(prefix, items):
    """``prefix item, item, ...`` on one line when it fits the terminal, else the items wrapped below."""
    width = _text_width()
    line = prefix + " " + ", ".join(items)
    if len(line) <= width:
        print(line)
    else:
        print(prefix)
        print("\n".join(wrap_items(items, width)))


class _ResumeHint(callbacks.Callback):
    """Gives the Trainer the shell command that resumes this run, for its message after a Ctrl-C."""

    def __init__(self, command):
        self.command = command

    def on_train_begin(self, logs=None):
        self.trainer.state.resume_hint = self.command


def _resume_command(recipe_name, run_dir):
    return f"deepwise train {shlex.quote(recipe_name)} --resume {shlex.quote(run_dir)}"


def _check_device(device):
    if device == "cuda":
        try:
            backend.cupy_module()
        except RuntimeError as exc:
            raise UsageError(f"--device cuda: {exc}") from None


def _resume_settings(args):
    """(config, recipe, run_dir, epochs done) for ``--resume RUN_DIR``, every argument checked."""
    run_dir = args.resume
    if args.out:
        raise UsageError("--resume continues the run in its own folder; leave out --out")
    try:
        config, recipe = _load_run(run_dir)
    except FileNotFoundError as exc:
        raise UsageError(f"--resume {run_dir}: {exc}") from None
    if recipe.name != args.recipe:
        raise UsageError(f"{run_dir} is a run of {recipe.name}, not {args.recipe}")
    fixed = [f"--{k.replace('_', '-')}" for k in ("batch_size", "lr", "seed") if getattr(args, k) is not None]
    if fixed:
        raise UsageError(f"{' and '.join(fixed)} cannot change when resuming: the run continues with the settings "
                         f"in {os.path.join(run_dir, 'config.json')} (only --epochs, to train longer, and --device)")
    ckpt = os.path.join(run_dir, "last.ckpt")
    if os.path.exists(ckpt):
        done = int(load_training_checkpoint(ckpt).position["epoch"])
    else:  # killed before its first checkpoint: nothing to continue, so it starts again from epoch 0
        print(f"{run_dir} has no checkpoint yet (the run stopped before its first one): training it from "
              "epoch 0", flush=True)
        done = 0
    epochs = args.epochs or config["epochs"]
    if epochs <= done:
        why = f"--epochs {args.epochs} would add none" if args.epochs else "it is finished"
        raise UsageError(f"{run_dir} has already trained {_plural(done, 'epoch')} ({why}); give --epochs N with "
                         f"N > {done} to train it longer")
    changed = dict(config, epochs=epochs, device=args.device or config.get("device", "cpu"))
    return changed, recipe, run_dir, done


def _new_run_settings(args):
    recipe = _recipe(args.recipe)
    config = dict(recipe.defaults)
    for key in ("epochs", "batch_size", "lr", "seed"):
        value = getattr(args, key)
        if value is not None:
            config[key] = value
    config.update(recipe=recipe.name, device=args.device or "cpu")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = args.out or os.path.join(os.environ.get("DEEPWISE_RUNS", "runs"), f"{recipe.name}-{stamp}")
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise UsageError(f"--out {run_dir}: exists and is not a folder")
    state = run_folder.run_state(run_dir)
    if state == "started":  # killed before its first checkpoint (RunLock refuses a live one)
        print(f"{run_dir} holds a run that stopped before its first checkpoint: starting it afresh", flush=True)
    elif state != "new":
        raise UsageError(f"{run_dir} already holds a run; use --resume {shlex.quote(run_dir)} or another --out")
    else:
        taken = [name for name in _RUN_FILES if os.path.exists(os.path.join(run_dir, name))]
        if taken:  # a folder of the user's: its files are never overwritten by a run
            raise UsageError(f"--out {run_dir} already has {', '.join(taken)}, which a run would overwrite; give a "
                             "new or empty folder")
    return config, recipe, run_dir


# what a run writes into its folder (besides config.json): never over a user's files of those names
_RUN_FILES = ("history.csv", "metrics.json", "report.html", "best.safetensors", "last.safetensors", "last.ckpt",
              "samples", "samples.png")


def _discard_new_run(run_dir, created_dir):
    """Remove what a new run wrote before its first checkpoint: nothing of it could be resumed."""
    for name in ("config.json", "history.csv", run_folder.LOCK_NAME):
        path = os.path.join(run_dir, name)
        if os.path.exists(path):
            os.remove(path)
    if created_dir and os.path.isdir(run_dir) and not os.listdir(run_dir):
        os.rmdir(run_dir)


def cmd_train(args):
    _check_device(args.device)
    if parallel.join() > 1:  # under mpiexec -n N
        return _train_on_ranks(args)
    if args.resume:
        config, recipe, run_dir, done = _resume_settings(args)
    else:
        config, recipe, run_dir = _new_run_settings(args)
        done = 0
    return _train_in_folder(args, config, recipe, run_dir, done, check_unclaimed=not args.resume)


def _train_in_folder(args, config, recipe, run_dir, done, check_unclaimed=False):
    """Hold the run folder's lock (one process per run folder; stale temp files removed) while
    training; a new run that fails before its first checkpoint leaves nothing behind."""
    created_dir = not os.path.isdir(run_dir)
    lock = run_folder.RunLock(run_dir).acquire()
    try:
        if check_unclaimed and run_folder.run_state(run_dir) not in ("new", "started"):
            raise UsageError(f"{run_dir} was written by another run meanwhile; use another --out")
        return _build_and_train(args, config, recipe, run_dir, done, created_dir)
    except BaseException:
        if created_dir and not os.path.exists(os.path.join(run_dir, "last.ckpt")):
            _discard_new_run(run_dir, created_dir)
        raise
    finally:
        lock.release()


def _train_on_ranks(args):
    """``deepwise train`` under ``mpiexec -n N``: rank 0 checks the arguments, holds the run folder
    and writes everything in it; every rank builds the same data and model and trains on its share of
    each batch (``deepwise.train.parallel``). An error on rank 0 before training reaches every rank,
    which then exits with the same code; a failure once training runs ends the whole job (``main``)."""
    box = [None]
    if distributed.get_rank() == 0:
        try:
            if args.resume:
                config, recipe, run_dir, done = _resume_settings(args)
            else:
                config, recipe, run_dir = _new_run_settings(args)
                done = 0
        except UsageError as exc:
            distributed.broadcast_object_list([{"exit": 2}])
            raise exc from None
        except Exception:
            distributed.broadcast_object_list([{"exit": 1}])
            raise
        box = [{"config": config, "run_dir": run_dir, "done": done}]
        distributed.broadcast_object_list(box)
        return _train_in_folder(args, config, recipe, run_dir, done)
    distributed.broadcast_object_list(box)
    if "exit" in box[0]:
        return box[0]["exit"]  # rank 0 says why
    config = box[0]["config"]
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # rank 0 alone prints
        return _build_and_train(args, config, recipes.get(config["recipe"]), box[0]["run_dir"], box[0]["done"],
                                False)


def _build_and_train(args, config, recipe, run_dir, done, created_dir):
    dw.manual_seed(config["seed"])
    splits = recipe.data(config)
    model = recipe.model(config)
    trainer = _trainer_for(recipe, config, model)
    if not distributed.is_main_process():  # another rank of mpiexec: rank 0 writes the run folder
        return _train(args, recipe, config, run_dir, splits, model, trainer, done, created_dir)
    # only now, with every setting checked and data and model built, is the run folder written
    os.makedirs(run_dir, exist_ok=True)
    _write_json(os.path.join(run_dir, "config.json"), config)
    try:
        return _train(args, recipe, config, run_dir, splits, model, trainer, done, created_dir)
    except BaseException:
        if not args.resume and not os.path.exists(os.path.join(run_dir, "last.ckpt")):
            _discard_new_run(run_dir, created_dir)
        raise


def _train(args, recipe, config, run_dir, splits, model, trainer, done, created_dir):
    resume = _resume_command(recipe.name, run_dir)
    cbs = [_ResumeHint(resume), *recipe.callbacks(config, run_dir)]
    watchers = []
    if recipe.monitor is not None:  # a GAN has no loss that says which epoch is best: it keeps the last
        cbs.append(callbacks.ModelCheckpoint(os.path.join(run_dir, "best.safetensors"), monitor=recipe.monitor,
                                             save_best_only=True))
        # look inside while it learns: the report explains what these notice, in plain words
        # near convergence gradients get tiny and one batch can jump 20x without harm: only flag big spikes
        watchers = [callbacks.GradientMonitor(every=10, verbose=0, spike_factor=100.0),
                    callbacks.OverfittingAdvisor(verbose=0)]
        cbs += watchers
    if args.resume:
        print(f"resuming {recipe.name} after {_plural(done, 'epoch')}, to {config['epochs']} -> {run_dir}",
              flush=True)
    else:
        print(f"training {recipe.name} for {_plural(config['epochs'], 'epoch')} -> {run_dir}", flush=True)
    try:
        # Ctrl-C: finish the batch, write run_dir/last.ckpt, say how to resume and return
        history = trainer.fit(
            *splits.train, epochs=config["epochs"], batch_size=config["batch_size"],
            validation_data=splits.val, callbacks=cbs, verbose=0 if args.quiet else 1,
            checkpoint_dir=run_dir, checkpoint_on_interrupt=True,
            resume_from=run_dir if args.resume and os.path.exists(os.path.join(run_dir, "last.ckpt")) else None,
        )
    except KeyboardInterrupt:  # a second Ctrl-C: the trainer re-raises at once, without a new checkpoint
        if not distributed.is_main_process():
            return 130  # under mpiexec: rank 0 keeps or discards the run folder
        sys.stdout.flush()
        if os.path.exists(os.path.join(run_dir, "last.ckpt")):
            print(f"\naborted: the last checkpoint in {run_dir} is from before the interrupt\n"
                  f"resume with: {resume}", file=sys.stderr)
        elif args.resume:
            print(f"\naborted: {run_dir} is as it was", file=sys.stderr)
        else:
            _discard_new_run(run_dir, created_dir)
            print(f"\naborted before the first checkpoint: nothing to resume, nothing kept in {run_dir}",
                  file=sys.stderr)
        return 130
    main = distributed.is_main_process()
    if main:
        history.to_csv(os.path.join(run_dir, "history.csv"))
    if history.interrupted:  # the trainer said where the checkpoint is and how to resume
        return 130
    which = "last"
    if main:
        dw.save(model.state_dict(), os.path.join(run_dir, "last.safetensors"))
        if os.path.exists(os.path.join(run_dir, "best.safetensors")):
            model.load_state_dict(dw.load(os.path.join(run_dir, "best.safetensors")))
            which = "best"
    if distributed.world_size() > 1:
        dw.nn.parallel.DistributedDataParallel(model)  # every rank evaluates rank 0's (best) weights
    metrics = recipe.final_metrics(trainer, splits, config)  # under mpiexec, each rank its share
    if not main:
        distributed.barrier()  # until rank 0 has written the run folder
        return 0
    metrics.update(model_overview(model, splits.train[0]))  # the report shows the model and names its layers
    if watchers:
        found = [text for w in watchers for text in w.diagnosis_text()]
        metrics["diagnosis"] = found or [
            "GradientMonitor and OverfittingAdvisor watched this run and found no problem: no vanishing or "
            "exploding gradients, no dead or saturated units, and no sign of overfitting."]
    _write_json(os.path.join(run_dir, "metrics.json"), metrics)
    shown = {k: v for k, v in metrics.items() if isinstance(v, float)}
    _print_items(f"test ({which} weights):", [f"{k[5:] if k.startswith('test_') else k} {v:.4f}"
                                              for k, v in shown.items()])
    _report(run_dir, quiet=True)
    if distributed.world_size() > 1:
        distributed.barrier()
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


def _restore(run_dir, loaded=None):
    config, recipe = loaded if loaded is not None else _load_run(run_dir)
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


def _predict_output(args, recipe, writes):
    """The file a generative predict writes: --output (an existing one only with --force), else a new
    name in the run folder (samples.png, samples-2.png, ...)."""
    stem, ext = os.path.splitext(writes)
    if args.output is None:
        if args.force:
            raise UsageError("--force overwrites the file named by --output; without --output a new file is made")
        path, k = os.path.join(args.run_dir, writes), 2
        while os.path.exists(path):
            path, k = os.path.join(args.run_dir, f"{stem}-{k}{ext}"), k + 1
        return path
    path = args.output
    if os.path.isdir(path):
        raise UsageError(f"--output {path} is a folder; give a file name, e.g. {os.path.join(path, writes)}")
    if not path.lower().endswith(ext.lower()):
        raise UsageError(f"--output {path}: {recipe.name} writes a {ext} file; give a path ending in {ext}")
    if os.path.exists(path) and not args.force:
        raise UsageError(f"--output {path} exists; add --force to overwrite it, or give another path")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"--output {path}: there is no folder {parent}")
    return path


def cmd_predict(args):
    loaded = _load_run(args.run_dir)
    recipe = loaded[1]
    writes = getattr(recipe, "predict_writes", None)
    output = None
    if writes:
        if args.input is not None:
            raise UsageError(f"{recipe.name} generates from random noise and reads no INPUT (got {args.input!r}); "
                             f"choose where its {os.path.splitext(writes)[1]} goes with --output PATH (default: a "
                             f"new file in the run folder)")
        output = _predict_output(args, recipe, writes)
    else:
        if args.output is not None or args.force:
            raise UsageError(f"--output / --force: predict on a {recipe.name} run prints its answer and writes no file")
        if args.input is None:
            what = getattr(recipe, "predict_input", "") or "see `deepwise predict --help`"
            raise UsageError(f"predict on a {recipe.name} run needs an INPUT: {what}")
    config, recipe, trainer = _restore(args.run_dir, loaded)
    if writes:
        print(recipe.predict(trainer, args.input, config, output=output))
    else:
        print(recipe.predict(trainer, args.input, config))
    return 0


def cmd_report(args):
    _report(args.run_dir)
    return 0


def _find_benchmarks(explicit):
    """The folder holding benchmarks/run.py: --benchmarks, else ./benchmarks or one in a folder above,
    else the one beside the source deepwise is installed from (an editable install)."""
    if explicit:
        if not os.path.isfile(os.path.join(explicit, "run.py")):
            raise UsageError(f"--benchmarks {explicit}: no run.py there (give the benchmarks/ folder of a deepwise "
                             "source checkout)")
        return os.path.abspath(explicit)
    here = os.path.dirname(os.path.abspath(__file__))
    beside = os.path.normpath(os.path.join(here, "..", "..", "benchmarks"))
    folder = os.getcwd()
    while True:
        candidate = os.path.join(folder, "benchmarks")
        if os.path.isfile(os.path.join(candidate, "run.py")):
            return candidate
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if os.path.isfile(os.path.join(beside, "run.py")):
        return beside
    raise FileNotFoundError(
        "deepwise bench runs benchmarks/run.py of a deepwise source checkout (the benchmarks are not installed "
        f"with the package); looked in {os.path.join(os.getcwd(), 'benchmarks')} and in every folder above it, "
        f"and in {beside}; run it inside a checkout or give --benchmarks DIR")


def cmd_bench(args):
    folder = _find_benchmarks(args.benchmarks)
    argv = [sys.executable, os.path.join(folder, "run.py"), *args.groups]
    if args.rounds is not None:
        argv += ["--rounds", str(args.rounds)]
    if args.threads:
        argv += ["--threads", *(str(n) for n in args.threads)]
    print(f"benchmarks: {folder}", flush=True)
    return subprocess.call(argv)


def export_target(model, splits, n=2):
    """What ``deepwise export`` exports for a recipe's model, and example inputs at two batch sizes:
    ``(callable, input name, example, other example)``. A GAN exports its generator (latent vectors
    in, images out), a VAE its deterministic ``reconstruct``; every other model its ``forward`` on test
    inputs."""
    if hasattr(model, "generator") and hasattr(model.generator, "latent_dim"):
        gen = model.generator
        z = dw.randn(n + 3, gen.latent_dim).array
        return gen, "z", z[:n], z
    x = splits.test[0]
    x = x.array if isinstance(x, dw.Tensor) else np.asarray(x)
    forward = model.reconstruct if type(model).__name__ == "VAE" else model
    return forward, "input", x[:n], x[:n + 3]


def cmd_export(args):
    if os.path.exists(args.output) and not args.force:
        raise UsageError(f"{args.output} exists; give --force to overwrite it")
    config, recipe = _load_run(args.run_dir)
    _, _, trainer = _restore(args.run_dir, (config, recipe))
    splits = recipe.data(config)
    forward, name, example, other = export_target(trainer.model, splits)
    start = time.perf_counter()
    proto = dw.onnx.export(forward, example, args.output, input_names=[name], output_names=None,
                           dynamic_axes={name: {0: "batch"}}, opset_version=args.opset)
    took = time.perf_counter() - start

    def describe(values):
        return ", ".join(f"{v.name} {[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]}"
                         for v in values)

    print(f"wrote {args.output} (opset {args.opset}, {len(proto.graph.node)} nodes, {took:.2f} s)")
    print(f"inputs:  {describe(proto.graph.input)}")
    print(f"outputs: {describe(proto.graph.output)}")
    diff, _ = dw.onnx.compare(forward, args.output, other)
    print(f"onnxruntime check on {len(other)} examples (exported with {len(example)}): largest difference "
          f"{diff:.3g}")
    return 0 if diff <= 1e-3 else 1


def cmd_run(args):
    return run_script.run(args.script, args.script_args, see_inside=args.see_inside, report_dir=args.report_dir)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "report": cmd_report,
            "bench": cmd_bench, "run": cmd_run, "export": cmd_export}

_PLAIN_ERRORS = (ValueError, OSError, RuntimeError, ReportError)  # their message says it all


def _quiet_stdout():
    """The reader of our output is gone (``| head``): send what is left to /dev/null, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "recipes":
            print(_recipes_table())
            code = 0
        else:
            code = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe shows here, not as a traceback at exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except UsageError as exc:
        sys.stdout.flush()
        parser.subcommands.get(args.command, parser).print_usage(sys.stderr)
        print(f"deepwise {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return _end_job(130)
    except Exception as exc:  # one line for people; the traceback with --debug
        if args.debug:
            raise
        what = str(exc) if isinstance(exc, _PLAIN_ERRORS) and str(exc) else f"{type(exc).__name__}: {exc}"
        world = distributed.world_size()
        rank = f" (rank {distributed.get_rank()} of {world})" if world > 1 else ""
        print(f"deepwise: error{rank}: {what}", file=sys.stderr)
        return _end_job(1)


def _end_job(code: int) -> int:
    """Under mpiexec a failed rank ends every rank (the others would wait in their next collective)."""
    if distributed.world_size() > 1:
        sys.stderr.flush()
        distributed.abort(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
