"""Whether DVCLive can replace the training loops' hand-written per-epoch history.

Both loops keep their history inside the resumable state (`core.resumable`): an interrupted run
resumes from its last saved state with the history as it was then, so the history a run ends
with is the uninterrupted run's. The detector saves its state every `eval_every` epochs, so an
interruption loses the epochs since the last save, which the resumed run trains again.

This plays that out for 10 epochs, a state saved every 5, killed after epoch 7: once with the
history in the state (as the pipeline keeps it), once logged through DVCLive
(`Live(resume=True)`, its documented way to continue a run), and prints each one's rows, and the
time per logged epoch of each.

    pip install dvclive   # not a dependency of the project
    python bench/dvclive_resume.py
"""

from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

EPOCHS, SAVE_EVERY, KILLED_AFTER = 10, 5, 7


def loss(epoch: int) -> float:
    return round(1 / epoch, 4)


def hand_written(folder: Path) -> tuple[list[int], float]:
    """The pipeline's way: the history travels in the saved state."""
    saved, history = None, []
    began = time.perf_counter()
    for epoch in range(1, KILLED_AFTER + 1):  # first process, killed after KILLED_AFTER
        history.append({"epoch": epoch, "train_loss": loss(epoch)})
        if epoch % SAVE_EVERY == 0:
            saved = {"epoch": epoch, "history": list(history)}
    history = list(saved["history"])  # second process: resumes from the saved state
    for epoch in range(saved["epoch"] + 1, EPOCHS + 1):
        history.append({"epoch": epoch, "train_loss": loss(epoch)})
    path = folder / "history.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["epoch", "train_loss"])
        writer.writeheader()
        writer.writerows(history)
    seconds = time.perf_counter() - began
    with path.open() as f:
        return [int(r["epoch"]) for r in csv.DictReader(f)], seconds / (EPOCHS + 2)


def with_dvclive(folder: Path) -> tuple[list[int], float]:
    """DVCLive's way: each epoch logged as a step; the resumed run continues with resume=True."""
    from dvclive import Live

    options = {"dir": str(folder / "live"), "dvcyaml": None, "save_dvc_exp": False, "report": None}
    began = time.perf_counter()
    with Live(**options) as live:  # first process, killed after KILLED_AFTER
        for epoch in range(1, KILLED_AFTER + 1):
            live.step = epoch
            live.log_metric("train_loss", loss(epoch))
            live.next_step()
    with Live(**options, resume=True) as live:  # second process, from the state of epoch 5
        for epoch in range(SAVE_EVERY + 1, EPOCHS + 1):
            live.step = epoch
            live.log_metric("train_loss", loss(epoch))
            live.next_step()
    seconds = time.perf_counter() - began
    path = folder / "live/plots/metrics/train_loss.tsv"
    with path.open() as f:
        return [int(r["step"]) for r in csv.DictReader(f, delimiter="\t")], seconds / (EPOCHS + 2)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows, per_epoch = hand_written(Path(tmp))
        print(f"history in the state: epochs {rows} ({per_epoch * 1e3:.2f} ms per epoch)")
        rows_live, per_epoch_live = with_dvclive(Path(tmp))
        print(f"DVCLive, resume=True: steps  {rows_live} ({per_epoch_live * 1e3:.2f} ms per epoch)")
        repeated = sorted({s for s in rows_live if rows_live.count(s) > 1})
        print(f"epochs logged twice by DVCLive: {repeated or 'none'}")


if __name__ == "__main__":
    main()
