# Copyright (c) mmssl contributors. All rights reserved.
"""Drawing for hooks, tools and notebooks: grids, overlays, curves.

Everything here takes arrays, tensors or Pillow images and returns (or
writes) pictures; it imports only :mod:`mmssl.utils` and the host libraries,
never models, evaluation or apis.
"""
from .annotate import caption, draw_boxes, labelled_rows
from .curves import plot_curve_panels, plot_curves
from .grids import (denormalize_images, grey_out, label_palette, make_grid,
                    prediction_grid, reconstruction_grid, tile_images)

__all__ = [
    'caption', 'draw_boxes', 'labelled_rows', 'plot_curves',
    'plot_curve_panels', 'denormalize_images', 'grey_out', 'label_palette',
    'make_grid', 'prediction_grid', 'reconstruction_grid', 'tile_images'
]
