"""Figures built with matplotlib; functions return a Figure and stages save it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402


def crop_grid(images: list[Image.Image], titles: list[str], columns: int = 8) -> Figure:
    """A grid of crops with their class names: the study's Figure 1.

    Args:
        images: The crops.
        titles: One caption per crop.
        columns: Crops per row.
    """
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles, strict=False):
        ax.imshow(image)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def confusion_figure(cm, classes: tuple[str, ...], title: str) -> Figure:
    """A confusion matrix with counts and row-normalised shading (rows: true class)."""
    import numpy as np

    cm = np.asarray(cm)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.6 else "black",
            )
    fig.tight_layout()
    return fig
