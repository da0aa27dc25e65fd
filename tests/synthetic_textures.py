"""Faces whose colour at every surface point is a known UV image: photos with a known texture.

The decoder poses a face from known coefficients; the renderer interpolates
each surface point's (u, v) over the triangle that wins each pixel; the
pixel takes the known image's colour at that (u, v), sampled by SciPy. What
texture code bakes from such a photo is compared with the known image,
never with anything the texture code produced. Shared by
tests/test_textures.py and bench/texture.py.
"""
import numpy as np

BACKGROUND = 40.0         # grey, RGB 0-255: what the photo shows outside the face
# A crop that is its own photo: pixel (x, y) of the crop is pixel (x, y) of the photo.
IDENTITY_ALIGNMENT = np.array([224.0, 224.0, 1.0, 112.0, 112.0])


def known_texture(size):
    """A smooth, colourful [S, S, 3] float64 image, RGB 0-255 (its detail is coarser than
    a 224-pixel photo's pixels, so that a photo can hold all of it)."""
    row, col = np.mgrid[0:size, 0:size] / size
    return np.stack([128 + 60 * np.sin(2 * np.pi * 2 * col) * np.cos(2 * np.pi * 1.5 * row),
                     120 + 70 * col - 50 * row,
                     100 + 50 * np.cos(2 * np.pi * 2.5 * row + 1.0)], axis=-1)


def sample(texture, uv):
    """Bilinear samples of an [S, S, 3] image at [..., 2] (u, v) (row 0 at v = 1)."""
    from scipy.ndimage import map_coordinates

    size = texture.shape[0]
    x = uv[..., 0] * size - 0.5
    y = (1.0 - uv[..., 1]) * size - 0.5
    return np.stack([map_coordinates(np.asarray(texture[..., c], np.float64), [y, x], order=1,
                                     mode="nearest") for c in range(3)], axis=-1)


def psnr(a, b):
    """Peak signal-to-noise ratio in dB of two arrays of 0-255 values."""
    error = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / max(error, 1e-12))


def textured_photos(face, reconstructor, uv, coeff, truth):
    """224x224 photos of faces whose colour comes from `truth`.

    Args:
      face: a `face_decoder.Face3D` of the front model.
      reconstructor: a `networks.reconstructor.Reconstructor(texture=True)`
        of the same model.
      uv: [N, 2] the front model's UV coordinates.
      coeff: [B, 257] the faces' coefficients.
      truth: [S, S, 3] the known texture.

    Returns:
      (photos [B, 224, 224, 3] uint8, results: the reconstructor's dict of
      each face (`decode`), covered [B, 224, 224] bool). Each photo's
      alignment is `IDENTITY_ALIGNMENT`.
    """
    import tensorflow as tf

    import face_decoder

    coeff = np.asarray(coeff, np.float32)
    decoded = reconstructor.decode(coeff)
    results = [{key: value[i] for key, value in decoded.items()} for i in range(len(coeff))]
    face.Reconstruction_Block(coeff, len(coeff), render_images=False)
    colours = np.concatenate([uv, np.zeros((len(uv), 1))], axis=1)
    colours = np.broadcast_to(colours, (len(coeff),) + colours.shape)
    render = face_decoder.render(face.face_shape_t, face.face_norm,
                                 tf.constant(colours, tf.float32),
                                 tf.constant(face.facemodel.face_buf - 1), clip=False).numpy()
    covered = render[..., 3] > 0.5
    photos = np.where(covered[..., None], sample(truth, render[..., :2]), BACKGROUND)
    return np.clip(np.rint(photos), 0, 255).astype(np.uint8), results, covered
