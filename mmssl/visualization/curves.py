# Copyright (c) mmssl contributors. All rights reserved.
"""Line charts written to image files with matplotlib.

The charts are drawn on a bare ``matplotlib.figure.Figure``, not through
``pyplot``: no display is needed and the caller's matplotlib backend is left
alone. matplotlib is imported when a chart is drawn.
"""
from typing import Dict, Optional, Sequence, Tuple

__all__ = ['plot_curves', 'plot_curve_panels']

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
    _draw(ax, curves, hlines, marker)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path


def plot_curve_panels(panels: Dict[str, Dict[str, Curve]],
                      path: str,
                      xlabel: str = '',
                      ylabel: str = '',
                      hlines: Optional[Dict[str, Dict[str, float]]] = None,
                      marker: str = '',
                      panel_size: Tuple[float, float] = (4.3, 3.8),
                      dpi: int = 110) -> str:
    """Several charts side by side, sharing the x axis, saved to ``path``.

    Args:
        panels (dict): panel title -> its curves (legend label ->
            ``(xs, ys)``), as :func:`plot_curves` takes them.
        path (str): Image file to write.
        xlabel (str): Label of every x axis.
        ylabel (str): Label of the first panel's y axis.
        hlines (dict, optional): panel title -> its dashed reference lines
            (legend label -> y).
        marker (str): matplotlib marker of the points; none by default.
        panel_size (tuple): Size of one panel in inches.
        dpi (int): Resolution of raster files. Defaults to 110.

    Returns:
        str: ``path``.
    """
    from matplotlib.figure import Figure
    width, height = panel_size
    fig = Figure(figsize=(width * len(panels), height))
    axes = fig.subplots(1, len(panels), sharex=True, squeeze=False)[0]
    for ax, (title, curves) in zip(axes, panels.items()):
        _draw(ax, curves, (hlines or {}).get(title), marker, legend=False)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path


def _draw(ax,
          curves: Dict[str, Curve],
          hlines: Optional[Dict[str, float]],
          marker: str,
          legend: bool = True) -> None:
    """The lines of one chart: curves, dashed grey levels, grid."""
    for name, (xs, ys) in curves.items():
        ax.plot(list(xs), list(ys), marker=marker, label=name)
    for name, y in (hlines or {}).items():
        ax.axhline(y, color='grey', ls='--', lw=1, label=name)
    if legend and (curves or hlines):
        ax.legend()
    ax.grid(alpha=0.3)
