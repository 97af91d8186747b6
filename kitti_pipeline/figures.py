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
