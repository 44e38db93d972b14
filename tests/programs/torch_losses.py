"""Run a corpus program on PyTorch itself and write the training losses it called backward() on,
in order, to a JSON file: ``python torch_losses.py OUT.json PROGRAM [args...]`` (the oracle that
test_programs.py compares deepwise's loss curve with)."""

from __future__ import annotations

import json
import runpy
import sys

import torch


def main():
    out, program, *args = sys.argv[1:]
    losses = []
    backward = torch.Tensor.backward

    def recording_backward(self, *a, **kw):
        if self.numel() == 1:
            losses.append(float(self.detach()))
        return backward(self, *a, **kw)

    torch.Tensor.backward = recording_backward
    sys.argv = [program, *args]
    try:
        runpy.run_path(program, run_name="__main__")
    finally:
        torch.Tensor.backward = backward
        with open(out, "w") as fh:
            json.dump(losses, fh)


if __name__ == "__main__":
    main()
