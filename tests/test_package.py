"""The package as a user meets it: the public API resolves lazily and completely, `--help` answers
without loading torch or other heavy modules, and the import does not depend on the working
directory (a model folder named `wav2small` next to a user's script is a model, not the package)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import wav2small
from wav2small import create_student

HEAVY = ("torch", "transformers", "onnx", "onnxruntime", "librosa", "pandas", "matplotlib", "scipy")
PACKAGE = Path(wav2small.__file__).resolve().parent


def _python(code: str, cwd) -> str:
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_every_public_name_resolves_and_functions_keep_their_names():
    import wav2small.evaluate  # noqa: F401  (submodules named like the functions they define)
    import wav2small.predict  # noqa: F401
    import wav2small.train  # noqa: F401

    for name in wav2small.__all__:
        assert getattr(wav2small, name) is not None
    assert callable(wav2small.predict) and wav2small.predict.__module__ == "wav2small.predict"
    assert wav2small.train.__module__ == "wav2small.train" and wav2small.evaluate.__module__ == "wav2small.evaluate"
    assert set(wav2small.__all__) <= set(dir(wav2small))
    from wav2small import TrainConfig, predict  # noqa: F401


def test_help_loads_no_heavy_module(tmp_path):
    for command in ([], ["train"], ["label"], ["export"], ["evaluate"], ["predict"]):
        code = ("import io, contextlib, json, sys\nfrom wav2small.cli import main\n"
                f"with contextlib.redirect_stdout(io.StringIO()) as out:\n"
                f"    try: main({[*command, '--help']!r})\n"
                "    except SystemExit: pass\n"
                f"print(json.dumps([out.getvalue(), [m for m in {HEAVY!r} if m in sys.modules]]))")
        text, heavy = json.loads(_python(code, tmp_path))
        assert "usage: wav2small" in text and heavy == [], f"wav2small {' '.join(command)} --help imported {heavy}"
    assert "--ccc-weight" in json.loads(_python(code.replace("'predict'", "'train'"), tmp_path))[0]


def test_a_model_folder_named_wav2small_in_the_working_directory_is_a_model(tmp_path):
    create_student("wav2small", channels=4).save_pretrained(tmp_path / "wav2small")
    code = ("import numpy, wav2small\n"
            "adv = wav2small.predict(numpy.zeros(16000, numpy.float32) + 0.1 * numpy.random.default_rng(0).normal(size=16000), "
            "16000, model='wav2small')\n"
            "print(wav2small.__file__, adv.shape)")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"{done.stderr}\nIf this says that module 'wav2small' has no attribute 'predict', the package was installed "
        "with a finder-based editable install: reinstall with `pip install -e .` (pyproject's package-dir makes it a path entry)")
    file, shape = done.stdout.rsplit(" ", 1)
    assert Path(file).resolve().parent == PACKAGE and shape.strip() == "(3,)"
    assert np.isfinite(wav2small.predict(np.ones(16000, np.float32), 16000, model=tmp_path / "wav2small")).all()


def _bash_block(text: str, after: str) -> list[str]:
    """The commands of the first ```bash block after `after`: continuation lines joined, comments dropped."""
    block = text[text.index(after):].split("```bash\n", 1)[1].split("```", 1)[0]
    return _commands(block)


def _commands(text: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", text)  # a line ending in a backslash continues on the next
    lines = (re.sub(r"\s+#\s.*$", "", line).strip() for line in joined.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_ci_runs_the_readmes_two_set_up_commands_and_its_main_job_word_for_word():
    root = PACKAGE.parent
    readme = (root / "README.md").read_text()
    ci = (root / ".ci" / "run").read_text()
    set_up = _bash_block(readme, "Then two commands")
    assert len(set_up) == 2 and all(command in _commands(ci) for command in set_up)
    main_job = _bash_block(readme, "### The main job")
    assert len(main_job) >= 3 and main_job[0] == ". .venv/bin/activate"
    ci_job = _commands(ci[ci.index("# README: the main job"):])
    start = ci_job.index(main_job[0])
    assert ci_job[start:start + len(main_job)] == main_job, "the README's main job and .ci/run's differ"


def test_every_subcommands_help_names_its_units_and_scales():
    from wav2small.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for name, parser in commands.items():
        for action in parser._actions:
            flag = action.option_strings[-1] if action.option_strings else action.dest
            if re.search(r"dur|seconds", flag):  # a time: its unit is said
                assert "second" in (action.help or ""), f"wav2small {name} {flag}: no unit in its help"
    for name in ("predict", "label", "train", "evaluate", "export"):  # they read or write A/D/V values
        assert "0..1" in commands[name].format_help(), f"wav2small {name} --help does not give the A/D/V scale"


def test_the_readmes_command_table_and_api_table_name_every_command_and_public_name():
    from wav2small.cli import build_parser

    readme = (PACKAGE.parent / "README.md").read_text()
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    cli = readme[readme.index("## Command line"):].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `wav2small ([\w-]+)`", cli, re.M)) == set(commands)
    api = readme[readme.index("## Python API"):].split("\n## ", 1)[0]
    table = "\n".join(line for line in api.splitlines() if line.startswith("| `"))
    assert set(re.findall(r"`(\w+)`", table)) >= set(wav2small.__all__)


def _slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_readmes_links_to_its_sections_and_files_resolve():
    root = PACKAGE.parent
    readme = (root / "README.md").read_text()
    prose = re.sub(r"```.*?```", "", readme, flags=re.S)
    anchors = {_slug(h) for h in re.findall(r"^#+ (.+)$", prose, re.M)}
    links = re.findall(r"\]\(([^)]+)\)", prose)
    assert links, "the README links nothing"
    for link in links:
        if link.startswith("#"):
            assert link[1:] in anchors, f"README links {link}, which no heading makes"
        elif not re.match(r"\w+://", link):
            assert (root / link).exists(), f"README links {link}, which is not in the repository"
