"""usgen-monai: synthetic ultrasound (image, mask) pairs and the segmentation models that learn from them.

Importing the package is cheap and imports none of the optional extras (MONAI Label, MONAI Deploy, ITK).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
