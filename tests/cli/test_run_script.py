"""``deepwise run``: a PyTorch script unmodified on deepwise, its gaps in one line, and --see-inside."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

TRAIN = """
import argparse
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()
torch.manual_seed(0)
x = torch.randn(256, 10)
y = (x[:, 0] > 0).long()


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(10, 32)
        self.fc2 = nn.Linear(32, 2)

    def forward(self, x):
        return F.log_softmax(self.fc2(F.relu(self.fc1(x))), dim=1)


model = Net()
opt = optim.SGD(model.parameters(), lr=0.1)
for epoch in range(args.epochs):
    model.train()
    for xb, yb in DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True):
        opt.zero_grad()
        loss = F.nll_loss(model(xb), yb)
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        print(f"epoch {epoch} loss {F.nll_loss(model(x), y).item():.4f}")
print("torch is", torch.__name__)
"""


def _run(tmp_path, source, *args):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, "-m", "deepwise.cli", "run", *args, str(script)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=240)


def test_a_torch_script_runs_on_deepwise_with_its_arguments(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(TRAIN)
    proc = subprocess.run([sys.executable, "-m", "deepwise.cli", "run", str(script), "--epochs", "3"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr
    losses = [float(line.split()[-1]) for line in proc.stdout.splitlines() if line.startswith("epoch")]
    assert len(losses) == 3 and losses[-1] < losses[0] < 0.7
    assert "torch is deepwise" in proc.stdout


def test_python_dash_m_deepwise_is_the_deepwise_command(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(TRAIN)
    proc = subprocess.run([sys.executable, "-m", "deepwise", "run", str(script), "--epochs", "2"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert len([line for line in proc.stdout.splitlines() if line.startswith("epoch")]) == 2
    assert "torch is deepwise" in proc.stdout
    # the same parser as the console script: its usage, and a bad command is a usage error (exit 2)
    listed = subprocess.run([sys.executable, "-m", "deepwise", "recipes"], capture_output=True, text=True,
                            timeout=240)
    direct = subprocess.run([sys.executable, "-m", "deepwise.cli", "recipes"], capture_output=True, text=True,
                            timeout=240)
    assert listed.returncode == 0 and listed.stdout == direct.stdout and listed.stdout.strip()
    bad = subprocess.run([sys.executable, "-m", "deepwise", "no-such-command"], capture_output=True, text=True,
                         timeout=240)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


def test_a_gap_is_one_line_naming_it_and_the_script_line(tmp_path):
    proc = _run(tmp_path, """
        import torch
        x = torch.ones(2)
        layer = torch.nn.NoSuchLayerAnywhere(3)
    """)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert lines == ["script.py:4: deepwise has no torch.nn.NoSuchLayerAnywhere (a deepwise gap, not an error "
                     "in the script): layer = torch.nn.NoSuchLayerAnywhere(3)"]


@pytest.mark.parametrize("source,name", [
    ("import torch.no_such_module\n", "torch.no_such_module"),
    ("from torch.nn import NoSuchThing\n", "torch.nn.NoSuchThing"),
    ("import torch\ntorch.ones(2).no_such_method()\n", "Tensor.no_such_method"),
    ("import torch\ntorch.cuda.no_such_probe()\n", "torch.cuda.no_such_probe"),
])
def test_gaps_of_modules_imports_and_methods(tmp_path, source, name):
    proc = _run(tmp_path, source)
    assert proc.returncode == 1 and f"deepwise has no {name} (a deepwise gap" in proc.stderr


def test_an_error_of_the_script_itself_keeps_its_traceback(tmp_path):
    proc = _run(tmp_path, "import torch\nraise ValueError('the script is wrong')\n")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: the script is wrong" in proc.stderr
    assert "deepwise gap" not in proc.stderr


def test_see_inside_watches_the_model_and_writes_findings(tmp_path):
    proc = _run(tmp_path, TRAIN, "--see-inside", "--report-dir", str(tmp_path / "seen"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "what happened inside" in out and "Net + SGD: 16 optimizer steps over 2 epoch(s)" in out
    assert "GradientMonitor" in out and "OverfittingAdvisor" in out
    metrics = json.loads((tmp_path / "seen" / "metrics.json").read_text())
    assert metrics["watched"] == [{"model_and_optimizer": "Net + SGD", "steps": 16, "epochs": 2}]
    assert any("GradientMonitor" in d for d in metrics["diagnosis"])
    history = (tmp_path / "seen" / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    assert {"epoch", "loss", "val_loss", "grad_norm/total"} <= set(header) and len(history) == 3


BY_HAND = """
import torch


class Square(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, grad_output):
        x, = ctx.saved_tensors
        return 2 * x * grad_output


torch.manual_seed(0)
x = torch.randn(32, 4)
y = x.sum(dim=1, keepdim=True)
w = torch.zeros(4, 1, requires_grad=True)
for t in range(40):
    loss = Square.apply(x.mm(w) - y).mean()
    loss.backward()
    with torch.no_grad():
        w -= 0.1 * w.grad
        w.grad.zero_()
print("final", loss.item())
"""


def test_see_inside_a_script_trained_by_hand_reports_its_losses(tmp_path):
    proc = _run(tmp_path, BY_HAND, "--see-inside", "--report-dir", str(tmp_path / "seen"))
    assert proc.returncode == 0, proc.stderr
    assert "trained by hand, without an optimizer: 40 backward() calls; the training loss fell" in proc.stdout
    metrics = json.loads((tmp_path / "seen" / "metrics.json").read_text())
    assert metrics["watched"] == [] and len(metrics["diagnosis"]) == 1
    losses = metrics["training_losses"]["backward() without an optimizer"]
    assert len(losses) == 40 and losses[-1] < 0.01 * losses[0]
    assert abs(losses[-1] - float(proc.stdout.split("final")[1].split()[0])) < 1e-6


def test_see_inside_a_script_that_never_trains_says_so(tmp_path):
    proc = _run(tmp_path, "import torch\nprint(torch.ones(2).sum().item())\n", "--see-inside")
    assert proc.returncode == 0, proc.stderr
    assert "never called optimizer.step(), so there was no training to watch" in proc.stdout
