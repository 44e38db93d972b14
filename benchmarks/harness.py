"""Side-by-side timing of deepwise and PyTorch: same work, same threads, each framework in its own process.

``run.py`` starts one worker process per framework and workload group, alternating deepwise and PyTorch
for a few rounds. Inside a worker only one framework runs (``DEEPWISE_BENCH_ONLY``), so neither pays
for the other's spinning BLAS/OpenMP threads -- which is what a user running one of them sees. Within
a worker, ``time_pair`` times the step in blocks with a pause between them and reports the median.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field

FRAMEWORKS = ("deepwise", "torch")


@dataclass
class Result:
    group: str
    name: str
    dw_s: float | None
    torch_s: float | None
    target: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self):
        return None if self.torch_s is None or self.dw_s is None else self.dw_s / self.torch_s

    def to_json(self) -> dict:
        return asdict(self)


def only() -> str | None:
    """The framework this worker times (None: both, in one process)."""
    value = os.environ.get("DEEPWISE_BENCH_ONLY") or None
    if value is not None and value not in FRAMEWORKS:
        raise ValueError(f"DEEPWISE_BENCH_ONLY must be one of {FRAMEWORKS}, got {value!r}")
    return value


def threads() -> int:
    return int(os.environ.get("DEEPWISE_BENCH_THREADS", os.cpu_count() or 1))


def setup_torch():
    """torch with the benchmark's thread count, or None when absent or when this worker times deepwise."""
    if only() == "deepwise":
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads())
    return torch


def _rss_bytes(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _malloc_trim() -> None:
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_rss_growth(fn) -> int | None:
    """How far the process's resident memory rose above its level before ``fn`` while ``fn`` ran (bytes).

    Linux only: free heap memory is first handed back to the OS (glibc ``malloc_trim``, so pages kept
    mapped by earlier work -- deepwise's malloc settings keep them -- do not hide the step's growth), then
    the peak (VmHWM) is reset through /proc/self/clear_refs. The same measure for both frameworks, so it
    counts what each really touches -- NumPy's arrays and PyTorch's allocator alike."""
    _malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        fn()
        return None
    before = _rss_bytes("VmRSS")
    fn()
    peak = _rss_bytes("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before)


def synchronize(framework):
    """Wait until ``framework``'s queued GPU work is done (nothing to wait for on the CPU, or when
    the framework never touched a GPU in this process)."""
    if framework == "deepwise":
        dw = sys.modules.get("deepwise")
        if dw is not None:
            dw.cuda.synchronize()
    else:
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.synchronize()


def time_pair(dw_step, torch_step, repeats=30, warmup=3, blocks=6, settle=0.05):
    """``(dw_s, torch_s, extra)``: median seconds per call of each step (None for a step not timed in
    this worker) and the memory measure as Result.extra entries.

    The first call of each step is its memory measure (``extra["dw_peak"]`` / ``extra["torch_peak"]``):
    peak resident-memory growth during a cold step, which includes making the gradients and the
    optimizer state. Steps then run in blocks of ``repeats // blocks`` calls with a pause between
    blocks (BLAS/OpenMP threads spin for a while after work).
    """
    side = only()
    steps = {"deepwise": dw_step, "torch": torch_step}
    if side is not None:
        steps = {k: (v if k == side else None) for k, v in steps.items()}
    memory = {}
    for name, step in steps.items():
        if step is not None:
            memory[name] = peak_rss_growth(step)
    for _ in range(warmup):
        for step in steps.values():
            if step is not None:
                step()
    per_block = max(1, repeats // blocks)
    times = {name: [] for name in steps}
    for _ in range(blocks):
        for name, step in steps.items():
            if step is None:
                continue
            time.sleep(settle)
            for _ in range(per_block):
                synchronize(name)
                t0 = time.perf_counter()
                step()
                synchronize(name)  # a GPU step returns before its kernels finish: time them too
                times[name].append(time.perf_counter() - t0)
    med = {k: (statistics.median(v) if v else None) for k, v in times.items()}
    extra = {key: memory[name] for name, key in (("deepwise", "dw_peak"), ("torch", "torch_peak"))
             if memory.get(name) is not None}
    return med["deepwise"], med["torch"], extra


_SGEMM = {}


def sgemm_peak(n=1536, repeats=5):
    """This worker's float32 matmul rate in GFLOP/s: the best of ``repeats`` (n, n) @ (n, n) products
    through NumPy's BLAS (the one deepwise calls) at the worker's thread count. Measured once per
    worker, so it is taken in the same run, under the same load, as the conv workloads beside it."""
    if n not in _SGEMM:
        import numpy as np

        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
        out = np.empty((n, n), dtype=np.float32)
        np.matmul(a, b, out=out)  # warm-up: threads started, pages touched
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
        _SGEMM[n] = 2 * n**3 / best / 1e9
    return _SGEMM[n]


def conv_extra(flop):
    """Result.extra entries for a conv workload: its conv FLOPs per step and this worker's sgemm peak;
    the table then shows each framework's achieved conv GFLOP/s beside that peak."""
    return {"conv_flop": flop, "sgemm_gflops": sgemm_peak()}


def merge(runs: list[list[Result]]) -> list[Result]:
    """One Result per workload from several workers' results: the best (lowest) median of each framework
    over the rounds, the largest memory figure seen, notes and targets from whichever worker had them."""
    order, by_name = [], {}
    for results in runs:
        for r in results:
            key = (r.group, r.name)
            if key not in by_name:
                order.append(key)
                by_name[key] = Result(r.group, r.name, None, None, r.target, r.note, {})
            m = by_name[key]
            if r.dw_s is not None:
                m.dw_s = r.dw_s if m.dw_s is None else min(m.dw_s, r.dw_s)
            if r.torch_s is not None:
                m.torch_s = r.torch_s if m.torch_s is None else min(m.torch_s, r.torch_s)
            m.note = m.note or r.note
            m.target = m.target if m.target is not None else r.target
            for k, v in r.extra.items():
                m.extra[k] = max(m.extra.get(k, v), v) if isinstance(v, (int, float)) else v
    return [by_name[k] for k in order]


def _fmt_time(s):
    if s is None:
        return "-"
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def _mib(b):
    return "-" if b is None else f"{b / 2**20:.1f} MiB"


def _note(r: Result) -> str:
    parts = [r.note] if r.note else []
    items = r.extra.get("items")
    if items:
        unit = r.extra.get("unit", "items")
        rates = [f"{who} {items / s:,.0f} {unit}/s" for who, s in (("deepwise", r.dw_s), ("PyTorch", r.torch_s))
                 if s]
        parts.append(", ".join(rates))
    if "dw_peak" in r.extra or "torch_peak" in r.extra:
        parts.append(f"peak memory {_mib(r.extra.get('dw_peak'))} vs {_mib(r.extra.get('torch_peak'))}")
    return "; ".join(parts)


HOW_TO_READ = """
## How to read these numbers

- Each framework runs alone in its own worker process (deepwise and PyTorch alternate, several
  rounds; the best median of each is shown), on the same cores with the same thread count -- what a
  user running one of them sees. Run-to-run spread on this 2-core machine is about ±15%.
- Two thread counts: all cores (BLAS and OpenMP threads = cores, the default for both frameworks) and
  one thread. On a shared 2-core machine a second busy process slows multi-threaded BLAS badly (its
  threads wait on each other), so the one-thread table is the steadier comparison of the work each
  framework does; the all-cores table also shows how well each spreads its work over the cores.
- Each framework runs as it comes. deepwise sets glibc's malloc thresholds at import
  (`deepwise/_malloc.py`: freed pages stay mapped); the PyTorch worker, which imports deepwise only
  to copy the same initial weights, runs with `DEEPWISE_MALLOC_TUNING=0`, i.e. PyTorch's default
  allocator behaviour. With the same settings PyTorch's steps also get faster on this VM (VGG block,
  2 threads: about 70 -> 64 ms; 1 thread: 147 -> 89 ms of CPU time).
- Peak memory is how far the worker's resident memory rose during one cold training step (gradients
  and optimizer state included), measured the same way for both frameworks (Linux VmHWM, reset
  before the step).
- conv GFLOP/s: the conv and transposed-conv FLOPs of one step (2 per multiply-add; forward, input
  gradient and weight gradient) over the step time, beside the float32 matmul rate (sgemm peak,
  NumPy's BLAS, same worker and thread count). A whole step also spends time outside the convs; the
  "convs alone" rows time only the conv layers' forward and backward.
- `fit` overhead is Trainer.fit's epoch time over the same epochs in a hand-written loop (both
  deepwise); the target is <= 5%.
"""


def _gflops(r: Result) -> str:
    """'deepwise / PyTorch GFLOP/s of the conv FLOPs per step (sgemm peak P, deepwise at x% of it)'."""
    flop, peak = r.extra.get("conv_flop"), r.extra.get("sgemm_gflops")
    if not flop:
        return "-"
    rates = [None if s is None else flop / s / 1e9 for s in (r.dw_s, r.torch_s)]
    text = " / ".join("-" if v is None else f"{v:.1f}" for v in rates)
    if peak:
        text += f" (peak {peak:.0f}" + (f", dw {100 * rates[0] / peak:.0f}%" if rates[0] else "") + ")"
    return text


def _table(results) -> list[str]:
    conv = any(r.extra.get("conv_flop") for r in results)  # the GFLOP/s column only where it applies
    lines = [
        "| group | workload | deepwise | PyTorch | ratio (dw/torch) | target | "
        + ("conv GFLOP/s dw / torch (sgemm peak) | " if conv else "") + "note |",
        "|---|---|---|---|---|---|---|" + ("---|" if conv else ""),
    ]
    ratios = []
    for r in results:
        ratio = r.ratio
        if ratio is not None:
            ratios.append(ratio)
        ok = "" if r.target is None or ratio is None else (" ✅" if ratio <= r.target else " ❌")
        lines.append(
            f"| {r.group} | {r.name} | {_fmt_time(r.dw_s)} | {_fmt_time(r.torch_s)} | "
            f"{'-' if ratio is None else f'{ratio:.2f}x'}{ok} | "
            f"{'-' if r.target is None else f'<= {r.target}x'} | "
            + (f"{_gflops(r)} | " if conv else "") + f"{_note(r)} |"
        )
    if ratios:
        gm = math.exp(sum(math.log(x) for x in ratios) / len(ratios))
        lines += ["", f"Geometric mean of the ratios: **{gm:.2f}x** over {len(ratios)} workloads."]
    return lines


def render(results, title="deepwise vs PyTorch (CPU)", by_threads=None) -> str:
    """RESULTS.md text. ``by_threads`` ({thread count: results}) renders one table per thread count,
    the first being the one the targets are judged on; else ``results`` is one table at ``threads()``."""
    import numpy as np

    try:
        import torch

        tv = torch.__version__
    except ImportError:
        tv = "not installed"
    by_threads = by_threads or {threads(): results}
    lines = [
        "# Benchmark results",
        "",
        f"{title}. Written by `python benchmarks/run.py`; median step time, each framework in its own process.",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, PyTorch {tv}.",
    ]
    for k, (n, rows) in enumerate(by_threads.items()):
        what = "targets are judged here" if k == 0 else "per-core efficiency, less sensitive to machine load"
        lines += ["", f"## {n} thread{'s' if n != 1 else ''} ({what})", ""] + _table(rows)
    return "\n".join(lines) + "\n" + HOW_TO_READ
