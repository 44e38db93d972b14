"""Resume and Ctrl-C for ``Trainer.fit``, as plain functions and one small class over ``LoopState``
(the file format is in ``checkpoint.py``).

A checkpoint is taken either at the end of an epoch (position: the next epoch, batch 0) or after a
batch that ends a gradient-accumulation group (position: this epoch, the number of batches done,
the generator state at the epoch's start, and the epoch's running loss and metric sums).

Ctrl-C is the user's: ``fit`` leaves SIGINT alone unless asked, with
``fit(checkpoint_on_interrupt=...)``, to catch it. Then ``SigintCheckpoint`` puts a handler in
place for the duration of the fit (main thread only) that sets ``state.interrupted``; the loop reads
it after each batch that ends an accumulation group and at the end of each epoch, writes the
checkpoint and returns. A second Ctrl-C raises KeyboardInterrupt at once.
"""

from __future__ import annotations

import os
import signal
import threading

from deepwise import random as dw_random
from deepwise.train.checkpoint import CHECKPOINT_NAME, save_training_checkpoint
from deepwise.train.history import History

__all__ = [
    "SigintCheckpoint", "check_resume_settings", "interrupt_path", "position", "restore_objects", "skip_batches",
    "write_checkpoint", "write_interrupt_checkpoint",
]

# the fit settings a checkpoint taken in the middle of an epoch must find unchanged
RESUME_SETTINGS = ("batch_size", "n_train", "steps_per_epoch", "grad_accumulation_steps", "validation_split")


def position(state, mid_epoch: bool, progress: dict | None = None) -> dict:
    """Where a checkpoint taken now resumes: after this batch (``mid_epoch``) or at the next epoch.
    ``progress``: the epoch's running sums to save (default ``state.progress``'s; under mpiexec, those
    merged over the ranks)."""
    if mid_epoch:
        return {"epoch": state.epoch, "batch": state.batch_index + 1, "global_step": state.global_step,
                "epoch_rng_state": state.epoch_rng_state,
                "progress": state.progress.state_dict() if progress is None else progress}
    return {"epoch": state.next_epoch, "batch": 0, "global_step": state.global_step, "epoch_rng_state": None,
            "progress": None}


def write_checkpoint(path, model, objects: dict, callbacks, history, state, mid_epoch: bool = False,
                     progress: dict | None = None) -> None:
    """Write everything ``fit(resume_from=path)`` needs: ``model``'s weights, the states of ``objects``
    (``Trainer.state_objects()``) and of the ``callbacks``, the ``history``, the random state, and the
    position and settings kept in ``state`` (``progress``: see ``position``)."""
    save_training_checkpoint(
        path,
        model_state=model.state_dict(),
        objects={name: obj.state_dict() for name, obj in objects.items() if obj is not None},
        callbacks=callbacks.state_dicts(),
        history=(history or History()).to_dict(),
        position=position(state, mid_epoch, progress),
        rng_state=dw_random.get_rng_state(),
        settings=state.settings,
    )


def write_interrupt_checkpoint(state, history, save, mid_epoch: bool) -> None:
    """After a Ctrl-C: ``save(path, mid_epoch)`` to ``state.checkpoint_on_interrupt`` (unless it is the
    end-of-epoch ``checkpoint_dir/last.ckpt`` just written), mark the ``history`` interrupted, and
    say how to resume."""
    path = state.checkpoint_on_interrupt
    written = (not mid_epoch and state.checkpoint_dir is not None
               and os.path.abspath(path) == os.path.abspath(os.path.join(state.checkpoint_dir, CHECKPOINT_NAME)))
    if not written:
        save(path, mid_epoch)
    history.interrupted = True
    where = (f"epoch {state.epoch + 1}, after batch {state.batch_index}" if mid_epoch
             else f"the end of epoch {state.epoch + 1}")
    hint = state.resume_hint or f"trainer.fit(<same data and settings>, epochs={state.epochs}, resume_from={path!r})"
    print(f"Training interrupted at {where}. Checkpoint saved to {path}\nResume with: {hint}", flush=True)


def restore_objects(model, objects: dict, ck, what: str) -> None:
    """Load a checkpoint's model weights and the states of ``objects`` (``Trainer.state_objects()``)."""
    model.load_state_dict(ck.model)
    for name, obj in objects.items():
        saved = ck.objects.get(name)
        if obj is None and saved is not None:
            raise ValueError(f"{what}: the checkpoint {ck.path} holds a {name} state, but this Trainer has no "
                             f"{name}; create the Trainer as for the run that wrote it")
        if obj is not None:
            if saved is None:
                raise ValueError(f"{what}: the checkpoint {ck.path} has no {name} state, but this Trainer has a "
                                 f"{type(obj).__name__}")
            obj.load_state_dict(saved)


def check_resume_settings(ck, settings: dict, what: str) -> None:
    """A checkpoint from the middle of an epoch resumes only with the data and settings it had."""
    saved = ck.settings
    for key in RESUME_SETTINGS:
        if saved.get(key) != settings.get(key):
            raise ValueError(f"{what}: the checkpoint {ck.path} was taken in the middle of an epoch with "
                             f"{key}={saved.get(key)!r}, but this fit has {key}={settings.get(key)!r}; "
                             "resume with the same data and settings (or from an end-of-epoch checkpoint)")


def skip_batches(loader, ck, skip: int, epoch: int, progress):
    """An iterator over ``loader`` for a resume in the middle of ``epoch``: the epoch's data order
    drawn again from the generator state saved at its start, the ``skip`` batches already trained
    drawn and dropped, then the generator and the epoch's running sums as they were at the checkpoint."""
    dw_random.set_rng_state(ck.position["epoch_rng_state"])
    iterator = iter(loader)
    for k in range(skip):
        try:
            next(iterator)
        except StopIteration:
            raise ValueError(f"Trainer.fit: the checkpoint {ck.path} was taken after batch {skip} of "
                             f"epoch {epoch + 1}, but the data now has only {k} batches") from None
    dw_random.set_rng_state(ck.rng_state)
    progress.load_state_dict(ck.position["progress"])
    return iterator


def interrupt_path(value, checkpoint_dir, what: str) -> str | None:
    """The file ``fit(checkpoint_on_interrupt=value)`` writes on Ctrl-C: None for False / None;
    ``checkpoint_dir/last.ckpt`` for True; for a path, that file, or ``last.ckpt`` in it when it is a
    directory."""
    if value is None or value is False:
        return None
    if value is True:
        if checkpoint_dir is None:
            raise ValueError(f"{what}: checkpoint_on_interrupt=True writes into checkpoint_dir, but there is none; "
                             "pass checkpoint_dir=DIR, or checkpoint_on_interrupt=PATH")
        return os.path.join(os.fspath(checkpoint_dir), CHECKPOINT_NAME)
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{what}: checkpoint_on_interrupt must be True, False or a path, got {type(value).__name__}")
    path = os.fspath(value)
    return os.path.join(path, CHECKPOINT_NAME) if os.path.isdir(path) else path


class SigintCheckpoint:
    """``with SigintCheckpoint(state):`` — while the block runs, Ctrl-C sets ``state.interrupted``
    (the first time; a second one raises KeyboardInterrupt at once) instead of raising; afterwards
    the previous handler is back. Python delivers signals to the main thread only, so it must be
    entered there."""

    def __init__(self, state):
        self.state = state
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("Trainer.fit: checkpoint_on_interrupt catches Ctrl-C, which Python delivers to the "
                               "main thread only; call fit from the main thread, or leave checkpoint_on_interrupt out")
        state = self.state

        def on_sigint(signum, frame):
            if state.interrupted:
                raise KeyboardInterrupt
            state.interrupted = True
            print("\nInterrupted: finishing the current batch, then saving a checkpoint (Ctrl-C again to abort "
                  "at once)", flush=True)

        self._previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, on_sigint)
        return self

    def __exit__(self, *exc):
        previous = self._previous
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        return False
