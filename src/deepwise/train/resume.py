"""Checkpoints, resume and Ctrl-C for ``Trainer`` (a mixin; the file format is in ``checkpoint.py``).

A checkpoint is taken either at the end of an epoch (position: the next epoch, batch 0) or after a
batch that ends a gradient-accumulation group (position: this epoch, the number of batches done,
the generator state at the epoch's start, and the epoch's running loss and metric sums). Ctrl-C
(SIGINT, main thread only) sets a flag that the training loop reads after each such batch and at the
end of each epoch; a second Ctrl-C raises KeyboardInterrupt at once.
"""

from __future__ import annotations

import os
import signal
import threading

from deepwise import random as dw_random
from deepwise.train import checkpoint as ckpt_io
from deepwise.train.history import History

__all__ = ["INTERRUPT_FILE", "CheckpointMixin"]

INTERRUPT_FILE = "deepwise_interrupted.ckpt"


class CheckpointMixin:
    """Saving and restoring the whole training state of a ``Trainer``."""

    # ------------------------------------------------------------------------------ state
    def state_objects(self) -> dict:
        """Objects with ``state_dict()`` / ``load_state_dict()`` saved in checkpoints, by name.
        A subclass with more (a second optimizer) adds them: ``{**super().state_objects(), "d_opt": ...}``."""
        return {"optimizer": self.optimizer, "scheduler": self.scheduler}

    def request_checkpoint(self, path) -> None:
        """Write a full training checkpoint to ``path`` at the end of the current epoch (after every
        callback and the History row), e.g. from a callback's ``on_epoch_end``."""
        self._pending_checkpoints.append(os.fspath(path))

    def _position(self, mid_epoch: bool) -> dict:
        if mid_epoch:
            return {"epoch": self.epoch, "batch": self.batch_index + 1, "global_step": self.global_step,
                    "epoch_rng_state": self._epoch_rng_state, "progress": self._tracker.state_dict()}
        return {"epoch": self._next_epoch, "batch": 0, "global_step": self.global_step, "epoch_rng_state": None,
                "progress": None}

    def save_checkpoint(self, path, _mid_epoch: bool = False) -> None:
        """Write a training checkpoint (weights, optimizer/scheduler state, callbacks, History,
        random state) that ``fit(resume_from=path)`` continues from."""
        ckpt_io.save_training_checkpoint(
            path,
            model_state=self.model.state_dict(),
            objects={name: obj.state_dict() for name, obj in self.state_objects().items() if obj is not None},
            callbacks=self.callbacks.state_dicts(),
            history=(self.history or History()).to_dict(),
            position=self._position(_mid_epoch),
            rng_state=dw_random.get_rng_state(),
            settings=self._fit_settings,
        )

    def _restore(self, ck, what) -> None:
        self.model.load_state_dict(ck.model)
        for name, obj in self.state_objects().items():
            saved = ck.objects.get(name)
            if obj is None and saved is not None:
                raise ValueError(f"{what}: the checkpoint {ck.path} holds a {name} state, but this Trainer has no "
                                 f"{name}; create the Trainer as for the run that wrote it")
            if obj is not None:
                if saved is None:
                    raise ValueError(f"{what}: the checkpoint {ck.path} has no {name} state, but this Trainer has a "
                                     f"{type(obj).__name__}")
                obj.load_state_dict(saved)

    # ------------------------------------------------------------------------------ Ctrl-C
    def _install_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return None
        trainer = self

        def on_sigint(signum, frame):
            if trainer._interrupt_requested:
                raise KeyboardInterrupt
            trainer._interrupt_requested = True
            print("\nInterrupted: finishing the current batch, then saving a checkpoint (Ctrl-C again to abort "
                  "at once)", flush=True)

        try:
            previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, on_sigint)
        except (ValueError, OSError):
            return None
        return (previous,)

    @staticmethod
    def _restore_sigint(previous):
        if previous is not None:
            try:
                signal.signal(signal.SIGINT, previous[0] if previous[0] is not None else signal.SIG_DFL)
            except (ValueError, OSError):
                pass

    def _interrupt_checkpoint(self, mid_epoch: bool) -> None:
        if self._checkpoint_dir is not None:
            path = os.path.join(self._checkpoint_dir, ckpt_io.CHECKPOINT_NAME)
        else:
            path = os.path.abspath(INTERRUPT_FILE)
        if mid_epoch or self._checkpoint_dir is None:
            self.save_checkpoint(path, _mid_epoch=mid_epoch)
        self.history.interrupted = True
        where = (f"epoch {self.epoch + 1}, after batch {self.batch_index}" if mid_epoch
                 else f"the end of epoch {self.epoch + 1}")
        print(f"Training interrupted at {where}. Checkpoint saved to {path}\n"
              f"Resume with: trainer.fit(<same data and settings>, epochs={self.epochs}, resume_from={path!r})",
              flush=True)
