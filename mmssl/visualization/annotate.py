# Copyright (c) mmssl contributors. All rights reserved.
"""Annotated thumbnails with Pillow: boxes, captions and labelled rows.

Used for previews of data sets (``tools/misc/make_embedded_data.py``): each
picture becomes a tile with its annotations drawn on it and a caption below,
and tiles are laid out in rows with a name in front of each row.
"""
from typing import Sequence, Tuple

from PIL import Image, ImageDraw

__all__ = ['draw_boxes', 'caption', 'labelled_rows']

Colour = Tuple[int, int, int]


def draw_boxes(tile: Image.Image, boxes: Sequence[Sequence[float]],
               names: Sequence[str], colours: Sequence[Colour]) -> Image.Image:
    """Draw (x, y, w, h) boxes with their names on ``tile`` (in place).

    Args:
        tile (PIL.Image.Image): The picture; changed and returned.
        boxes (Sequence): (x, y, w, h) boxes in the tile's pixels (COCO
            order).
        names (Sequence[str]): One name per box, written inside its top
            left corner.
        colours (Sequence[tuple]): One RGB colour per box.
    """
    draw = ImageDraw.Draw(tile)
    for (x, y, w, h), name, colour in zip(boxes, names, colours):
        colour = tuple(colour)
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=colour)
        draw.text((x + 2, y + 1), name, fill=colour)
    return tile


def caption(tile: Image.Image,
            text: str,
            height: int = 14,
            max_chars: int = 20) -> Image.Image:
    """A copy of ``tile`` with ``text`` written on a white strip below it.

    Args:
        tile (PIL.Image.Image): The picture.
        text (str): The caption; cut at ``max_chars`` characters.
        height (int): Height of the strip. Defaults to 14.
        max_chars (int): Longest caption kept. Defaults to 20.
    """
    out = Image.new('RGB', (tile.width, tile.height + height), 'white')
    out.paste(tile, (0, 0))
    ImageDraw.Draw(out).text((2, tile.height + 1),
                             text[:max_chars],
                             fill='black')
    return out


def labelled_rows(rows: Sequence[Tuple[str, Sequence[Image.Image]]],
                  header: int = 72,
                  gap: int = 4) -> Image.Image:
    """Rows of equally sized tiles, each row named on its left.

    Args:
        rows (Sequence[tuple[str, Sequence[Image]]]): ``(name, tiles)`` per
            row; rows may hold different numbers of tiles.
        header (int): Width of the name column. Defaults to 72.
        gap (int): Pixels after every tile and row. Defaults to 4.

    Returns:
        PIL.Image.Image: RGB picture on a white background.
    """
    tiles = [t for _, row in rows for t in row]
    if not tiles:
        raise ValueError('labelled_rows needs at least one tile')
    tile_w = max(t.width for t in tiles)
    tile_h = max(t.height for t in tiles)
    cols = max(len(row) for _, row in rows)
    height = tile_h + gap
    grid = Image.new('RGB',
                     (header + cols * (tile_w + gap), len(rows) * height),
                     'white')
    draw = ImageDraw.Draw(grid)
    for r, (name, row) in enumerate(rows):
        draw.text((4, r * height + tile_h // 2), name, fill='black')
        for c, tile in enumerate(row):
            grid.paste(tile, (header + c * (tile_w + gap), r * height))
    return grid
