"""Teachers: tiny random Dawn / Odyssey / generic checkpoints in the published folder formats load
strictly and compute what the model cards describe (normalisation, pooling, heads); ensembles combine by weight; aliases
resolve offline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from wav2small.teachers import (
    ALIASES,
    ORIGIN_KEY,
    AudioClassificationTeacher,
    DawnTeacher,
    EnsembleTeacher,
    OdysseyTeacher,
    load_teacher,
)
from wav2small.testing import save_tiny_teacher


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {"dawn": save_tiny_teacher(root / "dawn", "dawn", seed=0), "odyssey": save_tiny_teacher(root / "odyssey", "odyssey", seed=1)}


def _as_published(folder, **config_entries):
    """A tiny teacher's folder as a copy of published weights would look: no note that wav2small made it."""
    config = json.loads((folder / "config.json").read_text())
    del config[ORIGIN_KEY]
    (folder / "config.json").write_text(json.dumps({**config, **config_entries}))
    return folder


def waves(batch=3, samples=8000, seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(0, 0.1, (batch, samples)).astype(np.float32))


def test_dawn_folder_has_the_published_names_and_loads_strictly(tiny):
    config = json.loads((tiny["dawn"] / "config.json").read_text())
    assert config["architectures"] == ["Wav2Vec2ForSpeechClassification"]
    assert config["id2label"] == {"0": "arousal", "1": "dominance", "2": "valence"}
    keys = set(load_file(str(tiny["dawn"] / "model.safetensors")))
    assert {"classifier.dense.weight", "classifier.dense.bias", "classifier.out_proj.weight", "classifier.out_proj.bias"} <= keys
    assert all(k.startswith(("wav2vec2.", "classifier.")) for k in keys)
    teacher = DawnTeacher.from_pretrained(tiny["dawn"])
    assert set(teacher.state_dict()) == keys  # no missing, no unexpected keys


def test_dawn_equals_the_reference_forward(tiny):
    teacher = load_teacher(tiny["dawn"])
    state = load_file(str(tiny["dawn"] / "model.safetensors"))
    x = waves()
    with torch.inference_mode():
        normalised = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-7)
        pooled = teacher.wav2vec2(normalised).last_hidden_state.mean(dim=1)
        hidden = torch.tanh(F.linear(pooled, state["classifier.dense.weight"], state["classifier.dense.bias"]))
        expected = F.linear(hidden, state["classifier.out_proj.weight"], state["classifier.out_proj.bias"])
        torch.testing.assert_close(teacher(x), expected, rtol=1e-5, atol=1e-6)
        # per-utterance normalisation: the input gain does not matter
        torch.testing.assert_close(teacher(3 * x), teacher(x), rtol=1e-4, atol=1e-5)


def test_odyssey_folder_has_the_published_names_and_config(tiny):
    config = json.loads((tiny["odyssey"] / "config.json").read_text())
    assert config["model_type"] == "ser" and config["architectures"] == ["SERModel"]
    assert config["ssl_type"] == "microsoft/wavlm-large"
    keys = set(load_file(str(tiny["odyssey"] / "model.safetensors")))
    assert {"pool_model.sap_linear.weight", "pool_model.sap_linear.bias", "pool_model.attention", "ser_model.fc.0.0.weight",
            "ser_model.fc.0.0.bias", "ser_model.fc.0.1.weight", "ser_model.fc.0.1.bias", "ser_model.out.0.weight",
            "ser_model.out.0.bias"} <= keys
    assert all(k.startswith(("ssl_model.", "pool_model.", "ser_model.")) for k in keys)
    teacher = OdysseyTeacher.from_pretrained(tiny["odyssey"])
    assert set(teacher.state_dict()) == keys


def test_odyssey_equals_the_reference_forward_with_constants_from_config(tiny, tmp_path):
    # change the constants in config.json: the teacher must read them from there
    folder = tmp_path / "odyssey"
    folder.mkdir()
    config = json.loads((tiny["odyssey"] / "config.json").read_text())
    config.update(mean=0.01, std=0.2)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").write_bytes((tiny["odyssey"] / "model.safetensors").read_bytes())
    teacher = load_teacher(folder)
    assert isinstance(teacher, OdysseyTeacher)
    s = load_file(str(folder / "model.safetensors"))
    x = waves(seed=1)
    with torch.inference_mode():
        h = teacher.ssl_model((x - 0.01) / (0.2 + 1e-6)).last_hidden_state  # (B, T, D)
        w = torch.softmax(torch.tanh(F.linear(h, s["pool_model.sap_linear.weight"], s["pool_model.sap_linear.bias"])) @ s["pool_model.attention"], dim=1)
        mu = (w * h).sum(1)
        sigma = ((w * h**2).sum(1) - mu**2).clamp(min=1e-5).sqrt()
        z = F.linear(torch.cat([mu, sigma], -1), s["ser_model.fc.0.0.weight"], s["ser_model.fc.0.0.bias"])
        z = F.relu(F.layer_norm(z, z.shape[-1:], s["ser_model.fc.0.1.weight"], s["ser_model.fc.0.1.bias"]))
        expected = F.linear(z, s["ser_model.out.0.weight"], s["ser_model.out.0.bias"])
        torch.testing.assert_close(teacher(x), expected, rtol=1e-5, atol=1e-6)


def test_odyssey_backbone_settings_missing_from_config_are_read_off_the_weights(tmp_path):
    from wav2small.testing import tiny_config

    config = tiny_config("odyssey")
    config["ssl_config"].update(conv_bias=True, intermediate_size=48)
    OdysseyTeacher(config).save_pretrained(tmp_path / "odyssey")
    for key in ("conv_bias", "intermediate_size"):  # as in the published config: only ssl_type names the backbone
        del config["ssl_config"][key]
    (tmp_path / "odyssey" / "config.json").write_text(json.dumps(config))
    teacher = load_teacher(tmp_path / "odyssey")
    assert teacher.ssl_config.conv_bias is True and teacher.ssl_config.intermediate_size == 48


def test_legacy_weight_norm_names_in_pytorch_model_bin_load(tiny, tmp_path):
    # checkpoints saved before torch's parametrized weight_norm (the published ones) name g and v
    state = load_file(str(tiny["dawn"] / "model.safetensors"))
    legacy = {k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v"): v
              for k, v in state.items()}
    assert any(k.endswith("weight_g") for k in legacy)
    folder = tmp_path / "legacy"
    folder.mkdir()
    torch.save(legacy, folder / "pytorch_model.bin")
    (folder / "config.json").write_text((tiny["dawn"] / "config.json").read_text())
    x = waves(2)
    with torch.inference_mode():
        torch.testing.assert_close(load_teacher(folder)(x), load_teacher(tiny["dawn"])(x))


def test_a_checkpoint_that_does_not_fit_is_refused_with_the_key(tiny, tmp_path):
    from safetensors.torch import save_file

    state = load_file(str(tiny["dawn"] / "model.safetensors"))
    state["classifier.extra.weight"] = torch.zeros(2)
    folder = tmp_path / "bad"
    folder.mkdir()
    save_file(state, str(folder / "model.safetensors"))
    (folder / "config.json").write_text((tiny["dawn"] / "config.json").read_text())
    with pytest.raises(ValueError, match="classifier.extra.weight"):
        load_teacher(folder)


def test_batch_of_equal_length_clips_equals_one_by_one(tiny):
    teacher = load_teacher([tiny["dawn"], tiny["odyssey"]])
    x = waves(4, 6000, seed=2)
    with torch.inference_mode():
        together = teacher(x)
        alone = torch.cat([teacher(x[i : i + 1]) for i in range(len(x))])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)


def test_ensemble_weights_members_and_no_clipping(tiny):
    equal = load_teacher(f"{tiny['dawn']}+{tiny['odyssey']}")
    weighted = load_teacher([tiny["dawn"], tiny["odyssey"]], weights=[3, 1])
    assert isinstance(equal, EnsembleTeacher) and equal.name == "dawn+odyssey"
    x = waves(3, 8000, seed=3)
    with torch.inference_mode():
        members = equal.forward_members(x)
        assert list(members) == ["dawn", "odyssey"]
        torch.testing.assert_close(equal(x), (members["dawn"] + members["odyssey"]) / 2)
        torch.testing.assert_close(weighted(x), 0.75 * members["dawn"] + 0.25 * members["odyssey"])
        combined = equal(x)
    assert ((combined < 0) | (combined > 1)).any()  # random teachers leave 0..1: nothing clips them
    assert equal.min_samples == 400
    assert [m["name"] for m in equal.describe()["members"]] == ["dawn", "odyssey"]
    with pytest.raises(ValueError, match="weights"):
        load_teacher([tiny["dawn"], tiny["odyssey"]], weights=[1])


def test_single_teacher_is_its_own_member_and_rejects_too_short_input(tiny):
    teacher = load_teacher(tiny["dawn"])
    x = waves(2, 4000)
    with torch.inference_mode():
        members = teacher.forward_members(x)
        assert list(members) == [teacher.name]
        torch.testing.assert_close(members[teacher.name], teacher(x))
        with pytest.raises(ValueError, match="400"):
            teacher(waves(1, 399))


def test_generic_audio_classification_teacher_maps_outputs_by_name(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    labels = {0: "valence", 1: "Arousal", 2: "dominance"}
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(16,) * 7,
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=8,
                            num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    torch.manual_seed(0)
    model = Wav2Vec2ForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path / "generic")
    teacher = load_teacher(tmp_path / "generic")
    assert isinstance(teacher, AudioClassificationTeacher)
    x = waves(2, 8000, seed=4)
    with torch.inference_mode():
        normalised = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, keepdim=True, unbiased=False) + 1e-7)
        logits = model(normalised).logits
        torch.testing.assert_close(teacher(x), logits[:, [1, 2, 0]])

    config.id2label, config.label2id = {0: "happy", 1: "sad", 2: "angry"}, {"happy": 0, "sad": 1, "angry": 2}
    Wav2Vec2ForSequenceClassification(config).save_pretrained(tmp_path / "categorical")
    with pytest.raises(ValueError, match="arousal, dominance and valence"):
        load_teacher(tmp_path / "categorical")


def test_aliases_resolve_from_the_hub_cache_with_the_revision(tiny, tmp_path, monkeypatch):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    for kind, repo in (("dawn", "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"),
                       ("odyssey", "3loi/SER-Odyssey-Baseline-WavLM-Multi-Attributes")):
        cached = tmp_path / f"models--{repo.replace('/', '--')}"
        _as_published(save_tiny_teacher(cached / "snapshots" / commit, kind))
        (cached / "refs").mkdir()
        (cached / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    teacher = load_teacher("dawn+odyssey")
    assert [type(m) for m in teacher.members] == [DawnTeacher, OdysseyTeacher]
    described = teacher.describe()["members"]
    assert [m["name"] for m in described] == ["dawn", "odyssey"]
    assert [m["revision"] for m in described] == [commit, commit]
    assert described[0]["source"] == "audeering/wav2vec2-large-robust-12-ft-emotion-msp-dim"
    assert "CC BY-NC-SA" in described[0]["licence"] and "MIT" in described[1]["licence"]


def test_missing_teacher_folder_says_so(tmp_path):
    with pytest.raises(OSError, match="no such model folder"):
        load_teacher(tmp_path / "nothing-here")


def test_licences_are_recorded_only_where_known(tiny, tmp_path):
    import shutil

    from wav2small.labels import label_audio
    from wav2small.store import LabelStore
    from wav2small.testing import write_audio_dir

    made_here = load_teacher(str(tiny["dawn"]))
    assert made_here.licence.startswith("not applicable: a tiny random dawn-format teacher made by wav2small")
    for kind in ("dawn", "odyssey"):
        unknown = _as_published(shutil.copytree(tiny[kind], tmp_path / f"{kind}-copy"))
        assert load_teacher(str(unknown)).licence.startswith("unknown (local folder")
    named = _as_published(shutil.copytree(tiny["dawn"], tmp_path / "dawn-named"), _name_or_path=ALIASES["dawn"])
    assert load_teacher(str(named)).licence.startswith("CC BY-NC-SA 4.0")

    store = tmp_path / "store"
    label_audio(write_audio_dir(tmp_path / "audio", 2, seconds=0.5), str(tiny["dawn"]), store, crop_dur=1.0, views=0,
                progress=False)
    assert LabelStore(store).metadata["teacher"]["licence"] == made_here.licence  # not "CC BY-NC-SA 4.0"


def test_a_folder_with_remote_code_never_prompts_and_never_runs_it(tmp_path, monkeypatch):
    import builtins

    from safetensors.torch import save_file

    folder, marker = tmp_path / "remote", tmp_path / "remote-code-ran"
    folder.mkdir()
    (folder / "custom.py").write_text(f"open({str(marker)!r}, 'w').close()\n")  # what a hostile folder would do
    (folder / "config.json").write_text(json.dumps({
        "model_type": "custom-ser", "architectures": ["CustomModel"],
        "auto_map": {"AutoConfig": "custom.CustomConfig", "AutoModelForAudioClassification": "custom.CustomModel"},
        "id2label": {"0": "arousal", "1": "dominance", "2": "valence"}}))
    save_file({"head.weight": torch.zeros(3, 4)}, str(folder / "model.safetensors"))
    asked = []
    monkeypatch.setattr(builtins, "input", lambda prompt="": asked.append(prompt) or "y")  # a user pressing "y"
    with pytest.raises(ValueError, match=str(folder)):
        load_teacher(folder)
    assert not asked and not marker.exists()


def test_published_layouts_are_recognised_by_their_keys_whatever_config_names(tiny, tmp_path):
    import shutil

    folder = tmp_path / "renamed"
    shutil.copytree(tiny["dawn"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "architectures": ["Wav2Vec2ForSequenceClassification"]}))
    x = waves(2)
    teacher = load_teacher(folder)
    assert isinstance(teacher, DawnTeacher)  # not a transformers class with a randomly initialised head
    with torch.inference_mode():
        torch.testing.assert_close(teacher(x), load_teacher(tiny["dawn"])(x))


def test_a_generic_checkpoint_with_missing_or_unexpected_keys_is_refused_naming_them(tmp_path):
    from safetensors.torch import save_file
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    labels = {0: "arousal", 1: "dominance", 2: "valence"}
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, conv_dim=(16,) * 7,
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, classifier_proj_size=8,
                            num_labels=3, id2label=labels, label2id={v: k for k, v in labels.items()})
    Wav2Vec2ForSequenceClassification(config).save_pretrained(tmp_path / "generic")
    state = load_file(str(tmp_path / "generic" / "model.safetensors"))
    del state["classifier.weight"]
    state["head.extra"] = torch.zeros(3)
    save_file(state, str(tmp_path / "generic" / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"missing \['classifier.weight'\], unexpected \['head.extra'\]"):
        load_teacher(tmp_path / "generic")


def test_a_weight_map_cannot_point_outside_the_teacher_folder(tiny, tmp_path):
    from safetensors.torch import save_file

    state = load_file(str(tiny["dawn"] / "model.safetensors"))
    (tmp_path / "elsewhere").mkdir()
    save_file(state, str(tmp_path / "elsewhere" / "x.safetensors"))
    folder = tmp_path / "teachers" / "sharded"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text((tiny["dawn"] / "config.json").read_text())
    save_file(state, str(folder / "model-00001-of-00002.safetensors"))
    shards = ["model-00001-of-00002.safetensors", "../../elsewhere/x.safetensors"]
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {k: shards[i % 2] for i, k in enumerate(state)}}))
    with pytest.raises(ValueError, match="weight_map entry '../../elsewhere/x.safetensors' points outside the teacher folder"):
        load_teacher(folder)


def test_a_config_planning_far_more_than_its_weights_is_refused_before_anything_is_built(tiny, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "huge"
    shutil.copytree(tiny["dawn"], folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 64000, "intermediate_size": 256000}))
    built = []
    monkeypatch.setattr(DawnTeacher, "_load_published", lambda self, *a, **k: built.append(self))
    with pytest.raises(ValueError, match="config.json describes a model of .* values but the weights hold"):
        load_teacher(folder)
    assert not built
