"""Photos of every common kind, landmark files and bad inputs (fileio.images, landmarks.files)."""
import numpy as np
import pytest
from PIL import Image

from fileio.errors import InputError
from fileio.images import read_image
from landmarks.files import read_landmarks


def _two_halves(width=40, height=20):
    """Top half red, bottom half blue (8-bit RGB)."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 2, :, 0] = 255
    pixels[height // 2:, :, 2] = 255
    return pixels


def test_jpeg_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: the viewer turns the stored image 90 degrees clockwise.
    Image.fromarray(_two_halves()).save(path, quality=95, exif=exif)
    image = np.asarray(read_image(path))
    assert image.shape == (40, 20, 3)
    # Turned clockwise, the stored top (red) becomes the right side.
    assert image[20, 15, 0] > 200 and image[20, 15, 2] < 60
    assert image[20, 4, 2] > 200 and image[20, 4, 0] < 60


def test_png_with_alpha_is_composited_over_black(tmp_path):
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, :6, 3] = 255      # Opaque left half, transparent right half.
    rgba[:, 6:, 3] = 0
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = np.asarray(read_image(path))
    assert image.shape == (10, 12, 3)
    np.testing.assert_array_equal(image[:, :6], np.broadcast_to([200, 100, 50], (10, 6, 3)))
    np.testing.assert_array_equal(image[:, 6:], 0)


def test_grayscale_becomes_rgb(tmp_path):
    grey = np.arange(200, dtype=np.uint8).reshape(10, 20)
    path = tmp_path / "grey.png"
    Image.fromarray(grey, "L").save(path)
    image = np.asarray(read_image(path))
    assert image.shape == (10, 20, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[..., channel], grey)


def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    import cv2

    levels = np.linspace(0, 65535, 64 * 8).reshape(8, 64).astype(np.uint16)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), levels)
    image = np.asarray(read_image(path)).astype(np.float64)
    np.testing.assert_allclose(image[..., 0], levels / 257.0, atol=0.51)


def test_16bit_rgb_png(tmp_path):
    import cv2

    rgb = np.zeros((8, 8, 3), np.uint16)
    rgb[..., 0] = 65535          # Pure red at 16 bits.
    path = tmp_path / "deep_rgb.png"
    cv2.imwrite(str(path), rgb[..., ::-1])
    image = np.asarray(read_image(path))
    np.testing.assert_array_equal(image[0, 0], [255, 0, 0])


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "print.jpg"
    Image.fromarray(_two_halves(), "RGB").convert("CMYK").save(path, quality=95)
    image = np.asarray(read_image(path)).astype(int)
    assert image.shape == (20, 40, 3)
    assert image[2, 2, 0] > 200 and image[2, 2, 2] < 60
    assert image[17, 2, 2] > 200 and image[17, 2, 0] < 60


def test_palette_with_transparency(tmp_path):
    palette_image = Image.new("P", (6, 4))
    palette_image.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette_image.putdata([1] * 12 + [0] * 12)
    path = tmp_path / "palette.png"
    palette_image.save(path, transparency=0)
    image = np.asarray(read_image(path))
    np.testing.assert_array_equal(image[0, 0], [10, 200, 30])
    np.testing.assert_array_equal(image[3, 5], [0, 0, 0])


@pytest.mark.parametrize("content, reason", [
    (None, "file not found"),
    (b"", "not an image"),
    (b"this is not an image", "not an image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image"),
])
def test_bad_image_files_name_the_file(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as error:
        read_image(path)
    message = str(error.value)
    assert message.startswith(str(path)) and reason in message and "\n" not in message


def test_truncated_jpeg_is_an_error(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(InputError, match=str(path)):
        read_image(path)


def test_landmarks_read_in_order(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("1 2\n3.5\t4\n5 6\n\n7 8\n9 10e0\n")
    np.testing.assert_array_equal(read_landmarks(path),
                                  [[1, 2], [3.5, 4], [5, 6], [7, 8], [9, 10]])


@pytest.mark.parametrize("text, reason", [
    ("1 2\n3 4\n5 6\n7 8\n", "4 points, expected 5"),
    ("1 2\n3 4\n5 6\n7 8\n9 10\n11 12\n", "6 points, expected 5"),
    ("1 2\n3 4\n5 six\n7 8\n9 10\n", "line 3 is not two numbers"),
    ("1 2 3\n3 4\n5 6\n7 8\n9 10\n", "line 1 has 3 values"),
    ("1 2\n3 4\nnan 6\n7 8\n9 10\n", "non-finite"),
])
def test_malformed_landmark_files(tmp_path, text, reason):
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        read_landmarks(path)
    assert str(error.value).startswith(str(path)) and reason in str(error.value)


def test_landmarks_outside_the_image(tmp_path):
    path = tmp_path / "far.txt"
    path.write_text("10 10\n20 10\n15 15\n12 20\n18 300\n")
    with pytest.raises(InputError, match="outside the 100x50 image"):
        read_landmarks(path, image_size=(100, 50))
    assert read_landmarks(path, image_size=(100, 301)).shape == (5, 2)
