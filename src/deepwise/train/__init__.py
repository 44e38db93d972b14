"""Training: ``Trainer`` (Keras-style fit / evaluate / predict), callbacks, metrics and History.

    from deepwise.train import Trainer, EarlyStopping
    trainer = Trainer(model, optimizer, loss="cross_entropy", metrics=["accuracy"])
    history = trainer.fit(x, y, epochs=30, validation_split=0.1,
                          callbacks=[EarlyStopping(patience=5, restore_best_weights=True)])

TensorBoard logging is not included (CSVLogger and History.to_csv cover file logs).
"""

from deepwise.train import callbacks, metrics
from deepwise.train.autoencoder import AutoencoderTrainer
from deepwise.train.callbacks import (
    Callback,
    CallbackList,
    CSVLogger,
    EarlyStopping,
    LambdaCallback,
    LearningRateScheduler,
    ModelCheckpoint,
    ProgressBar,
    ReduceLROnPlateau,
    TerminateOnNaN,
)
from deepwise.train.checkpoint import load_training_checkpoint
from deepwise.train.gan import GANTrainer, SampleGrid
from deepwise.train.history import History
from deepwise.train.metrics import Metric
from deepwise.train.trainer import Trainer

__all__ = [
    "AutoencoderTrainer", "GANTrainer", "SampleGrid", "CSVLogger", "Callback", "CallbackList",
    "EarlyStopping", "History", "LambdaCallback", "LearningRateScheduler", "Metric", "ModelCheckpoint",
    "ProgressBar", "ReduceLROnPlateau", "TerminateOnNaN", "Trainer", "callbacks", "load_training_checkpoint",
    "metrics",
]
