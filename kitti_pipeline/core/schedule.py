"""Learning-rate schedules, as a factor of the base rate at a point of the run.

`step` is Darknet's `steps` policy as yolov3.cfg sets it: x0.1 at 80% of the run
(steps=400000 of max_batches=500200) and x0.1 again at 90%. `cosine` falls from 1 to 0 as half a
cosine wave. `constant` is the study's: Adam at one rate throughout.
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "step", "cosine")


def schedule_factor(schedule: str, done: float) -> float:
    """The factor of the base rate after the fraction `done` (0 <= done < 1) of the run."""
    if schedule == "constant":
        return 1.0
    if schedule == "step":
        return 1.0 if done < 0.8 else 0.1 if done < 0.9 else 0.01
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * done))
    raise ValueError(f"Invalid schedule {schedule!r}: expected one of {list(SCHEDULES)}")
