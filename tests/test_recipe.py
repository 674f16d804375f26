"""recipes/distill.sh as a user runs it: stages record their settings, a rerun with the same
settings skips, a changed setting is refused with the difference named until --redo, options pass
through to the stage's command, a run without validation goes on with last/, and the stage logs
are plain text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wav2small.testing import save_tiny_teacher, write_audio_dir

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "distill.sh"


def _recipe(root: Path, *options: str) -> subprocess.CompletedProcess:
    """The recipe on the tiny corpus in ``root``, stages 0-2, a 4-channel running-prenorm student, one thread."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # this venv's wav2small
    command = ["bash", str(RECIPE), "--data", "audio", "--teacher", "teacher", "--out", "exp", "--stop-stage", "2",
               "--crop-dur", "1", "--views", "0", "--batch-size", "4", "--prepare-opts", "--test-fraction 0.25",
               "--train-opts", "--threads 1 --student-option channels=4", "--prenorm", "running", *options]
    return subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=600)


def _steps_logged(root: Path) -> int:
    return len((root / "exp" / "train" / "log.csv").read_text().splitlines()) - 1


@pytest.mark.slow
def test_a_rerun_skips_what_is_done_and_refuses_changed_settings_until_redo(tmp_path):
    write_audio_dir(tmp_path / "audio", 12, seconds=(1.0, 1.5))
    save_tiny_teacher(tmp_path / "teacher", "dawn")
    first = _recipe(tmp_path, "--steps", "4")
    assert first.returncode == 0, first.stdout + first.stderr
    config = json.loads((tmp_path / "exp" / "train" / "config.json").read_text())
    # --train-opts and the recipe's prenorm variable reached `wav2small train`
    assert config["threads"] == 1 and config["student_options"] == {"channels": 4, "prenorm": "running"}
    assert json.loads((tmp_path / "exp" / "train" / "last" / "config.json").read_text())["prenorm"] == "running"
    assert _steps_logged(tmp_path) == 4
    logs = {log.name: log.read_bytes() for log in (tmp_path / "exp" / "logs").iterdir()}
    assert set(logs) == {"stage0_prepare.log", "stage1_label.log", "stage2_train.log"}
    for name, text in logs.items():
        assert b"\r" not in text, f"{name} holds carriage returns"
    assert b"label: 100%" in logs["stage1_label.log"] and b"train: 100%" in logs["stage2_train.log"]

    again = _recipe(tmp_path, "--steps", "4")
    assert again.returncode == 0
    assert again.stdout.count("done already with the same settings") == 3

    changed = _recipe(tmp_path, "--steps", "6")
    assert changed.returncode == 1
    assert "stage 2 (train) was run in exp with other settings" in changed.stderr
    assert "then: --steps 4" in changed.stderr and "now:  --steps 6" in changed.stderr
    assert "--stage 2 --redo true" in changed.stderr
    assert _steps_logged(tmp_path) == 4  # nothing was replaced

    # redone, with nothing held out for validation: no best/, so evaluation takes last/
    redone = _recipe(tmp_path, "--steps", "6", "--stage", "2", "--stop-stage", "3", "--redo", "true",
                     "--train-opts", "--threads 1 --student-option channels=4 --valid-fraction 0")
    assert redone.returncode == 0, redone.stdout + redone.stderr
    assert _steps_logged(tmp_path) == 6
    assert "stage 1 (label)" not in redone.stdout  # before --stage: untouched
    assert not (tmp_path / "exp" / "train" / "best").exists()
    report = json.loads((tmp_path / "exp" / "eval" / "teacher" / "report.json").read_text())
    assert [model["spec"] for model in report["models"].values()] == ["exp/train/last"]
    assert "exp/train/last (no validation held out, so no best/" in redone.stdout
