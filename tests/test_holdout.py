"""The one hold-out rule: order-free, stable as a corpus grows, whole files, independent of the folder
and of other purposes, with at least one file on each side."""

from __future__ import annotations

import pytest

from wav2small.holdout import CALIBRATION_SALT, TEST_SALT, VALIDATION_SALT, held_out, holdout_score

FILES = [f"/data/spk{i % 7}/utt{i:04d}.wav" for i in range(400)]


def test_held_out_is_about_the_fraction_whatever_the_order():
    held = held_out(FILES, 0.1)
    assert 20 <= len(held) <= 60  # binomial(400, 0.1): 40 +- 6
    assert held == held_out(FILES[::-1], 0.1) == held_out(FILES + FILES[:50], 0.1)  # order and repeats do not matter
    assert all(holdout_score(f) < 0.1 for f in held)
    assert held <= held_out(FILES, 0.25)  # nested: a larger fraction holds out a superset


def test_a_growing_corpus_moves_no_file():
    held = held_out(FILES, 0.1)
    grown = FILES + [f"/data/new/extra{i:03d}.wav" for i in range(100)]
    assert held_out(grown, 0.1) & set(FILES) == held


def test_the_split_follows_the_name_not_the_folder():
    moved = [f.replace("/data/", "/mnt/backup/corpus/") for f in FILES]
    assert {f.replace("/data/", "/mnt/backup/corpus/") for f in held_out(FILES, 0.2)} == held_out(moved, 0.2)
    twins = held_out(["/a/x.wav", "/b/x.wav", "/a/y.wav", "/a/z.wav"], 0.5)
    assert ("/a/x.wav" in twins) == ("/b/x.wav" in twins)  # one name, one side


def test_purposes_draw_independent_splits():
    test = held_out(FILES, 0.1, salt=TEST_SALT)
    train = [f for f in FILES if f not in test]
    validation = held_out(train, 0.1, salt=VALIDATION_SALT)
    assert 10 <= len(validation) <= 60  # with one salt for both, the train part would have nothing below 0.1
    assert held_out(FILES, 0.25, salt=CALIBRATION_SALT) != held_out(FILES, 0.25, salt=VALIDATION_SALT)


def test_small_corpora_keep_a_file_on_each_side():
    assert held_out(FILES, 0.0) == set()
    two = ["/d/a.wav", "/d/b.wav"]
    assert len(held_out(two, 0.01)) == 1  # nothing scores below 1 %: the lowest-scoring file stands in
    assert len(held_out(two, 0.99)) == 1  # both score below 99 %: the highest-scoring one is kept
    one = ["/d/only.wav"]  # one name cannot be split: the threshold alone decides
    assert held_out(one, 0.5) == (set(one) if holdout_score(one[0]) < 0.5 else set())
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        held_out(FILES, 1.0)
