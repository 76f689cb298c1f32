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
weights, unreadable images, weights of another ViT than the one built, an
output path that is a file, a device that is not there, unknown guidance
weights, an empty mask) are printed on one line and exit with 2; the
argument checks run before any model is loaded.
"""
import argparse
import os.path as osp
import sys
import time

import mmssl  # noqa: F401  (safe weights-only checkpoint loader)
from mmssl.engine.tool_errors import ToolError, tool_main


def _weights(items):
    """``key=value`` items -> dict; unknown keys refused before any run."""
    from mmssl.models.diffusion import check_loss_weights
    out = {}
    for item in items or []:
        if '=' not in item:
            raise ToolError(f'--weights expects key=value, got {item!r}')
        k, v = item.split('=', 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise ToolError(
                f'--weights {item!r}: {v!r} is not a number') from None
    try:
        check_loss_weights(out)
    except (KeyError, ValueError) as err:
        raise ToolError(f'--weights: {err.args[0]}') from err
    return out


def _label_sets(text):
    """``"1,2,3;4"`` -> [[1, 2, 3], [4]]; empty -> None (all other
    labels)."""
    if not text:
        return None
    try:
        return [[int(y) for y in part.split(',') if y.strip()]
                for part in text.split(';') if part.strip()]
    except ValueError as err:
        raise ToolError(f'--mask-labels {text!r}: {err}; write label sets '
                        'like "1,2,3;4"') from err


def check_args(args) -> None:
    """Refuse arguments that would fail late: an output path that is a
    file, a device that is not there, unknown guidance weights."""
    import torch
    if osp.exists(args.out) and not osp.isdir(args.out):
        raise ToolError(f'--out {args.out} is a file; name a folder for '
                        'the results')
    try:
        device = torch.device(args.device)
    except RuntimeError as err:
        raise ToolError(f'--device {args.device!r}: {err}') from err
    if device.type == 'cuda':
        if not torch.cuda.is_available():
            raise ToolError(f'--device {args.device}: CUDA is not available '
                            'here; use --device cpu')
        if device.index is not None and \
                device.index >= torch.cuda.device_count():
            raise ToolError(f'--device {args.device}: there are only '
                            f'{torch.cuda.device_count()} CUDA device(s)')
    for flag, path in (('--garment', args.garment), ('--reference',
                                                     args.reference),
                       ('--mask', args.mask), ('--true-mask', args.true_mask)):
        if path is not None and not osp.isfile(path):
            raise ToolError(f'{flag} {path}: no such image file')
    args.weight_dict = _weights(args.weights)
    args.label_sets = _label_sets(args.mask_labels)


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
        '--garment-label',
        type=int,
        default=0,
        help="the garment's class in the diffusion model")
    p.add_argument(
        '--mask-labels',
        help='unrelated label sets for the mask, e.g. "1,2,3;4" '
        '(default: one set of all other labels)')
    p.add_argument(
        '--steps',
        type=int,
        default=200,
        help='respaced denoising steps (reference: 200)')
    p.add_argument(
        '--skip',
        type=int,
        default=80,
        help='skipped steps out of 200 (reference: 80)')
    p.add_argument('--sampler', choices=['ddpm', 'ddim'], default='ddpm')
    p.add_argument(
        '--resample',
        type=int,
        default=10,
        help='repeats of the first step (reference: 10)')
    p.add_argument('--mask-threshold', type=float, default=-0.2)
    p.add_argument(
        '--mask-smooth',
        type=int,
        default=1,
        help='odd box filter of the mask score (1 = off, as '
        'the reference)')
    p.add_argument(
        '--mask-draws',
        type=int,
        default=1,
        help='noise draws whose mask scores are averaged (1 = '
        'the reference)')
    p.add_argument(
        '--mask-source',
        choices=['trajectory', 'noised'],
        default='trajectory',
        help='trajectory: clean estimate of a denoising run '
        '(the reference); noised: the garment noised to the '
        'mask step')
    p.add_argument(
        '--mask-contrast',
        choices=['mean', 'per_label'],
        default='mean',
        help='mean: contrast with the mean of the other labels '
        '(the reference); per_label: mean of the per-label '
        'contrasts')
    p.add_argument(
        '--mask-mode',
        choices=['mean', 'per_set'],
        default='mean',
        help='mean: one mask from the mean of the label sets\' '
        'scores; per_set: one mask and one transfer per label '
        'set (the reference), written as result_set<k>.png / '
        'mask_set<k>.png')
    p.add_argument(
        '--mask',
        help='use this mask image instead of making '
        'one (white = garment)')
    p.add_argument(
        '--no-mask',
        action='store_true',
        help='no mask: no background blending')
    p.add_argument('--no-colour-match', action='store_true')
    p.add_argument(
        '--no-clip-x0',
        action='store_true',
        help='unclipped x0-hat in the DDPM posterior mean, as '
        'the reference command (clip_denoised=False); mmssl '
        'clips by default')
    p.add_argument(
        '--weights',
        nargs='*',
        help='guidance weights key=value (ssim, contra, cls, dir, l2, range)')
    p.add_argument(
        '--size',
        type=int,
        help='working size (default: the UNet sample size)')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument(
        '--metrics',
        action='store_true',
        help='also write metrics.json (structure, appearance, '
        'background scores, seconds)')
    p.add_argument(
        '--true-mask',
        help='true garment silhouette (white = garment) for '
        'metrics.json: background score outside it, mask IoU')
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def run(args) -> dict:
    """Run the transfer; returns the written paths and timings."""
    import torch
    from mmengine.utils import ProgressBar

    from mmssl.apis import DiffFashion, write_outputs
    from mmssl.visualization import make_grid
    pipe = DiffFashion.from_files(
        args.checkpoint,
        args.vit_checkpoint,
        config=args.config,
        vit_config=args.vit_config,
        device=args.device,
        size=args.size,
        garment_label=args.garment_label,
        schedule=dict(
            sampler=args.sampler,
            num_steps=args.steps,
            skip=args.skip,
            resample=args.resample,
            clip_x0=not args.no_clip_x0),
        mask_generator=dict(
            type='mmssl.LabelContrastMaskGenerator',
            label_sets=args.label_sets,
            mode=args.mask_mode,
            threshold=args.mask_threshold,
            draws=args.mask_draws,
            source=args.mask_source,
            contrast=args.mask_contrast,
            smooth=args.mask_smooth),
        guidance=dict(weights=args.weight_dict),
        colour_matching=not args.no_colour_match)
    use_mask = not args.no_mask
    bar = ProgressBar(pipe.num_model_steps(use_mask and args.mask is None))
    start = time.time()
    out = pipe(
        args.garment,
        args.reference,
        mask=args.mask,
        use_mask=use_mask,
        seed=args.seed,
        progress=bar.update)
    seconds = time.time() - start
    print()
    garment, reference = out['garment'][0], out['reference'][0]
    mask_img = out['mask'] if out['mask'] is not None else \
        torch.ones_like(out['garment'][:, :1])
    mask_img = mask_img * 2 - 1
    files = {'result.png': out['result'][0], 'mask.png': mask_img[0]}
    rows = [[garment, reference, mask_img[0], out['result'][0]]]
    if out.get('per_set'):  # one row per label set's mask and transfer
        rows = []
        for k, run in enumerate(out['per_set']):
            m = run['mask'][0] * 2 - 1
            files[f'result_set{k}.png'] = run['result'][0]
            files[f'mask_set{k}.png'] = m
            rows.append([garment, reference, m, run['result'][0]])
    files['grid.png'] = make_grid(rows)
    if args.metrics:
        metrics = pipe.metrics(out, args.true_mask)
        metrics.update(
            seconds=round(seconds, 2),
            steps=args.steps,
            sampler=args.sampler,
            seed=args.seed,
            use_mask=use_mask,
            weights=args.weight_dict)
        files['metrics.json'] = metrics
        print(metrics)
    paths = write_outputs(args.out, files)
    return dict(paths=paths, seconds=seconds)


@tool_main
def main(argv=None) -> int:
    args = parse_args(argv)
    check_args(args)
    try:
        info = run(args)
    except (ValueError, KeyError) as err:  # MaskError is a ValueError
        # missing files and unsafe / broken checkpoints: tool_main
        raise ToolError(err.args[0] if err.args else str(err)) from err
    print(f'{info["seconds"]:.1f} s; wrote ' +
          ', '.join(osp.basename(p)
                    for p in info['paths']) + f' to {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
