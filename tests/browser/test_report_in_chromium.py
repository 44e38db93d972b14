"""report.html of a classification, a generative and a sequence run, opened in headless Chromium.

Fails on an image that does not load, a console error or uncaught exception, or a page wider than
the window (at 1280 and at 800 CSS pixels). Keeps a screenshot of each report under
``$DEEPWISE_SCREENSHOTS`` (default: the test's temporary folder). Marked ``browser``: run with
``python -m pytest -m browser tests/browser``; ``.ci/run`` installs Debian's ``chromium`` when missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)

# runs in the page after load: what the test judges, written into the DOM for --dump-dom to carry out
PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push('error: ' + (e.message || e.target.src || e.type)), true);
const origError = console.error;
console.error = (...a) => { window.__errors.push('console.error: ' + a.join(' ')); origError(...a); };
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const broken = imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt);
  const out = {images: imgs.length, broken: broken, errors: window.__errors,
               scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth};
  const pre = document.createElement('pre'); pre.id = '__probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""

CLI = "import sys; from deepwise.cli import main; sys.exit(main())"
RUNS = {"classification": ("digits-mlp", ["--epochs", "3"]),
        "generative": ("vae-digits", ["--epochs", "2"]),
        "sequence": ("co2-lstm", ["--epochs", "3"])}


def _chromium(*args, timeout=120):
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--virtual-time-budget=5000", "--user-data-dir=" + os.environ.get("TMPDIR", "/tmp") + "/dw-chromium"]
    return subprocess.run(base + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("needs Chromium (Debian: apt-get install chromium; .ci/run installs it)")
    pytest.importorskip("matplotlib")
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for kind, (recipe, extra) in RUNS.items():
        run_dir = root / recipe
        cmd = [sys.executable, "-c", CLI, "train", recipe, "--out", str(run_dir), "--quiet", *extra]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, MPLBACKEND="Agg"))
        assert res.returncode == 0, res.stderr[-2000:]
        assert (run_dir / "report.html").exists(), res.stdout
        out[kind] = run_dir / "report.html"
    return out


def _probe(html_text, path, width):
    path.write_text(html_text.replace("<head>", "<head>" + PROBE, 1))
    res = _chromium(f"--window-size={width},900", "--dump-dom", path.as_uri())
    m = re.search(r'<pre id="__probe">(.*?)</pre>', res.stdout, re.S)
    assert m, f"the page did not finish loading in Chromium:\n{res.stderr[-2000:]}"
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_the_probe_catches_a_broken_image_a_console_error_and_a_wide_page(tmp_path):
    if CHROMIUM is None:
        pytest.skip("needs Chromium (Debian: apt-get install chromium; .ci/run installs it)")
    bad = ("<!doctype html><html><head><meta charset='utf-8'></head><body>"
           "<img alt='gone' src='data:image/png;base64,AAAA'><div style='width:3000px'>wide</div>"
           "<script>console.error('boom')</script></body></html>")
    result = _probe(bad, tmp_path / "bad.html", 800)
    assert result["broken"] == ["gone"]
    assert any("boom" in e for e in result["errors"])
    assert result["scrollWidth"] > result["innerWidth"]


@pytest.mark.parametrize("kind", list(RUNS))
@pytest.mark.parametrize("width", [1280, 800])
def test_report_loads_cleanly_and_fits_the_window(reports, kind, width, tmp_path):
    result = _probe(reports[kind].read_text(), tmp_path / "probed.html", width)
    assert result["images"] >= 3, result
    assert result["broken"] == [], f"images that did not load: {result['broken']}"
    assert result["errors"] == [], f"console errors: {result['errors']}"
    assert result["scrollWidth"] <= result["innerWidth"], (
        f"{kind} report is {result['scrollWidth']} px wide in a {result['innerWidth']} px window")
    shots = os.environ.get("DEEPWISE_SCREENSHOTS") or str(tmp_path)
    os.makedirs(shots, exist_ok=True)
    shot = os.path.join(shots, f"report-{kind}-{width}.png")
    _chromium(f"--window-size={width},4000", f"--screenshot={shot}", reports[kind].as_uri())
    assert os.path.getsize(shot) > 10_000, "the screenshot is empty"
