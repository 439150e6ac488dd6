"""A report's PNG charts, drawn on matplotlib Figure objects (the Agg renderer, no pyplot and no global
state), so they render anywhere, headless and in threads. Pure functions of plain inputs."""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from digitforge.core.images import SHAPE

DPI = 100


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def _array(t) -> np.ndarray:
    if hasattr(t, "detach"):  # a torch tensor (without importing torch here)
        t = t.detach().cpu().float().numpy()
    return np.asarray(t)


def training_curves(history: list[dict], path: Path, title: str = "") -> Path:
    """Train and test loss (left) and test accuracy (right) per epoch."""
    fig = Figure(figsize=(9, 3.4))
    ax_loss, ax_acc = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    ax_loss.plot(epochs, [h["test_loss"] for h in history], "s-", label="test loss")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_loss.legend()
    acc = [100 * h["test_accuracy"] for h in history]
    ax_acc.plot(epochs, acc, "o-", color="tab:green")
    for e, a in zip(epochs, acc):
        ax_acc.annotate(f"{a:.2f}", (e, a), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
    ax_acc.set(xlabel="epoch", ylabel="%", title="test accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if epochs:
            ax.set_xticks(epochs if len(epochs) <= 20 else epochs[::max(1, len(epochs) // 10)])
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def confusion_heatmap(confusion, class_names: list[str], path: Path, title: str = "") -> Path:
    """Rows: true class, columns: predicted. Colour: share of the true class (so rare classes show too);
    numbers: counts."""
    cm = np.asarray(confusion, dtype=np.int64)
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(6.4, 5.6))
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    n = len(cm)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else ("tab:red" if i != j else "black"))
    ax.set_xticks(range(n), [str(c) for c in class_names[:n]], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), [str(c) for c in class_names[:n]], fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix (test)")
    return _save(fig, path)


def _natural(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def first_conv_weight(state_dict: dict) -> tuple[str, np.ndarray] | None:
    """(name, (out, in, kh, kw) array) of the first convolution: the 4-D weight that reads the
    1-channel image (the first such by layer name), or None (an MLP). Not simply the first 4-D
    tensor: a state_dict read back from safetensors is not in layer order."""
    convs = sorted((name for name, t in state_dict.items() if name.endswith("weight") and len(getattr(t, "shape", ())) == 4),
                   key=lambda n: (state_dict[n].shape[1] != 1, _natural(n)))
    return (convs[0], _array(state_dict[convs[0]])) if convs else None


def conv_filters(state_dict: dict, path: Path, title: str = "") -> Path | None:
    """The first convolution layer's filters, each scaled to its own range, in a grid (as PuzzleLib's
    showFilters; torchvision's make_grid lays them out). None when the model has no convolution (the mlp)."""
    import torch
    from torchvision.utils import make_grid

    found = first_conv_weight(state_dict)
    if found is None:
        return None
    name, w = found
    w = w.mean(axis=1)  # over input channels (1 for grayscale)
    n = len(w)
    cols = min(n, 8 if n <= 32 else 16)
    rows = math.ceil(n / cols)
    grid = make_grid(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32))[:, None], nrow=cols, padding=1,
                     normalize=True, scale_each=True, pad_value=1.0)
    fig = Figure(figsize=(cols * 0.9, rows * 0.9 + 0.5))
    ax = fig.subplots()
    ax.axis("off")
    ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    fig.suptitle(title or f"{name}: {n} filters {w.shape[1]}x{w.shape[2]}", fontsize=9)
    return _save(fig, path)


GRID_COLS, CAPTION_PX, PAD_PX = 8, 14, 2  # misclassified grid: images per row, white space above each for its caption


def misclassified_grid(images, labels, predictions, class_names: list[str], path: Path,
                       confidences=None, limit: int = 40) -> tuple[Path, int]:
    """Up to `limit` misclassified images (the most confidently wrong first when confidences are
    given) captioned `true -> predicted`, laid out by torchvision's make_grid. Returns (path, how many
    were wrong in all)."""
    import torch
    import torch.nn.functional as F
    from torchvision.utils import make_grid

    labels, predictions = np.asarray(labels), np.asarray(predictions)
    wrong = np.flatnonzero(labels != predictions)
    if confidences is not None:
        wrong = wrong[np.argsort(-np.asarray(confidences)[wrong], kind="stable")]
    shown = wrong[:limit]
    rows = max(1, math.ceil(len(shown) / GRID_COLS))
    fig = Figure(figsize=(GRID_COLS * 1.5, rows * 1.5 + 0.4))
    ax = fig.subplots()
    ax.axis("off")
    if len(shown):
        picked = np.stack([np.asarray(images[i]).reshape(SHAPE) for i in shown]).astype(np.float32) / 255.0
        # ink dark on white (as gray_r), with room above each image for its caption
        cells = F.pad(1.0 - torch.from_numpy(picked)[:, None], (0, 0, CAPTION_PX, 0), value=1.0)
        grid = make_grid(cells, nrow=GRID_COLS, padding=PAD_PX, pad_value=1.0)
        ax.imshow(grid[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        cell_h, cell_w = cells.shape[2] + PAD_PX, cells.shape[3] + PAD_PX
        for k, i in enumerate(shown):
            text = f"{class_names[labels[i]]}\n→ {class_names[predictions[i]]}"
            if confidences is not None:
                text += f" ({float(np.asarray(confidences)[i]):.2f})"
            ax.text((k % GRID_COLS) * cell_w + PAD_PX + cells.shape[3] / 2, (k // GRID_COLS) * cell_h + PAD_PX + CAPTION_PX - 1,
                    text, fontsize=7, color="tab:red", ha="center", va="bottom")
    else:
        ax.text(0, 0.5, "no misclassified images", fontsize=10)
    fig.suptitle(f"{len(wrong)} of {len(labels)} test images misclassified"
                 + (f"; the {len(shown)} shown: true → predicted" if len(shown) else ""), fontsize=9)
    return _save(fig, path), len(wrong)


def label_balance(counts: dict[str, list[int]], class_names: list[str], path: Path, title: str = "") -> Path:
    """Images per class of each split (bars side by side), with each class's share of its split."""
    fig = Figure(figsize=(9, 3.4))
    ax = fig.subplots()
    splits = list(counts)
    width = 0.8 / max(len(splits), 1)
    x = np.arange(len(class_names))
    for s, split in enumerate(splits):
        c = np.asarray(counts[split], dtype=float)
        bars = ax.bar(x + (s - (len(splits) - 1) / 2) * width, c, width, label=f"{split} ({int(c.sum())})")
        if len(splits) == 1 or s == 0:
            for b, v in zip(bars, c):
                ax.annotate(f"{100 * v / max(c.sum(), 1):.1f}%", (b.get_x() + b.get_width() / 2, v),
                            textcoords="offset points", xytext=(0, 2), ha="center", fontsize=6)
    ax.set_xticks(x, [str(c) for c in class_names], rotation=30, ha="right", fontsize=8)
    ax.set(ylabel="images", title=title or "label balance")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def per_class_bars(models: list[tuple[str, list[float]]], class_names: list[str], path: Path,
                   metric: str = "F1") -> Path:
    """One metric per class for several models, grouped by class index."""
    fig = Figure(figsize=(9, 3.4))
    ax = fig.subplots()
    width = 0.8 / len(models)
    x = np.arange(len(class_names))
    for k, (label, values) in enumerate(models):
        ax.bar(x + (k - (len(models) - 1) / 2) * width, values, width, label=label)
    ax.set_xticks(x, class_names, rotation=30, ha="right", fontsize=8)
    lo = min(min(v) for _, v in models)
    ax.set(ylabel=metric, ylim=(max(0.0, lo - 0.05), 1.01), title=f"per-class {metric}")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=len(models))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
