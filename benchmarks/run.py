"""Run every benchmark workload and write benchmarks/RESULTS.md.

    python benchmarks/run.py            # all groups
    python benchmarks/run.py core nn    # some groups
"""

from __future__ import annotations

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import render  # noqa: E402

GROUPS = ["core", "nn", "cnn", "rnn", "fit"]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    groups = argv or GROUPS
    results = []
    for g in groups:
        try:
            mod = importlib.import_module(f"bench_{g}")
        except ImportError as exc:
            print(f"skipping {g}: {exc}", file=sys.stderr)
            continue
        for r in mod.run():
            ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
            print(f"{r.group:5s} {r.name:55s} dw {r.dw_s * 1e3:9.3f} ms  torch "
                  f"{(r.torch_s or 0) * 1e3:9.3f} ms  ratio {ratio}", flush=True)
            results.append(r)
    text = render(results)
    if set(groups) == set(GROUPS) or os.environ.get("DEEPWISE_BENCH_WRITE"):
        with open(os.path.join(HERE, "RESULTS.md"), "w") as fh:
            fh.write(text)
    print(text)
    return results


if __name__ == "__main__":
    main()
