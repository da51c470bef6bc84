"""A generator and its discriminator as one ``nn.Module``, so the training engine's one optimiser, its
checkpoints (resume after a kill) and DistributedDataParallel cover both networks of a GAN.

One forward pass returns everything both losses need, with the gradients kept apart:

* ``fake``: the generator's output (residual: ``inputs + generator(inputs)``);
* ``d_real`` and ``d_fake``: the discriminator on the real images and on the *detached* fakes (the
  discriminator's loss: no gradient reaches the generator);
* ``d_fake_for_generator``: the discriminator on the fakes with its parameters *detached*
  (``torch.func.functional_call``; the generator's adversarial loss: no gradient reaches the discriminator).

So the sum of the two losses, back-propagated once, gives each network exactly the gradient of its own
loss: a simultaneous update of both players from the same state.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def last_output(out: Any) -> torch.Tensor:
    """The logits of a discriminator that returns its intermediate features as a list (MONAI
    ``PatchDiscriminator``): the last element; a plain tensor is returned as is."""
    return out[-1] if isinstance(out, (list, tuple)) else out


class AdversarialPair(nn.Module):
    """``forward(inputs (B, C, H, W), real (B, C, H, W)) -> dict`` of ``fake``, ``d_real``, ``d_fake`` and
    ``d_fake_for_generator`` (see the module docstring).

    Args:
        generator: image-to-image network, ``(B, C, H, W) -> (B, C, H, W)``.
        discriminator: ``(B, C, H, W) -> logits`` (a tensor or a list whose last element is the logits).
        residual: the generator predicts a residual added to its input.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, residual: bool = True) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.residual = residual

    def generate(self, inputs: torch.Tensor) -> torch.Tensor:
        out = self.generator(inputs)
        return inputs + out if self.residual else out

    def forward(self, inputs: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        fake = self.generate(inputs)
        d_real = last_output(self.discriminator(real))
        d_fake = last_output(self.discriminator(fake.detach()))
        frozen = {n: p.detach() for n, p in self.discriminator.named_parameters()}
        frozen.update(dict(self.discriminator.named_buffers()))
        d_fake_g = last_output(torch.func.functional_call(self.discriminator, frozen, (fake,)))
        return {"fake": fake, "d_real": d_real, "d_fake": d_fake, "d_fake_for_generator": d_fake_g}
