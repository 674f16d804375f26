"""Evaluation: metrics against a direct computation, bootstrap intervals, shared reading, missing
and unreadable files, report files and plots, the CLI and eval/msp_podcast.py."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import wav2small
from wav2small.cli import main
from wav2small.corpora import csv_corpus, label_store_corpus, msp_podcast
from wav2small.evaluate import bootstrap_intervals, evaluate

DIMS = ["arousal", "dominance", "valence"]
ROOT = Path(__file__).resolve().parents[1]


class FeatureModel(torch.nn.Module):
    """A deterministic stand-in model whose outputs vary with the audio: loudness, zero-crossing
    rate and peak as arousal, dominance, valence."""

    min_samples = 64

    def forward(self, x):  # (B, N) -> (B, 3)
        rms = x.pow(2).mean(dim=1).sqrt()
        zcr = (torch.sign(x[:, 1:]) != torch.sign(x[:, :-1])).float().mean(dim=1)
        return torch.stack([2 * rms, 2.5 * zcr, x.abs().amax(dim=1)], dim=1)


def textbook_ccc(x, y):
    sxy = np.mean((x - x.mean()) * (y - y.mean()))
    return 2 * sxy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


@pytest.fixture
def student_dir(tmp_path):
    torch.manual_seed(0)
    return wav2small.create_student("wav2small").save_pretrained(tmp_path / "runs" / "student" / "best")


def test_metrics_equal_a_direct_computation(make_msp_podcast):
    corpus = msp_podcast(make_msp_podcast(), split="Test1")
    result = evaluate(corpus, {"features": FeatureModel()}, n_bootstrap=100)
    direct = wav2small.predict(list(corpus.clips["file"]), model=FeatureModel())
    truth = corpus.clips[DIMS].to_numpy()
    prediction = direct[DIMS].to_numpy().astype(np.float64)
    metrics = result.report["models"]["features"]["metrics"]
    for k, dim in enumerate(DIMS):
        x, y = truth[:, k], prediction[:, k]
        assert metrics["ccc"][dim]["value"] == pytest.approx(textbook_ccc(x, y), abs=1e-6)
        assert metrics["pearson"][dim]["value"] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-6)
        assert metrics["mae"][dim]["value"] == pytest.approx(np.mean(np.abs(x - y)), abs=1e-6)
    assert metrics["ccc"]["mean"]["value"] == pytest.approx(np.mean([metrics["ccc"][d]["value"] for d in DIMS]))
    np.testing.assert_allclose(result.predictions[[f"features.{d}" for d in DIMS]], prediction, atol=1e-6)
    # the gender breakdown is the same computation on each group
    for gender, group in result.report["by_gender"].items():
        rows = (corpus.clips["gender"] == gender).to_numpy()
        assert group["n"] == rows.sum()
        ccc = group["models"]["features"]["ccc"]["arousal"]["value"]
        assert ccc == pytest.approx(textbook_ccc(truth[rows, 0], prediction[rows, 0]), abs=1e-6)
    assert sum(g["n"] for g in result.report["by_speaker"].values()) == len(corpus)


def test_intervals_contain_the_point_estimate_and_are_seeded(make_msp_podcast):
    corpus = msp_podcast(make_msp_podcast(), split="Test1")
    first = evaluate(corpus, FeatureModel(), n_bootstrap=300, seed=3)
    again = evaluate(corpus, FeatureModel(), n_bootstrap=300, seed=3)
    other = evaluate(corpus, FeatureModel(), n_bootstrap=300, seed=4)
    metrics = first.report["models"]["FeatureModel"]["metrics"]
    for name in ("ccc", "pearson", "mae"):
        for column, entry in metrics[name].items():
            assert entry["low"] <= entry["value"] <= entry["high"], (name, column, entry)
            assert entry["low"] < entry["high"]
    assert again.report["models"] == first.report["models"]
    assert other.report["models"] != first.report["models"]


def test_bootstrap_interval_narrows_with_more_clips():
    rng = np.random.default_rng(0)
    widths = []
    for n in (30, 3000):
        truth = rng.uniform(0, 1, (n, 3))
        prediction = truth + rng.normal(0, 0.2, (n, 3))
        bounds = bootstrap_intervals(truth, prediction, n_resamples=200)["ccc"]
        assert bounds.shape == (4, 2) and np.all(bounds[:, 0] < bounds[:, 1])
        widths.append(bounds[:, 1] - bounds[:, 0])
    assert np.all(widths[1] < widths[0] / 3)  # about sqrt(100) = 10 times narrower


def test_a_model_compared_with_itself_gives_ccc_1(make_msp_podcast, student_dir, tmp_path):
    corpus = msp_podcast(make_msp_podcast(seconds=(0.5, 0.5)), split="Test2")
    own = wav2small.predict(list(corpus.clips["file"]), model=student_dir).reset_index()
    own["start"], own["end"] = own["start"].dt.total_seconds(), own["end"].dt.total_seconds()
    own.to_csv(tmp_path / "own.csv", index=False)  # the shape `wav2small predict -o` writes
    result = evaluate(csv_corpus(tmp_path / "own.csv"), [student_dir, FeatureModel()], n_bootstrap=50)
    student, features = result.report["models"]["student/best"]["metrics"], result.report["models"]["FeatureModel"]["metrics"]
    for column in (*DIMS, "mean"):
        assert student["ccc"][column]["value"] == pytest.approx(1.0, abs=1e-6)
        assert student["mae"][column]["value"] == pytest.approx(0.0, abs=1e-6)
        assert features["ccc"][column]["value"] < 0.99


def test_models_share_one_reading_of_each_clip(make_msp_podcast, student_dir):
    corpus = msp_podcast(make_msp_podcast(seconds=(0.5, 0.5)), split="Test2")  # 6 clips in batches of 4 and 2
    reads = []
    plain_read = corpus.read
    corpus.read = lambda row: reads.append(row["file"]) or plain_read(row)
    both = evaluate(corpus, [FeatureModel(), student_dir], n_bootstrap=0, batch_size=4)
    assert sorted(reads) == sorted(corpus.clips["file"])  # once each, for both models
    alone = evaluate(corpus, [student_dir], n_bootstrap=0)
    np.testing.assert_allclose(both.predictions[[f"student/best.{d}" for d in DIMS]],
                               alone.predictions[[f"student/best.{d}" for d in DIMS]], atol=1e-6)
    assert both.report["models"]["FeatureModel"]["metrics"]["ccc"]["arousal"]["low"] is None  # no bootstrap asked


def test_missing_and_unreadable_files_are_counted_not_hidden(make_msp_podcast, tmp_path):
    root = make_msp_podcast()
    corpus = msp_podcast(root, split="Test1")
    files = list(corpus.clips["file"])
    Path(files[0]).unlink()
    Path(files[1]).write_bytes(b"not audio at all" * 10)
    with pytest.warns(UserWarning, match="missing on disk"):
        result = evaluate(corpus, FeatureModel(), n_bootstrap=50)
    counts = result.report["counts"]
    assert counts == {"n_listed": 24, "n_missing": 1, "n_unreadable": 1, "n_evaluated": 22, "n_unrated": 0}
    assert result.report["missing"] == [files[0]]
    assert result.report["unreadable"][0]["file"] == files[1] and "not a readable audio file" in result.report["unreadable"][0]["reason"]
    assert list(result.predictions["error"][:2]) == ["file not found", result.report["unreadable"][0]["reason"]]
    assert result.predictions["FeatureModel.arousal"][:2].isna().all()
    markdown = result.markdown()
    assert "1 missing on disk, 1 unreadable, **22 evaluated**" in markdown and files[0] in markdown


def test_report_and_plots_are_written(make_msp_podcast, tmp_path):
    corpus = msp_podcast(make_msp_podcast(), split="Test1")
    result = evaluate(corpus, [FeatureModel(), FeatureModel()], n_bootstrap=100)
    paths = result.save(tmp_path / "report")
    assert set(paths) == {"json", "markdown", "predictions", "by_speaker", "ccc_plot", "scatter_plot"}
    for path in paths.values():
        assert path.stat().st_size > 0
    for key in ("ccc_plot", "scatter_plot"):
        assert paths[key].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and paths[key].stat().st_size > 10_000
    report = json.loads(paths["json"].read_text())
    assert report["corpus"]["version"] == "1.11" and report["corpus"]["split"] == "Test1"
    assert report["versions"]["wav2small"] == wav2small.__version__
    assert list(report["models"]) == ["FeatureModel", "FeatureModel#2"]
    assert report["counts"]["n_evaluated"] == 24 and report["settings"]["n_bootstrap"] == 100
    markdown = paths["markdown"].read_text()
    assert "MSP-Podcast 1.11 Test1" in markdown and "| FeatureModel#2 |" in markdown and "| FeatureModel | Female |" in markdown
    table = pd.read_csv(paths["predictions"])
    assert len(table) == 24 and {"truth.arousal", "FeatureModel.valence", "FeatureModel#2.dominance"} <= set(table.columns)
    assert set(pd.read_csv(paths["by_speaker"])["speaker"]) == {0, 1, 2}


def test_cli_and_eval_script(make_msp_podcast, student_dir, tmp_path, capsys, monkeypatch):
    root = make_msp_podcast(seconds=(0.5, 0.5))  # equal lengths: scored in batches
    assert main(["evaluate", str(root), "--split", "Test2", "--model", str(student_dir), "--bootstrap", "20",
                 "-o", str(tmp_path / "cli")]) == 0
    assert "| student/best |" in capsys.readouterr().out
    report = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert report["counts"]["n_evaluated"] == 6 and report["models"]["student/best"]["spec"] == str(student_dir)

    assert main(["evaluate", str(root), "--split", "Test3", "--model", str(student_dir)]) == 2
    assert "no rated clips" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), "--kind", "msp-podcast", "--model", str(student_dir)]) == 2
    assert "labels_consensus.csv" in capsys.readouterr().err

    monkeypatch.setattr(sys, "argv", ["msp_podcast.py", str(root), "--split", "Development", "--release", "1.9",
                                      "--model", str(student_dir), "--bootstrap", "20", "-o", str(tmp_path / "script")])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "eval" / "msp_podcast.py"), run_name="__main__")
    assert exit_.value.code == 0
    assert json.loads((tmp_path / "script" / "report.json").read_text())["corpus"]["version"] == "1.9"


@pytest.mark.slow
def test_label_store_fidelity_of_teachers_to_themselves(make_audio_dir, tmp_path, capsys):
    from wav2small.labels import label_audio
    from wav2small.store import LabelStore
    from wav2small.testing import save_tiny_teacher

    audio = make_audio_dir(4, seconds=0.5)  # equal lengths: labelled and scored in one batch
    dawn, ody = save_tiny_teacher(tmp_path / "dawn", "dawn"), save_tiny_teacher(tmp_path / "ody", "odyssey", seed=1)
    store = tmp_path / "store"
    label_audio(audio, [str(dawn), str(ody)], store, crop_dur=1.0, views=1, progress=False)
    clean = label_store_corpus(store, target="dawn", views=[0])
    assert len(clean) == 4 and set(clean.clips["view"]) == {0}
    labels = LabelStore(store).read()
    np.testing.assert_allclose(clean.clips["valence"], labels[labels["view"] == 0]["dawn.valence"])
    with pytest.raises(ValueError, match="no member 'wavlm'.*dawn, ody"):
        label_store_corpus(store, target="wavlm")

    # every view (clean and augmented) rebuilt as the teacher heard it: a member agrees with itself
    result = evaluate(label_store_corpus(store, target="dawn"), {"dawn": dawn, "odyssey": ody}, n_bootstrap=50)
    ccc = result.metric("ccc")
    assert result.report["counts"]["n_evaluated"] == 8
    np.testing.assert_allclose(ccc.loc["dawn"], 1.0, atol=1e-5)
    assert (ccc.loc["odyssey"] < 0.99).all()
    assert result.report["models"]["dawn"]["about"]["class"] == "DawnTeacher"

    # the combined target against the same ensemble, through the CLI
    assert main(["evaluate", str(store), "--target", "combined", "--view", "0", "--model", f"{dawn}+{ody}",
                 "--bootstrap", "0", "-o", str(tmp_path / "fidelity")]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "fidelity" / "report.json").read_text())
    assert report["corpus"]["target"] == "combined" and report["corpus"]["views"] == [0]
    assert report["corpus"]["store"]["members"] == ["dawn", "ody"]
    for column in (*DIMS, "mean"):
        assert next(iter(report["models"].values()))["metrics"]["ccc"][column]["value"] == pytest.approx(1.0, abs=1e-5)


def test_reports_name_the_corpus_and_the_reference_and_carry_its_caveat(make_msp_podcast, make_audio_dir, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from wav2small.demo_corpus import CAVEAT
    from wav2small.labels import label_audio
    from wav2small.testing import save_tiny_teacher

    figures = []  # what each saved figure shows (ccc.png, then scatter.png): titles and panels

    def record(figure, path, **options):
        texts = [figure._suptitle.get_text() if figure._suptitle else ""] + [ax.get_title() for ax in figure.axes]
        figures.append({"text": " ".join(texts).replace("\n", " "), "axes": figure.axes})
        Path(path).write_bytes(b"")

    monkeypatch.setattr(Figure, "savefig", record)

    # a corpus in the MSP-Podcast layout that says what it is: named plainly, caveat in report and plots
    root = make_msp_podcast()
    (root / "corpus.json").write_text(json.dumps({"name": "wav2small demo corpus", "reference": "proxy ratings", "caveat": CAVEAT}))
    result = evaluate(msp_podcast(root, split="Test1"), FeatureModel(), n_bootstrap=0)
    markdown = result.markdown()
    assert markdown.startswith("# Evaluation on wav2small demo corpus Test1\n") and "unknown" not in markdown
    assert f"> **{CAVEAT}**" in markdown and "- reference: proxy ratings" in markdown
    result.save(tmp_path / "demo")
    assert len(figures) == 2 and all("not human labels" in shown["text"] for shown in figures)
    scatter = figures[1]["axes"]
    truth = result.predictions["truth.arousal"]
    low, high = scatter[0].get_xlim()  # fitted to the data, not to 0..1
    assert low <= min(truth.min(), result.predictions["FeatureModel.arousal"].min()) and high - low < 1.0
    assert scatter[0].get_xlabel() == "proxy ratings"

    # a teacher's label store: the reference is the teacher, by name
    teacher = save_tiny_teacher(tmp_path / "tiny", "dawn")
    label_audio(make_audio_dir(4, seconds=0.5), str(teacher), tmp_path / "labels_test", crop_dur=1.0, views=0, progress=False)
    figures.clear()
    result = evaluate(label_store_corpus(tmp_path / "labels_test"), {"student": FeatureModel()}, n_bootstrap=0)
    markdown = result.markdown()
    assert markdown.startswith("# Evaluation on label store labels_test, outputs of teacher 'tiny'\n")
    assert "- reference: teacher 'tiny' (its outputs are the truth here" in markdown
    assert f"- teacher: tiny = DawnTeacher from {tmp_path / 'tiny'}\n" in markdown and "truth" not in markdown.split("##")[0].replace("the truth here", "")
    result.save(tmp_path / "fidelity")
    assert len(figures) == 2 and all("against the teacher (tiny)" in shown["text"] for shown in figures)
    assert figures[1]["axes"][0].get_xlabel() == "teacher (tiny)"
