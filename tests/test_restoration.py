"""Image restoration: degradations, the RED-Net, tiling, shipped weights, image files, bad inputs."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit import colour
from aekit.applications.restoration import ImageRestorer, inpainting_model_for, pretrained_names, tiled
from aekit.cli import main
from aekit.corruptions import GaussianNoise, with_level_map
from aekit.degradations import (
    JPEG,
    Bicubic,
    Grayscale,
    Inpainting,
    bicubic_resize,
    check_scale,
    smooth_fill,
    with_mask,
)
from aekit.metrics import chroma_accuracy_auc, colourfulness, estimate_noise_sigma, psnr, ssim
from aekit.nets.conv import RedNet

from .conftest import shared_data_dir

REQUIRED_WEIGHTS = [
    "denoise",
    "denoise-colour",
    "deblock",
    "super-resolve-x2",
    "super-resolve-x3",
    "super-resolve-x4",
    "inpaint",
    "inpaint-pixels",
    "colorize",
]


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------------------ #
# degradations have the stated statistics and shapes


def test_blind_noise_draws_one_level_per_image_within_the_range():
    x = torch.full((400, 1, 32, 32), 0.5)
    noisy = GaussianNoise(std=0.0, max_std=50 / 255).corrupt(x, generator())
    levels = (noisy - x).flatten(1).std(1)  # (400,)
    assert levels.min() >= 0 and levels.max() <= 50 / 255 * 1.1
    assert levels.mean().item() == pytest.approx(25 / 255, rel=0.06)  # uniform on [0, 50]: mean 25
    assert levels.std().item() == pytest.approx(50 / 255 / np.sqrt(12), rel=0.12)  # and spread of a uniform


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_shapes_are_exact_and_match_pillow(scale):
    x = torch.rand(2, 1, 48, 36, generator=generator())
    small = Bicubic(scale).observe(x)
    assert small.shape == (2, 1, 48 // scale, 36 // scale)
    assert Bicubic(scale).prepare(small).shape == x.shape
    assert Bicubic(scale).corrupt(x).shape == x.shape
    # sizes that are not a multiple: the low-resolution image drops the rest, prepare restores the size
    odd = torch.rand(1, 3, 50, 37, generator=generator())
    assert Bicubic(4).observe(odd).shape == (1, 3, 12, 9)
    assert Bicubic(4).corrupt(odd).shape == odd.shape
    # the oracle: Pillow's antialiased bicubic on a float image
    image = x[0, 0].numpy()
    pillow = np.asarray(Image.fromarray(image, mode="F").resize((36 // scale, 48 // scale), Image.BICUBIC))
    assert np.abs(small[0, 0].numpy() - pillow).max() < 2e-3


def test_a_multi_scale_corruption_enlarges_by_the_scale_it_shrank_with():
    corruption = Bicubic([2, 3, 4])
    shapes = {corruption.corrupt(torch.rand(1, 1, 24, 24), generator(seed)).shape for seed in range(12)}
    assert shapes == {(1, 1, 24, 24)}
    small = corruption.observe(torch.rand(1, 1, 24, 24), scale=3)
    assert corruption.prepare(small, (24, 24)).shape == (1, 1, 24, 24)


@pytest.mark.parametrize("bad", [1, 5, 2.5, "2", True])
def test_scales_outside_two_to_four_are_refused_in_one_line(bad):
    with pytest.raises(aekit.AekitError, match="the super-resolution scales are 2, 3, 4") as error:
        check_scale(bad)
    assert "\n" not in str(error.value)


def test_masks_have_the_stated_rate_and_sizes():
    pixels = Inpainting("pixels", rate=0.3).mask((8, 64, 64), generator())
    assert pixels.shape == (8, 1, 64, 64)
    assert 1 - pixels.mean().item() == pytest.approx(0.3, abs=0.01)
    ranged = Inpainting("pixels", rate=[0.2, 0.8]).mask((200, 16, 16), generator())
    per_image = 1 - ranged.flatten(1).mean(1)
    assert per_image.min() > 0.1 and per_image.max() < 0.9 and per_image.mean().item() == pytest.approx(0.5, abs=0.03)
    one_box = Inpainting("boxes", boxes=1, box_size=10).mask((16, 40, 30), generator())
    assert ((1 - one_box).flatten(1).sum(1) == 100).all()  # exactly one 10 x 10 box in each image
    boxes = Inpainting("boxes", boxes=8, box_size=32).mask((4, 321, 481), generator())
    missing = (1 - boxes).flatten(1).sum(1)
    assert (missing <= 8 * 32 * 32).all() and (missing >= 32 * 32).all()
    strokes = Inpainting("strokes", strokes=6, stroke_width=3).mask((4, 96, 96), generator())
    assert 0.005 < 1 - strokes.mean().item() < 0.3


def test_inpainting_input_zeroes_holes_and_appends_the_mask():
    x = torch.rand(3, 2, 10, 12, generator=generator())
    observed = Inpainting("pixels", rate=0.5).observe(x, generator())
    assert observed.shape == (3, 3, 10, 12)
    keep = observed[:, 2:]
    assert set(keep.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(observed[:, :2], x * keep)
    with pytest.raises(aekit.AekitError, match="give a mask of the image's size"):
        with_mask(x, torch.ones(3, 1, 10, 11))


def test_smooth_fill_keeps_known_pixels_and_interpolates_holes():
    # a plane a + b r + c c is reproduced inside random holes (the tent weights are symmetric, so
    # a hole whose 8 neighbours are all known gets the plane's value exactly)
    rows, cols = torch.meshgrid(torch.arange(33.0), torch.arange(47.0), indexing="ij")
    plane = (0.2 + 0.01 * rows + 0.005 * cols)[None, None]
    keep = Inpainting("pixels", rate=0.1).mask((1, 33, 47), generator())
    filled = smooth_fill(plane * keep, keep)
    assert torch.equal(filled[keep.bool()], plane[keep.bool()])
    assert (filled - plane).abs().max() < 0.02
    # a constant image is filled with the constant, even in boxes far from any known pixel
    boxes = Inpainting("boxes", boxes=3, box_size=20).mask((2, 50, 41), generator())
    assert torch.allclose(smooth_fill(torch.full((2, 3, 50, 41), 0.7) * boxes, boxes), torch.tensor(0.7))
    # nothing known: mid-grey; the smooth fill is what the network sees with fill="smooth"
    assert torch.equal(smooth_fill(torch.zeros(1, 1, 5, 6), torch.zeros(1, 1, 5, 6)), torch.full((1, 1, 5, 6), 0.5))
    x = torch.rand(2, 1, 9, 10, generator=generator())
    observed = Inpainting("pixels", rate=0.5, fill="smooth").observe(x, generator())
    assert torch.equal(observed[:, :1], smooth_fill(x, observed[:, 1:]))
    with pytest.raises(aekit.AekitError, match="unknown hole fill"):
        Inpainting(fill="nearest")


def test_grayscale_keeps_the_luma_and_colour_spaces_invert():
    skimage_color = pytest.importorskip("skimage.color")
    rgb = torch.rand(2, 3, 5, 4, generator=generator())
    grey = Grayscale("ycbcr").observe(rgb)
    assert torch.allclose(grey[:, 0], 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2])
    for space in colour.SPACES:
        assert torch.allclose(colour.from_space(colour.to_space(rgb, space), space), rgb, atol=1e-5)
    lab = colour.rgb_to_lab(rgb[0]).permute(1, 2, 0).numpy() * [100, 110, 110]
    assert np.abs(lab - skimage_color.rgb2lab(rgb[0].permute(1, 2, 0).numpy())).max() < 0.01


# ------------------------------------------------------------------------------------------------ #
# the network and tiling


def smooth_photo(height=48, width=64, channels=3, seed=0):
    """A smooth random colour field (B=1, C, H, W) in [0, 1], like a photo's low frequencies."""
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, channels, height // 8, width // 8))).float()
    return torch.nn.functional.interpolate(coarse, size=(height, width), mode="bicubic").clamp(0, 1)


@pytest.mark.parametrize("channels", [1, 3])
def test_jpeg_is_a_real_jpeg_file_read_back(channels, tmp_path):
    from skimage import io as skio

    x = smooth_photo(channels=channels)
    out = JPEG(quality=30).observe(x)
    assert out.shape == x.shape and out.dtype == torch.float32
    pixels = (x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(path, quality=30)
    expected = skio.imread(path).astype(np.float32) / 255  # another reader of the same file
    assert np.array_equal(np.atleast_3d(expected), out[0].permute(1, 2, 0).numpy())


def test_jpeg_artefacts_grow_as_the_quality_falls_and_qualities_are_drawn_per_image():
    x = smooth_photo(height=64, width=64, seed=1) + 0.05 * torch.rand(1, 3, 64, 64, generator=generator(1))
    x = x.clamp(0, 1)
    errors = [float(((JPEG(q).observe(x) - x) ** 2).mean()) for q in (90, 40, 10)]
    assert errors[0] < errors[1] < errors[2]
    batch = x.expand(64, -1, -1, -1)
    jpeg = JPEG((10, 40))
    drawn = jpeg.draw_quality(2000, generator(0))
    assert min(drawn) == 10 and max(drawn) == 40 and abs(np.mean(drawn) - 25) < 1
    assert torch.equal(jpeg.observe(batch, generator(3)), jpeg.observe(batch, generator(3)))  # seeded
    assert len({float(e.sum()) for e in jpeg.observe(batch, generator(3))}) > 5  # one quality per image


@pytest.mark.parametrize("bad", [0, 96, (40, 10), 2.5])
def test_jpeg_qualities_outside_1_to_95_are_refused(bad):
    with pytest.raises(aekit.AekitError):
        JPEG(bad)


def test_the_deblock_family_restores_jpeg_through_the_restorer():
    model = aekit.make_model("deblock", (3, 32, 32), 1, depth=2, width=4)
    restorer = ImageRestorer(model)
    assert restorer.task == "deblock" and restorer.degradation.quality == (20, 20)
    photo = smooth_photo(32, 40)[0].permute(1, 2, 0).numpy()
    compressed = restorer.degrade(photo, seed=0)
    assert compressed.shape == photo.shape and not np.array_equal(compressed, photo)
    restored = restorer(compressed)
    assert restored.shape == photo.shape  # RED-Net starts as the identity
    assert np.abs(restored - compressed).max() < 0.05


@pytest.mark.parametrize("downscale", [1, 2, 3])
def test_rednet_keeps_odd_sizes_and_starts_as_the_identity(downscale):
    torch.manual_seed(0)
    net = RedNet(in_channels=2, out_channels=1, depth=3, width=8, downscale=downscale)
    x = torch.rand(2, 2, 37, 29)
    out = net(x)
    assert out.shape == (2, 1, 37, 29)
    assert torch.equal(out, x[:, :1])  # residual output, last layer zero at initialisation
    colour_net = RedNet(in_channels=1, out_channels=3, depth=2, width=4, downscale=downscale)
    assert colour_net(torch.rand(1, 1, 11, 7)).shape == (1, 3, 11, 7)


def test_skip_connections_reach_the_decoder():
    torch.manual_seed(0)
    net = RedNet(1, 1, depth=4, width=4, skip_every=2)
    for layer in net.decoder_layers:
        torch.nn.init.normal_(layer.weight)
    x = torch.rand(1, 1, 16, 16, requires_grad=True)
    net(x).sum().backward()
    assert all(layer.weight.grad.abs().sum() > 0 for layer in net.encoder_layers)


def test_tiles_with_enough_overlap_equal_whole_image_inference():
    torch.manual_seed(0)
    net = RedNet(1, 1, depth=3, width=8, downscale=2).eval()
    torch.nn.init.normal_(net.decoder_layers[-1].weight, std=0.1)
    x = torch.rand(1, 1, 83, 70)
    with torch.no_grad():
        whole = net(x)
        # receptive field: 6 layers of 3 x 3 at half resolution, radius 6 * 2 + 1 pixels
        assert torch.allclose(tiled(net, x, tile=32, overlap=14, multiple=2), whole, atol=1e-5)
        # too little context: seams differ, but only near them and only a little
        rough = tiled(net, x, tile=32, overlap=2, multiple=2)
    difference = (rough - whole).abs()[0, 0]
    near_seams = torch.zeros_like(difference, dtype=torch.bool)
    for seam in (32, 64):
        near_seams[max(seam - 13, 0) : seam + 13] = True
        near_seams[:, max(seam - 13, 0) : seam + 13] = True
    assert difference[~near_seams].max() < 1e-5
    assert 0 < difference.max() < 0.5 * whole.abs().max()


def test_the_restorer_runs_channels_last_and_matches_contiguous_inference():
    restorer = ImageRestorer.pretrained("deblock")
    assert restorer.channels_last
    assert restorer.model.encoder.encoder_layers[1].weight.is_contiguous(memory_format=torch.channels_last)
    noisy = restorer.degrade(np.random.default_rng(0).random((37, 50)).astype(np.float32), seed=0)
    reference = ImageRestorer.pretrained("deblock").model.to(memory_format=torch.contiguous_format)
    assert reference.encoder.encoder_layers[1].weight.is_contiguous()
    with torch.no_grad():
        expected = reference.reconstruct(torch.from_numpy(noisy)[None, None])[0, 0].clamp(0, 1).numpy()
    np.testing.assert_allclose(restorer(noisy), expected, atol=1e-5)
    contiguous = ImageRestorer.pretrained("deblock", channels_last=False)
    assert not contiguous.channels_last and contiguous.model.encoder.encoder_layers[1].weight.is_contiguous()
    np.testing.assert_allclose(contiguous(noisy), expected, atol=1e-5)


# ------------------------------------------------------------------------------------------------ #
# metrics against scikit-image


def test_psnr_and_ssim_match_scikit_image():
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(0)
    for shape in [(40, 33), (24, 31, 3)]:
        clean = rng.random(shape)
        noisy = np.clip(clean + 0.1 * rng.standard_normal(shape), 0, 1)
        assert psnr(clean, noisy) == pytest.approx(metrics.peak_signal_noise_ratio(clean, noisy, data_range=1))
        expected = metrics.structural_similarity(
            clean,
            noisy,
            data_range=1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=-1 if len(shape) == 3 else None,
        )
        assert ssim(clean, noisy) == pytest.approx(expected, rel=1e-9)
    assert psnr(clean, clean) == float("inf")
    assert colourfulness(np.repeat(clean[..., :1], 3, -1)) == 0.0
    assert colourfulness(clean) > 10


@pytest.mark.parametrize("space", ["ycbcr", "lab"])
def test_a_grey_photo_has_the_lightness_of_the_colour_one(space):
    from aekit import colour

    rgb = torch.rand(2, 3, 8, 8, generator=generator(0))
    grey = colour.grey_photo(rgb, space)  # (2, 1, 8, 8): R = G = B
    assert grey.shape == (2, 1, 8, 8)
    torch.testing.assert_close(colour.lightness(grey.expand(-1, 3, -1, -1), space), colour.lightness(rgb, space))


def test_chroma_accuracy_auc_against_scikit_image():
    skimage_color = pytest.importorskip("skimage.color")
    rng = np.random.default_rng(0)
    rgb = 0.3 + 0.4 * rng.random((20, 24, 3))  # mid tones: a small chroma shift stays in the gamut
    assert chroma_accuracy_auc(rgb, rgb) == 1.0
    pixels = np.round(255 * rgb).astype(np.uint8)
    assert chroma_accuracy_auc(pixels, pixels) == 1.0
    # a constant (a, b) shift of 10.5 Lab units: inside the thresholds 11, ..., 150 and none below
    lab = skimage_color.rgb2lab(rgb)
    shifted = lab + np.array([0.0, 0.6 * 10.5, 0.8 * 10.5])
    estimate = skimage_color.lab2rgb(shifted)
    assert estimate.min() > 0 and estimate.max() < 1
    distance = np.linalg.norm(skimage_color.rgb2lab(estimate)[..., 1:] - lab[..., 1:], axis=-1)
    np.testing.assert_allclose(distance, 10.5, atol=1e-6)
    assert chroma_accuracy_auc(rgb, estimate) == pytest.approx((150 - 11 + 1) / 151, abs=1e-12)
    assert chroma_accuracy_auc(rgb, estimate, max_threshold=20) == pytest.approx((20 - 11 + 1) / 21, abs=1e-12)
    # unrelated images: the mean share within t = 0..150 of scikit-image's chroma distances
    other = rng.random((20, 24, 3))
    distance = np.linalg.norm(skimage_color.rgb2lab(rgb)[..., 1:] - skimage_color.rgb2lab(other)[..., 1:], axis=-1)
    expected = np.mean([(distance <= t).mean() for t in range(151)])
    assert 0.5 < expected < 0.95
    # aekit's D65 white differs from scikit-image's in the fifth digit: a pixel may cross a threshold
    assert chroma_accuracy_auc(rgb, other) == pytest.approx(expected, abs=1e-3)
    with pytest.raises(aekit.AekitError):
        chroma_accuracy_auc(rgb[..., 0], other[..., 0])


# ------------------------------------------------------------------------------------------------ #
# shipped weights


def test_every_required_model_is_shipped():
    assert set(REQUIRED_WEIGHTS) <= set(pretrained_names())


def crop(folder: str, name: str, size: int = 96) -> np.ndarray:
    data = shared_data_dir()
    if data is None:
        pytest.skip("the shared datasets are not on this machine")
    image = np.asarray(Image.open(data / folder / name)).astype(np.float32) / 255
    return image[100 : 100 + size, 100 : 100 + size]


def best_blur(clean: np.ndarray, noisy: np.ndarray) -> float:
    """PSNR of the best Gaussian blur of ``noisy``, its width chosen on the clean image (an oracle)."""
    from scipy.ndimage import gaussian_filter

    sigma = (0.3, 0.3, 0) if noisy.ndim == 3 else 0.3
    widths = [np.asarray(sigma) * w / 0.3 for w in np.arange(0.3, 3, 0.1)]
    return max(psnr(clean, np.clip(gaussian_filter(noisy, width), 0, 1)) for width in widths)


def test_shipped_denoiser_takes_the_level_and_beats_the_best_gaussian_blur():
    clean = crop("BSD68", "test003.png")  # a textured crop: BM3D gains 3.2 / 4.5 / 6.9 dB at sigma 15 / 25 / 50
    restorer = ImageRestorer.pretrained("denoise")
    assert restorer.level_map
    for sigma in (15, 25, 50):
        noisy = clean + sigma / 255 * np.random.default_rng(sigma).standard_normal(clean.shape).astype(np.float32)
        blurred = best_blur(clean, noisy)
        assert blurred > psnr(clean, noisy)
        given = psnr(clean, np.clip(restorer.restore(noisy, sigma=sigma), 0, 1))
        assert given > blurred + 0.5
        estimated = psnr(clean, np.clip(restorer.restore(noisy), 0, 1))  # the level estimated from the image
        # texture reads as noise to the wavelet estimate (18.7 for 15 on this crop): a little more smoothing
        assert sigma <= restorer.last_sigma < 1.3 * sigma and estimated > given - 0.75
    noisy = clean + 25 / 255 * np.random.default_rng(0).standard_normal(clean.shape).astype(np.float32)
    # the map is an input: telling the model a higher level smooths more
    assert (
        np.abs(np.diff(restorer.restore(noisy, sigma=50), axis=0)).mean()
        < np.abs(np.diff(restorer.restore(noisy, sigma=10), axis=0)).mean()
    )


def test_shipped_colour_denoiser_beats_the_grey_model_channel_by_channel():
    gains = []
    # kodim23's smooth parrot feathers are the colour model's weak case (-0.3 dB), textures its strong one
    for folder, name in [("Kodak24", "kodim23.png"), ("Kodak24", "kodim01.png"), ("CBSD68", "101085.png")]:
        clean = crop(folder, name)
        assert clean.shape == (96, 96, 3)
        noisy = clean + 25 / 255 * np.random.default_rng(1).standard_normal(clean.shape).astype(np.float32)
        colour = psnr(clean, np.clip(ImageRestorer.pretrained("denoise-colour").restore(noisy, sigma=25), 0, 1))
        grey = psnr(clean, np.clip(ImageRestorer.pretrained("denoise").restore(noisy, sigma=25), 0, 1))
        assert colour > best_blur(clean, noisy) + 1
        gains.append(colour - grey)
    assert np.mean(gains) > 0.3, gains


def test_shipped_deblocker_beats_the_jpeg_it_is_given():
    from aekit.degradations import jpeg_roundtrip

    clean = crop("BSD68", "test003.png")  # 8-bit pixels / 255
    restorer = ImageRestorer.pretrained("deblock")
    for quality in (10, 30):
        pixels = np.round(clean * 255).astype(np.uint8)[..., None]
        decoded = jpeg_roundtrip(pixels, quality)[..., 0].astype(np.float32) / 255
        assert psnr(clean, np.clip(restorer(decoded), 0, 1)) > psnr(clean, decoded) + 0.5


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_shipped_super_resolution_beats_bicubic(scale):
    clean = crop("BSD68", "test003.png")
    restorer = ImageRestorer.pretrained(f"super-resolve-x{scale}")
    small = restorer.degrade(clean)
    assert small.shape == (96 // scale, 96 // scale)
    bicubic = bicubic_resize(torch.from_numpy(small)[None, None], (96, 96))[0, 0].numpy()
    restored = restorer(small)
    assert restored.shape == (96, 96)
    assert psnr(clean, np.clip(restored, 0, 1)) > psnr(clean, np.clip(bicubic, 0, 1)) + 0.3


@pytest.mark.parametrize("name", ["inpaint", "inpaint-pixels"])
def test_shipped_inpainter_beats_filling_with_the_mean(name):
    clean = crop("BSD68", "test003.png")
    restorer = ImageRestorer.pretrained(name)
    missing = restorer.random_mask(96, 96, seed=0)
    holed = restorer.degrade(clean, mask=missing)
    assert (holed[missing] == 0).all()
    mean_filled = np.where(missing, clean[~missing].mean(), clean)
    restored = restorer(holed, mask=missing)
    assert np.array_equal(restored[~missing], clean[~missing])  # known pixels come back unchanged
    assert psnr(clean, restored) > psnr(clean, mean_filled) + 3
    # the network improves on the smooth interpolation it starts from
    keep = torch.from_numpy(~missing).float()[None, None]
    interpolated = smooth_fill(torch.from_numpy(holed)[None, None], keep)[0, 0].numpy()
    assert psnr(clean, restored) > psnr(clean, np.clip(interpolated, 0, 1)) + 0.5


@pytest.mark.parametrize(
    ("holes", "expected"),
    [
        (Inpainting("pixels", rate=0.5), "inpaint-pixels"),
        (Inpainting("pixels", rate=0.8), "inpaint-pixels"),
        (Inpainting("boxes", boxes=8, box_size=32), "inpaint"),
        (Inpainting("strokes", strokes=6), "inpaint"),
    ],
)
def test_the_inpainter_is_chosen_by_the_shape_of_the_holes(holes, expected):
    missing = holes.mask((1, 160, 200), generator(3))[0, 0].numpy() == 0
    assert inpainting_model_for(missing) == expected
    assert inpainting_model_for(np.zeros((4, 4), bool)) == "inpaint"
    with pytest.raises(aekit.AekitError, match="masks are"):
        inpainting_model_for(np.zeros((4, 4, 3), bool))


def test_shipped_colorizer_adds_colour_and_keeps_the_lightness():
    from aekit import colour

    rgb = crop("Kodak24", "kodim23.png")
    restorer = ImageRestorer.pretrained("colorize")
    grey = restorer.degrade(rgb)  # the grey photo: R = G = B of the same lightness
    assert grey.shape == (96, 96)
    coloured = restorer(grey)
    assert coloured.shape == (96, 96, 3)
    assert colourfulness(coloured) > 10
    space = restorer.degradation.space

    def lightness(image):
        return colour.lightness(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), space).numpy()

    # the lightness is passed through; only pixels the gamut clips (saturated colours) may move
    assert np.median(np.abs(lightness(coloured) - lightness(np.repeat(grey[..., None], 3, -1)))) < 0.01


# ------------------------------------------------------------------------------------------------ #
# files: 16 bit, alpha, bad inputs; training from the command line


def write_png_16(path, pixels):
    import png

    height, width = pixels.shape[:2]
    planes = 1 if pixels.ndim == 2 else pixels.shape[-1]
    writer = png.Writer(width, height, greyscale=planes < 3, alpha=planes in (2, 4), bitdepth=16)
    with open(path, "wb") as handle:
        writer.write(handle, pixels.reshape(height, -1).tolist())


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small denoiser trained for a few steps from the command line (on random patches)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray((rng.random((40, 50)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    run = tmp_path_factory.mktemp("runs") / "tiny"
    code = main(
        ["train", "--family", "denoise", "-o", "depth=2", "-o", "width=4", "--data", str(folder), "--patch-size",
         "16", "--patches", "64", "--epochs", "1", "--batch-size", "16", "--no-progress", "--out", str(run)]
    )  # fmt: skip
    assert code == 0
    return run


def test_training_from_the_command_line_writes_a_restorer(tiny_model):
    config = json.loads((tiny_model / "config.json").read_text())["model"]
    assert config["data_shape"] == [1, None, None] and config["encoder"]["name"] == "rednet"
    assert ImageRestorer.load(tiny_model).task == "denoise"
    assert (tiny_model / "reconstructions.png").is_file()


def test_sixteen_bit_and_alpha_survive_the_round_trip(tiny_model, tmp_path):
    from aekit.data.files import read_image

    rng = np.random.default_rng(0)
    rgba = (rng.random((20, 30, 4)) * 65535).astype(np.uint16)
    write_png_16(tmp_path / "in.png", rgba)
    assert main(["restore", "--task", "denoise", "--weights", str(tiny_model), str(tmp_path / "in.png"),
                 str(tmp_path / "out.png")]) == 0  # fmt: skip
    out = read_image(tmp_path / "out.png")
    assert out.dtype == np.uint16 and out.shape == (20, 30, 4)
    assert np.array_equal(out[..., 3], rgba[..., 3])  # alpha passed through exactly
    grey = (rng.random((21, 17)) * 65535).astype(np.uint16)
    write_png_16(tmp_path / "grey.png", grey)
    assert main(["restore", "--task", "denoise", "--weights", str(tiny_model), str(tmp_path / "grey.png"),
                 str(tmp_path / "grey-out.png")]) == 0  # fmt: skip
    assert read_image(tmp_path / "grey-out.png").dtype == np.uint16


def test_bad_inputs_give_one_line_errors(tiny_model, tmp_path, capsys):
    image = tmp_path / "ok.png"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(image)
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(image.read_bytes()[:40])
    Image.fromarray(np.zeros((8, 16), np.uint8)).save(tmp_path / "small-mask.png")
    cases = [
        (["--task", "denoise", str(tmp_path / "text.png")], "cannot read image"),
        (["--task", "denoise", str(tmp_path / "cut.png")], "cannot read image"),
        (["--task", "denoise", str(tmp_path / "missing.png")], "cannot read image"),
        (["--task", "super-resolve", "--scale", "5", str(image)], "scale 5 is not supported"),
        (["--task", "inpaint", "--mask", str(tmp_path / "small-mask.png"), str(image)], "give a mask of the image"),
        (["--task", "inpaint", str(image)], "inpainting needs --mask"),
        (["--task", "super-resolve", "--weights", str(tiny_model), str(image)], "is a denoise model"),
        (["--task", "deblock", "--simulate", "--quality", "120", str(image)], "bad quality 120"),
    ]
    for arguments, message in cases:
        assert main(["restore", *arguments, str(tmp_path / "out.png")]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error


@pytest.mark.parametrize(("kind", "expected"), [("pixels", "inpaint-pixels"), ("boxes", "inpaint")])
def test_the_command_line_inpaints_with_the_model_for_the_mask(kind, expected, tmp_path, capsys):
    clean = (crop("BSD68", "test003.png") * 255).astype(np.uint8)
    missing = Inpainting(kind, rate=0.5, boxes=3, box_size=16).mask((1, 96, 96), generator(1))[0, 0].numpy() == 0
    Image.fromarray(np.where(missing, 0, clean).astype(np.uint8)).save(tmp_path / "holes.png")
    Image.fromarray(missing.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    arguments = ["--task", "inpaint", "--mask", str(tmp_path / "mask.png"), str(tmp_path / "holes.png")]
    assert main(["restore", *arguments, str(tmp_path / "filled.png")]) == 0
    assert f"shipped model {expected!r}" in capsys.readouterr().out
    filled = np.asarray(Image.open(tmp_path / "filled.png"))
    assert np.array_equal(filled[~missing], clean[~missing])
    assert psnr(clean / 255, filled / 255) > psnr(clean / 255, np.where(missing, 0, clean) / 255) + 10


def test_the_command_line_trains_a_deblocker_and_removes_jpeg_artefacts(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        photo = (smooth_photo(40, 48, seed=i)[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        Image.fromarray(photo).save(folder / f"{i}.png")
    run = tmp_path / "deblock"
    assert main(["train", "--family", "deblock", "-o", "depth=2", "-o", "width=4", "-o", "quality=[10,30]",
                 "--data", str(folder), "--image-mode", "rgb", "--patch-size", "16", "--patches", "32", "--epochs", "1",
                 "--batch-size", "16", "--no-progress", "--out", str(run)]) == 0  # fmt: skip
    config = json.loads((run / "config.json").read_text())["model"]
    assert config["corruption"] == {"name": "jpeg", "quality": [10, 30]} and config["data_shape"][0] == 3
    out = tmp_path / "out.png"
    assert main(["restore", "--task", "deblock", "--weights", str(run), "--simulate", "--quality", "15",
                 str(folder / "0.png"), str(out)]) == 0  # fmt: skip
    assert "PSNR of the restored image" in capsys.readouterr().out
    assert Image.open(out).size == (48, 40) and (tmp_path / "out-degraded.png").is_file()


# ------------------------------------------------------------------------------------------------ #
# the noise level as an input (FFDNet's map), given or estimated


def test_the_level_map_channel_holds_each_images_drawn_noise_level():
    x = torch.full((64, 1, 8, 8), 0.5)
    noise = GaussianNoise(0.0, max_std=75 / 255, level_map=True)
    assert noise.out_shape((1, 8, 8)) == (2, 8, 8)
    out = noise.observe(x, generator(0))  # (B, 2, H, W)
    level = out[:, 1]
    assert torch.equal(level, level[:, :1, :1].expand_as(level))  # constant per image
    measured = (out[:, 0] - x[:, 0]).std(dim=(1, 2))  # each image's own noise
    assert torch.corrcoef(torch.stack([measured, level[:, 0, 0]]))[0, 1] > 0.95
    assert float(level.min()) >= 0 and float(level.max()) <= 75 / 255
    assert torch.equal(with_level_map(x, 0.1)[:, 1], torch.full((64, 8, 8), 0.1))
    with pytest.raises(aekit.AekitError, match="needs images"):
        GaussianNoise(0.1, level_map=True).observe(torch.zeros(4, 10))


@pytest.mark.parametrize("sigma", [5, 15, 25, 50, 75])
def test_the_noise_estimate_finds_the_level_of_white_gaussian_noise(sigma):
    clean = smooth_photo(128, 128, channels=1)[0, 0].numpy()
    noisy = clean + np.random.default_rng(sigma).normal(0, sigma / 255, clean.shape)
    assert abs(255 * estimate_noise_sigma(noisy) - sigma) < 0.06 * sigma
    assert 255 * estimate_noise_sigma(clean) < 0.5


def test_a_denoiser_with_a_level_input_takes_the_level_given_or_estimated(tmp_path, capsys):
    model = aekit.make_model("denoise", (1, 32, 32), 1, sigma=0, max_sigma=75, noise_map=True, depth=2, width=4)
    assert model.encoder.in_channels == 2 and model.corruption.level_map
    seen = []
    model.reconstruct = lambda block: (seen.append(block.clone()), block[:, :1])[1]  # records its input
    restorer = ImageRestorer(model, channels_last=False)
    clean = smooth_photo(96, 96, channels=1)[0, 0].numpy()
    noisy = clean + np.random.default_rng(0).normal(0, 30 / 255, clean.shape)
    restorer.restore(noisy, sigma=40)
    assert restorer.last_sigma == 40 and torch.allclose(seen[-1][:, 1], torch.tensor(40 / 255))
    restorer.restore(noisy)
    assert abs(restorer.last_sigma - 30) < 1.5 and torch.allclose(
        seen[-1][:, 1], torch.tensor(restorer.last_sigma / 255)
    )
    with pytest.raises(aekit.AekitError, match="without a level input"):
        ImageRestorer(aekit.make_model("denoise", (1, 32, 32), 1, depth=2, width=4)).restore(noisy, sigma=25)


# ------------------------------------------------------------------------------------------------ #
# tile by tile into the result: the same image as whole-image inference, in the dtype asked for


def perturbed(model):
    """The model with its last layer away from zero (a fresh RED-Net is the identity)."""
    torch.manual_seed(0)
    torch.nn.init.normal_(model.encoder.decoder_layers[-1].weight, std=0.05)
    return model


@pytest.mark.parametrize("scale", [2, 3])
def test_super_resolution_tile_by_tile_equals_the_whole_image(scale):
    model = perturbed(aekit.make_model("super-resolve", (1, 24, 24), 1, scale=scale, depth=2, width=8))
    rng = np.random.default_rng(0)
    small = rng.random((37, 29, 4)).astype(np.float32)  # RGB + alpha: luminance through the model
    whole = ImageRestorer(model, tile=4096, overlap=0).restore(small)
    tiles = ImageRestorer(model, tile=24, overlap=12).restore(small)
    assert whole.shape == tiles.shape == (37 * scale, 29 * scale, 4)
    assert np.abs(whole - tiles).max() < 1e-5
    eight_bit = ImageRestorer(model, tile=24, overlap=12).restore(small, dtype=np.uint8)
    assert eight_bit.dtype == np.uint8  # rounded: at most one level from the float image (ties)
    assert np.abs(eight_bit.astype(np.float32) - np.round(whole * 255)).max() <= 1


@pytest.mark.parametrize("task", ["denoise", "inpaint", "colorize"])
def test_every_task_restores_tile_by_tile_like_the_whole_image(task):
    options = {"inpaint": {"mask": "boxes", "fill": "smooth"}}.get(task, {})
    shape = (3, 24, 24) if task == "colorize" else (1, 24, 24)
    model = perturbed(aekit.make_model(task, shape, 1, depth=3, width=8, **options))
    rng = np.random.default_rng(1)
    image = rng.random((45, 38, 3)).astype(np.float32)
    mask = np.zeros((45, 38), bool)
    mask[10:20, 5:30] = True
    given = {"mask": mask} if task == "inpaint" else {}
    whole = ImageRestorer(model, tile=4096, overlap=0).restore(image, **given)
    tiles = ImageRestorer(model, tile=16, overlap=16).restore(image, dtype=np.uint16, **given)
    assert tiles.shape == whole.shape == (45, 38, 3) and tiles.dtype == np.uint16
    assert np.abs(tiles / 65535 - whole).max() < 1e-4
    with pytest.raises(aekit.AekitError, match="float32, uint8 or uint16"):
        ImageRestorer(model).restore(image, dtype=np.int32, **given)


# ------------------------------------------------------------------------------------------------ #
# colorization with a categorical output unit over chroma bins (Zhang et al. 2016)


def lab_image(lightness, a, b, size=8):
    """An RGB image (3, size, size) of one Lab colour (L in 0-100, a and b in Lab units)."""
    lab = torch.tensor([lightness / 100, a / 110, b / 110]).view(3, 1, 1).expand(3, size, size)
    return colour.lab_to_rgb(lab).clamp(0, 1)


def test_the_chroma_bins_cover_the_srgb_gamut():
    from aekit.likelihoods import ChromaBins

    bins = ChromaBins()
    assert bins.bins == 261 and bins.centres.shape == (261, 2)
    rgb = torch.rand(3, 4096, 1, generator=generator(0))
    ab = colour.rgb_to_lab(rgb)[1:, :, 0].T * 110
    nearest = bins.centres[bins.nearest(ab)]
    assert (ab - nearest).abs().max() <= 5.0 + 1e-4  # every colour lies in its bin's 10 x 10 cell


def test_chroma_bins_nll_is_the_categorical_log_likelihood_of_the_nearest_bin():
    from aekit.likelihoods import ChromaBins

    bins = ChromaBins(neighbours=1)  # hard targets, no rebalancing: a plain categorical
    x = torch.rand(2, 3, 4, 5, generator=generator(1))
    params = torch.randn(2, 1 + bins.bins, 4, 5, generator=generator(2))
    nearest = bins.nearest(bins._chroma(x)).view(2, 4, 5)
    logits = params[:, 1:].permute(0, 2, 3, 1)  # (B, H, W, Q)
    expected = -torch.distributions.Categorical(logits=logits).log_prob(nearest).flatten(1).sum(1)
    assert torch.allclose(bins.nll(params, x), expected, rtol=1e-5)


def test_rebalancing_weighs_rare_colours_up_and_keeps_the_expected_weight_at_one():
    from aekit.likelihoods import ChromaBins

    grey, red = lab_image(50, 0, 0), lab_image(50, 60, 40)
    bins = ChromaBins()
    bins.from_data(torch.stack([grey] * 19 + [red]))  # red on 5 % of the pixels
    index = bins.nearest(torch.tensor([[0.0, 0.0], [60.0, 40.0]]))
    assert bins.weights[index[1]] > 5 * bins.weights[index[0]]
    none = ChromaBins(rebalance=1.0)  # all uniform: every weight 1
    none.from_data(torch.stack([grey, red]))
    assert torch.allclose(none.weights, torch.ones(none.bins), atol=1e-5)


def test_the_annealed_mean_sharpens_towards_the_mode():
    from aekit.likelihoods import ChromaBins

    bins = ChromaBins()
    red, blue = bins.nearest(torch.tensor([[60.0, 40.0], [10.0, -60.0]]))
    params = torch.full((1, 1 + bins.bins, 1, 1), -30.0)
    params[0, 0] = 0.5  # the lightness
    params[0, 1 + red], params[0, 1 + blue] = math.log(0.7), math.log(0.3)

    def chroma(temperature):
        bins.temperature = temperature
        return colour.rgb_to_lab(bins.mean(params))[0, 1:, 0, 0] * 110

    towards_red = [float(torch.dot(chroma(t) - bins.centres[blue], bins.centres[red] - bins.centres[blue]))
                   for t in (1.0, 0.38, 0.05)]  # fmt: skip
    assert towards_red[0] < towards_red[1] < towards_red[2]
    assert torch.allclose(chroma(0.01), bins.centres[red], atol=1.5)  # the mode itself


def test_a_categorical_colorizer_keeps_colour_where_a_gaussian_one_averages_it():
    """Two colours of one lightness, 70 % / 30 %: the Gaussian output unit predicts their mean (less
    colourful); the categorical one with its annealed mean leans to the common colour (without
    rebalancing, which would tilt it towards the rarer one)."""
    red, blue = lab_image(50, 60, 40), lab_image(50, 20, -60)
    choice = torch.rand(96, generator=generator(3)) < 0.7
    x = torch.stack([red if c else blue for c in choice])  # (96, 3, 8, 8)
    made = {}
    for output in ("gaussian", "categorical"):
        torch.manual_seed(0)
        options = {"rebalance": 1.0} if output == "categorical" else {}
        model = aekit.make_model("colorize", (3, 8, 8), 1, output=output, space="lab", depth=1, width=8,
                                 downscale=1, **options)  # fmt: skip
        config = aekit.TrainConfig(epochs=20, batch_size=32, lr=1e-2, val_fraction=0.0, device="cpu")
        aekit.Trainer(model, config, progress=False).fit(x)
        with torch.no_grad():
            made[output] = model.eval().reconstruct(model.corruption(red[None]))[0]
    chroma = {k: colour.rgb_to_lab(v)[1:].mean((1, 2)) * 110 for k, v in made.items()}
    target = torch.tensor([60.0, 40.0])
    assert (chroma["categorical"] - target).norm() < 0.5 * (chroma["gaussian"] - target).norm()
    assert colourfulness(made["categorical"].permute(1, 2, 0).numpy()) > colourfulness(
        made["gaussian"].permute(1, 2, 0).numpy()
    )
