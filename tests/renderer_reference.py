"""Independent references for the renderer tests: a NumPy rasterizer, cameras, scenes.

The rasterization rules of renderer.md re-implemented in float64 NumPy, the
camera formulas written out, and the scenes of the reference library's golden
images (the coloured cube, the simple triangle).
"""
import math

import numpy as np
import tensorflow as tf
from PIL import Image

import mesh_renderer
from mesh_renderer import camera_utils, rasterize_triangles
from tests.conftest import shared_path

CUBE = np.array([[-1, -1, 1], [-1, -1, -1], [-1, 1, -1], [-1, 1, 1], [1, -1, 1],
                 [1, -1, -1], [1, 1, -1], [1, 1, 1]], np.float32)
CUBE_TRIANGLES = np.array(
    [[0, 1, 2], [2, 3, 0], [3, 2, 6], [6, 7, 3], [7, 6, 5], [5, 4, 7],
     [4, 5, 1], [1, 0, 4], [5, 6, 2], [2, 1, 5], [7, 4, 0], [0, 3, 7]],
    np.int32)
DIFFUSE = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 1, 0],
                    [1, 0, 1], [0, 1, 1], [.5, .5, .5]], np.float32)
SPECULAR = np.array([[0, 1, 0], [0, 0, 1], [1, 1, 1], [1, 1, 0], [1, 0, 1],
                     [0, 1, 1], [.5, .5, .5], [1, 0, 0]], np.float32)


# ----------------------------------------------------------------------------
# Independent references
# ----------------------------------------------------------------------------

def numpy_rotation(angles):
    """Rz Ry Rx for angles (x, y, z) in radians, float64."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def numpy_camera(eye, center, up, fov_y, near, far, aspect):
    """gluPerspective(fov_y, aspect, near, far) * gluLookAt(eye, center, up)."""
    f = np.asarray(center, np.float64) - eye
    f /= np.linalg.norm(f)
    s = np.cross(f, up)
    s /= np.linalg.norm(s)
    u = np.cross(s, f)
    view = np.eye(4)
    view[0, :3], view[1, :3], view[2, :3] = s, u, -f
    view[:3, 3] = -view[:3, :3] @ eye
    t = 1.0 / math.tan(math.radians(fov_y) / 2)
    proj = np.zeros((4, 4))
    proj[0, 0], proj[1, 1] = t / aspect, t
    proj[2, 2] = -(far + near) / (far - near)
    proj[2, 3] = -2 * far * near / (far - near)
    proj[3, 2] = -1
    return proj @ view


def numpy_rasterize(clip, triangles, width, height):
    """Reference rasterizer following renderer.md, in float64.

    Returns (ids [H, W] int, -1 where uncovered; barycentrics [H, W, 3];
    margin [H, W]: smallest |edge value| / sum of edge values of the winning
    fragment, small where the outcome is sensitive to rounding).
    """
    clip = np.asarray(clip, np.float64)
    ids = -np.ones((height, width), np.int64)
    bary = np.zeros((height, width, 3))
    zbuf = np.ones((height, width))
    margin = np.full((height, width), np.inf)
    px = (np.arange(width) + 0.5) / (width / 2) - 1
    py = (np.arange(height) + 0.5) / (height / 2) - 1
    for t, tri in enumerate(triangles):
        v = clip[tri]                     # [3, 4]
        if np.all(v[:, 3] < 0):
            continue
        m = v[:, [0, 1, 3]].T             # columns are vertices (x, y, w)
        rows = np.stack([np.cross(m[:, 1], m[:, 2]), np.cross(m[:, 2], m[:, 0]),
                         np.cross(m[:, 0], m[:, 1])])
        det = m[0] @ rows[:, 0]
        if det < 0:
            rows = -rows
        if np.all(v[:, 3] > 0):
            sx = (v[:, 0] / v[:, 3] + 1) * width / 2
            sy = (v[:, 1] / v[:, 3] + 1) * height / 2
            x0, x1 = [int(np.clip(f(g), 0, width)) for f, g in
                      ((np.floor, sx.min()), (np.ceil, sx.max()))]
            y0, y1 = [int(np.clip(f(g), 0, height)) for f, g in
                      ((np.floor, sy.min()), (np.ceil, sy.max()))]
        else:
            x0, x1, y0, y1 = 0, width, 0, height
        gx, gy = np.meshgrid(px[x0:x1], py[y0:y1])
        e = (rows[:, 0, None, None] * gx + rows[:, 1, None, None] * gy +
             rows[:, 2, None, None])
        inside = np.all(e >= 0, axis=0) & np.any(e > 0, axis=0)
        total = np.where(inside, e.sum(0), 1.0)
        b = e / total
        z = (b * v[:, 2, None, None]).sum(0) / (b * v[:, 3, None, None]).sum(0)
        sub = zbuf[y0:y1, x0:x1]
        keep = inside & (z >= -1) & (z <= 1) & (z <= sub)
        sub[keep] = z[keep]
        ids[y0:y1, x0:x1][keep] = t
        bary[y0:y1, x0:x1][keep] = np.moveaxis(b, 0, -1)[keep]
        margin[y0:y1, x0:x1][keep] = (np.abs(e).min(0) / total)[keep]
    return ids, bary, margin


def id_attributes(clip, triangles):
    """Unshares the vertices so that attributes reveal ids and barycentrics.

    Returns (clip [B, 3T, 4], attributes [B, 3T, 4], triangles [T, 3]):
    attribute 0 is the triangle id + 1, attributes 1-3 the corner one-hots.
    """
    clip = np.asarray(clip, np.float32)
    count = len(triangles)
    new_clip = clip[:, np.asarray(triangles).reshape(-1)]
    attrs = np.zeros((clip.shape[0], 3 * count, 4), np.float32)
    attrs[:, :, 0] = np.repeat(np.arange(count) + 1, 3)
    attrs[:, np.arange(3 * count), 1 + np.arange(3 * count) % 3] = 1
    return new_clip, attrs, np.arange(3 * count, dtype=np.int32).reshape(-1, 3)


def render_ids(clip, triangles, width, height, session=False):
    """Our rasterizer's ids (-1 where uncovered) and barycentrics.

    With session=True the rasterizer is built in a tf.Graph and run by a
    tf.compat.v1.Session (TF1-style), otherwise eagerly.
    """
    new_clip, attrs, tris = id_attributes(clip, triangles)
    if session:
        with tf.Graph().as_default():
            image = rasterize_triangles.rasterize_clip_space(
                new_clip, attrs, tris, width, height, [0.0, 0.0, 0.0, 0.0])
            with tf.compat.v1.Session() as sess:
                out = sess.run(image)
    else:
        out = rasterize_triangles.rasterize_clip_space(
            new_clip, attrs, tris, width, height, [0.0, 0.0, 0.0, 0.0]).numpy()
    return np.rint(out[..., 0]).astype(np.int64) - 1, out[..., 1:]


def assert_matches_reference(clip, triangles, width, height, session=False):
    ours_ids, ours_bary = render_ids(clip, triangles, width, height, session)
    for b in range(clip.shape[0]):
        ids, bary, margin = numpy_rasterize(clip[b], triangles, width, height)
        # Pixels within rounding distance of an edge may legitimately differ.
        robust = ~(margin < 1e-4)
        mismatch = (ours_ids[b] != ids) & robust
        assert mismatch.sum() == 0, (b, np.argwhere(mismatch)[:5])
        same = (ours_ids[b] == ids) & (ids >= 0)
        np.testing.assert_allclose(ours_bary[b][same], bary[same], atol=2e-4)
        assert np.all(ours_bary[b][ids < 0] == 0)


def compare_with_golden(image, name, max_outlier_fraction=0.001,
                        threshold=0.01):
    golden = np.asarray(Image.open(shared_path(
        'data', 'renderer_golden', name))).astype(np.float64) / 255.0
    assert golden.shape == image.shape
    outliers = np.any(np.abs(golden - np.clip(image, 0, 1)) > threshold,
                      axis=2)
    assert outliers.mean() <= max_outlier_fraction, outliers.mean()


def colored_cube(shininess=None, size=(640, 480)):
    rotation = camera_utils.euler_matrices([[-20.0, 0.0, 60.0]])[:, :3, :3]
    vertices = tf.matmul(CUBE[None], rotation, transpose_b=True)
    normals = tf.matmul(tf.math.l2_normalize(CUBE, axis=1)[None], rotation,
                        transpose_b=True)
    if shininess is None:
        shininess = 6.0 * np.ones((1, 8), np.float32)
    render = mesh_renderer.mesh_renderer(
        vertices, CUBE_TRIANGLES, normals, DIFFUSE[None], [0.0, 0.0, 6.0],
        [0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [[[0.0, 0.0, 6.0], [1.0, 2.0, 6.0]]],
        np.ones((1, 2, 3), np.float32), size[0], size[1], SPECULAR[None],
        shininess, np.zeros((1, 3), np.float32), 40.0, 0.1, 25.0)
    return tf.concat([mesh_renderer.tone_mapper(render[..., :3], 0.7),
                      render[..., 3:]], axis=3)


def simple_triangle():
    clip = tf.constant([[[-0.5, -0.5, 0.8, 1.0], [0.0, 0.5, 0.3, 1.0],
                         [0.5, -0.5, 0.3, 1.0]]])
    out = rasterize_triangles.rasterize_clip_space(
        clip, tf.eye(3)[None], [[0, 1, 2]], 640, 480, [0.0, 0.0, 0.0])
    return tf.concat([out, tf.ones([1, 480, 640, 1])], axis=3)
