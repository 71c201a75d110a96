"""2-D maps of clip embeddings (t-SNE, or PCA for tiny sets) coloured by true and pseudo-attributes (paper Fig. 2).

Drawn with matplotlib's object API on an Agg canvas, so no global backend is switched and no
display is needed; matplotlib is imported only when a map is drawn.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from asdlab._io import atomic_write_bytes
from asdlab.errors import AsdlabError, ConfigError, DataError

__all__ = ["MapMethod", "project_2d", "plot_embedding_map"]

MapMethod = Literal["tsne", "pca"]
_MIN_TSNE_CLIPS = 6  # below this t-SNE's perplexity (< N / 3) leaves nothing to fit; PCA instead
_MARKERS = {"source": "o", "target": "^"}


def project_2d(X: NDArray[np.floating], *, method: MapMethod = "tsne", seed: int = 0) -> NDArray[np.float64]:
    """Project embeddings (N, D) to (N, 2).

    Args:
        X: (N, D) embeddings.
        method: "tsne" (perplexity min(30, (N - 1) / 3), PCA initialisation) or "pca". t-SNE falls
            back to PCA for fewer than 6 clips.
        seed: t-SNE's random state.

    Raises:
        ConfigError: unknown method.
        DataError: X is not (N, D) with N >= 1.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) == 0:
        raise DataError(f"embeddings must be a non-empty (N, D) array, got shape {X.shape}")
    if method not in ("tsne", "pca"):
        raise ConfigError(f"map method must be 'tsne' or 'pca', got {method!r}")
    n, d = X.shape
    if method == "tsne" and n >= _MIN_TSNE_CLIPS:
        perplexity = min(30.0, (n - 1) / 3)
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(X)
    coords = np.zeros((n, 2))
    k = min(2, n, d)
    if n > 1:
        coords[:, :k] = PCA(n_components=k, random_state=seed).fit_transform(X)
    return coords


def _pyplot_free_figure(width_in: float, height_in: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise AsdlabError(f"drawing embedding maps needs matplotlib (pip install matplotlib): {error}") from None
    figure = Figure(figsize=(width_in, height_in), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _colours(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _scatter(ax, coords: NDArray[np.float64], labels: NDArray[np.str_], domains: NDArray[np.str_], title: str) -> None:
    """One panel: a colour per label, a marker per domain (circle source, triangle target)."""
    names = sorted(set(labels.tolist()))
    for colour, name in zip(_colours(len(names)), names, strict=True):
        labelled = False
        for domain in np.unique(domains):
            sel = (labels == name) & (domains == domain)
            if sel.any():
                ax.scatter(coords[sel, 0], coords[sel, 1], s=16, color=colour, marker=_MARKERS.get(domain, "s"),
                           edgecolors="none", alpha=0.85, label=None if labelled else name)
                labelled = True
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=6, loc="best", frameon=False, ncol=1 if len(names) <= 8 else 2)


def plot_embedding_map(
    coords: NDArray[np.floating],
    out_path: str | os.PathLike,
    *,
    pseudo: Sequence[str],
    true: Sequence[str] | None = None,
    domains: Sequence[str] | None = None,
    title: str = "",
) -> None:
    """Write a PNG: the 2-D map coloured by true attributes (left) and pseudo-attributes (right).

    Args:
        coords: (N, 2) map coordinates (`project_2d`).
        out_path: the PNG to write (atomically).
        pseudo: (N,) pseudo-attribute of each clip.
        true: (N,) true attribute of each clip; None draws the pseudo-attribute panel alone.
        domains: (N,) "source" / "target" (circle / triangle markers); None = all circles.
        title: figure title (machine and section, embedding source).

    Raises:
        AsdlabError: matplotlib is not installed.
        DataError: the label columns do not have N rows.
    """
    coords = np.asarray(coords, dtype=np.float64)
    n = len(coords)
    pseudo_arr = np.asarray(pseudo, dtype=np.str_)
    domain_arr = np.full(n, "source") if domains is None else np.asarray(domains, dtype=np.str_)
    panels = [] if true is None else [(np.asarray(true, dtype=np.str_), "true attributes")]
    panels.append((pseudo_arr, f"pseudo-attributes (K = {len(set(pseudo_arr.tolist()))})"))
    if coords.shape != (n, 2) or any(len(labels) != n for labels, _ in panels) or len(domain_arr) != n:
        raise DataError(f"{out_path}: coordinates {coords.shape} and label columns must all have {n} rows")
    figure = _pyplot_free_figure(4.6 * len(panels), 4.4)
    for i, (labels, name) in enumerate(panels, start=1):
        _scatter(figure.add_subplot(1, len(panels), i), coords, labels, domain_arr, name)
    if title:
        figure.suptitle(title, fontsize=10)
    figure.text(0.01, 0.01, "circle: source domain, triangle: target domain", fontsize=7, color="0.4")
    figure.tight_layout(rect=(0, 0.03, 1, 1))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(out_path, buffer.getvalue())
