# Copyright (c) mmssl contributors. All rights reserved.
"""Line charts written to image files with matplotlib.

The charts are drawn on a bare ``matplotlib.figure.Figure``, not through
``pyplot``: no display is needed and the caller's matplotlib backend is left
alone. matplotlib is imported when a chart is drawn.
"""
from typing import Dict, Optional, Sequence, Tuple

__all__ = ['plot_curves']

Curve = Tuple[Sequence[float], Sequence[float]]


def plot_curves(curves: Dict[str, Curve],
                path: str,
                xlabel: str = '',
                ylabel: str = '',
                hlines: Optional[Dict[str, float]] = None,
                marker: str = 'o',
                figsize: Tuple[float, float] = (6, 4),
                dpi: int = 120) -> str:
    """Draw one line per named curve and save the chart to ``path``.

    Args:
        curves (dict[str, tuple]): Legend label -> ``(xs, ys)``.
        path (str): Image file to write (PNG, SVG, PDF ... by extension).
        xlabel (str): Label of the x axis.
        ylabel (str): Label of the y axis.
        hlines (dict[str, float], optional): Legend label -> y of a dashed
            grey horizontal reference line (a target, a baseline).
        marker (str): matplotlib marker of the points. Defaults to 'o'.
        figsize (tuple): Size in inches. Defaults to (6, 4).
        dpi (int): Resolution of raster files. Defaults to 120.

    Returns:
        str: ``path``.
    """
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    ax = fig.subplots()
    for name, (xs, ys) in curves.items():
        ax.plot(list(xs), list(ys), marker=marker, label=name)
    for name, y in (hlines or {}).items():
        ax.axhline(y, color='grey', ls='--', lw=1, label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if curves or hlines:
        ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path
