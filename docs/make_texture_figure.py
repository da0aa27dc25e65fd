"""Draws docs/images/texture.png, docs/textures.md's picture.

    python docs/make_texture_figure.py

No licensed face model ships, so the face is the full-size synthetic one the
benchmarks use (`bench.common.smooth_bfm`: the release's front mesh and the
UV layout this repository ships, with made-up shapes). Its colours come from
a UV test grid, the known truth: the photo is that face turned by 0.9
radians; the texture and its mask are what `demo.py --outputs uv` bakes from
the photo (`texture.bake`); the last panel renders the textured mesh at a
pose the photo never showed.
"""
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

SIZE = 512
PHOTO_YAW, NEW_YAW = 0.9, -0.5


def test_grid(size):
    """A UV test image: coloured cells with dark lines, [S, S, 3] float64 RGB 0-255."""
    row, col = np.mgrid[0:size, 0:size] / size
    grid = np.stack([60 + 180 * col, 90 + 120 * (1 - row), 200 - 140 * col * row], axis=-1)
    cells = ((np.floor(row * 16) + np.floor(col * 16)) % 2)[..., None]
    grid = grid * (0.75 + 0.25 * cells)
    lines = (np.abs((row * 16) % 1 - 0.5) > 0.46) | (np.abs((col * 16) % 1 - 0.5) > 0.46)
    grid[lines] = 30.0
    return grid


def main():
    import load_data
    from bench.common import smooth_bfm
    from face_decoder import Face3D
    from facemodel.coefficients import BLOCKS, LENGTH
    from networks.reconstructor import Reconstructor
    from tests.synthetic_textures import IDENTITY_ALIGNMENT, textured_photos
    from texture.atlas import Atlas
    from texture.bake import TextureSum, bake_photo

    bfm_dir = smooth_bfm()
    front_path = bfm_dir / load_data.FRONT_MODEL_NAME
    atlas = Atlas.load(bfm_dir, load_data.load_front_model(front_path))
    texel_map = atlas.texel_map(SIZE)
    face, reconstructor = Face3D(front_path), Reconstructor(None, front_path, texture=True)
    coeff = np.zeros((2, LENGTH), np.float32)
    coeff[:, BLOCKS["identity"]] = np.random.default_rng(4).normal(0.0, 0.6, 80)
    coeff[:, BLOCKS["angles"].start + 1] = [PHOTO_YAW, NEW_YAW]
    truth = test_grid(SIZE)
    photos, results, _ = textured_photos(face, reconstructor, atlas.uv, coeff, truth)
    total = TextureSum(texel_map)
    result = results[0]
    total.add(*bake_photo(texel_map, photos[0], IDENTITY_ALIGNMENT, result["face_shape"],
                          result["face_norm"], result["depth"], result["face_color"]))
    texture, mask = total.finish()
    again, _, _ = textured_photos(face, reconstructor, atlas.uv, coeff[1:],
                                  texture.astype(np.float64))
    reconstructor.close()

    panels = [(photos[0], f"photo (yaw {PHOTO_YAW} rad)"),
              (texture, "NAME_uv.png, baked from it"),
              (mask, "NAME_uv_mask.png\nwhite seen, grey mirrored, black model"),
              (again[0], f"NAME_uv.obj rendered\nat a new pose (yaw {NEW_YAW} rad)")]
    figure, axes = plt.subplots(1, 4, figsize=(10, 2.9), dpi=100)
    for axis, (image, title) in zip(axes, panels):
        axis.imshow(image, cmap="gray", vmin=0, vmax=255)
        axis.set_title(title, fontsize=8.5)
        axis.axis("off")
    figure.tight_layout()
    out = REPO_ROOT / "docs" / "images" / "texture.png"
    figure.savefig(out)
    print(f"{out}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
