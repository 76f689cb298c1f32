# Copyright (c) mmssl contributors. All rights reserved.
"""DiffFashion: put the appearance of a reference image on a garment.

    python tools/fashion_transfer.py --garment GARMENT.png \
        --reference REFERENCE.png --out OUT_DIR \
        --config configs/difffashion/ddpm_unet-tiny_1xb64-10e_embedded32.py \
        --checkpoint work_dirs/ddpm_tiny/epoch_10.pth \
        --vit-config configs/mae/mae_vit-tiny-p8_1xb64-coslr-30e_embedded.py \
        --vit-checkpoint work_dirs/mae_tiny/epoch_30.pth \
        --garment-label 4 [--steps 200] [--sampler ddpm|ddim]

writes ``OUT_DIR/result.png``, ``OUT_DIR/mask.png`` and ``OUT_DIR/grid.png``
(garment | reference | mask | result) all together or not at all; with
``--mask-mode per_set`` also ``result_set<k>.png`` and ``mask_set<k>.png`` for
each label set (``result.png`` / ``mask.png`` are those of set 0) and one grid
row per set. Without
``--vit-config`` the ViT is DINO ViT-B/8 (mmpretrain layout, converted with
``tools/model_converters/dino_vit_to_mmpretrain.py``). Errors (missing
weights, unreadable images, an empty mask) are printed and exit with 2.
"""
import argparse
import os.path as osp
import sys
import time

try:
    import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
except ModuleNotFoundError as _err:  # a checkout that is not pip-installed
    if _err.name != 'mmssl':
        raise
    sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
    import mmssl  # noqa: F401
from mmssl.engine.tool_errors import ToolError, tool_main  # noqa: E402


def _weights(items):
    out = {}
    for item in items or []:
        if '=' not in item:
            raise ValueError(f'--weights expects key=value, got {item!r}')
        k, v = item.split('=', 1)
        out[k.strip()] = float(v)
    return out


def _label_sets(text, num_classes, garment_label):
    if not text:
        return [[y for y in range(num_classes) if y != garment_label]]
    return [[int(y) for y in part.split(',') if y.strip()]
            for part in text.split(';') if part.strip()]


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='DiffFashion reference-based garment appearance transfer')
    p.add_argument('--garment', required=True, help='garment image')
    p.add_argument('--reference', required=True, help='appearance image')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument(
        '--config',
        help='config of the class-conditional diffusion model (e.g. '
        'configs/difffashion/ddpm_unet-tiny_1xb64-10e_embedded32.py); '
        'default: the model config stored in the checkpoint')
    p.add_argument('--checkpoint', help='diffusion model weights')
    p.add_argument(
        '--vit-config',
        help='config with the guidance ViT as model.backbone (default: '
        'DINO ViT-B/8 in mmpretrain layout)')
    p.add_argument('--vit-checkpoint', help='guidance ViT weights')
    p.add_argument(
        '--garment-label', type=int, default=0,
        help="the garment's class in the diffusion model")
    p.add_argument(
        '--mask-labels',
        help='unrelated label sets for the mask, e.g. "1,2,3;4" '
        '(default: one set of all other labels)')
    p.add_argument('--steps', type=int, default=200,
                   help='respaced denoising steps (reference: 200)')
    p.add_argument('--skip', type=int, default=80,
                   help='skipped steps out of 200 (reference: 80)')
    p.add_argument('--sampler', choices=['ddpm', 'ddim'], default='ddpm')
    p.add_argument('--resample', type=int, default=10,
                   help='repeats of the first step (reference: 10)')
    p.add_argument('--mask-threshold', type=float, default=-0.2)
    p.add_argument('--mask-smooth', type=int, default=1,
                   help='odd box filter of the mask score (1 = off, as '
                   'the reference)')
    p.add_argument('--mask-draws', type=int, default=1,
                   help='noise draws whose mask scores are averaged (1 = '
                   'the reference)')
    p.add_argument('--mask-source', choices=['trajectory', 'noised'],
                   default='trajectory',
                   help='trajectory: clean estimate of a denoising run '
                   '(the reference); noised: the garment noised to the '
                   'mask step')
    p.add_argument('--mask-contrast', choices=['mean', 'per_label'],
                   default='mean',
                   help='mean: contrast with the mean of the other labels '
                   '(the reference); per_label: mean of the per-label '
                   'contrasts')
    p.add_argument('--mask-mode', choices=['mean', 'per_set'],
                   default='mean',
                   help='mean: one mask from the mean of the label sets\' '
                   'scores; per_set: one mask and one transfer per label '
                   'set (the reference), written as result_set<k>.png / '
                   'mask_set<k>.png')
    p.add_argument('--mask', help='use this mask image instead of making '
                   'one (white = garment)')
    p.add_argument('--no-mask', action='store_true',
                   help='no mask: no background blending')
    p.add_argument('--no-colour-match', action='store_true')
    p.add_argument(
        '--weights', nargs='*',
        help='guidance weights key=value (ssim, contra, cls, dir, l2, range)')
    p.add_argument('--size', type=int,
                   help='working size (default: the UNet sample size)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--metrics', action='store_true',
                   help='also write metrics.json (structure, appearance, '
                   'background scores, seconds)')
    p.add_argument('--true-mask',
                   help='true garment silhouette (white = garment) for '
                   'metrics.json: background score outside it, mask IoU')
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def run(args) -> dict:
    """Run the transfer; returns the written paths and timings."""
    import torch
    from mmengine.utils import ProgressBar

    from mmssl.apis import (DiffFashion, fashion_metrics,
                            load_diffusion_model,
                            load_fashion_image, load_vit, make_grid,
                            write_outputs)
    model = load_diffusion_model(args.config, args.checkpoint, args.device)
    vit = load_vit(args.vit_config, args.vit_checkpoint, args.device)
    size = args.size or model.unet.config.sample_size
    garment = load_fashion_image(args.garment, size).to(args.device)
    reference = load_fashion_image(args.reference, size).to(args.device)
    mask = None
    if args.mask:
        mask = (load_fashion_image(args.mask, size).mean(1, keepdim=True) >
                0).float().to(args.device)
    num_classes = model.unet.config.num_class_embeds
    pipe = DiffFashion(
        model.unet,
        vit,
        garment_label=args.garment_label,
        mask_label_sets=_label_sets(args.mask_labels, num_classes,
                                    args.garment_label),
        scheduler=model.scheduler_cfg,
        sampler=args.sampler,
        num_steps=args.steps,
        skip=args.skip,
        resample=args.resample,
        mask_threshold=args.mask_threshold,
        mask_smooth=args.mask_smooth,
        mask_draws=args.mask_draws,
        mask_source=args.mask_source,
        mask_contrast=args.mask_contrast,
        mask_mode=args.mask_mode,
        loss_weights=_weights(args.weights),
        colour_matching=not args.no_colour_match)
    use_mask = not args.no_mask
    bar = ProgressBar(pipe.num_model_steps(use_mask and mask is None))
    start = time.time()
    out = pipe(garment, reference, mask=mask, use_mask=use_mask,
               seed=args.seed, progress=bar.update)
    seconds = time.time() - start
    print()
    mask_img = out['mask'] if out['mask'] is not None else \
        torch.ones_like(garment[:, :1])
    mask_img = mask_img * 2 - 1
    grid = make_grid([garment[0], reference[0], mask_img[0],
                      out['result'][0]])
    files = {'result.png': out['result'][0], 'mask.png': mask_img[0],
             'grid.png': grid}
    runs = out.get('per_set', [])
    rows = []
    for k, run in enumerate(runs):
        m = run['mask'][0] * 2 - 1
        files[f'result_set{k}.png'] = run['result'][0]
        files[f'mask_set{k}.png'] = m
        rows += [torch.ones(3, 2, grid.shape[2])] if rows else []
        rows.append(make_grid([garment[0], reference[0], m,
                               run['result'][0]]))
    if rows:  # one row per label set's mask and transfer
        files['grid.png'] = torch.cat(rows, dim=1)
    if args.metrics:
        true_mask = None
        if args.true_mask:
            true_mask = (load_fashion_image(args.true_mask, size).mean(
                1, keepdim=True) > 0).float().to(args.device)
        metrics = fashion_metrics(out['result'], garment, reference,
                                  out['mask'], pipe.extractor, true_mask)
        metrics.update(seconds=round(seconds, 2), steps=args.steps,
                       sampler=args.sampler, seed=args.seed,
                       use_mask=use_mask, weights=_weights(args.weights))
        files['metrics.json'] = metrics
        print(metrics)
    paths = write_outputs(args.out, files)
    return dict(paths=paths, seconds=seconds)


@tool_main
def main(argv=None) -> int:
    args = parse_args(argv)
    from mmssl.apis import MaskError
    try:
        info = run(args)
    except (MaskError, ValueError, KeyError) as err:
        # missing files and unsafe / broken checkpoints: tool_main
        raise ToolError(str(err)) from err
    print(f'{info["seconds"]:.1f} s; wrote ' +
          ', '.join(osp.basename(p) for p in info['paths']) +
          f' to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
