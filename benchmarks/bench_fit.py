"""Trainer.fit overhead: the digits MLP trained through fit vs the same work in a hand-written loop.

The measure is the epoch of a multi-epoch run: ``fit(epochs=5)`` against five hand-written epochs, each
side on a fresh model built outside the timing (Trainer and optimizer are created inside it, so the fit
call's one-time setup is inside the timing, spread over its five epochs). The hand loop
does what fit does by default: a new order every epoch drawn from the seeded generator, batches of 64
(the last one shorter), Adam, and the epoch's mean loss read back once per step (fit's History holds
it). The one-time cost of a fit call (Trainer, input checks, callbacks, History, the first epoch's
setup) is not hidden: a one-epoch fit is timed against one hand epoch too, and the note gives that
overhead and the fixed cost per fit call it implies.

Timing: alternating rounds (the order flips every round), 21 of them; each overhead is the median of
the per-round ratios (both sides of a round ran moments apart, under the same machine load).
"""

from __future__ import annotations

import statistics
import time

from harness import Result

HAS_TORCH = False  # both sides are deepwise: run.py times it in the deepwise worker only

BATCH = 64
EPOCHS = 5
ROUNDS = 61


def _model(dw):
    dw.manual_seed(0)
    return dw.nn.Sequential(dw.nn.Linear(64, 128), dw.nn.ReLU(), dw.nn.Linear(128, 10))


def run():
    import deepwise as dw

    x, y = dw.data.load_digits(split="train")
    n = len(x)
    cross_entropy = dw.nn.functional.cross_entropy

    def hand(model, epochs):
        opt = dw.optim.Adam(model.parameters(), lr=1e-3)
        gen = dw.random.generator()
        losses = []
        for _ in range(epochs):
            order = gen.permutation(n)
            total = 0.0
            for i in range(0, n, BATCH):
                idx = order[i:i + BATCH]
                xb, yb = dw.tensor(x[idx]), dw.tensor(y[idx])
                opt.zero_grad()
                loss = cross_entropy(model(xb), yb)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            losses.append(total / n)
        return losses

    def fit(model, epochs):
        trainer = dw.Trainer(model, optimizer=dw.optim.Adam(model.parameters(), lr=1e-3), loss="cross_entropy")
        return trainer.fit(x, y, epochs=epochs, batch_size=BATCH, verbose=0).history["loss"]

    def timed(fn, epochs):
        model = _model(dw)
        t0 = time.perf_counter()
        fn(model, epochs)
        return time.perf_counter() - t0

    # same work: from the same seed, the first epoch visits the same batches and gives the same loss
    (h_loss,), (f_loss,) = (fn(_model(dw), 1) for fn in (hand, fit))
    if abs(h_loss - f_loss) > 1e-6:
        raise RuntimeError(f"bench_fit: the hand loop and fit do different work (epoch loss {h_loss} vs {f_loss})")

    times = {key: [] for key in ("hand", "fit", "hand1", "fit1")}
    pairs = (("hand", hand, EPOCHS), ("fit", fit, EPOCHS), ("hand1", hand, 1), ("fit1", fit, 1))
    for _ in range(2):
        for _key, fn, epochs in pairs:
            timed(fn, epochs)
    for r in range(ROUNDS):
        for key, fn, epochs in (pairs if r % 2 == 0 else pairs[::-1]):
            times[key].append(timed(fn, epochs))
    # paired per round (the two sides of a round ran moments apart, under the same machine load)
    med = {key: statistics.median(v) for key, v in times.items()}
    overhead = statistics.median(f / h - 1.0 for f, h in zip(times["fit"], times["hand"]))
    one = statistics.median(f / h - 1.0 for f, h in zip(times["fit1"], times["hand1"]))
    fixed = statistics.median((f1 - h1) - (f - h) / EPOCHS for f1, h1, f, h in
                              zip(times["fit1"], times["hand1"], times["fit"], times["hand"]))
    hand_epoch, fit_epoch = med["hand"] / EPOCHS, med["fit"] / EPOCHS
    note = (f"hand loop {hand_epoch * 1e3:.1f} ms/epoch; fit overhead {overhead:+.1%} per epoch over {EPOCHS} "
            f"epochs (target <= 5%); a 1-epoch fit call {one:+.1%} (fixed cost per fit call "
            f"{fixed * 1e3:.2f} ms); medians of {ROUNDS} alternating rounds, overheads paired per round")
    return [Result("fit", f"digits MLP epoch: Trainer.fit vs hand-written loop (both deepwise, {EPOCHS} epochs)",
                   fit_epoch, None, note=note)]
