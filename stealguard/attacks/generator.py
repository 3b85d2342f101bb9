"""``ImageGenerator``: the query generator of the data-free attacks.

The DCGAN-style generator used by DFAD, DFME (Truong et al., CVPR 2021) and MAZE
(Kariyappa et al., CVPR 2021): ``z`` -> linear -> ``(2w, s/4, s/4)`` -> BN -> upsample x2 ->
conv 3x3 (2w) -> BN -> LeakyReLU(0.2) -> upsample x2 -> conv 3x3 (w) -> BN -> LeakyReLU(0.2)
-> conv 3x3 (C) [-> BN(C)] -> tanh, mapped to pixels in [0, 1] with ``(t + 1) / 2`` (the
victims take pixel-space inputs and normalise inside).

``final_norm`` chooses the last BatchNorm before tanh: ``"batchnorm"`` (``affine=False``, as
DFME's ``network/gan.py::GeneratorA``), ``"batchnorm_affine"`` (``affine=True``, as MAZE's
``models/conv3_gen.py``) or ``"none"`` (this project's earlier generator). The reference
attacks perturb the pre-tanh output (:meth:`ImageGenerator.pre_activation`), so their
queries stay in range without clipping.

The convolution weights are kept in ``channels_last`` memory format: on CPU (oneDNN) this
halves the generator's forward time, which dominates a data-free attack's cost (measured
2x at width 64 on 28x28 outputs, batch 256). Outputs are returned contiguous (NCHW).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stealguard._checks import check_choice, check_int

FINAL_NORMS = ("none", "batchnorm", "batchnorm_affine")


class ImageGenerator(nn.Module):
    """Generator ``G(z)``: latent ``(N, latent_dim)`` -> images ``(N, C, H, W)`` in [0, 1].

    Args:
        input_shape: ``(C, H, W)`` of the victim's inputs; any H, W >= 4 (the last upsampling
            goes straight to ``(H, W)``).
        latent_dim: size of z, >= 1.
        width: channels ``w`` of the last hidden block, >= 1 (the first has 2w).
        final_norm: ``"none"`` (default), ``"batchnorm"`` or ``"batchnorm_affine"``: the
            BatchNorm over the C output channels before tanh (see the module docstring).
    """

    def __init__(
        self, input_shape: tuple[int, int, int], *, latent_dim: int = 256, width: int = 64, final_norm: str = "none"
    ) -> None:
        super().__init__()
        channels, height, side = (int(v) for v in input_shape)
        check_int("input height", height, low=4)
        check_int("input width", side, low=4)
        self.input_shape = (channels, height, side)
        self.latent_dim = check_int("latent_dim", latent_dim, low=1)
        width = check_int("width", width, low=1)
        self.start = (max(height // 4, 1), max(side // 4, 1))
        self.project = nn.Linear(self.latent_dim, 2 * width * self.start[0] * self.start[1])
        self.norm0 = nn.BatchNorm2d(2 * width)
        self.block1 = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.LeakyReLU(0.2))
        self.block2 = nn.Sequential(
            nn.Conv2d(2 * width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, channels, 3, padding=1),
        )
        self.final_norm = check_choice("final_norm", final_norm, FINAL_NORMS)
        if self.final_norm != "none":
            self.block2.append(nn.BatchNorm2d(channels, affine=self.final_norm == "batchnorm_affine"))
        self.width = width
        self.to(memory_format=torch.channels_last)

    def pre_activation(self, z: Tensor) -> Tensor:
        """The output before tanh, ``(N, C, H, W)``, unbounded (after the final BatchNorm, if any)."""
        out = self.project(z).view(z.shape[0], 2 * self.width, *self.start)
        out = self.norm0(out)
        middle = (max(self.input_shape[1] // 2, 1), max(self.input_shape[2] // 2, 1))
        out = self.block1(F.interpolate(out, size=middle, mode="nearest"))
        return self.block2(F.interpolate(out, size=self.input_shape[1:], mode="nearest"))

    @staticmethod
    def to_pixels(pre: Tensor) -> Tensor:
        """``(tanh(pre) + 1) / 2``: pre-activations to pixels in [0, 1], contiguous NCHW."""
        return ((torch.tanh(pre) + 1.0) / 2.0).contiguous()

    def forward(self, z: Tensor) -> Tensor:
        return self.to_pixels(self.pre_activation(z))

    def sample(self, count: int, generator: torch.Generator) -> Tensor:
        """Latent vectors ``z ~ N(0, I)``, shape ``(count, latent_dim)``, on the generator's device."""
        device = self.project.weight.device
        return torch.randn(count, self.latent_dim, generator=generator).to(device)
