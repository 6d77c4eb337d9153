"""Corruption processes have the stated statistics and are repeatable from a seed."""

import pytest
import torch

from aekit.corruptions import GaussianNoise, Masking, SaltAndPepper


def test_gaussian_noise_has_the_stated_sigma():
    x = torch.full((200, 500), 0.5)
    noisy = GaussianNoise(std=0.2).corrupt(x, torch.Generator().manual_seed(0))
    assert (noisy - x).mean().item() == pytest.approx(0.0, abs=2e-3)
    assert (noisy - x).std().item() == pytest.approx(0.2, rel=0.01)
    clipped = GaussianNoise(std=0.5, clip=True).corrupt(x, torch.Generator().manual_seed(0))
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_masking_drops_the_stated_fraction():
    x = torch.ones(200, 500)
    masked = Masking(fraction=0.3).corrupt(x, torch.Generator().manual_seed(0))
    assert (masked == 0).float().mean().item() == pytest.approx(0.3, abs=0.005)
    assert set(masked.unique().tolist()) == {0.0, 1.0}


def test_salt_and_pepper_sets_half_low_half_high():
    x = torch.full((200, 500), 0.5)
    corrupted = SaltAndPepper(fraction=0.2).corrupt(x, torch.Generator().manual_seed(0))
    assert (corrupted == 0).float().mean().item() == pytest.approx(0.1, abs=0.004)
    assert (corrupted == 1).float().mean().item() == pytest.approx(0.1, abs=0.004)
    assert (corrupted == 0.5).float().mean().item() == pytest.approx(0.8, abs=0.005)


@pytest.mark.parametrize("corruption", [GaussianNoise(0.3), Masking(0.5), SaltAndPepper(0.5)])
def test_corruptions_are_repeatable_from_a_seed(corruption):
    x = torch.rand(10, 20)
    first = corruption(x, torch.Generator().manual_seed(3))
    second = corruption(x, torch.Generator().manual_seed(3))
    third = corruption(x, torch.Generator().manual_seed(4))
    assert torch.equal(first, second) and not torch.equal(first, third)


def test_fractions_outside_the_unit_interval_are_refused():
    with pytest.raises(ValueError, match="outside"):
        Masking(1.5)
