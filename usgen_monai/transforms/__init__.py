"""Transforms: array and dictionary pairs (``Foo`` / ``Food``) in the MONAI style, one folder per topic.

Every public name of the topic packages (:py:mod:`usgen_monai.transforms.masks`,
:py:mod:`usgen_monai.transforms.ultrasound`, :py:mod:`usgen_monai.transforms.prompts`) is importable from here too.
"""

from __future__ import annotations

from usgen_monai.transforms import masks, prompts, ultrasound
from usgen_monai.transforms.masks import *  # noqa: F403 - re-exported, listed by masks.__all__
from usgen_monai.transforms.prompts import *  # noqa: F403 - re-exported, listed by prompts.__all__
from usgen_monai.transforms.ultrasound import *  # noqa: F403 - re-exported, listed by ultrasound.__all__

__all__ = [*masks.__all__, *prompts.__all__, *ultrasound.__all__]
