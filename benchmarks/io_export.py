"""Model files in and out: reading a 100 MB PyTorch checkpoint, and exporting the recipe models to ONNX.

    python benchmarks/io_export.py [--mb 100]

1. A state dict of ``--mb`` MB of float32 tensors is written by ``torch.save`` (zip and legacy
   layout); each reader then loads it in a fresh process: ``dw.load`` (no pickle) and, as the
   yardstick, ``torch.load(weights_only=True)``. Printed: seconds and the peak resident memory above
   the process's baseline, as a multiple of the tensor data (1.0 = the loaded tensors alone, so
   anything above that is extra copies; the zip reader maps stored entries and copies each tensor
   once, straight into the array it keeps).
2. Every recipe's (untrained) model is exported by ``dw.onnx.export`` at opset 17 with a dynamic
   batch; printed: seconds (the second export of each, so imports are not counted) and node count.

Standalone (not one of run.py's groups): its numbers are file and memory measurements, not a timed
op-for-op comparison.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

READER = r"""
import gc, json, sys, time
path, which = sys.argv[1], sys.argv[2]
if which == "deepwise":
    import deepwise as dw
    load = dw.load
else:
    import torch
    load = lambda p: torch.load(p, weights_only=True)


def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key + ":"))


gc.collect()
with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to the resident size now
    fh.write("5")
base = status("VmRSS")
t = time.perf_counter()
obj = load(path)
took = time.perf_counter() - t
print(json.dumps({"s": took, "peak_kb": status("VmHWM") - base, "n": len(obj)}))
"""


def bench_load(mb):
    import torch
    n_tensors = 20
    per = mb * 2**20 // 4 // n_tensors
    sd = {f"layer{i}.weight": torch.randn(per) for i in range(n_tensors)}
    data_kb = mb * 1024
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout, kw in (("zip", {}), ("legacy", {"_use_new_zipfile_serialization": False})):
            path = os.path.join(tmp, f"sd_{layout}.pt")
            torch.save(sd, path, **kw)
            for which in ("deepwise", "torch"):
                out = subprocess.run([sys.executable, "-c", READER, path, which], capture_output=True, text=True,
                                     check=True)
                r = json.loads(out.stdout)
                rows.append((layout, which, r["s"], r["peak_kb"] / data_kb))
    print(f"\nloading a {mb} MB torch.save state dict ({n_tensors} float32 tensors), fresh process each")
    print(f"{'layout':8} {'reader':10} {'seconds':>8} {'peak memory / data':>20}")
    for layout, which, s, ratio in rows:
        print(f"{layout:8} {which:10} {s:8.3f} {ratio:20.2f}")


def bench_export():
    import deepwise as dw
    from deepwise import cli, recipes
    print("\nONNX export of each recipe's model (opset 17, dynamic batch)")
    print(f"{'recipe':20} {'seconds':>8} {'nodes':>6}")
    for name in recipes.names():
        recipe = recipes.get(name)
        config = dict(recipe.defaults, seed=0)
        dw.manual_seed(0)
        model = recipe.model(config)
        forward, input_name, example, _ = cli.export_target(model, recipe.data(config))
        try:
            for _ in range(2):
                t = time.perf_counter()
                proto = dw.onnx.export(forward, example, io.BytesIO(), input_names=[input_name],
                                       dynamic_axes={input_name: {0: "batch"}})
                took = time.perf_counter() - t
            print(f"{name:20} {took:8.3f} {len(proto.graph.node):6}")
        except dw.onnx.ExportError as exc:
            print(f"{name:20} {'-':>8} {'-':>6}  not exportable: {str(exc)[:90]}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the checkpoint to load (default 100)")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    args = parser.parse_args()
    if not args.skip_load:
        bench_load(args.mb)
    if not args.skip_export:
        bench_export()


if __name__ == "__main__":
    main()
