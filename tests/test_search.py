"""The student search: MnasNet's reward against a direct computation, the space and its order, the
Pareto front, and a small search that is killed, resumed, and ends with its tables and best model."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from wav2small import Student
from wav2small.cli import main
from wav2small.search import Candidate, expand_space, reward, score, search_order
from wav2small.testing import write_audio_dir, write_label_store


def test_reward_is_mnasnets_soft_constraint():
    for fidelity, cost, target in [(0.6, 5.0, 10.0), (0.6, 20.0, 10.0), (0.31, 7.3, 7.3), (0.8, 1.0, 64.5)]:
        assert reward(fidelity, cost, target) == pytest.approx(fidelity * (cost / target) ** -0.07, rel=1e-12)
    assert reward(0.5, 10.0, 10.0) == 0.5  # at the target: the fidelity itself
    assert reward(0.5, 5.0, 10.0) == pytest.approx(0.5 * 2 ** 0.07)  # half the cost: +5 %
    assert reward(0.5, 1.0, 10.0, exponent=0.0) == 0.5
    with pytest.raises(ValueError, match="positive"):
        reward(0.5, 0.0, 10.0)


def test_space_drops_invalid_settings_and_the_order_is_seeded():
    space = {"wav2small": {"channels": [4, 6], "n_fft": [64], "hop": [32, 128], "depth": [3], "pool_after": [1, 5]}}
    found = expand_space(space)
    # a hop longer than the frame and a pool after a block that does not exist are left out
    assert sorted(c.settings["channels"] for c in found) == [4, 6]
    assert all(c.settings["hop"] == 32 and c.settings["pool_after"] == 1 for c in found)
    order = search_order(space, seed=0)
    assert order[0] == Candidate.of("wav2small") and sorted(order[1:], key=str) == sorted(found, key=str)
    bigger = {"wav2small": {"channels": list(range(2, 12))}}
    assert search_order(bigger, seed=0) == search_order(bigger, seed=0) != search_order(bigger, seed=1)
    assert Candidate.of("wav2small", {"n_fft": 128, "hop": 64}).key == "wav2small-hop64-nfft128"
    with pytest.raises(ValueError, match="no setting"):
        expand_space({"wav2small": {"chanels": [4]}})


def test_score_marks_the_pareto_front_and_defaults_the_target_to_the_reference():
    rows = [{"key": "wav2small", "int8_fidelity": 0.60, "int8_ms": 8.0},
            {"key": "a", "int8_fidelity": 0.62, "int8_ms": 4.0},   # better and cheaper than the reference
            {"key": "b", "int8_fidelity": 0.50, "int8_ms": 2.0},   # cheapest
            {"key": "c", "int8_fidelity": 0.55, "int8_ms": 6.0},   # beaten by a on both
            {"key": "d", "error": "ValueError: no audio"}]         # failures are left out of the table
    frame = score(rows, cost="int8-ms", target=None).set_index("key")
    assert set(frame.index) == {"wav2small", "a", "b", "c"} and (frame["target"] == 8.0).all()
    assert frame["pareto"].to_dict() == {"wav2small": False, "a": True, "b": True, "c": False}
    assert frame.loc["b", "reward"] == pytest.approx(0.5 * (2 / 8) ** -0.07)
    assert score(rows, cost="int8-ms", target=None).iloc[0]["key"] == "a"  # best reward first


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A training store (24 clips of 2-2.5 s, 1 s crops) and a held-out test store labelled by the same tiny teacher."""
    root = tmp_path_factory.mktemp("search")
    train = write_label_store(root / "train", 24, (2.0, 2.5), crop_dur=1.0, views=0)
    from wav2small.labels import label_audio

    audio = write_audio_dir(root / "test_audio", 10, seconds=(1.0, 1.5), seed=5)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        label_audio(audio, root / "train" / "teacher", root / "test_store", crop_dur=1.0, progress=False)
    finally:
        torch.set_num_threads(threads)
    return train, root / "test_store"


SPACE = {"wav2small": {"channels": [2, 3], "hop": [64]}}


def _args(stores, out, *extra):
    train, test = stores
    return ["search", str(train), "--test-store", str(test), "--out", str(out), "--candidates", "2", "--steps", "3",
            "--batch-size", "4", "--repeats", "2", "--threads", "1", "--space", json.dumps(SPACE), *extra]


@pytest.mark.slow  # two candidates distilled, exported and timed, one of them twice (about 40 s)
def test_search_killed_then_resumed_measures_each_candidate_once(stores, tmp_path, capsys):
    out = tmp_path / "search"
    process = subprocess.Popen([sys.executable, "-m", "wav2small", *_args(stores, out)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while time.time() < deadline and process.poll() is None:
        if (out / "results.jsonl").exists() and (out / "results.jsonl").read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    log = process.communicate()[0].decode()
    assert "[1/2] wav2small: distilling" in log, log[-3000:]  # progress is shown as it goes
    first = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["key"] for r in first] == ["wav2small"]  # the reference first

    assert main(_args(stores, out)) == 0  # the same command again: continues where it stopped
    printed = capsys.readouterr().out
    assert "1 measured before" in printed and "[1/2] wav2small: distilling" not in printed
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    keys = [r["key"] for r in rows]
    assert len(keys) == 2 == len(set(keys)) and keys[0] == "wav2small"  # each candidate measured once
    assert rows[0] == first[0]
    for row in rows:
        assert "error" not in row, row
        assert row["train_steps"] == 3 and row["int8_bytes"] > 0 and row["int8_ms"] > 0 and -1 <= row["int8_fidelity"] <= 1
    macs = {r["key"]: r["mmacs_per_second"] for r in rows}
    assert macs["wav2small"] == pytest.approx(64.5, abs=0.1)  # the card model's 64.5 M MAC per second of audio
    assert max(v for k, v in macs.items() if k != "wav2small") < 10

    table = pd.read_csv(out / "results.csv")
    assert set(table["key"]) == set(keys) and (table["target"] == table.loc[table["key"] == "wav2small", "int8_ms"].iloc[0]).all()
    assert "| candidate |" in (out / "pareto.md").read_text()
    assert list(table["reward"]) == sorted(table["reward"], reverse=True)  # best first
    best = next(r for r in rows if r["key"] == table["key"].iloc[0])
    model = Student.from_pretrained(out / "best")  # the best reward's model
    assert model.config.channels == best["options"].get("channels", 13) and model.config.hop == best["options"].get("hop", 32)
    assert (out / "best" / "export" / "model.int8.onnx").is_file()
    with torch.no_grad():
        assert model(torch.zeros(1, 16000) + 0.01 * torch.randn(1, 16000)).shape == (1, 3)

    assert main(_args(stores, out, "--steps", "4")) == 2  # other settings: refused, nothing overwritten
    assert "other settings" in capsys.readouterr().err


def test_search_help_explains_the_method(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    text = capsys.readouterr().out
    for words in ("MnasNet", "reward", "-0.07", "int8-ms", "macs", "resumes", "pareto.md", "best/", "--test-store"):
        assert words in text, words


def test_search_refuses_bad_stores_and_spaces_with_one_clear_error(stores, tmp_path, capsys):
    train, test = stores
    (tmp_path / "audio").mkdir()
    out = tmp_path / "o"
    assert main(["search", str(tmp_path / "audio"), "--test-store", str(test), "--out", str(out)]) == 2
    assert f"{tmp_path / 'audio'}: the store is not a label store" in capsys.readouterr().err
    assert main(["search", str(train), "--test-store", str(tmp_path / "audio"), "--out", str(out)]) == 2
    assert "the test store is not a label store" in capsys.readouterr().err
    for space, words in (("{oops", "--space: not JSON"), ('{"wav2small": [4, 8]}', "--space: expected"),
                         ('{"resnet": {"width": [1]}}', "unknown student"), ('{"wav2small": {"chanels": [4]}}', "no setting")):
        assert main(["search", str(train), "--test-store", str(test), "--out", str(out), "--space", space]) == 2, space
        assert words in capsys.readouterr().err, space
    (tmp_path / "space.json").write_text("[1, 2]")
    assert main(["search", str(train), "--test-store", str(test), "--out", str(out), "--space", str(tmp_path / "space.json")]) == 2
    assert f"--space file {tmp_path / 'space.json'}: expected" in capsys.readouterr().err
    assert not out.exists()  # refused before anything was written


def test_search_costs_are_the_options_choices():
    import typing

    from wav2small.options import SearchConfig
    from wav2small.search import COSTS

    assert set(typing.get_args(typing.get_type_hints(SearchConfig)["cost"])) == set(COSTS)
