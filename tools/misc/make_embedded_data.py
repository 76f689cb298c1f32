# Copyright (c) mmssl contributors. All rights reserved.
"""Write mmssl's embedded shape data set and a preview picture of it.

Example::

    python tools/misc/make_embedded_data.py --root data/embedded
    python tools/misc/make_embedded_data.py --root data/tiny \\
        --num-train 200 --num-val 50 --force

The configs make the same data on first use; this tool only makes it ahead
of time, with other sizes, or shows what it looks like (``root/preview.png``:
rows of classification images with their labels, detection images with their
boxes, the segmentation masks, and the two universal-detection sources).
"""
import argparse
import json
import os.path as osp
import time
from typing import List, Tuple

import numpy as np
from PIL import Image

from mmssl.datasets.embedded import make_embedded_data
from mmssl.datasets.embedded_shapes import SHAPE_CLASSES, SHAPE_PALETTE
from mmssl.engine.tool_errors import run_tool
from mmssl.visualization import caption, draw_boxes, labelled_rows

_TILE = 128
_CAPTION = 14
_HEADER = 72


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write the embedded shape data set (classification, '
        'COCO detection, mmseg segmentation, two detection sources).')
    parser.add_argument('--root', default='data/embedded', help='folder')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--img-size', type=int, default=64)
    parser.add_argument('--num-train', type=int, default=2000)
    parser.add_argument('--num-val', type=int, default=500)
    parser.add_argument(
        '--force', action='store_true', help='regenerate even if up to date')
    parser.add_argument(
        '--preview-cols', type=int, default=8, help='images per preview row')
    return parser.parse_args()


def _tile(path: str) -> Tuple[Image.Image, float]:
    img = Image.open(path).convert('RGB')
    scale = _TILE / img.width
    return img.resize((_TILE, _TILE), Image.NEAREST), scale


def _cls_row(root: str, cols: int) -> List[Image.Image]:
    with open(osp.join(root, 'cls', 'meta', 'val.txt')) as f:
        lines = [line.split() for line in f][:cols]
    tiles = []
    for rel, label in lines:
        tile, _ = _tile(osp.join(root, 'cls', 'val', rel))
        tiles.append(caption(tile, SHAPE_CLASSES[int(label)], _CAPTION))
    return tiles


def _det_row(folder: str, cols: int) -> List[Image.Image]:
    with open(osp.join(folder, 'annotations', 'instances_val.json')) as f:
        coco = json.load(f)
    names = {c['id']: c['name'] for c in coco['categories']}
    tiles = []
    for info in coco['images'][:cols]:
        tile, scale = _tile(
            osp.join(folder, 'images', 'val', info['file_name']))
        anns = [a for a in coco['annotations'] if a['image_id'] == info['id']]
        labels = [names[a['category_id']] for a in anns]
        boxes = [[v * scale for v in a['bbox']] for a in anns]
        colours = [
            SHAPE_PALETTE[(a['category_id'] - 1) % len(SHAPE_PALETTE)]
            for a in anns
        ]
        draw_boxes(tile, boxes, labels, colours)
        tiles.append(caption(tile, ','.join(labels), _CAPTION))
    return tiles


def _seg_row(root: str, cols: int) -> List[Image.Image]:
    palette = np.array([(0, 0, 0)] + SHAPE_PALETTE, dtype=np.uint8)
    ann_dir = osp.join(root, 'seg', 'ann_dir', 'val')
    tiles = []
    for i in range(cols):
        path = osp.join(ann_dir, f'{i:06d}.png')
        if not osp.exists(path):
            break
        seg = np.asarray(Image.open(path))
        tile = Image.fromarray(palette[seg]).resize((_TILE, _TILE),
                                                    Image.NEAREST)
        present = [SHAPE_CLASSES[v - 1] for v in np.unique(seg) if v > 0]
        tiles.append(caption(tile, ','.join(present), _CAPTION))
    return tiles


def save_preview(root: str, out_file: str, cols: int = 8) -> None:
    """Save a grid of validation images with their annotations."""
    rows = [('cls', _cls_row(root, cols)),
            ('det', _det_row(osp.join(root, 'det'), cols)),
            ('seg', _seg_row(root, cols)),
            ('unidet A', _det_row(osp.join(root, 'unidet', 'source_a'), cols)),
            ('unidet B', _det_row(osp.join(root, 'unidet', 'source_b'), cols))]
    labelled_rows(rows, header=_HEADER).save(out_file)


def main() -> None:
    args = parse_args()
    start = time.time()
    meta = make_embedded_data(
        args.root,
        seed=args.seed,
        img_size=args.img_size,
        num_train=args.num_train,
        num_val=args.num_val,
        force=args.force,
        show_progress=True)
    took = time.time() - start
    root = meta['root']
    preview = osp.join(root, 'preview.png')
    save_preview(root, preview, args.preview_cols)
    state = f'written in {took:.1f} s' if meta['generated'] \
        else 'already up to date'
    print(f'Embedded data set in {root}: {state}')
    counts = meta['counts']
    print(f'  classes ({len(meta["classes"])}): {", ".join(meta["classes"])}')
    print(f'  cls:    {counts["cls"]["train"]} train / '
          f'{counts["cls"]["val"]} val images')
    print(f'  det/seg: {counts["det"]["train"]} train / '
          f'{counts["det"]["val"]} val images, '
          f'{counts["det_instances"]["train"]} / '
          f'{counts["det_instances"]["val"]} instances')
    for source in ('source_a', 'source_b'):
        print(f'  unidet {source}: {counts[source]["train"]} train / '
              f'{counts[source]["val"]} val images')
    print(f'  preview: {preview}')


if __name__ == '__main__':
    run_tool(main)
