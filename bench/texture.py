"""UV textures: the work of one photo outside the network, and how close the texture is.

    python bench/texture.py [--size 1024] [--photos 12] [--repeats 3]

Model: a full-size synthetic BFM09 with smooth components (the release's
front mesh, 35,709 vertices and 70,789 triangles; `bench.common.smooth_bfm`,
written once into ~/.cache/deep3dface-bench/BFM-smooth, as bench/render.py's)
with the UV layout the repository ships (BFM_UV.mat). Faces: random coefficients
(tests/synthetic_faces.py) turned to yaws spread over [-0.9, 0.9] radians (--yaw),
photographed with a known texture (tests/synthetic_textures.py): 224x224
photos whose crop is the photo itself.

Timed per photo, the median over photos and repeats, in ms:
  bake      texture.bake.bake_photo: texel points, visibility, the photo's
            colour per texel;
  finish    one TextureSum: add, then finish (mirror fill, model fill, padding);
  albedo    texture.bake.albedo_texture;
  texture   the three above: what a photo costs outside the network;
  write     the files (NAME_uv.png, NAME_uv_mask.png, NAME_albedo_uv.png,
            NAME_uv.mtl, NAME_uv.obj), atomically, into a temporary folder;
  depth     what asking the reconstructor for textures adds to its decoder
            run (the depth render `bake_photo` needs): the same batch of
            coefficients decoded with and without `texture=True`.
Once per size and process: the texel map (`Atlas.texel_map`), in seconds.

Measured against the known texture: PSNR of the seen texels; PSNR of the
photo's face region against the textured mesh rendered with the photo's
pose; the share of texels seen, mirrored and filled from the model; and the
coverage of 3 views merged (the two extreme yaws and the most frontal) against
the most frontal view alone.
The last line is one JSON object with every figure.
"""
import argparse
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from bench.common import smooth_bfm  # noqa: E402


def median_ms(times):
    return float(np.median(times) * 1000.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="texture side, texels")
    parser.add_argument("--photos", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--yaw", type=float, default=0.9,
                        help="the faces turn from -YAW to YAW radians (default: 0.9)")
    args = parser.parse_args(argv)
    bfm_dir = smooth_bfm()
    front_path = bfm_dir / "BFM_model_front.mat"

    import load_data
    from face_decoder import Face3D
    from facemodel.coefficients import BLOCKS
    from fileio.result_files import write_png
    from networks.reconstructor import Reconstructor
    from photos.inputs import output_paths
    from tests.synthetic_faces import draw_coefficients
    from tests.synthetic_textures import (
        IDENTITY_ALIGNMENT,
        known_texture,
        psnr,
        sample,
        textured_photos,
    )
    from texture.atlas import Atlas
    from texture.bake import MIRRORED, MODEL, SEEN, TextureSum, albedo_texture, bake_photo
    from texture.files import write_texture, write_textured_mesh

    front_model = load_data.load_front_model(front_path)
    atlas = Atlas.load(bfm_dir, front_model)
    start = time.perf_counter()
    texel_map = atlas.texel_map(args.size)
    texel_map_s = time.perf_counter() - start
    triangles = np.asarray(front_model["tri"], np.int64)

    yaw = BLOCKS["angles"].start + 1                          # rotation about the y axis
    rng = np.random.default_rng(0)
    coeff = draw_coefficients(rng, args.photos)
    coeff[:, yaw] = np.linspace(-args.yaw, args.yaw, args.photos)
    truth = known_texture(args.size)
    face = Face3D(front_path)
    textured = Reconstructor(None, front_path, texture=True)
    plain = Reconstructor(None, front_path, mesh=True)
    photos, results, covered = textured_photos(face, textured, atlas.uv, coeff, truth)

    depth_ms = []
    textured.decode(coeff)                                    # warm-up: both graphs' first runs
    plain.decode(coeff)
    for _ in range(args.repeats):
        start = time.perf_counter()
        textured.decode(coeff)
        with_texture = time.perf_counter() - start
        start = time.perf_counter()
        plain.decode(coeff)
        depth_ms.append((with_texture - (time.perf_counter() - start)) / len(coeff))

    times = {key: [] for key in ("bake", "finish", "albedo", "texture", "write")}
    quality = {"seen_psnr_db": [], "rerender_psnr_db": [], "seen": [], "mirrored": [],
               "model": []}
    truth_texels = sample(truth, texel_map.texel_uv())
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            for i, (photo, result) in enumerate(zip(photos, results)):
                start = time.perf_counter()
                baked = bake_photo(texel_map, photo, IDENTITY_ALIGNMENT, result["face_shape"],
                                   result["face_norm"], result["depth"], result["face_color"])
                baked_at = time.perf_counter()
                total = TextureSum(texel_map)
                total.add(*baked)
                texture, mask = total.finish()
                finished_at = time.perf_counter()
                albedo = albedo_texture(texel_map, result["face_texture"])
                albedo_at = time.perf_counter()
                paths = output_paths(pathlib.Path(folder), f"photo{i}", ("uv",))
                texture_path, mask_path, albedo_path, material_path, mesh_path = paths
                write_texture(texture_path, mask_path, total)
                write_png(albedo_path, albedo)
                write_textured_mesh(material_path, mesh_path, texture_path.name,
                                    result["face_shape"], atlas.uv, triangles)
                written_at = time.perf_counter()
                times["bake"].append(baked_at - start)
                times["finish"].append(finished_at - baked_at)
                times["albedo"].append(albedo_at - finished_at)
                times["texture"].append(albedo_at - start)
                times["write"].append(written_at - albedo_at)
                if repeat:
                    continue
                seen = baked[1] > 0
                quality["seen_psnr_db"].append(psnr(baked[0][seen], truth_texels[seen]))
                flat = mask[np.unravel_index(texel_map.texels, mask.shape)]
                for name, value in (("seen", SEEN), ("mirrored", MIRRORED), ("model", MODEL)):
                    quality[name].append(float(np.mean(flat == value)))
                again, _, _ = textured_photos(face, textured, atlas.uv, coeff[i:i + 1],
                                              texture.astype(np.float64))
                quality["rerender_psnr_db"].append(psnr(again[0][covered[i]],
                                                        photo[covered[i]]))

    def coverage(indices):
        total = TextureSum(texel_map)
        for i in indices:
            total.add(*bake_photo(texel_map, photos[i], IDENTITY_ALIGNMENT,
                                  results[i]["face_shape"], results[i]["face_norm"],
                                  results[i]["depth"], results[i]["face_color"]))
        return total.coverage()

    frontal = int(np.argmin(np.abs(coeff[:, yaw])))
    merged = coverage([0, frontal, len(coeff) - 1])
    alone = coverage([frontal])
    textured.close()
    plain.close()

    figures = {key: median_ms(value) for key, value in times.items()}
    figures["depth"] = float(np.median(depth_ms) * 1000.0)
    print(f"UV textures at {args.size}x{args.size} ({len(texel_map)} texels on the layout), "
          f"{args.photos} photos x {args.repeats}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs")
    print(f"  texel map (once per size):  {texel_map_s:.2f} s")
    for key in ("bake", "finish", "albedo", "texture", "write", "depth"):
        print(f"  {key:<8} {figures[key]:7.1f} ms per photo")
    print(f"  seen texels: PSNR {np.median(quality['seen_psnr_db']):.1f} dB "
          f"(min {np.min(quality['seen_psnr_db']):.1f}); rerendered face region: PSNR "
          f"{np.median(quality['rerender_psnr_db']):.1f} dB "
          f"(min {np.min(quality['rerender_psnr_db']):.1f})")
    print(f"  texels seen {np.median(quality['seen']):.1%}, mirrored "
          f"{np.median(quality['mirrored']):.1%}, from the model {np.median(quality['model']):.1%}"
          f" (medians over yaws -{args.yaw:g}..{args.yaw:g})")
    print(f"  coverage: frontal view {alone:.1%}, 3 views merged {merged:.1%}")
    print(json.dumps({
        "bench": "texture", "size": args.size, "texels": len(texel_map), "photos": args.photos,
        "repeats": args.repeats, "cpus": os.cpu_count(), "texel_map_s": round(texel_map_s, 3),
        "ms_per_photo": {key: round(value, 2) for key, value in figures.items()},
        "seen_psnr_db": [round(v, 2) for v in quality["seen_psnr_db"]],
        "rerender_psnr_db": [round(v, 2) for v in quality["rerender_psnr_db"]],
        "yaw": [round(float(v), 3) for v in coeff[:, yaw]],
        "share": {name: [round(v, 4) for v in quality[name]]
                  for name in ("seen", "mirrored", "model")},
        "coverage_frontal": round(alone, 4), "coverage_three_views": round(merged, 4)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
