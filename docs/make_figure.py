"""Draws docs/images/pipeline.png, the README's picture, from input/astronaut.png.

    python docs/make_figure.py

The picture shows the real first steps on a real photo (its 5 landmarks,
the release's alignment to the 224x224 crop) and names the steps after it:
the licensed face model and network cannot ship, so no reconstruction of
this photo is drawn.
"""
import io
import pathlib
import sys

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

import load_data  # noqa: E402
from fileio.images import read_image  # noqa: E402
from landmarks.files import read_landmarks  # noqa: E402
from preprocess_img import Preprocess  # noqa: E402

STEPS = ("R-Net (ResNet-50)\n257 coefficients:\nidentity, expression,\nalbedo, light, pose",
         "Face3D decoder\nBFM09 mesh, colours,\n68 landmarks",
         "differentiable\nrenderer\nback onto the crop")


def main():
    photo_path = REPO_ROOT / "input" / "astronaut.png"
    image = read_image(photo_path)
    lm5 = read_landmarks(photo_path.with_suffix(".txt"), image.size)
    crop_bgr, lm5_crop, _ = Preprocess(image, lm5, load_data.load_lm3d())   # the shipped BFM/
    crop = np.clip(np.asarray(crop_bgr)[0][:, :, ::-1], 0, 255).astype(np.uint8)

    figure = plt.figure(figsize=(10, 2.6), dpi=100)
    photo_axes = figure.add_axes([0.0, 0.08, 0.24, 0.84])
    photo_axes.imshow(np.asarray(image))
    photo_axes.scatter(lm5[:, 0], lm5[:, 1], s=14, c="red")
    photo_axes.set_title("photo + 5 landmarks", fontsize=9)
    crop_axes = figure.add_axes([0.27, 0.08, 0.2, 0.84])
    crop_axes.imshow(crop)
    crop_axes.scatter(lm5_crop[:, 0], lm5_crop[:, 1], s=14, c="red")
    crop_axes.set_title("aligned 224x224 crop", fontsize=9)
    for axes in (photo_axes, crop_axes):
        axes.axis("off")
    text_axes = figure.add_axes([0.48, 0.0, 0.52, 1.0])
    text_axes.axis("off")
    for index, step in enumerate(STEPS):
        x = 0.19 + index * 0.32
        text_axes.text(x, 0.5, step, ha="center", va="center", fontsize=8.5,
                       bbox={"boxstyle": "round", "facecolor": "#eef3fb", "edgecolor": "#4a6fa5"})
        text_axes.annotate("", xy=(x - 0.14, 0.5), xytext=(x - 0.19, 0.5),
                           arrowprops={"arrowstyle": "->"})
    figure.patches.append(matplotlib.patches.FancyArrowPatch(
        (0.243, 0.5), (0.268, 0.5), transform=figure.transFigure, arrowstyle="->",
        mutation_scale=10))
    output = REPO_ROOT / "docs" / "images" / "pipeline.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    # 128 colours: a quarter of the size, no visible change.
    with Image.open(buffer) as drawn:
        drawn.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(
            output, optimize=True)
    print(output)


if __name__ == "__main__":
    main()
