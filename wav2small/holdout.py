"""The one hold-out rule: which files are set aside, for the test split of ``wav2small prepare``, the
validation files of training and the int8 check of export calibration.

A file is held out when the hash of its base name (with a ``salt`` naming the purpose) falls
below the fraction::

    score(file) = first 4 bytes of sha1(salt + basename(file)), as a number in [0, 1)
    held out    = score(file) < fraction

Why this rule, and not a ranked or seeded choice:

- deterministic and independent of input order: a file's side depends on its name alone;
- stable as a corpus grows: adding files never moves a file from one side to the other, so a
  resumed training run or a re-labelled store keeps its validation files, and nothing trained on
  ever becomes validation (taking the first ``round(fraction * n)`` files of a ranking, or a
  seeded permutation, moves files across whenever ``n`` changes);
- whole files: every crop and view of a file shares its name, hence its side;
- independent of where the corpus lies: the base name, not the path, so moving or mounting a
  corpus elsewhere keeps the split (files of the same name in different folders share a side);
- independent purposes: the salt makes the validation split of a training set drawn from the
  prepare split's train part an independent draw (with one hash for both, every file that
  prepare kept would score at least the test fraction, and validation at the same fraction would
  find nothing). The test split's salt is empty, which keeps manifests written before this module;
- nested: for one salt, the files held out at a smaller fraction are held out at every larger one.

The count is binomial around ``fraction * n``, not exact. For corpora too small for the fraction
to pick anything, two guarantees hold whenever ``fraction > 0`` and there are at least two
distinct names: at least one file is held out (the lowest-scoring name), and at least one is kept
(the highest-scoring name). Only there can a growing corpus move a file: the stand-in returns to
its side once a file of the corpus falls under the fraction.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

#: Salts of the package's hold-outs (the test split's is empty, as it was before salts existed).
TEST_SALT = ""
VALIDATION_SALT = "validation:"
CALIBRATION_SALT = "calibration:"


def holdout_score(file, *, salt: str = "") -> float:
    """The number in [0, 1) that decides a file's side: a hash of ``salt`` and its base name.

    >>> holdout_score("/data/a.wav") == holdout_score("/elsewhere/a.wav")
    True
    """
    digest = hashlib.sha1((salt + Path(str(file)).name).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def held_out(files, fraction: float, *, salt: str = "") -> set[str]:
    """The files of ``files`` (paths, repeats allowed) held out at ``fraction`` (0 <= fraction < 1).

    Returns them as the strings given. See the module docstring for the rule and its guarantees.

    >>> sorted(held_out(["a.wav", "b.wav"], 0.01))  # too few files for 1 %: one stands in
    ['b.wav']
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"a hold-out fraction must be in [0, 1), got {fraction}")
    unique = sorted(set(map(str, files)))
    score = {name: holdout_score(name, salt=salt) for name in {Path(f).name for f in unique}}
    ranked = sorted(score, key=lambda name: (score[name], name))  # lowest score first
    names = {name for name in ranked if score[name] < fraction}
    if fraction > 0 and len(ranked) >= 2:
        if not names:
            names = {ranked[0]}
        elif len(names) == len(ranked):
            names.discard(ranked[-1])
    return {f for f in unique if Path(f).name in names}
