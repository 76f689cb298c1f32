# Copyright (c) mmssl contributors. All rights reserved.
"""Prompt templates for zero-shot CLIP classifiers and NFL targets.

``OPENAI_IMAGENET_TEMPLATES`` are the 80 ImageNet prompts of OpenAI's CLIP
("Prompt_Engineering_for_ImageNet.ipynb"); SubPT's NFL targets and CoOp's
``ZeroshotCLIP2`` average them (plus the data set's own template, except on
ImageNet). ``COOP_DATASET_TEMPLATES`` are CoOp's per-data-set templates
(``CUSTOM_TEMPLATES`` of its ``zsclip.py``), keyed by mmssl's data-set
config names.
"""
from typing import Dict, List, Sequence, Tuple, Union

__all__ = [
    'OPENAI_IMAGENET_TEMPLATES', 'COOP_DATASET_TEMPLATES', 'TEMPLATE_SETS',
    'resolve_templates'
]

#: OpenAI's 80 ImageNet prompt templates, in their order.
OPENAI_IMAGENET_TEMPLATES: Tuple[str, ...] = (
    'a bad photo of a {}.',
    'a photo of many {}.',
    'a sculpture of a {}.',
    'a photo of the hard to see {}.',
    'a low resolution photo of the {}.',
    'a rendering of a {}.',
    'graffiti of a {}.',
    'a bad photo of the {}.',
    'a cropped photo of the {}.',
    'a tattoo of a {}.',
    'the embroidered {}.',
    'a photo of a hard to see {}.',
    'a bright photo of a {}.',
    'a photo of a clean {}.',
    'a photo of a dirty {}.',
    'a dark photo of the {}.',
    'a drawing of a {}.',
    'a photo of my {}.',
    'the plastic {}.',
    'a photo of the cool {}.',
    'a close-up photo of a {}.',
    'a black and white photo of the {}.',
    'a painting of the {}.',
    'a painting of a {}.',
    'a pixelated photo of the {}.',
    'a sculpture of the {}.',
    'a bright photo of the {}.',
    'a cropped photo of a {}.',
    'a plastic {}.',
    'a photo of the dirty {}.',
    'a jpeg corrupted photo of a {}.',
    'a blurry photo of the {}.',
    'a photo of the {}.',
    'a good photo of the {}.',
    'a rendering of the {}.',
    'a {} in a video game.',
    'a photo of one {}.',
    'a doodle of a {}.',
    'a close-up photo of the {}.',
    'a photo of a {}.',
    'the origami {}.',
    'the {} in a video game.',
    'a sketch of a {}.',
    'a doodle of the {}.',
    'a origami {}.',
    'a low resolution photo of a {}.',
    'the toy {}.',
    'a rendition of the {}.',
    'a photo of the clean {}.',
    'a photo of a large {}.',
    'a rendition of a {}.',
    'a photo of a nice {}.',
    'a photo of a weird {}.',
    'a blurry photo of a {}.',
    'a cartoon {}.',
    'art of a {}.',
    'a sketch of the {}.',
    'a embroidered {}.',
    'a pixelated photo of a {}.',
    'itap of the {}.',
    'a jpeg corrupted photo of the {}.',
    'a good photo of a {}.',
    'a plushie {}.',
    'a photo of the nice {}.',
    'a photo of the small {}.',
    'a photo of the weird {}.',
    'the cartoon {}.',
    'art of the {}.',
    'a drawing of the {}.',
    'a photo of the large {}.',
    'a black and white photo of a {}.',
    'the plushie {}.',
    'a dark photo of a {}.',
    'itap of a {}.',
    'graffiti of the {}.',
    'a toy {}.',
    'itap of my {}.',
    'a photo of a cool {}.',
    'a photo of a small {}.',
    'a tattoo of the {}.',
)

#: CoOp's template of each data set (mmssl config names).
COOP_DATASET_TEMPLATES: Dict[str, str] = dict(
    imagenet='a photo of a {}.',
    caltech101='a photo of a {}.',
    oxford_pets='a photo of a {}, a type of pet.',
    stanford_cars='a photo of a {}.',
    flowers102='a photo of a {}, a type of flower.',
    food101='a photo of {}, a type of food.',
    fgvc_aircraft='a photo of a {}, a type of aircraft.',
    sun397='a photo of a {}.',
    dtd='{} texture.',
    eurosat='a centered satellite photo of {}.',
    ucf101='a photo of a person doing {}.',
)

#: Named template sets that ``templates`` arguments accept.
TEMPLATE_SETS: Dict[str, Tuple[str, ...]] = dict(
    openai_imagenet=OPENAI_IMAGENET_TEMPLATES)


def resolve_templates(templates: Union[str, Sequence[str]]) -> List[str]:
    """Expand a ``templates`` config value into a list of templates.

    Args:
        templates (str | Sequence[str]): a template with one ``{}`` (e.g.
            ``'a photo of a {}.'``), a name of :data:`TEMPLATE_SETS`
            (``'openai_imagenet'``: the 80 templates), or a list of both,
            e.g. ``['openai_imagenet', '{} texture.']`` (80 + 1).

    Returns:
        list[str]: the templates, each with exactly one ``{}``.
    """
    if isinstance(templates, str):
        templates = [templates]
    out: List[str] = []
    for item in templates:
        if not isinstance(item, str):
            raise TypeError(f'templates: expected strings, got {item!r}')
        if item in TEMPLATE_SETS:
            out.extend(TEMPLATE_SETS[item])
        elif item.count('{}') == 1:
            out.append(item)
        else:
            raise ValueError(
                f'templates: {item!r} is neither a template with one "{{}}" '
                f'for the class name nor a template set '
                f'({sorted(TEMPLATE_SETS)}); write e.g. "a photo of a {{}}."')
    if not out:
        raise ValueError('templates is empty; give e.g. ["a photo of a {}."] '
                         "or 'openai_imagenet'")
    return out
