"""Colour spaces for image restoration: RGB <-> YCbCr (BT.601) and RGB <-> CIE Lab (D65).

Every function takes and returns channel-first tensors ``(..., 3, H, W)`` (``(..., 1, H, W)`` for a
luminance) with RGB in [0, 1]. The *working* forms used by networks are scaled so that every
channel spans about one unit and zero chroma means grey:

* ``ycbcr``: Y in [0, 1]; Cb, Cr in [-0.5, 0.5] (full range, as JPEG).
* ``lab``: L / 100 in [0, 1]; a / 110 and b / 110 in about [-1, 1].
"""

from __future__ import annotations

import torch

from .errors import AekitError

SPACES = ("ycbcr", "lab")

# BT.601 luma weights: the grey of every grey test set here (BSD68 = luma of CBSD68)
LUMA = (0.299, 0.587, 0.114)
_CB, _CR = 0.5 / (1 - LUMA[2]), 0.5 / (1 - LUMA[0])  # 0.564, 0.713

# sRGB (D65) <-> XYZ, and the D65 white point
_RGB_TO_XYZ = torch.tensor(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def _check_space(space: str) -> None:
    if space not in SPACES:
        raise AekitError(f"unknown colour space {space!r}", f"the choices are {', '.join(SPACES)}", "pick one")


def _mix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 matrix to the channel axis of (..., 3, H, W)."""
    return torch.einsum("ij,...jhw->...ihw", matrix.to(x.device, x.dtype), x)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma Y = 0.299 R + 0.587 G + 0.114 B: (..., 3, H, W) -> (..., 1, H, W)."""
    r, g, b = rgb.unbind(-3)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(-3)


def y_studio(rgb: torch.Tensor) -> torch.Tensor:
    """The Y of super-resolution benchmarks: 16 + 65.481 R + 128.553 G + 24.966 B, in [16, 235]
    grey levels (MATLAB's ``rgb2ycbcr``); (..., 3, H, W) -> (..., 1, H, W)."""
    r, g, b = rgb.unbind(-3)
    return (16.0 + 65.481 * r + 128.553 * g + 24.966 * b).unsqueeze(-3)


def rgb_to_ycbcr(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) RGB -> (Y, Cb, Cr) with centred chroma."""
    y = luma(rgb)
    r, _, b = rgb.unbind(-3)
    return torch.cat([y, (_CB * (b - y[..., 0, :, :])).unsqueeze(-3), (_CR * (r - y[..., 0, :, :])).unsqueeze(-3)], -3)


def ycbcr_to_rgb(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clipped)."""
    y, cb, cr = ycc.unbind(-3)
    r = y + cr / _CR
    b = y + cb / _CB
    g = (y - LUMA[0] * r - LUMA[2] * b) / LUMA[1]
    return torch.stack([r, g, b], -3)


def _srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.04045, c / 12.92, ((c.clamp(min=0) + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    return torch.where(c <= 0.0031308, 12.92 * c, 1.055 * c.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


_EPS, _KAPPA = 216 / 24389, 24389 / 27


AB_SCALE = 110.0  # working Lab holds a / AB_SCALE and b / AB_SCALE; multiply back for Lab units


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) sRGB -> working Lab (L / 100, a / 110, b / 110)."""
    xyz = _mix(_RGB_TO_XYZ, _srgb_to_linear(rgb)) / _WHITE.to(rgb.device, rgb.dtype)[:, None, None]
    f = torch.where(xyz > _EPS, xyz.clamp(min=_EPS) ** (1 / 3), (_KAPPA * xyz + 16) / 116)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([(116 * fy - 16) / 100, 500 * (fx - fy) / 110, 200 * (fy - fz) / 110], -3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_lab` (not clipped)."""
    l_, a, b = lab.unbind(-3)
    fy = (100 * l_ + 16) / 116
    f = torch.stack([fy + 110 * a / 500, fy, fy - 110 * b / 200], -3)
    xyz = torch.where(f**3 > _EPS, f**3, (116 * f - 16) / _KAPPA) * _WHITE.to(lab.device, lab.dtype)[:, None, None]
    return _linear_to_srgb(_mix(torch.linalg.inv(_RGB_TO_XYZ), xyz))


def to_space(rgb: torch.Tensor, space: str) -> torch.Tensor:
    """RGB -> the working form of ``space`` (``ycbcr`` or ``lab``)."""
    _check_space(space)
    return rgb_to_ycbcr(rgb) if space == "ycbcr" else rgb_to_lab(rgb)


def from_space(values: torch.Tensor, space: str) -> torch.Tensor:
    """The working form of ``space`` -> RGB."""
    _check_space(space)
    return ycbcr_to_rgb(values) if space == "ycbcr" else lab_to_rgb(values)


def lightness(rgb: torch.Tensor, space: str) -> torch.Tensor:
    """The achromatic channel of ``space``: (..., 3, H, W) -> (..., 1, H, W) (Y, or L / 100)."""
    return luma(rgb) if space == "ycbcr" else to_space(rgb, space)[..., :1, :, :]


def grey_photo(rgb: torch.Tensor, space: str) -> torch.Tensor:
    """The grey photograph of an RGB one, as the lightness of ``space`` sees it: the grey level
    (R = G = B) whose lightness is the colour pixel's, (..., 3, H, W) -> (..., 1, H, W) in [0, 1].
    For YCbCr it is the luma; for Lab the grey of the same L*."""
    if space == "ycbcr":
        return luma(rgb)
    values = to_space(rgb, space)
    achromatic = torch.cat([values[..., :1, :, :], torch.zeros_like(values[..., 1:, :, :])], -3)
    return from_space(achromatic, space)[..., :1, :, :].clamp(0, 1)
