"""Where a student's output stops being gain-invariant, for the card's prenorm epsilon and for a small one.

    python bench/gain_invariance.py

A Wav2Small fitted to acoustic targets (``wav2small.testing.fit_student``: its outputs spread
across clips, 0.15 on the 0..1 scale, as a trained model's do) hears 8 speech-like clips scaled to
an RMS level from +300 to -300 dBFS. Printed per level: the largest output change against the same
clips at -20 dBFS, for ``prenorm_eps`` 1e-7 (the published card) and 1e-14 (the opt-in), and the
change from switching the epsilon at that level. The export's CONTRACT.md quotes these numbers.
Arithmetic only: the CPU and the load do not matter.
"""

from __future__ import annotations

import numpy as np
import torch

from wav2small import Wav2Small
from wav2small.testing import fit_student, synth_speech

LEVELS = (20, 0, -20, -30, -40, -50, -55, -58, -60, -70, -80, -90, -100, -110, -120, -140, -200, 300, 360)


def main():
    torch.set_num_threads(1)
    clips = [synth_speech(2.0, seed) for seed in range(24)]
    card = fit_student(Wav2Small(), clips).eval()
    small = Wav2Small(prenorm_eps=1e-14).eval()
    small.load_state_dict(card.state_dict())
    x = np.stack(clips[:8]).astype(np.float64)
    x /= np.sqrt((x**2).mean(axis=1, keepdims=True))  # RMS 1: 0 dBFS

    @torch.no_grad()
    def out(model, level_db):
        return model(torch.from_numpy((x * 10 ** (level_db / 20)).astype(np.float32))).numpy()

    reference = {"card": out(card, -20), "small": out(small, -20)}
    print(f"output spread across clips: {reference['card'].std(axis=0).mean():.3f} (0..1 scale)")
    print("RMS dBFS | eps 1e-7: max |change| vs -20 dBFS | eps 1e-14: same | eps 1e-7 vs 1e-14 at this level")
    for level in LEVELS:
        a, b = out(card, level), out(small, level)
        print(f"{level:8d} | {np.abs(a - reference['card']).max():10.2e} | {np.abs(b - reference['small']).max():10.2e} | "
              f"{np.abs(a - b).max():10.2e}")


if __name__ == "__main__":
    main()
