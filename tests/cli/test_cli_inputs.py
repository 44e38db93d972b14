"""What the deepwise command does with what users give it: bad arguments stop before anything is
written, predict never overwrites a user's file, wrong inputs are named with what was expected, a
closed pipe is not an error trace, and ``bench`` finds its benchmarks from anywhere."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import deepwise as dw
from cli.helpers import CLI, cli_env
from deepwise import backend, recipes
from deepwise.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _usage_error(argv, capsys):
    """Exit code and stderr of ``deepwise ARGV`` run in this process (argparse errors included)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse rejects the value itself
        code = exc.code
    return code, capsys.readouterr().err


# ------------------------------------------------------------------------ item 8: check, then write
@pytest.mark.parametrize("flags, message", [
    (["--epochs", "-1"], "argument --epochs: must be an integer >= 1, got -1"),
    (["--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
    (["--batch-size", "0"], "argument --batch-size: must be an integer >= 1, got 0"),
    (["--lr", "-0.1"], "argument --lr: must be a positive number, got -0.1"),
    (["--lr", "nan"], "argument --lr: must be a positive number, got nan"),
    (["--seed", "-3"], "argument --seed: must be an integer >= 0, got -3"),
])
def test_bad_arguments_stop_before_the_run_folder_is_made(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    code, err = _usage_error(["train", "digits-mlp", "--out", str(out), *flags], capsys)
    assert code == 2 and message in err
    assert not out.exists()


def test_cuda_without_cupy_is_a_usage_error_before_the_run_folder(tmp_path, capsys):
    try:
        backend.cupy_module()
        pytest.skip("CuPy and a GPU are here: --device cuda is valid")
    except RuntimeError:
        pass
    out = tmp_path / "run"
    code, err = _usage_error(["train", "digits-mlp", "--device", "cuda", "--out", str(out)], capsys)
    assert code == 2 and "--device cuda: device 'cuda' needs CuPy" in err
    assert not out.exists()


def test_out_that_is_a_file_is_refused_and_left_alone(tmp_path, capsys):
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    code, err = _usage_error(["train", "digits-mlp", "--out", str(mine)], capsys)
    assert code == 2 and "exists and is not a folder" in err and mine.read_text() == "mine"


def test_out_folder_with_files_a_run_would_overwrite_is_refused(tmp_path, capsys):
    (tmp_path / "report.html").write_text("my report")
    (tmp_path / "notes.txt").write_text("mine")
    code, err = _usage_error(["train", "digits-mlp", "--out", str(tmp_path)], capsys)
    assert code == 2 and "already has report.html, which a run would overwrite" in err
    assert (tmp_path / "report.html").read_text() == "my report" and not (tmp_path / "config.json").exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(tmp_path, capsys, monkeypatch):
    from deepwise.train import Trainer

    def broken_fit(self, *args, **kwargs):
        raise RuntimeError("the data could not be read")

    monkeypatch.setattr(Trainer, "fit", broken_fit)
    out = tmp_path / "run"
    assert main(["train", "digits-mlp", "--out", str(out), "--quiet"]) == 1
    assert "the data could not be read" in capsys.readouterr().err
    assert not out.exists()


def test_resume_arguments_are_checked(tmp_path, trained_run, capsys):
    run_dir = str(trained_run[0])
    code, err = _usage_error(["train", "digits-mlp", "--resume", run_dir, "--lr", "0.1"], capsys)
    assert code == 2 and "--lr cannot change when resuming" in err
    code, err = _usage_error(["train", "digits-mlp", "--resume", run_dir, "--epochs", "2"], capsys)
    assert code == 2 and "already trained 2 epochs" in err and "--epochs N with N > 2" in err
    code, err = _usage_error(["train", "digits-cnn", "--resume", run_dir], capsys)
    assert code == 2 and "is a run of digits-mlp, not digits-cnn" in err
    code, err = _usage_error(["train", "digits-mlp", "--resume", str(tmp_path / "nowhere")], capsys)
    assert code == 2 and "no such folder" in err


# ----------------------------------------------------------- item 1: predict never overwrites
@pytest.fixture
def gan_run(tmp_path):
    """A gan-digits run folder (settings and generator weights, untrained): what predict needs."""
    recipe = recipes.get("gan-digits")
    config = dict(recipe.defaults, recipe="gan-digits", device="cpu")
    run_dir = tmp_path / "gan run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(config))
    dw.manual_seed(0)
    dw.save(recipe.model(config).state_dict(), str(run_dir / "last.safetensors"))
    return run_dir


def test_generative_predict_never_overwrites_a_users_file(gan_run, tmp_path, capsys):
    mine = tmp_path / "holiday.png"
    mine.write_bytes(b"my own picture")
    # the old command line: INPUT named an existing file, which was replaced by generated digits
    code, err = _usage_error(["predict", str(gan_run), str(mine)], capsys)
    assert code == 2 and "reads no INPUT" in err and "--output PATH" in err
    code, err = _usage_error(["predict", str(gan_run), "--output", str(mine)], capsys)
    assert code == 2 and "exists; add --force to overwrite it" in err
    assert mine.read_bytes() == b"my own picture"

    assert main(["predict", str(gan_run)]) == 0  # into the run folder, saying where
    assert main(["predict", str(gan_run)]) == 0  # again: a new file, the first one kept
    out = capsys.readouterr().out
    first, second = gan_run / "samples.png", gan_run / "samples-2.png"
    assert f"written to {first}\n" in out and f"written to {second}\n" in out
    assert first.read_bytes()[:8] == PNG and second.read_bytes()[:8] == PNG

    assert main(["predict", str(gan_run), "--output", str(mine), "--force"]) == 0
    assert mine.read_bytes()[:8] == PNG and f"written to {mine}" in capsys.readouterr().out

    code, err = _usage_error(["predict", str(gan_run), "--output", str(tmp_path / "grid.jpg")], capsys)
    assert code == 2 and "give a path ending in .png" in err
    code, err = _usage_error(["predict", str(gan_run), "--force"], capsys)
    assert code == 2 and "--force overwrites the file named by --output" in err


def test_predict_without_input_or_with_output_on_a_classifier(trained_run, capsys):
    code, err = _usage_error(["predict", str(trained_run[0])], capsys)
    assert code == 2 and "needs an INPUT: an image file" in err and "(8, 8)" in err
    code, err = _usage_error(["predict", str(trained_run[0]), "x.npy", "--output", "y.png"], capsys)
    assert code == 2 and "writes no file" in err


# ------------------------------------------------------------------ item 9: inputs checked
def test_digit_arrays_of_the_wrong_shape_are_rejected_with_the_expected_shape(trained_run, tmp_path, capsys):
    run_dir = str(trained_run[0])
    np.save(tmp_path / "wrong.npy", np.ones((3, 5), dtype=np.float32))
    assert main(["predict", run_dir, str(tmp_path / "wrong.npy")]) == 1
    err = capsys.readouterr().err
    assert "wrong.npy: a digits model reads one 8x8 image" in err and "(8, 8)" in err and "got shape (3, 5)" in err
    np.save(tmp_path / "hot.npy", np.full((8, 8), 255.0))
    assert main(["predict", run_dir, str(tmp_path / "hot.npy")]) == 1
    assert "pixel values must be in [0, 1] (or 0..16" in capsys.readouterr().err
    (tmp_path / "notes.png").write_text("not a picture")
    assert main(["predict", run_dir, str(tmp_path / "notes.png")]) == 1
    assert "notes.png: not an image file this can read" in capsys.readouterr().err

    # the shapes that are one 8x8 image, and a picture of it, give the same answer
    from deepwise.data import load_digits
    from deepwise.io.images import save_image_grid

    x, _ = load_digits(split="test", as_images=True)
    answers = []
    for name, arr in (("a.npy", x[3, 0]), ("b.npy", x[3].reshape(64)), ("c.npy", x[3:4]), ("d.npy", x[3, 0] * 16)):
        np.save(tmp_path / name, arr)
        assert main(["predict", run_dir, str(tmp_path / name)]) == 0
        answers.append(capsys.readouterr().out.split("(")[0])
    save_image_grid(x[3:4], str(tmp_path / "digit.png"), nrow=1, scale=4, padding=0)  # 32x32 pixels
    assert main(["predict", run_dir, str(tmp_path / "digit.png")]) == 0
    answers.append(capsys.readouterr().out.split("(")[0])
    assert len(set(answers)) == 1 and answers[0].startswith("predicted digit: ")


def test_a_prompt_with_unknown_characters_names_them():
    recipe = recipes.get("chars-lstm")
    with pytest.raises(ValueError) as exc:
        recipe.predict(None, "naïve 中文 costs 5€", recipe.defaults)
    text = str(exc.value)
    assert "'中' (U+4E2D)" in text and "'文' (U+6587)" in text and "'€' (U+20AC)" in text
    assert "ï" not in text  # accents are stripped, not refused


def test_a_damaged_config_json_is_named(trained_run, tmp_path, capsys):
    run_dir = tmp_path / "copy"
    shutil.copytree(trained_run[0], run_dir)
    config = run_dir / "config.json"
    config.write_text('{"recipe": "digits-mlp", ')
    for command in (["evaluate", str(run_dir)], ["predict", str(run_dir), "x.npy"], ["train", "digits-mlp",
                                                                                       "--resume", str(run_dir)]):
        assert main(command) == 1
        err = capsys.readouterr().err
        assert f"{config} is damaged: not valid JSON" in err and err.count("\n") == 1
    config.write_text("[1, 2]")
    assert main(["evaluate", str(run_dir)]) == 1
    assert f"{config} does not hold a deepwise run's settings" in capsys.readouterr().err
    config.write_text('{"recipe": "no-such-recipe"}')
    assert main(["evaluate", str(run_dir)]) == 1
    assert f"{config}: unknown recipe 'no-such-recipe'" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly():  # deepwise ... | head
    proc = subprocess.Popen([*CLI, "recipes"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli_env())
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    proc.stderr.close()
    assert err == "" and proc.returncode == 141


# ----------------------------------------------------------------------- item 11: bench
def test_bench_is_found_from_a_subfolder_and_takes_rounds(tmp_path, monkeypatch, capfd):
    bench = tmp_path / "checkout" / "benchmarks"
    bench.mkdir(parents=True)
    (bench / "run.py").write_text("import json, sys\nprint('run.py got', json.dumps(sys.argv[1:]))\n")
    deep = tmp_path / "checkout" / "docs" / "guides"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert main(["bench", "core", "nn", "--rounds", "2", "--threads", "4", "1"]) == 0
    out = capfd.readouterr().out
    assert f"benchmarks: {bench}\n" in out
    assert 'run.py got ["core", "nn", "--rounds", "2", "--threads", "4", "1"]' in out
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "--benchmarks", str(bench), "--rounds", "1"]) == 0
    assert 'run.py got ["--rounds", "1"]' in capfd.readouterr().out


def test_bench_outside_any_checkout_says_where_it_looked(tmp_path, monkeypatch, capfd):
    import deepwise.cli as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "deepwise" / "cli.py"))
    assert main(["bench"]) == 1
    err = capfd.readouterr().err
    assert "not installed with the package" in err and str(tmp_path / "benchmarks") in err
    assert "every folder above it" in err and "--benchmarks DIR" in err
    code = main(["bench", "--benchmarks", str(tmp_path)])
    assert code == 2 and "no run.py there" in capfd.readouterr().err


def test_bench_of_the_installed_checkout_runs_its_run_py(tmp_path, monkeypatch, capfd):
    import deepwise.cli as cli

    checkout = os.path.normpath(os.path.join(os.path.dirname(cli.__file__), "..", "..", "benchmarks"))
    if not os.path.isfile(os.path.join(checkout, "run.py")):
        pytest.skip("deepwise is not installed from a source checkout")
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "no-such-group"]) == 2  # run.py itself answers: it was found and run
    captured = capfd.readouterr()
    assert f"benchmarks: {checkout}" in captured.out and "unknown group(s) no-such-group" in captured.err
