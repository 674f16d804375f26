"""Options defined once: every field of the option dataclasses is a documented flag of its command, the
flags give the dataclass defaults, and the flag names the recipe and README use keep working."""

from __future__ import annotations

import dataclasses

import pytest

from wav2small.cli import build_parser
from wav2small.options import (CBundleConfig, ExportConfig, LabelConfig, SearchConfig, TrainConfig, field_help,
                               options_from_arguments)

# the option dataclass -> (its command, the required arguments)
COMMANDS = {TrainConfig: ("train", ["labels", "--out", "run"]), LabelConfig: ("label", ["audio", "--out", "labels"]),
            ExportConfig: ("export", ["wav2small", "--out", "export"]), CBundleConfig: ("export", ["wav2small", "--out", "export"]),
            SearchConfig: ("search", ["labels", "--test-store", "test", "--out", "search"])}
#: the fields without a default, which the required arguments above give
SUBJECTS = {TrainConfig: {"store": "labels", "out": "run"}, SearchConfig: {"store": "labels", "test_store": "test", "out": "search"}}


def _flags(command: str) -> dict[str, str]:
    """dest -> help of every argument of ``wav2small COMMAND``."""
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {action.dest: action.help for action in sub._actions}


@pytest.mark.parametrize("config", COMMANDS, ids=lambda c: c.__name__)
def test_every_field_is_a_documented_flag_with_the_dataclass_default(config):
    command, required = COMMANDS[config]
    helps, flags = field_help(config), _flags(command)
    for f in dataclasses.fields(config):
        assert helps.get(f.name), f"{config.__name__}.{f.name} has no comment: it would be a flag without help"
        if f.metadata.get("cli", True):
            assert helps[f.name].replace("%", "%%") in flags[f.name], f.name  # the comment is the help
    subjects = SUBJECTS.get(config, {})
    parsed = options_from_arguments(config, build_parser().parse_args([command, *required]))
    assert config(**{**subjects, **parsed}) == config(**subjects)  # no flag given: the dataclass defaults


def test_the_flag_names_of_the_recipe_and_readme_still_parse():
    args = build_parser().parse_args(["train", "labels", "--out", "run", "--student", "wav2small-72k", "--student-option",
                                      "channels=20", "--student-option", "prenorm=running", "--steps", "600", "--batch-size",
                                      "8", "--lr", "1e-3", "--cache-dtype", "int16", "--compile", "--quiet", "--valid-every", "50"])
    config = TrainConfig(**options_from_arguments(TrainConfig, args))
    assert config.student_options == {"channels": 20, "prenorm": "running"} and config.cache_dtype == "int16"
    assert config.compile and not config.progress and config.valid_every == 50 and config.lr == 1e-3
    label = options_from_arguments(LabelConfig, build_parser().parse_args(
        ["label", "a", "b", "--out", "s", "--teacher", "dawn", "--weights", "0.7,0.3", "--fp32", "--crop-dur", "2", "--quiet"]))
    assert label["weights"] == (0.7, 0.3) and label["half"] is False and label["crop_dur"] == 2.0 and not label["progress"]
    export = options_from_arguments(ExportConfig, build_parser().parse_args(
        ["export", "m", "--out", "e", "--int8", "--calibration", "c", "--activations", "all", "--per-channel"]))
    assert export["int8"] and export["activations"] == "all" and export["per_channel"] and "progress" not in export
    with pytest.raises(SystemExit):
        build_parser().parse_args(["export", "m", "--out", "e", "--activations", "some"])  # choices from the Literal
    c = build_parser().parse_args(["export", "m", "--c", "c", "--hop-chunks", "4", "--no-device"])
    assert c.c == "c" and options_from_arguments(CBundleConfig, c) == {"hop_chunks": 4, "measure": False}
    assert build_parser().parse_args(["evaluate", "x", "--model", "m", "--version", "1.9"]).release == "1.9"  # old name


def test_bad_values_are_refused_by_the_dataclass():
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(store="s", out="o", batch_size=1)
    with pytest.raises(ValueError, match="calibration"):
        ExportConfig(int8=True)
    with pytest.raises(ValueError, match="crop_dur"):
        LabelConfig(crop_dur=0)
    with pytest.raises(ValueError, match="target"):
        SearchConfig(store="s", test_store="t", out="o", target=0.0)
    with pytest.raises(ValueError, match="candidates"):
        SearchConfig(store="s", test_store="t", out="o", candidates=0)
