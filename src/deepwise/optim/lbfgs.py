"""L-BFGS: a quasi-Newton method that re-evaluates the loss through a closure.

Each ``step(closure)`` runs up to ``max_iter`` iterations on all parameters seen as one flat vector
``x`` with gradient ``g``:

1. direction ``d``: ``-g`` on the first iteration; afterwards ``-H g``, where ``H`` is the inverse
   Hessian estimate of the two-loop recursion over the last ``history_size`` pairs
   ``(s, y) = (x_k+1 - x_k, g_k+1 - g_k)`` (a pair is kept only when ``y.s > 1e-10``), scaled by
   ``H_diag = y.s / y.y`` of the newest pair;
2. step length ``t``: ``lr`` (``min(1, 1/|g|_1) * lr`` on the very first iteration), either taken as it
   is (``line_search_fn=None``; one closure call per iteration) or refined by a line search that
   satisfies the strong Wolfe conditions (``line_search_fn="strong_wolfe"``: bracketing, then zoom
   by safeguarded cubic interpolation, Nocedal & Wright, Algorithms 3.5 and 3.6);
3. stop when ``max|g| <= tolerance_grad``, the step or the loss change falls below
   ``tolerance_change``, or ``max_eval`` closure calls are spent.

The history lives in ``state`` of the first parameter, so it carries over from step to step (as in
PyTorch, whose defaults and state names these are). Only one parameter group is supported.
"""

from __future__ import annotations

from deepwise.autograd import enable_grad, no_grad
from deepwise.backend import get_array_module
from deepwise.optim.optimizer import Optimizer


def _cubic_minimizer(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2, clipped to
    ``bounds`` (default: the interval between x1 and x2); the midpoint when the cubic has none."""
    lo, hi = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    disc = d1 * d1 - g1 * g2
    if disc < 0:
        return (lo + hi) / 2.0
    d2 = disc ** 0.5
    if x1 <= x2:
        x = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        x = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(x, lo), hi)


class _Point:
    """A trial step length with its loss, flat gradient and directional derivative."""

    __slots__ = ("t", "f", "g", "gtd")

    def __init__(self, t, f, g, gtd):
        self.t, self.f, self.g, self.gtd = t, f, g, gtd


def strong_wolfe(evaluate, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step length along ``d`` meeting the strong Wolfe conditions, from the start (loss ``f``,
    gradient ``g``, slope ``gtd = g.d < 0``) and a first trial ``t``. ``evaluate(t)`` returns
    ``(loss, flat gradient)`` at ``x + t d``. Returns ``(loss, gradient, t, evaluations)``."""
    xp = get_array_module(d)
    d_norm = float(xp.abs(d).max())

    def probe(step):
        f_new, g_new = evaluate(step)
        return _Point(step, f_new, g_new, g_new.dot(d))

    start = _Point(0.0, f, g.copy(), gtd)
    prev, cur = start, probe(t)
    evals, ls_iter = 1, 0
    bracket, done = None, False
    # phase 1: grow the step until an interval surely holds a point meeting the conditions
    while ls_iter < max_ls:
        if cur.f > f + c1 * cur.t * gtd or (ls_iter > 1 and cur.f >= prev.f):
            bracket = [prev, cur]
            break
        if abs(cur.gtd) <= -c2 * gtd:
            bracket, done = [cur], True
            break
        if cur.gtd >= 0:
            bracket = [prev, cur]
            break
        lo_step, hi_step = cur.t + 0.01 * (cur.t - prev.t), cur.t * 10
        step = _cubic_minimizer(prev.t, prev.f, prev.gtd, cur.t, cur.f, cur.gtd, bounds=(lo_step, hi_step))
        prev, cur = cur, probe(step)
        evals += 1
        ls_iter += 1
    if ls_iter == max_ls:
        bracket = [start, cur]
    if done:
        best = bracket[0]
        return best.f, best.g, best.t, evals
    # phase 2 (zoom): shrink the bracket by cubic interpolation, kept away from its ends
    low, high = (0, 1) if bracket[0].f <= bracket[-1].f else (1, 0)
    insufficient = False
    while not done and ls_iter < max_ls:
        a, b = bracket
        if abs(b.t - a.t) * d_norm < tolerance_change:
            break
        step = _cubic_minimizer(a.t, a.f, a.gtd, b.t, b.f, b.gtd)
        top, bottom = max(a.t, b.t), min(a.t, b.t)
        margin = 0.1 * (top - bottom)
        if min(top - step, step - bottom) < margin:
            if insufficient or step >= top or step <= bottom:
                step = top - margin if abs(step - top) < abs(step - bottom) else bottom + margin
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        cur = probe(step)
        evals += 1
        ls_iter += 1
        if cur.f > f + c1 * cur.t * gtd or cur.f >= bracket[low].f:
            bracket[high] = cur
            low, high = (0, 1) if bracket[0].f <= bracket[1].f else (1, 0)
        else:
            if abs(cur.gtd) <= -c2 * gtd:
                done = True
            elif cur.gtd * (bracket[high].t - bracket[low].t) >= 0:
                bracket[high] = bracket[low]
            bracket[low] = cur
    best = bracket[low]
    return best.f, best.g, best.t, evals


class LBFGS(Optimizer):
    """``LBFGS(params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
    history_size=100, line_search_fn=None)``; ``max_eval`` defaults to ``max_iter * 5 // 4`` and
    ``line_search_fn`` is None or ``"strong_wolfe"``. ``step(closure)`` needs the closure, which
    clears the gradients, computes the loss, calls ``backward()`` and returns the loss."""

    def __init__(self, params, lr=1, max_iter=20, max_eval=None, tolerance_grad=1e-7, tolerance_change=1e-9,
                 history_size=100, line_search_fn=None):
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        if line_search_fn not in (None, "strong_wolfe"):
            raise ValueError(f"LBFGS: line_search_fn must be None or 'strong_wolfe', got {line_search_fn!r}")
        defaults = {
            "lr": lr, "max_iter": max_iter, "max_eval": max_eval, "tolerance_grad": tolerance_grad,
            "tolerance_change": tolerance_change, "history_size": history_size, "line_search_fn": line_search_fn,
        }
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups): pass one "
                             "list of parameters")

    def _check_group(self, group, where):
        for key in ("lr", "tolerance_grad", "tolerance_change"):
            self._check_number(group, key, where)
        for key in ("max_iter", "max_eval", "history_size"):
            value = group[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LBFGS: {key} must be an int >= 1, got {value!r}{where}")

    @property
    def _params(self):
        return self.param_groups[0]["params"]

    def _flat_grad(self):
        xp = get_array_module(self._params[0].array)
        parts = [p.grad.array.reshape(-1) if p.grad is not None else xp.zeros(p.array.size, p.array.dtype)
                 for p in self._params]
        return xp.concatenate(parts)

    def _move(self, t, d):
        """x <- x + t * d, parameter by parameter."""
        offset = 0
        for p in self._params:
            n = p.array.size
            step = d[offset:offset + n].reshape(p.array.shape) * t
            p.array += step.astype(p.array.dtype, copy=False)
            offset += n

    def _evaluate(self, closure):
        with enable_grad():
            return float(closure())

    def step(self, closure=None):
        """Run up to ``max_iter`` iterations; returns the loss the closure gave on its first call."""
        if closure is None:
            raise RuntimeError("LBFGS.step() needs a closure that re-evaluates the model and returns the "
                               "loss: optimizer.step(closure)")
        with no_grad():
            return self._run(closure)

    def _run(self, closure):
        group = self.param_groups[0]
        lr = float(group["lr"])
        max_iter, max_eval = group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        history_size = group["history_size"]
        state = self.state[self._params[0]]
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)

        with enable_grad():
            orig_loss = closure()
        loss = float(orig_loss)
        evals = 1
        state["func_evals"] += 1
        g = self._flat_grad()
        xp = get_array_module(g)
        if float(xp.abs(g).max()) <= tolerance_grad:
            return orig_loss

        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        h_diag = state.get("H_diag")
        prev_g, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = -g
                old_dirs, old_stps, ro = [], [], []
                h_diag = 1
            else:
                y = g - prev_g
                s = d * t
                ys = y.dot(s)
                if ys > 1e-10:  # keep the pair only when the curvature condition holds
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    h_diag = ys / y.dot(y)
                # two-loop recursion: d = -H g
                q = -g
                alphas = [None] * len(old_dirs)
                for i in range(len(old_dirs) - 1, -1, -1):
                    alphas[i] = old_stps[i].dot(q) * ro[i]
                    q -= old_dirs[i] * alphas[i]
                d = r = q * h_diag
                for i in range(len(old_dirs)):
                    beta = old_dirs[i].dot(r) * ro[i]
                    r += old_stps[i] * (alphas[i] - beta)
            prev_g = g.copy()
            prev_loss = loss
            t = min(1.0, 1.0 / float(xp.abs(g).sum())) * lr if state["n_iter"] == 1 else lr
            gtd = g.dot(d)
            if gtd > -tolerance_change:  # not a descent direction
                break

            ls_evals = 0
            if group["line_search_fn"] == "strong_wolfe":
                x0 = [p.array.copy() for p in self._params]

                def evaluate(step, x0=x0, d=d):
                    self._move(step, d)
                    f_new = self._evaluate(closure)
                    g_new = self._flat_grad()
                    for p, a in zip(self._params, x0):
                        p.array[...] = a
                    return f_new, g_new

                loss, g, t, ls_evals = strong_wolfe(evaluate, t, d, loss, g, gtd,
                                                    tolerance_change=tolerance_change)
                self._move(t, d)
                converged = float(xp.abs(g).max()) <= tolerance_grad
            else:
                self._move(t, d)
                converged = False
                if n_iter != max_iter:  # the last iteration's loss is left for the next step()
                    loss = self._evaluate(closure)
                    g = self._flat_grad()
                    converged = float(xp.abs(g).max()) <= tolerance_grad
                    ls_evals = 1
            evals += ls_evals
            state["func_evals"] += ls_evals

            if n_iter == max_iter or evals >= max_eval or converged:
                break
            if float(xp.abs(d * t).max()) <= tolerance_change or abs(loss - prev_loss) < tolerance_change:
                break

        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=h_diag,
                     prev_flat_grad=prev_g, prev_loss=prev_loss)
        return orig_loss
