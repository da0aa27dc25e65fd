"""Synthetic stand-ins for the licensed assets, in the release's exact formats.

The real BFM09 model, the expression basis and the authors' network can never
be shipped or downloaded here, so tests and benchmarks make their own: a
procedural face-like mesh (a curved cap on a regular grid, facing the camera)
with random bases of the right sizes. Only the data is made up; everything
that reads it is the project's real loading code.

Units follow the release: front-model positions in decimetres (BFM09 raw
positions are micrometres, 1e5 times larger), albedo in 0-255 RGB.
"""
import numpy as np

# A 68-point landmark layout in the iBUG order (jaw 0-16, brows 17-26, nose
# 27-35, eyes 36-47, mouth 48-67), in face coordinates x right, y up, roughly
# in [-1, 1]. Index 36-41 is the eye at smaller x (the image's "left eye").
def _landmark_template():
    jaw = [(0.8 * np.cos(a), 0.1 + 0.9 * np.sin(a)) for a in np.linspace(np.pi, 2 * np.pi, 17)]
    brow_a = [(x, 0.45) for x in np.linspace(-0.6, -0.15, 5)]
    brow_b = [(x, 0.45) for x in np.linspace(0.15, 0.6, 5)]
    bridge = [(0.0, y) for y in np.linspace(0.3, -0.05, 4)]
    nostrils = [(x, -0.15) for x in np.linspace(-0.15, 0.15, 5)]

    def eye(cx, outer_first):
        pts = [(-0.15, 0.0), (-0.05, 0.05), (0.05, 0.05), (0.15, 0.0), (0.05, -0.05), (-0.05, -0.05)]
        if not outer_first:
            pts = [(-x, y) for x, y in pts]
            pts = [pts[3], pts[2], pts[1], pts[0], pts[5], pts[4]]
        return [(cx + x, 0.25 + y) for x, y in pts]

    eye_a = eye(-0.35, True)     # 36 outer (x=-0.5), 39 inner (x=-0.2)
    eye_b = eye(0.35, True)      # 42 inner (x=0.2), 45 outer (x=0.5)
    outer = [(0.3 * np.cos(a), -0.45 + 0.1 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 13)[:-1]]
    inner = [(0.2 * np.cos(a), -0.45 + 0.05 * np.sin(a)) for a in np.linspace(np.pi, -np.pi, 9)[:-1]]
    pts = jaw + brow_a + brow_b + bridge + nostrils + eye_a + eye_b + outer + inner
    assert len(pts) == 68
    return np.asarray(pts, dtype=np.float64)


LANDMARK_TEMPLATE = _landmark_template()


def procedural_face(n_rows=28, n_cols=24, width=1.8, height=2.2, depth=0.6):
    """Builds a face-sized curved cap on a regular grid.

    Args:
      n_rows, n_cols: grid size (vertices per column and per row), >= 2.
      width, height: extent in x and y, decimetres.
      depth: height of the cap's apex above its rim, decimetres.

    Returns:
      A dict with
        vertices: [N, 3] float64, N = n_rows * n_cols, x right, y up, z towards
          the camera; row-major from the top-left corner.
        triangles: [F, 3] int64, 0-based, F = 2 (n_rows-1)(n_cols-1), wound so
          that cross(v1-v2, v2-v3) points to +z (towards the camera).
        point_buf: [N, 8] int64, 1-based ids of the triangles around each
          vertex, padded with F + 1 (the release's convention).
        keypoints: [68] int64, 0-based vertex ids of the 68 landmarks.
    """
    us = np.linspace(-1.0, 1.0, n_cols)
    vs = np.linspace(1.0, -1.0, n_rows)
    u, v = np.meshgrid(us, vs)                      # [rows, cols]
    x = 0.5 * width * u
    y = 0.5 * height * v
    z = depth * np.sqrt(np.clip(1.0 - 0.55 * u ** 2 - 0.45 * v ** 2, 0.0, None))
    vertices = np.stack([x, y, z], axis=-1).reshape(-1, 3)

    idx = np.arange(n_rows * n_cols).reshape(n_rows, n_cols)
    top_left, top_right = idx[:-1, :-1], idx[:-1, 1:]
    bottom_left, bottom_right = idx[1:, :-1], idx[1:, 1:]
    # Rows go downwards (y decreasing): (bottom_left, bottom_right, top_left)
    # is counter-clockwise seen from +z, so is (bottom_right, top_right, top_left).
    tri_a = np.stack([bottom_left, bottom_right, top_left], axis=-1).reshape(-1, 3)
    tri_b = np.stack([bottom_right, top_right, top_left], axis=-1).reshape(-1, 3)
    triangles = np.concatenate([tri_a, tri_b], axis=0).astype(np.int64)

    n_vertices, n_triangles = vertices.shape[0], triangles.shape[0]
    point_buf = np.full((n_vertices, 8), n_triangles + 1, dtype=np.int64)
    fill = np.zeros(n_vertices, dtype=np.int64)
    for face_id, tri in enumerate(triangles):
        for vertex in tri:
            point_buf[vertex, fill[vertex]] = face_id + 1
            fill[vertex] += 1

    grid_xy = vertices[:, :2] / np.array([0.5 * width, 0.5 * height])
    template = LANDMARK_TEMPLATE * 0.9
    dist = ((template[:, None, :] - grid_xy[None, :, :]) ** 2).sum(-1)
    keypoints = dist.argmin(axis=1).astype(np.int64)
    return {"vertices": vertices, "triangles": triangles, "point_buf": point_buf,
            "keypoints": keypoints}


def make_front_model(seed=0, n_rows=28, n_cols=24, n_id=80, n_exp=64, n_tex=80):
    """Makes a random front-face model with the keys of `BFM_model_front.mat`.

    The dict has the layout that `scipy.io.loadmat` returns for the release's
    converted model (pipeline.md section 2), so code under test cannot tell it
    from a real conversion: float32 bases, 1-based float index arrays.

    Args:
      seed: random seed.
      n_rows, n_cols: grid size of the procedural mesh (see `procedural_face`).
      n_id, n_exp, n_tex: numbers of identity, expression and albedo columns.

    Returns:
      A dict: meanshape [1,3N], meantex [1,3N], idBase [3N,n_id],
      exBase [3N,n_exp], texBase [3N,n_tex] (float32); tri [F,3],
      point_buf [N,8], tri_mask2 [F',3], keypoints [1,68],
      frontmask2_idx [M,1], skinmask [1,N] (1-based indices, float32 as the
      release's .mat files store them).
    """
    rng = np.random.default_rng(seed)
    face = procedural_face(n_rows, n_cols)
    n = face["vertices"].shape[0]
    # Offset the mean shape so that re-centring (by the mean of meanshape) matters.
    meanshape = (face["vertices"] + np.array([0.05, -0.1, 0.3])).reshape(1, -1)
    skin = np.array([200.0, 150.0, 120.0])
    meantex = (skin + rng.uniform(-20.0, 20.0, size=(n, 3))).reshape(1, -1)
    # Smooth-ish random bases: each column is a random combination of low-frequency
    # fields over the grid, scaled like the release's (EV-weighted) bases.
    def basis(k, scale):
        fields = rng.standard_normal((3 * n, k))
        return fields * scale / np.sqrt(k)

    tri = face["triangles"]
    front = np.arange(0, n, 2)
    tri_mask2 = tri[: len(tri) // 2]
    model = {
        "meanshape": meanshape.astype(np.float32),
        "meantex": meantex.astype(np.float32),
        "idBase": basis(n_id, 0.02).astype(np.float32),
        "exBase": basis(n_exp, 0.01).astype(np.float32),
        "texBase": basis(n_tex, 4.0).astype(np.float32),
        "tri": (tri + 1).astype(np.float32),
        "point_buf": face["point_buf"].astype(np.float32),
        "tri_mask2": (tri_mask2 + 1).astype(np.float32),
        "keypoints": (face["keypoints"] + 1).reshape(1, -1).astype(np.float32),
        "frontmask2_idx": (front + 1).reshape(-1, 1).astype(np.float32),
        "skinmask": np.ones((1, n), dtype=np.float32),
    }
    return model


def random_coefficients(seed=0, batch=1, length=257, scale=1.0):
    """Random but plausible coefficients: a face in view, moderately lit.

    Args:
      seed: random seed.
      batch: number of coefficient vectors.
      length: 257 (RGB light), 258 (2020.6 network) or 239 (white light).
      scale: multiplies the random parts.

    Returns:
      [batch, length] float32.
    """
    rng = np.random.default_rng(seed)
    n_light = 9 if length == 239 else 27
    parts = [
        rng.standard_normal((batch, 80)) * scale,           # identity
        rng.standard_normal((batch, 64)) * scale,           # expression
        rng.standard_normal((batch, 80)) * scale,           # albedo
        rng.uniform(-0.3, 0.3, (batch, 3)) * scale,         # Euler angles, radians
        rng.uniform(-0.2, 0.2, (batch, n_light)) * scale,   # SH lighting
        rng.uniform(-0.2, 0.2, (batch, 3)) * scale,         # translation, dm
    ]
    if length == 258:
        parts.append(rng.standard_normal((batch, 1)))
    coeff = np.concatenate(parts, axis=1).astype(np.float32)
    if coeff.shape[1] != length:
        raise ValueError(f"length must be 239, 257 or 258, got {length}")
    return coeff
