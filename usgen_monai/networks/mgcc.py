"""MGCC: a U-Net with a ConvMixer bottleneck and one main plus several perturbed auxiliary decoders.

Multi-Level Global Context Cross-consistency (Tang et al., "Multi-Level Global Context Cross Consistency Model for
Semi-Supervised Ultrasound Image Segmentation with Diffusion Model", https://arxiv.org/abs/2305.09447). The network
is written from the description in the paper and checked against the authors' public implementation
(``FengheTan9/Multi-Level-Global-Context-Cross-Consistency``, ``src/network/MGCC.py``); at the paper's width it has
the same number of parameters (see :py:class:`MGCCNet`).

Layout (``c = channels``, five levels, each level halves the spatial size)::

    x -> ConvBlock(c0) -> pool -> ConvBlock(c1) -> ... -> ConvBlock(c4) = f5
    f5 -> [perturb_1 -> aux decoder 1] -> ConvMixer stage 1 -> [perturb_2 -> aux decoder 2] -> stage 2 -> ...
       -> stage n -> main decoder

Every decoder has its own up-convolutions, convolution blocks and multi-scale attention gates (nothing is shared
between decoders) and reads the four encoder skips ``f1..f4`` through its gates plus the bottleneck features at its
depth. Perturbations are drawn with torch's random functions (``torch.manual_seed`` or a ``generator`` passed to
``forward`` make them reproducible) and are active only in training mode.

Training with the network (what the authors' ``train.py`` does): supervised loss (BCE + Dice) averaged over all
outputs on the labelled half of the batch, plus a consistency loss ``mean((main - aux_i) ** 2)`` between sigmoid
probabilities on the unlabelled half, averaged over the auxiliary outputs and weighted by the sigmoid ramp-up
``7 * exp(-5 * (1 - t) ** 2)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = [
    "ConvBlock",
    "UpConv",
    "MultiScaleAttentionGate",
    "ConvMixerLayer",
    "ConvMixerBlock",
    "FeatureNoise",
    "Dropout",
    "FeatureDropout",
    "NoPerturbation",
    "MGCCDecoder",
    "MGCCNet",
]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_NORM = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
_POOL = {2: nn.MaxPool2d, 3: nn.MaxPool3d}
_PERTURBATIONS = ("feature_noise", "dropout", "feature_dropout", "none")


def _check_spatial_dims(spatial_dims: int) -> None:
    if spatial_dims not in _CONV:
        raise ValueError(f"spatial_dims must be 2 or 3, got spatial_dims={spatial_dims}.")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {name}={value}.")


class ConvBlock(nn.Module):
    """Two ``3x3`` convolutions, each followed by batch norm and ReLU (the U-Net double convolution).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3. Defaults to 2.
        in_channels: input channels.
        out_channels: output channels.

    Examples::

        block = ConvBlock(2, 3, 16)
        y = block(torch.rand(1, 3, 32, 32))  # (1, 16, 32, 32)
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 16) -> None:
        super().__init__()
        _check_spatial_dims(spatial_dims)
        _check_positive(in_channels=in_channels, out_channels=out_channels)
        conv, norm = _CONV[spatial_dims], _NORM[spatial_dims]
        self.conv = nn.Sequential(
            conv(in_channels, out_channels, kernel_size=3, padding=1),
            norm(out_channels),
            nn.ReLU(inplace=True),
            conv(out_channels, out_channels, kernel_size=3, padding=1),
            norm(out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, *spatial) -> (B, out_channels, *spatial)``."""
        return self.conv(x)


class UpConv(nn.Module):
    """Nearest-neighbour upsampling by 2, then a ``3x3`` convolution, batch norm and ReLU.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3. Defaults to 2.
        in_channels: input channels.
        out_channels: output channels.

    Examples::

        up = UpConv(2, 32, 16)
        y = up(torch.rand(1, 32, 8, 8))  # (1, 16, 16, 16)
    """

    def __init__(self, spatial_dims: int = 2, in_channels: int = 32, out_channels: int = 16) -> None:
        super().__init__()
        _check_spatial_dims(spatial_dims)
        _check_positive(in_channels=in_channels, out_channels=out_channels)
        self.up = nn.Sequential(
            nn.Upsample(scale_factor=2.0, mode="nearest"),
            _CONV[spatial_dims](in_channels, out_channels, kernel_size=3, padding=1),
            _NORM[spatial_dims](out_channels),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, *spatial) -> (B, out_channels, *(2 * spatial))``."""
        return self.up(x)


class MultiScaleAttentionGate(nn.Module):
    """Multi-scale attention gate (MSAG): pointwise, ``3x3`` and dilated ``3x3`` branches vote a sigmoid gate.

    From CMU-Net (Tang et al., https://arxiv.org/abs/2210.13012) as used by MGCC on every decoder skip. Each branch is
    a convolution with batch norm; the three are concatenated, passed through ReLU, and a ``1x1`` convolution with
    batch norm and sigmoid gives the gate ``g``. The output is ``x + x * g`` (same shape as ``x``).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3. Defaults to 2.
        channels: channels of the gated features.

    Examples::

        gate = MultiScaleAttentionGate(2, 16)
        y = gate(torch.rand(1, 16, 32, 32))  # (1, 16, 32, 32)
    """

    def __init__(self, spatial_dims: int = 2, channels: int = 16) -> None:
        super().__init__()
        _check_spatial_dims(spatial_dims)
        _check_positive(channels=channels)
        conv, norm = _CONV[spatial_dims], _NORM[spatial_dims]
        self.pointwise = nn.Sequential(conv(channels, channels, kernel_size=1), norm(channels))
        self.ordinary = nn.Sequential(conv(channels, channels, kernel_size=3, padding=1), norm(channels))
        self.dilated = nn.Sequential(conv(channels, channels, kernel_size=3, padding=2, dilation=2), norm(channels))
        self.relu = nn.ReLU(inplace=True)
        self.vote = nn.Sequential(conv(3 * channels, channels, kernel_size=1), norm(channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, channels, *spatial) -> (B, channels, *spatial)``."""
        branches = torch.cat((self.pointwise(x), self.ordinary(x), self.dilated(x)), dim=1)
        gate = self.vote(self.relu(branches))
        return x + x * gate


class ConvMixerLayer(nn.Module):
    """One ConvMixer layer (Trockman and Kolter, https://arxiv.org/abs/2201.09792).

    ``x = x + BN(GELU(depthwise_conv_k(x)))`` followed by ``x = BN(GELU(pointwise_conv(x)))``. The residual spans
    the depthwise part only, and GELU comes before batch norm, as in the ConvMixer paper and the MGCC code.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3. Defaults to 2.
        channels: feature channels (kept).
        kernel_size: odd size of the depthwise kernel. Defaults to 7.

    Examples::

        layer = ConvMixerLayer(2, 64, kernel_size=7)
        y = layer(torch.rand(1, 64, 16, 16))  # (1, 64, 16, 16)
    """

    def __init__(self, spatial_dims: int = 2, channels: int = 256, kernel_size: int = 7) -> None:
        super().__init__()
        _check_spatial_dims(spatial_dims)
        _check_positive(channels=channels, kernel_size=kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got kernel_size={kernel_size}.")
        conv, norm = _CONV[spatial_dims], _NORM[spatial_dims]
        self.depthwise = nn.Sequential(
            conv(channels, channels, kernel_size=kernel_size, padding=kernel_size // 2, groups=channels),
            nn.GELU(),
            norm(channels),
        )
        self.pointwise = nn.Sequential(conv(channels, channels, kernel_size=1), nn.GELU(), norm(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, channels, *spatial) -> (B, channels, *spatial)``."""
        return self.pointwise(x + self.depthwise(x))


class ConvMixerBlock(nn.Module):
    """A ConvMixer stage: ``depth`` :py:class:`ConvMixerLayer` in sequence (one "global context" level of MGCC).

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3. Defaults to 2.
        channels: feature channels (kept).
        depth: number of layers. Defaults to 3 (the paper's ``length = (3, 3, 3)``).
        kernel_size: odd size of the depthwise kernels. Defaults to 7.

    Examples::

        stage = ConvMixerBlock(2, 64, depth=3, kernel_size=7)
        y = stage(torch.rand(1, 64, 16, 16))  # (1, 64, 16, 16)
    """

    def __init__(self, spatial_dims: int = 2, channels: int = 256, depth: int = 3, kernel_size: int = 7) -> None:
        super().__init__()
        _check_positive(depth=depth)
        self.layers = nn.Sequential(*[ConvMixerLayer(spatial_dims, channels, kernel_size) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, channels, *spatial) -> (B, channels, *spatial)``."""
        return self.layers(x)


class FeatureNoise(nn.Module):
    """Multiplicative uniform feature noise: ``x + x * u`` with ``u ~ U(-noise_range, noise_range)``.

    As in the MGCC code, one noise map of shape ``x.shape[1:]`` is drawn per call and shared by the whole batch.
    Identity in eval mode.

    Args:
        noise_range: half-width of the uniform distribution. Defaults to 0.3.

    Examples::

        noise = FeatureNoise(0.3).train()
        y = noise(torch.rand(2, 4, 8, 8), generator=torch.Generator().manual_seed(0))  # (2, 4, 8, 8)
    """

    def __init__(self, noise_range: float = 0.3) -> None:
        super().__init__()
        if not noise_range >= 0.0:
            raise ValueError(f"noise_range must be >= 0, got noise_range={noise_range}.")
        self.noise_range = float(noise_range)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, C, *spatial) -> (B, C, *spatial)``; ``generator`` must live on ``x``'s device."""
        if not self.training or self.noise_range == 0.0:
            return x
        u = torch.rand(x.shape[1:], generator=generator, device=x.device, dtype=x.dtype)
        u = (2.0 * u - 1.0) * self.noise_range
        return x + x * u.unsqueeze(0)


class Dropout(nn.Module):
    """Element-wise dropout with rescaling by ``1 / (1 - prob)``, like ``torch.nn.Dropout`` but taking a generator.

    Identity in eval mode.

    Args:
        prob: probability of zeroing an element, in ``[0, 1)``. Defaults to 0.3.

    Examples::

        drop = Dropout(0.3).train()
        y = drop(torch.rand(2, 4, 8, 8), generator=torch.Generator().manual_seed(0))  # (2, 4, 8, 8)
    """

    def __init__(self, prob: float = 0.3) -> None:
        super().__init__()
        if not 0.0 <= prob < 1.0:
            raise ValueError(f"prob must be in [0, 1), got prob={prob}.")
        self.prob = float(prob)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, C, *spatial) -> (B, C, *spatial)``; ``generator`` must live on ``x``'s device."""
        if not self.training or self.prob == 0.0:
            return x
        keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype) >= self.prob
        return x * keep.to(x.dtype) / (1.0 - self.prob)


class FeatureDropout(nn.Module):
    """Attention-based feature dropout: zero the positions where the channel-mean attention is high.

    The attention map is the mean over channels; positions whose attention is at least ``gamma`` times the sample's
    maximum attention are set to zero in every channel (no rescaling). As in the MGCC code, one
    ``gamma ~ U(low, high)`` is drawn per call and shared by the batch. Identity in eval mode.

    Args:
        threshold_range: ``(low, high)`` of ``gamma``, with ``0 <= low <= high``. Defaults to ``(0.7, 0.9)``.

    Examples::

        drop = FeatureDropout((0.7, 0.9)).train()
        y = drop(torch.rand(2, 4, 8, 8), generator=torch.Generator().manual_seed(0))  # (2, 4, 8, 8)
    """

    def __init__(self, threshold_range: Sequence[float] = (0.7, 0.9)) -> None:
        super().__init__()
        values = tuple(float(v) for v in threshold_range)
        if len(values) != 2 or not 0.0 <= values[0] <= values[1]:
            raise ValueError(
                "threshold_range must be (low, high) with 0 <= low <= high, "
                f"got threshold_range={tuple(threshold_range)}."
            )
        self.low, self.high = values

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, C, *spatial) -> (B, C, *spatial)``; ``generator`` must live on ``x``'s device."""
        if not self.training:
            return x
        gamma = self.low + (self.high - self.low) * torch.rand((), generator=generator, device=x.device, dtype=x.dtype)
        attention = x.mean(dim=1, keepdim=True)
        peak = attention.amax(dim=list(range(1, x.dim())), keepdim=True)
        return x * (attention < peak * gamma).to(x.dtype)


class NoPerturbation(nn.Module):
    """No perturbation; takes (and ignores) a generator so it can stand in for the perturbations above."""

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``(B, C, *spatial) -> (B, C, *spatial)``, unchanged."""
        return x


class MGCCDecoder(nn.Module):
    """U-Net decoder over five feature levels with a multi-scale attention gate on each of the four skips.

    From the deepest level up: ``x = ConvBlock(cat(gate_i(skip_i), UpConv(x)))``; a final ``1x1`` convolution gives
    the logits. The skip comes first in the concatenation, as in the MGCC code.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3. Defaults to 2.
        channels: the five encoder widths, shallowest first. Defaults to ``(16, 32, 64, 128, 256)``.
        out_channels: output (logit) channels. Defaults to 1.

    Examples::

        dec = MGCCDecoder(2, (4, 8, 16, 32, 64), out_channels=2)
        feats = [torch.rand(1, c, 64 // 2**i, 64 // 2**i) for i, c in enumerate((4, 8, 16, 32, 64))]
        y = dec(feats)  # (1, 2, 64, 64)
    """

    def __init__(
        self, spatial_dims: int = 2, channels: Sequence[int] = (16, 32, 64, 128, 256), out_channels: int = 1
    ) -> None:
        super().__init__()
        _check_spatial_dims(spatial_dims)
        channels = tuple(channels)
        if len(channels) != 5:
            raise ValueError(f"channels must hold five widths, got channels={channels}.")
        _check_positive(out_channels=out_channels, **{f"channels[{i}]": c for i, c in enumerate(channels)})
        deep_first = list(reversed(range(4)))
        self.ups = nn.ModuleList(UpConv(spatial_dims, channels[i + 1], channels[i]) for i in deep_first)
        self.gates = nn.ModuleList(MultiScaleAttentionGate(spatial_dims, channels[i]) for i in deep_first)
        self.convs = nn.ModuleList(ConvBlock(spatial_dims, 2 * channels[i], channels[i]) for i in deep_first)
        self.head = _CONV[spatial_dims](channels[0], out_channels, kernel_size=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Five features ``(B, channels[i], *(spatial / 2**i))``, shallowest first -> ``(B, out_channels, *spatial)``.

        Args:
            features: the encoder features of levels 0..4 (the last one is the bottleneck).
        """
        x = features[4]
        for i, (up, gate, conv) in enumerate(zip(self.ups, self.gates, self.convs)):
            x = conv(torch.cat((gate(features[3 - i]), up(x)), dim=1))
        return self.head(x)


class MGCCNet(nn.Module):
    """MGCC segmentation network: U-Net encoder, ConvMixer bottleneck, one main and ``num_mixer_stages`` aux decoders.

    Tang et al., "Multi-Level Global Context Cross Consistency Model for Semi-Supervised Ultrasound Image
    Segmentation with Diffusion Model", https://arxiv.org/abs/2305.09447.

    The encoder has five :py:class:`ConvBlock` levels of widths ``channels`` (by default ``16k, 32k, 64k, 128k, 256k``
    for ``k = width_multiplier``; the paper uses ``k = 4``, i.e. 64..1024) separated by max pooling. The bottleneck is
    ``num_mixer_stages`` :py:class:`ConvMixerBlock` stages. Auxiliary decoder ``i`` reads the bottleneck features
    *before* stage ``i`` and the main decoder reads the output of the last stage, unperturbed. Each decoder is a
    separate :py:class:`MGCCDecoder` (own attention gates, up-convolutions and convolution blocks).

    Where this follows the authors' code rather than the issue's summary:

    * Order of perturbations. The code feeds auxiliary decoder 1 (before stage 1) with uniform feature noise,
      decoder 2 (after stage 1) with dropout 0.3 and decoder 3 (after stage 2) with attention-based feature dropout,
      the reverse of the summary's order; ``perturbations`` defaults to the code's order.
    * Perturbations apply to all five feature levels an auxiliary decoder reads (the four skips and the bottleneck),
      with a fresh draw for each level and each decoder, not to the bottleneck alone.
    * Feature dropout zeroes the positions whose channel-mean attention is *at or above* ``gamma`` times its maximum
      (the summary said "below"), with one ``gamma ~ U(0.7, 0.9)`` per call and no rescaling.
    * Feature noise is multiplicative (``x + x * u``), with one noise map per call shared across the batch.

    Input spatial sizes must be divisible by 16 (four poolings). With k = 4 and 3 input channels (the authors'
    ``MGCC()`` defaults, binary output) the network has 122,182,980 parameters, the same as the authors' code.

    In training mode ``forward`` returns a list ``[main, aux_1, ..., aux_n]`` of logits, each
    ``(B, out_channels, *spatial)``: ``sum(loss(o, y) for o in out) / len(out)`` gives the supervised term (or
    ``monai.losses.DeepSupervisionLoss(loss, weights=[1 / len(out)] * len(out))``) and ``out[0]`` against each of
    ``out[1:]`` the consistency term. In eval mode it runs the encoder, the bottleneck and the main decoder only, and
    returns the main logits as one tensor. The network is TorchScript-scriptable (:py:func:`torch.jit.script`).

    Args:
        spatial_dims: number of spatial dimensions, 2 (the paper's) or 3. Defaults to 2.
        in_channels: input channels. Defaults to 1.
        out_channels: output (logit) channels: 1 for binary segmentation (the paper's), the number of classes for
            multi-class. Defaults to 1.
        width_multiplier: ``k`` in the widths ``(16k, 32k, 64k, 128k, 256k)``. Defaults to 1; the paper uses 4.
        channels: the five encoder widths, shallowest first, instead of ``width_multiplier`` (for example
            ``(8, 16, 32, 64, 128)`` on a CPU); then ``width_multiplier`` must be left at 1. Defaults to None.
        mixer_depth: ConvMixer layers per stage. Defaults to 3.
        mixer_kernel_size: odd depthwise kernel size of the ConvMixer layers. Defaults to 7.
        num_mixer_stages: ConvMixer stages, which is also the number of auxiliary decoders. Defaults to 3.
        perturbations: the perturbation of each auxiliary decoder's inputs, one of ``"feature_noise"``,
            ``"dropout"``, ``"feature_dropout"`` or ``"none"`` per stage. Defaults to
            ``("feature_noise", "dropout", "feature_dropout")`` (the authors' code).
        noise_range: half-width of the uniform feature noise. Defaults to 0.3.
        dropout_prob: dropout probability. Defaults to 0.3.
        feature_dropout_range: range of the feature-dropout threshold factor. Defaults to ``(0.7, 0.9)``.

    Examples::

        net = MGCCNet(in_channels=1, out_channels=1, channels=(8, 16, 32, 64, 128))
        main, aux1, aux2, aux3 = net.train()(torch.rand(2, 1, 64, 64))  # four (2, 1, 64, 64) tensors
        logits = net.eval()(torch.rand(2, 1, 64, 64))  # (2, 1, 64, 64)
        scripted = torch.jit.script(net.eval())

    See Also:
        :py:class:`MGCCDecoder`, :py:class:`ConvMixerBlock`, :py:class:`MultiScaleAttentionGate`
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        out_channels: int = 1,
        width_multiplier: int = 1,
        channels: Sequence[int] | None = None,
        mixer_depth: int = 3,
        mixer_kernel_size: int = 7,
        num_mixer_stages: int = 3,
        perturbations: Sequence[str] = ("feature_noise", "dropout", "feature_dropout"),
        noise_range: float = 0.3,
        dropout_prob: float = 0.3,
        feature_dropout_range: Sequence[float] = (0.7, 0.9),
    ) -> None:
        super().__init__()
        _check_spatial_dims(spatial_dims)
        _check_positive(
            in_channels=in_channels,
            out_channels=out_channels,
            width_multiplier=width_multiplier,
            mixer_depth=mixer_depth,
            num_mixer_stages=num_mixer_stages,
        )
        if channels is None:
            channels = tuple(w * width_multiplier for w in (16, 32, 64, 128, 256))
        elif width_multiplier != 1:
            raise ValueError(
                "give either channels or width_multiplier, not both: "
                f"got channels={tuple(channels)}, width_multiplier={width_multiplier}."
            )
        channels = tuple(channels)
        if len(channels) != 5:
            raise ValueError(f"channels must hold five widths, got channels={channels}.")
        _check_positive(**{f"channels[{i}]": c for i, c in enumerate(channels)})
        perturbations = (perturbations,) if isinstance(perturbations, str) else tuple(perturbations)
        if len(perturbations) != num_mixer_stages:
            raise ValueError(
                "perturbations needs one entry per ConvMixer stage: "
                f"got perturbations={perturbations}, num_mixer_stages={num_mixer_stages}."
            )
        if any(p not in _PERTURBATIONS for p in perturbations):
            raise ValueError(f"perturbations must be among {_PERTURBATIONS}, got perturbations={perturbations}.")

        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.channels = channels

        self.encoder = nn.ModuleList(
            ConvBlock(spatial_dims, c_in, c_out) for c_in, c_out in zip((in_channels,) + channels[:-1], channels)
        )
        self.pool = _POOL[spatial_dims](kernel_size=2, stride=2)
        self.mixers = nn.ModuleList(
            ConvMixerBlock(spatial_dims, channels[-1], mixer_depth, mixer_kernel_size) for _ in range(num_mixer_stages)
        )
        makers = {
            "feature_noise": lambda: FeatureNoise(noise_range),
            "dropout": lambda: Dropout(dropout_prob),
            "feature_dropout": lambda: FeatureDropout(feature_dropout_range),
            "none": NoPerturbation,
        }
        self.perturbations = nn.ModuleList(makers[p]() for p in perturbations)
        self.aux_decoders = nn.ModuleList(
            MGCCDecoder(spatial_dims, channels, out_channels) for _ in range(num_mixer_stages)
        )
        self.main_decoder = MGCCDecoder(spatial_dims, channels, out_channels)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor | list[torch.Tensor]:
        """Segment ``x``.

        Args:
            x: images ``(B, in_channels, H, W[, D])``, every spatial size divisible by 16.
            generator: optional ``torch.Generator`` on ``x``'s device for the training-mode perturbations; without
                it they use torch's default generator (``torch.manual_seed``). Unused in eval mode.

        Returns:
            Eval mode: main logits ``(B, out_channels, H, W[, D])``. Training mode: the list
            ``[main, aux_1, ..., aux_n]`` of logits of that shape.
        """
        if not torch.jit.is_tracing():
            if x.dim() != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
                raise ValueError(
                    f"expected input of shape (B, {self.in_channels}, *{self.spatial_dims} spatial sizes), "
                    f"got shape {list(x.shape)}."
                )
            for size in x.shape[2:]:
                if size % 16 != 0:
                    raise ValueError(f"spatial sizes must be divisible by 16, got shape {list(x.shape)}.")

        features: list[torch.Tensor] = []
        h = x
        for i, block in enumerate(self.encoder):
            h = block(h if i == 0 else self.pool(h))
            features.append(h)
        skips = features[:4]
        bottleneck = features[4]

        if not self.training:
            for mixer in self.mixers:
                bottleneck = mixer(bottleneck)
            return self.main_decoder(skips + [bottleneck])

        outputs: list[torch.Tensor] = []
        for mixer, perturb, decoder in zip(self.mixers, self.perturbations, self.aux_decoders):
            perturbed = [perturb(f, generator) for f in skips + [bottleneck]]
            outputs.append(decoder(perturbed))
            bottleneck = mixer(bottleneck)
        return [self.main_decoder(skips + [bottleneck])] + outputs
