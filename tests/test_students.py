"""Every registered student: builds, takes any length and batch size, learns, is batch-independent,
saves and loads in the one checkpoint format; MobileNet sizes match the published models."""

from __future__ import annotations

import pytest
import torch

from wav2small import Student, create_student, list_students


@pytest.fixture
def reference_kernels():
    """oneDNN compiles kernels for every new input shape (about 3 s per MobileNet here); the
    reference kernels compute the same function without that cost. Training tests and the
    benchmark run oneDNN. One thread: on a busy shared machine two threads wait on each other."""
    enabled, threads = torch.backends.mkldnn.enabled, torch.get_num_threads()
    torch.backends.mkldnn.enabled = False
    torch.set_num_threads(1)
    yield
    torch.backends.mkldnn.enabled = enabled
    torch.set_num_threads(threads)


@pytest.mark.parametrize("name", list_students())
def test_student_contract(name, tmp_path, reference_kernels):
    torch.manual_seed(0)
    model = create_student(name).train()
    assert model(torch.randn(2, 4000)).shape == (2, 3)
    y = model(torch.randn(3, 5001))  # another length and batch size
    assert y.shape == (3, 3) and torch.isfinite(y).all()

    y.pow(2).mean().backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.grad is not None for p in trainable)
    assert sum(p.grad.abs().sum() for p in trainable) > 0
    front_end = [p for n, p in model.named_parameters() if "spectrogram_extractor" in n]
    assert front_end and not any(p.requires_grad for p in front_end)  # the conv-DFT stays fixed

    model.eval()  # in eval mode an example's output does not depend on the rest of its batch
    x = torch.randn(3, 5001)
    with torch.no_grad():
        together = model(x)
        alone = torch.cat([model(x[i : i + 1]) for i in range(3)])
        neighbours = model(torch.cat([x[:1], 10 * torch.randn(2, 5001)]))[:1]
    assert torch.allclose(together, alone, atol=1e-4)
    assert torch.allclose(together[:1], neighbours, atol=1e-4)

    model.save_pretrained(tmp_path / name)
    loaded = Student.from_pretrained(tmp_path / name)
    assert type(loaded) is type(model) and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(x), together)


# Published ImageNet parameter counts (torchvision / timm) with a 3-channel stem and 1000 classes.
IMAGENET = {"mobilenetv3-small": (2_542_856, 16, 1024), "mobilenetv3-large": (5_483_032, 16, 1280),
            "mobilenetv4-conv-small": (3_774_024, 32, 1280), "mobilenetv4-conv-medium": (9_715_512, 32, 1280)}


def test_mobilenet_sizes_match_published():
    sizes = list_students(with_sizes=True)
    for name, (imagenet, stem, hidden) in IMAGENET.items():
        # one input channel instead of three, 3 outputs instead of 1000 classes
        expected = imagenet - 2 * 9 * stem - (hidden * 1000 + 1000) + (hidden * 3 + 3)
        assert sizes.loc[name, "parameters"] == expected, name


def test_unknown_student_and_option():
    with pytest.raises(ValueError, match="unknown student"):
        create_student("resnet50")
    with pytest.raises(ValueError, match="variant"):
        create_student("mobilenetv3-small", variant="tiny")
    with pytest.raises(ValueError, match="no setting"):
        create_student("wav2small", chanels=20)


@pytest.mark.parametrize("name, options, words", [
    ("wav2small", {"channels": 100000}, "channels = 100000 lies outside the plausible range 1..1024"),
    ("wav2small", {"channels": 0}, "plausible range"),
    ("wav2small", {"n_fft": -64}, "plausible range"),
    ("wav2small", {"channels": "13"}, "channels must be int"),
    ("wav2small", {"channels": 13.0}, "channels must be int"),
    ("wav2small", {"prenorm_eps": float("nan")}, "prenorm_eps must be float"),
    ("mobilenetv3-small", {"n_mels": 100000}, "plausible range"),
    ("mobilenetv4-conv-small", {"dropout": 1.5}, "plausible range"),
])
def test_implausible_or_mistyped_settings_are_refused_before_anything_is_built(name, options, words, monkeypatch):
    import torch.nn

    built = []
    monkeypatch.setattr(torch.nn.Conv2d, "__init__", lambda self, *a, **k: built.append(a) or pytest.fail("a layer was built"))
    with pytest.raises(ValueError, match=words):
        create_student(name, **options)
    assert not built


def test_students_command_lists_every_preset(capsys):
    from wav2small.cli import main

    assert main(["students"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in list_students()) and "2,496,291" in out
