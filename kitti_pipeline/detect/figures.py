"""Detections drawn on frames: the study's Figures 6 to 9 (matplotlib; stages save them)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402


def detection_figure(
    image: Image.Image,
    panels: list[tuple[str, np.ndarray]],
    class_names: tuple[str, ...],
    truths: np.ndarray | None = None,
) -> Figure:
    """One frame drawn once per panel, top to bottom: the study's Figures 6 to 9.

    Args:
        image: The frame.
        panels: (title, detections) per panel; detections (N, 6) rows `x1, y1, x2, y2, score,
            class` in frame pixels, drawn in red with class and confidence.
        class_names: Names of the detector's classes.
        truths: (M, 4) ground-truth boxes, drawn as green dashes in every panel, or None.
    """
    width, height = image.size
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(width / 100, len(panels) * (height / 100 + 0.35)), squeeze=False
    )
    for ax, (title, detections) in zip(axes[:, 0], panels, strict=True):
        ax.imshow(image)
        ax.set_title(title, fontsize=10, loc="left")
        ax.axis("off")
        for x1, y1, x2, y2 in [] if truths is None else truths[:, :4]:
            ax.add_patch(
                plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="lime", ls="--", lw=1)
            )
        for x1, y1, x2, y2, score, cls in detections:
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="red", lw=1.5))
            ax.text(
                x1,
                y1 - 2,
                f"{class_names[int(cls)]} {score:.2f}",
                color="white",
                fontsize=7,
                bbox={"facecolor": "red", "edgecolor": "none", "pad": 1},
            )
    fig.tight_layout(pad=0.3)
    return fig
