"""The report's figures (matplotlib): example crops, loss curves, a metric against epoch.

Functions return a Figure; stages save it.
"""

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


def loss_curves_figure(panels: list[tuple[str, list[list[dict]]]], title: str) -> Figure:
    """Train and validation loss against epoch, one panel per regime: Figures 3 and 5.

    Args:
        panels: (panel title, histories) per panel; each history is one seed's rows with
            `epoch`, `train_loss` and `val_loss`. Several seeds are drawn as thin lines.
        title: The figure's title.
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (name, histories) in zip(axes[0], panels, strict=True):
        width = 1.6 if len(histories) == 1 else 0.9
        for i, rows in enumerate(histories):
            epochs = [int(r["epoch"]) for r in rows]
            for key, colour in (("train_loss", "tab:blue"), ("val_loss", "tab:orange")):
                label = key.replace("_", " ") if i == 0 else None
                values = [float(r[key]) for r in rows]
                ax.plot(epochs, values, color=colour, lw=width, label=label)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("cross-entropy loss")
    axes[0, 0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def metric_by_epoch_figure(series: dict[str, list[dict]], key: str, ylabel: str) -> Figure:
    """One line per run of `key` against `epoch` (e.g. the detector's val AP@0.5).

    Args:
        series: Run name -> its history rows.
        key: The column to draw.
        ylabel: The y axis label.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, rows in series.items():
        ax.plot(
            [int(r["epoch"]) for r in rows], [float(r[key]) for r in rows], marker="o", label=name
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
