"""Training data of the CSG generator: the built-in simulator, or (later) a user's data set."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch.utils.data import ConcatDataset

__all__ = ["SIMULATOR", "GENERATOR_CONTEXT_FIELDS", "generator_training_dataset"]

SIMULATOR = "simulator"
# the flat context fields the generator is conditioned on (a subset of the simulator's context)
GENERATOR_CONTEXT_FIELDS = ("preset", "finding", "probe", "depth_mm", "frequency_mhz", "gain_db", "dynamic_range_db")


def generator_training_dataset(
    dataset_dir: str = SIMULATOR,
    presets: Sequence[str] = ("breast", "fetal_head", "msk"),
    num_samples_per_preset: int = 1000,
    size: Sequence[int] = (128, 128),
    seed: int = 0,
    with_context_image: bool = False,
    context_fields: Sequence[str] = GENERATOR_CONTEXT_FIELDS,
    transform: Callable | None = None,
):
    """Items ``{"image", "label", "label_map" (unified classes), "context", ["context_image"]}`` for training.

    Args:
        dataset_dir: ``"simulator"`` for the built-in simulator (one dataset per preset, concatenated).
        presets: simulator presets to draw from.
        num_samples_per_preset: images per preset (an epoch).
        size: (H, W).
        seed: data-set seed (preset ``k`` uses ``seed + k`` so presets don't share anatomy seeds).
        with_context_image: add a style-matched context image per item.
        context_fields: flat context fields kept (what the context vocabulary encodes).
        transform: MONAI transform applied to each item.

    Raises:
        ValueError: for a ``dataset_dir`` other than the simulator: training the generator on a user's data set
            needs a mapping of its masks to the unified label space, which is not available yet.
    """
    if dataset_dir != SIMULATOR:
        raise ValueError(
            f"dataset_dir={dataset_dir!r}: the CSG generator trains on the built-in simulator only for now "
            f"(dataset_dir={SIMULATOR!r}); training on a user's data set (BUSI, HC18, folders, datalist) needs its "
            "masks mapped to the unified label classes, which is not supported yet."
        )
    from usgen_monai.data.simulator import SimulatedUltrasoundDataset

    return ConcatDataset(
        [
            SimulatedUltrasoundDataset(
                preset=preset,
                num_samples=num_samples_per_preset,
                size=tuple(size),
                seed=seed + k,
                unified_labels=True,
                context_fields=context_fields,
                with_context_image=with_context_image,
                transform=transform,
            )
            for k, preset in enumerate(presets)
        ]
    )
