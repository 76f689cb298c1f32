# As difffashion_ddpm-tiny_mae-vit-tiny_embedded-pairs32.py, with the mask
# option that finds the garment best with the tiny DDPM (README.md, "Mask
# quality"): the label contrast is taken on the garment noised directly to
# the mask step (no denoising run), per unrelated label, averaged over 16
# noise draws.
_base_ = ['./difffashion_ddpm-tiny_mae-vit-tiny_embedded-pairs32.py']

model = dict(
    mask_generator=dict(source='noised', contrast='per_label', draws=16))
