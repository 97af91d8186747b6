"""Figures built with matplotlib; functions return a Figure and stages save it."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
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
