"""Synthetic faces with known coefficients, as photos with landmark files.

Fitting and evaluation are measured against a truth the code under test did
not produce: here, faces rendered by the decoder from coefficients drawn at
random (or chosen), composited over a background photo, with the 5-point
file and the 68-point file of their true projected landmarks. The truth of
each photo (its coefficients, its unposed shape) comes back with it.

Coefficient scales (`draw_coefficients`): identity and albedo N(0, 1) as the
models' bases are scaled by their standard deviations, expression N(0, 0.5),
angles N(0, 0.1) radians, lighting N(0, 0.1) around the ambient 0.8, and
translation N(0, 0.05) decimetres: faces as a network would see them in an
aligned crop.
"""
import pathlib

import numpy as np

SCALES = {"identity": 1.0, "expression": 0.5, "albedo": 1.0, "angles": 0.1, "lighting": 0.1,
          "translation": 0.05}


def draw_coefficients(rng, count, person=None, scales=SCALES):
    """Random coefficients [count, 257] float32; with `person` ([257]), its
    identity and albedo for every row (one person in several photos)."""
    from facemodel.coefficients import BLOCKS

    coeff = np.zeros((count, 257), np.float32)
    for name, part in BLOCKS.items():
        coeff[:, part] = rng.normal(0.0, scales[name], (count, part.stop - part.start))
    if person is not None:
        for name in ("identity", "albedo"):
            coeff[:, BLOCKS[name]] = np.asarray(person)[BLOCKS[name]]
    return coeff


def render_faces(face, coeff, backgrounds):
    """Renders faces over backgrounds.

    Args:
      face: a `face_decoder.Face3D`.
      coeff: [B, 257] the faces' coefficients.
      backgrounds: [B, 224, 224, 3] uint8 RGB, or one [224, 224, 3] for all.

    Returns:
      dict: rgb [B, 224, 224, 3] uint8, lm68 [B, 68, 2] (pixels, y down),
      shape [B, N, 3] the unposed shape (decimetres), coverage [B, 224, 224].
    """
    face.Reconstruction_Block(np.asarray(coeff, np.float32), len(coeff))
    render = face.render_imgs.numpy()
    backgrounds = np.broadcast_to(np.asarray(backgrounds, np.float64), render[..., :3].shape)
    covered = render[..., 3:4] > 0.5
    rgb = np.where(covered, np.clip(render[..., :3], 0, 255), backgrounds)
    return {"rgb": np.rint(rgb).astype(np.uint8), "lm68": face.landmark_p.numpy(),
            "shape": face.face_shape.numpy(), "coverage": render[..., 3]}


def background(path, seed=0):
    """A 224x224 RGB background: a photo resized, or textured noise when `path` is None."""
    from PIL import Image

    if path is None:
        from scipy.ndimage import gaussian_filter
        rng = np.random.default_rng(seed)
        return gaussian_filter(rng.uniform(40, 200, (224, 224, 3)), (4, 4, 0)).astype(np.uint8)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").resize((224, 224), Image.BILINEAR))


def write_photos(folder, names, faces, lm68_files=True):
    """Writes NAME.png, NAME.txt (5 points) and NAME_lm68.txt for each face.

    Args:
      folder: where.
      names: the photos' names.
      faces: `render_faces`' dict.
      lm68_files: also write NAME_lm68.txt.

    Returns:
      The photos' paths.
    """
    from PIL import Image

    from tests.synthetic_video import five_from_68 as lm5_from_lm68

    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rgb, lm68 in zip(names, faces["rgb"], faces["lm68"]):
        path = folder / f"{name}.png"
        Image.fromarray(rgb).save(path)
        np.savetxt(folder / f"{name}.txt", lm5_from_lm68(lm68), fmt="%.4f")
        if lm68_files:
            np.savetxt(folder / f"{name}_lm68.txt", lm68, fmt="%.4f")
        paths.append(path)
    return paths


def shape_error_mm(face, coeff, true_shape):
    """Mean per-vertex distance between the unposed shapes of `coeff` and the truth, mm."""
    face.Reconstruction_Block(np.asarray(coeff, np.float32), len(coeff), render_images=False)
    return np.linalg.norm(face.face_shape.numpy() - true_shape, axis=2).mean(axis=1) * 100.0


def _aligned_error_mm(shapes, truth):
    """Mean per-vertex distance, mm, of each [N, 3] shape to the truth after the
    similarity that maps it onto the truth best (`evaluation.geometry.similarity`)."""
    from evaluation.geometry import apply, similarity

    truth = np.asarray(truth, np.float64)
    return np.array([np.linalg.norm(apply(similarity(shape, truth), shape) - truth,
                                    axis=1).mean() * 100.0 for shape in shapes])


def identity_error_mm(front_model, id_coeff, true_id):
    """Identity error: the neutral shapes of identity coefficients against the truth's.

    Each shape is the mean shape plus the identity alone (no expression, no
    pose), compared after the similarity that aligns it best with the truth's
    neutral shape: what the identity says of a person's face, whatever its
    size and placement.

    Args:
      front_model: the front model's dict (`load_data.load_front_model`).
      id_coeff: [B, 80] identity coefficients.
      true_id: [80] the truth.

    Returns:
      [B] mean per-vertex distances, mm.
    """
    from facemodel.coefficients import N_EXPRESSION
    from reconstruct_mesh import shape_formation

    neutral = np.zeros(N_EXPRESSION, np.float64)
    shapes = [shape_formation(np.asarray(c, np.float64), neutral, front_model, np.float64)
              for c in np.atleast_2d(id_coeff)]
    truth = shape_formation(np.asarray(true_id, np.float64), neutral, front_model, np.float64)
    return _aligned_error_mm(shapes, truth)


def expression_error_mm(front_model, ex_coeff, true_ex):
    """Expression error: mean per-vertex distance, mm, between the expressions' offsets
    (exBase @ ex, the movement of each vertex from the neutral face) of [B, 64]
    coefficients and of the truth's [B, 64]."""
    base = np.asarray(front_model["exBase"], np.float64)
    offset = (np.atleast_2d(ex_coeff) - np.atleast_2d(true_ex)) @ base.T
    return np.linalg.norm(offset.reshape(len(offset), -1, 3), axis=2).mean(axis=1) * 100.0


def aligned_shape_error_mm(front_model, coeff, true_coeff):
    """Shape error: the unposed shapes (identity and expression) of [B, 257] coefficients
    against the truth's [B, 257], after similarity alignment, mm [B]."""
    from facemodel.coefficients import BLOCKS
    from reconstruct_mesh import shape_formation

    def shape(c):
        return shape_formation(np.asarray(c[BLOCKS["identity"]], np.float64),
                               np.asarray(c[BLOCKS["expression"]], np.float64), front_model,
                               np.float64)

    coeff, true_coeff = np.atleast_2d(coeff), np.atleast_2d(true_coeff)
    return np.concatenate([_aligned_error_mm([shape(c)], shape(t))
                           for c, t in zip(coeff, true_coeff)])
