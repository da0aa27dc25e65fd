"""Synthetic stand-ins for the licensed assets, in the release's exact formats.

The real BFM09 model, the expression basis and the authors' network can never
be shipped or downloaded here, so tests and benchmarks make their own: a
procedural face-like mesh (a curved cap on a regular grid, facing the camera)
with random bases of the right sizes. Only the data is made up; everything
that reads it is the project's real loading code.

Units follow the release: front-model positions in decimetres (BFM09 raw
positions are micrometres, 1e5 times larger), albedo in 0-255 RGB.
"""
import pathlib
import shutil

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
        pts = [(-0.15, 0.0), (-0.05, 0.05), (0.05, 0.05), (0.15, 0.0), (0.05, -0.05),
               (-0.05, -0.05)]
        if not outer_first:
            pts = [(-x, y) for x, y in pts]
            pts = [pts[3], pts[2], pts[1], pts[0], pts[5], pts[4]]
        return [(cx + x, 0.25 + y) for x, y in pts]

    eye_a = eye(-0.35, True)     # 36 outer (x=-0.5), 39 inner (x=-0.2)
    eye_b = eye(0.35, True)      # 42 inner (x=0.2), 45 outer (x=0.5)
    outer = [(0.3 * np.cos(a), -0.45 + 0.1 * np.sin(a))
             for a in np.linspace(np.pi, -np.pi, 13)[:-1]]
    inner = [(0.2 * np.cos(a), -0.45 + 0.05 * np.sin(a))
             for a in np.linspace(np.pi, -np.pi, 9)[:-1]]
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
    converted model (docs/model.md#front-model), so code under test cannot tell it
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
    # The small face region: its vertices, and its triangles indexing them
    # (as the release's tri_mask2 indexes frontmask2_idx, not all vertices).
    front = np.unique(tri[: len(tri) // 2])
    tri_mask2 = np.searchsorted(front, tri[: len(tri) // 2])
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


# ----------------------------------------------------------------------------
# Synthetic BFM09 (the raw files `load_data.transferBFM09` converts)
# ----------------------------------------------------------------------------

# Files of the release's BFM/ folder that are public (MIT) and copied as is.
INDEX_FILE_NAMES = ("BFM_exp_idx.mat", "BFM_front_idx.mat", "facemodel_info.mat",
                    "similarity_Lm3D_all.mat", "select_vertex_id.mat", "std_exp.txt")
FULL_BFM_VERTICES = 53490
FULL_EXPRESSION_VERTICES = 53215

# BFM09's own sizes, for models whose fits must behave like the real one's
# (`write_bfm09(scale="bfm09")`). Its shape components are unit vectors over
# its 3 x 53,490 coordinates and its first two standard deviations (shapeEV)
# are 884,340 and 555,880 micrometres: one standard deviation of the first
# moves a vertex by 884,340 / sqrt(53,490) = 3.82 mm (root mean square over the
# vertices), of the second by 2.40 mm. The 80 used here decay as the power law
# through those two, (1 + k) ** -0.67. Expression: the release's std_exp.txt
# (its first is 453,980) on unit vectors over the 53,215 vertices of
# Exp_Pca.bin's basis (an assumption: that file's basis is not public), 1.97 mm
# for the first.
BFM09_SHAPE_EV = (884340.0, 555880.0)
BFM09_FIRST_IDENTITY_MM = BFM09_SHAPE_EV[0] / np.sqrt(FULL_BFM_VERTICES) / 1000.0
BFM09_IDENTITY_DECAY = float(np.log2(BFM09_SHAPE_EV[0] / BFM09_SHAPE_EV[1]))


def _boundary_loops(triangles):
    """Boundary loops of a triangle mesh, as lists of 0-based vertex ids.

    A boundary edge belongs to one triangle only; following each one in its
    triangle's direction walks the loops.
    """
    edges = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]])
    n = int(triangles.max()) + 1
    keys = np.minimum(edges[:, 0], edges[:, 1]) * n + np.maximum(edges[:, 0], edges[:, 1])
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    boundary = edges[counts[inverse] == 1]
    following = {}
    for a, b in boundary.tolist():
        following.setdefault(a, []).append(b)
    loops = []
    while following:
        start = next(iter(following))
        loop, vertex = [start], start
        while True:
            nexts = following[vertex]
            nxt = nexts.pop()
            if not nexts:
                del following[vertex]
            if nxt == start:
                break
            loop.append(nxt)
            vertex = nxt
            if vertex not in following:     # open chain on a non-manifold rim
                break
        loops.append(loop)
    return loops


def tutte_embedding(triangles, n_vertices, width=1.8, height=2.2):
    """Flattens a disc-like triangle mesh into an ellipse (Tutte's barycentric embedding).

    The longest boundary loop is pinned, evenly spaced, on the ellipse of the
    given size; every other vertex is the average of its neighbours (a sparse
    Laplacian solve). Vertices of components that do not touch that loop, and
    vertices in no triangle, go to the centre.

    Args:
      triangles: [F,3] 0-based vertex ids.
      n_vertices: number of vertices N.
      width, height: ellipse axes.

    Returns:
      [N,2] float64 positions.
    """
    import scipy.sparse
    import scipy.sparse.csgraph
    import scipy.sparse.linalg

    triangles = np.asarray(triangles, dtype=np.int64)
    rows = np.concatenate([triangles[:, 0], triangles[:, 1], triangles[:, 2],
                           triangles[:, 1], triangles[:, 2], triangles[:, 0]])
    cols = np.concatenate([triangles[:, 1], triangles[:, 2], triangles[:, 0],
                           triangles[:, 0], triangles[:, 1], triangles[:, 2]])
    adjacency = scipy.sparse.coo_matrix((np.ones(rows.size), (rows, cols)),
                                        shape=(n_vertices, n_vertices)).tocsr()
    adjacency.data[:] = 1.0
    loop = np.asarray(max(_boundary_loops(triangles), key=len))
    angles = 2 * np.pi * np.arange(loop.size) / loop.size
    positions = np.zeros((n_vertices, 2))
    positions[loop, 0] = 0.5 * width * np.cos(angles)
    positions[loop, 1] = 0.5 * height * np.sin(angles)

    pinned = np.zeros(n_vertices, dtype=bool)
    pinned[loop] = True
    _, labels = scipy.sparse.csgraph.connected_components(adjacency, directed=False)
    pinned |= ~np.isin(labels, np.unique(labels[loop]))     # other components: centre
    free = np.flatnonzero(~pinned)
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    laplacian = scipy.sparse.diags(degree) - adjacency
    system = laplacian[free][:, free].tocsc()
    rhs = -(laplacian[free][:, np.flatnonzero(pinned)] @ positions[pinned])
    positions[free] = scipy.sparse.linalg.spsolve(system, rhs).reshape(-1, 2)
    return positions


def _face_cap(xy, width=1.8, height=2.2, depth=0.6):
    """Lifts [N,2] positions in the face ellipse onto the cap of `procedural_face`."""
    u = xy[:, 0] / (0.5 * width)
    v = xy[:, 1] / (0.5 * height)
    z = depth * np.sqrt(np.clip(1.0 - 0.55 * u ** 2 - 0.45 * v ** 2, 0.0, None))
    return np.column_stack([xy, z])


def _orient_front(xy, triangles, keypoints):
    """Mirrors and rotates embedded positions: triangles counter-clockwise seen
    from +z (so cross(v1-v2, v2-v3) points to the camera) and chin (landmark 8)
    below the nose bridge (landmark 27)."""
    a, b, c = xy[triangles[:, 0]], xy[triangles[:, 1]], xy[triangles[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    if np.sum(area > 0) < np.sum(area < 0):
        xy = xy * np.array([-1.0, 1.0])
    up = xy[keypoints[27]] - xy[keypoints[8]]
    angle = np.pi / 2 - np.arctan2(up[1], up[0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return xy @ rotation.T


def _save_mat(path, variables):
    import scipy.io
    scipy.io.savemat(str(path), variables, format="5", do_compression=False)


def _small_index_files(rng, face, n_exp_vertices, n_bfm_vertices):
    """Index files for a small model whose front mesh is `face` (see procedural_face).

    Returns:
      (trim_index [V_exp] 0-based into BFM, front_index [N] 0-based into the
      expression model, facemodel_info dict).
    """
    n = face["vertices"].shape[0]
    # Non-trivial permutations: a wrong order or a missing "- 1" shows up.
    trim_index = rng.permutation(n_bfm_vertices)[:n_exp_vertices]
    front_index = rng.permutation(n_exp_vertices)[:n]
    tri = face["triangles"]
    xy = face["vertices"][:, :2] / np.abs(face["vertices"][:, :2]).max(axis=0)
    frontmask2 = (xy ** 2).sum(axis=1) <= 0.8
    skinmask = ((xy[:, 0] ** 2 + (xy[:, 1] + 0.1) ** 2) <= 0.6) & (np.abs(xy[:, 1] - 0.25) > 0.12)
    # tri_mask2 indexes the frontmask2 vertices (1-based), as the release's file.
    tri_mask2 = np.searchsorted(np.flatnonzero(frontmask2), tri[frontmask2[tri].all(axis=1)])
    info = {
        "tri": (tri + 1).astype(np.float32),
        "point_buf": face["point_buf"].astype(np.float32),
        "keypoints": (face["keypoints"] + 1).reshape(1, -1).astype(np.float32),
        "frontmask2_idx": (np.flatnonzero(frontmask2) + 1).reshape(-1, 1).astype(np.float32),
        "tri_mask2": (tri_mask2 + 1).astype(np.float32),
        "skinmask": skinmask.reshape(1, -1).astype(np.float32),
        "frontmask2": frontmask2.reshape(1, -1).astype(np.float32),
    }
    return trim_index, front_index, info


def smooth_components(rng, positions, count, waves=4):
    """`count` smooth deformation fields of vertices at `positions`, as basis columns.

    Component k, axis c: the sum of `waves` sinusoids sin(w . p + phase) with
    random directions, phases and N(0, 1) amplitudes, of wavelength 2 dm / (1 + k / 20).

    Args:
      rng: a numpy Generator.
      positions: [V, 3] vertex positions, decimetres.
      count: number of components.
      waves: sinusoids per component and axis.

    Returns:
      [3V, count] float32, rows x0, y0, z0, x1, ...; each column has norm sqrt(3)
      (the expected norm of the noise components).
    """
    directions = rng.standard_normal((count, waves, 3))
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    wavelength = 2.0 / (1.0 + np.arange(count) / 20.0)
    omega = directions * (2.0 * np.pi / wavelength)[:, None, None]          # [K, F, 3]
    phase = rng.uniform(0.0, 2.0 * np.pi, (count, waves))
    amplitude = rng.standard_normal((count, waves, 3))
    waves_at = np.sin(np.einsum("vd,kfd->vkf", positions, omega) + phase)  # [V, K, F]
    field = np.einsum("vkf,kfc->vck", waves_at, amplitude)                 # [V, 3, K]
    field = field.reshape(-1, count)
    field *= np.sqrt(3.0) / np.linalg.norm(field, axis=0, keepdims=True)
    return field.astype(np.float32)


def write_bfm09(bfm_dir, seed=0, index_dir=None, n_shape_pc=199, n_exp_pc=79, n_tex_pc=199,
                n_rows=28, n_cols=24, n_bfm_vertices=None, bfm_dtype=np.float32,
                bases="noise", scale="synthetic"):
    """Writes a synthetic BFM09, expression basis and index files in the release's formats.

    Files written in `bfm_dir`:
      01_MorphableModel.mat (MATLAB v5): shapeMU [3V,1] micrometres, shapePC
        [3V,k], shapeEV [k,1], texMU [3V,1] RGB 0-255, texPC [3V,kt], texEV
        [kt,1] (`bfm_dtype`), tl [T,3] 1-based triangles and segbin [V,4]
        (a dummy segmentation field) as float64.
      Exp_Pca.bin: little-endian int32 n_exp, float32 expMU [3 V_exp], float32
        expPC stored basis after basis.
      std_exp.txt: one line of n_exp space-separated standard deviations.
      BFM_exp_idx.mat (trimIndex [V_exp,1] uint16), BFM_front_idx.mat (idx
        [N,1] float32), facemodel_info.mat, similarity_Lm3D_all.mat (lm [68,3]
        float32), select_vertex_id.mat (select_id [N,1] uint16).

    Without `index_dir` the model is small: the front mesh is
    `procedural_face(n_rows, n_cols)` (N = n_rows * n_cols), embedded in an
    expression model of N + 37 vertices and a BFM of V_exp + 23 vertices through
    random permutations, with small index files of its own; similarity_Lm3D_all
    holds the 68 keypoints of the re-centred mean face.

    With `index_dir` (the release's index files) those files are copied (std_exp.txt
    only when it has n_exp_pc values, otherwise a synthetic one is written) and
    the model is full size (53490 BFM vertices, len(trimIndex) expression
    vertices). The front vertices are placed by a Tutte embedding of the real
    front mesh on a face-sized cap (1.8 dm wide, 2.2 dm tall), so triangles have
    realistic sizes; the other vertices lie on a half ellipsoid behind it.

    Args:
      bfm_dir: output folder (created).
      seed: random seed.
      index_dir: folder of the release's index files, or None.
      n_shape_pc, n_exp_pc, n_tex_pc: numbers of stored components.
      n_rows, n_cols: grid of the small model's front mesh.
      n_bfm_vertices: BFM vertex count (default: small N + 60, full 53490).
      bfm_dtype: dtype of the model arrays of 01_MorphableModel.mat.
      bases: "noise" (default): shape and expression components are independent
        random numbers per vertex and axis; "smooth": each component is a sum of
        four random sinusoids of the mean vertex positions per axis (wavelengths
        from 2 dm for the first component down to about 0.4 dm for the 80th), so
        that, as in the real BFM, a component moves neighbouring vertices together.
        Both have the same norm per component (so the same size of deformation);
        the albedo components are per-vertex noise either way.
      scale: "synthetic" (default): shape components of 4e4 / (1 + k) ** 0.6
        micrometres over components of norm sqrt(3) (a vertex of the full-size
        model moves by 0.3 mm per standard deviation of the first, of the small
        one by 2.6 mm), expression as the release's std_exp.txt (full size) or
        3e5 / (1 + k) ** 0.7 (small); "bfm09": smooth components (`bases` is
        ignored) that move vertices as BFM09's do, whatever the vertex count:
        identity component k by `BFM09_FIRST_IDENTITY_MM` (1 + k) **
        -`BFM09_IDENTITY_DECAY` (3.82 mm for the first, root mean square over
        the vertices), expression component k by the release's std_exp[k] /
        sqrt(53,215) micrometres (1.97 mm for the first).

    Returns:
      A dict: paths ("bfm09", "exp_pca", "std_exp"), n_bfm_vertices,
      n_exp_vertices, n_front_vertices, front_positions [N,3] (decimetres, the
      front mean shape before any re-centring).
    """
    bfm_dir = pathlib.Path(bfm_dir)
    bfm_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    import scipy.io

    if index_dir is None:
        face = procedural_face(n_rows, n_cols)
        n_front = face["vertices"].shape[0]
        n_exp_vertices = n_front + 37
        n_bfm = n_bfm_vertices or n_exp_vertices + 23
        trim_index, front_index, info = _small_index_files(rng, face, n_exp_vertices, n_bfm)
        front_positions = face["vertices"] + np.array([0.05, -0.1, 0.3])
        triangles = face["triangles"]
        _save_mat(bfm_dir / "BFM_exp_idx.mat",
                  {"trimIndex": (trim_index + 1).reshape(-1, 1).astype(np.uint16)})
        _save_mat(bfm_dir / "BFM_front_idx.mat",
                  {"idx": (front_index + 1).reshape(-1, 1).astype(np.float32)})
        _save_mat(bfm_dir / "facemodel_info.mat", info)
        select_id = trim_index[front_index] + 1
        _save_mat(bfm_dir / "select_vertex_id.mat",
                  {"select_id": select_id.reshape(-1, 1).astype(np.uint16)})
        centred = front_positions - front_positions.mean(axis=0)
        _save_mat(bfm_dir / "similarity_Lm3D_all.mat",
                  {"lm": centred[face["keypoints"]].astype(np.float32)})
        std_exp = None
    else:
        index_dir = pathlib.Path(index_dir)
        for name in INDEX_FILE_NAMES:
            if name != "std_exp.txt":
                shutil.copyfile(index_dir / name, bfm_dir / name)
        std_exp = np.array(open(index_dir / "std_exp.txt").read().split(), dtype=np.float64)
        if std_exp.size == n_exp_pc:
            shutil.copyfile(index_dir / "std_exp.txt", bfm_dir / "std_exp.txt")
        else:
            std_exp = None
        trim_index = scipy.io.loadmat(str(index_dir / "BFM_exp_idx.mat"))["trimIndex"]
        trim_index = trim_index.ravel().astype(np.int64) - 1
        front_index = scipy.io.loadmat(str(index_dir / "BFM_front_idx.mat"))["idx"]
        front_index = front_index.ravel().astype(np.int64) - 1
        info = scipy.io.loadmat(str(index_dir / "facemodel_info.mat"))
        triangles = info["tri"].astype(np.int64) - 1
        keypoints = info["keypoints"].ravel().astype(np.int64) - 1
        n_front = front_index.size
        n_exp_vertices = trim_index.size
        n_bfm = n_bfm_vertices or FULL_BFM_VERTICES
        xy = _orient_front(tutte_embedding(triangles, n_front), triangles, keypoints)
        front_positions = _face_cap(xy) + np.array([0.0, 0.1, 0.2])

    if scale not in ("synthetic", "bfm09"):
        raise ValueError(f"scale must be 'synthetic' or 'bfm09', not {scale!r}")
    if scale == "bfm09":
        bases = "smooth"
        std_exp = None      # written below, for the vertex count of this model
    if std_exp is None and scale == "synthetic":   # small, or the release's did not fit
        std_exp = 3e5 / (1.0 + np.arange(n_exp_pc)) ** 0.7
        with open(bfm_dir / "std_exp.txt", "w") as stream:
            stream.write(" ".join(f"{value:g}" for value in std_exp))

    # Mean shape: front vertices where the index files put them, the rest on a
    # half ellipsoid behind the face.
    shape_vertex_of_front = trim_index[front_index]
    others = rng.standard_normal((n_bfm, 3))
    others /= np.linalg.norm(others, axis=1, keepdims=True)
    others[:, 2] = -np.abs(others[:, 2])
    positions = others * np.array([0.9, 1.1, 1.0]) + np.array([0.0, 0.1, 0.2])
    positions[shape_vertex_of_front] = front_positions
    shape_mu = (positions * 1e5).reshape(-1, 1)     # micrometres
    skin = np.array([200.0, 150.0, 120.0])
    tex_mu = (skin + rng.uniform(-25.0, 25.0, (n_bfm, 3))).reshape(-1, 1)

    if bases not in ("noise", "smooth"):
        raise ValueError(f"bases must be 'noise' or 'smooth', not {bases!r}")

    def components(n_rows_, k, scale):
        pc = rng.standard_normal((n_rows_, k), dtype=np.float32)
        pc *= np.float32(1.0 / np.sqrt(n_rows_ / 3.0))
        ev = scale / (1.0 + np.arange(k)) ** 0.6
        return pc, ev

    if bases == "smooth":
        shape_pc = smooth_components(rng, positions, n_shape_pc)
        shape_ev = 4e4 / (1.0 + np.arange(n_shape_pc)) ** 0.6
        if scale == "bfm09":       # columns of norm sqrt(3): sqrt(3 / V) per vertex
            shape_ev = (1000.0 * BFM09_FIRST_IDENTITY_MM * np.sqrt(n_bfm / 3.0)
                        / (1.0 + np.arange(n_shape_pc)) ** BFM09_IDENTITY_DECAY)
    else:
        shape_pc, shape_ev = components(3 * n_bfm, n_shape_pc, 4e4)
    tex_pc, tex_ev = components(3 * n_bfm, n_tex_pc, 40.0)
    tl = shape_vertex_of_front[triangles] + 1
    segbin = np.zeros((n_bfm, 4))
    segbin[np.arange(n_bfm), rng.integers(0, 4, n_bfm)] = 1.0
    _save_mat(bfm_dir / "01_MorphableModel.mat", {
        "shapeMU": shape_mu.astype(bfm_dtype),
        "shapePC": shape_pc.astype(bfm_dtype, copy=False),
        "shapeEV": shape_ev.reshape(-1, 1).astype(bfm_dtype),
        "texMU": tex_mu.astype(bfm_dtype),
        "texPC": tex_pc.astype(bfm_dtype, copy=False),
        "texEV": tex_ev.reshape(-1, 1).astype(bfm_dtype),
        "tl": tl.astype(np.float64),
        "segbin": segbin,
    })
    del shape_pc, tex_pc

    exp_mu = positions[trim_index].reshape(-1) * 1e5
    if bases == "smooth":
        exp_pc = smooth_components(rng, positions[trim_index], n_exp_pc).T.copy()
        if scale == "bfm09":
            from assets.catalog import BFM_DIR, STD_EXP_NAME

            release = np.array((BFM_DIR / STD_EXP_NAME).read_text().split(), np.float64)
            release = np.resize(release, n_exp_pc)        # repeats past its 79 values
            std_exp = release / np.sqrt(FULL_EXPRESSION_VERTICES) * np.sqrt(
                n_exp_vertices / 3.0)
            with open(bfm_dir / "std_exp.txt", "w") as stream:
                stream.write(" ".join(f"{value:g}" for value in std_exp))
    else:
        exp_pc = rng.standard_normal((n_exp_pc, 3 * n_exp_vertices), dtype=np.float32)
        exp_pc *= np.float32(1.0 / np.sqrt(n_exp_vertices))
    with open(bfm_dir / "Exp_Pca.bin", "wb") as stream:
        np.array([n_exp_pc], dtype="<i4").tofile(stream)
        exp_mu.astype("<f4").tofile(stream)
        exp_pc.astype("<f4", copy=False).tofile(stream)

    return {
        "bfm09": bfm_dir / "01_MorphableModel.mat",
        "exp_pca": bfm_dir / "Exp_Pca.bin",
        "std_exp": bfm_dir / "std_exp.txt",
        "n_bfm_vertices": n_bfm,
        "n_exp_vertices": n_exp_vertices,
        "n_front_vertices": n_front,
        "front_positions": front_positions,
    }


def write_uv(bfm_dir, written, seed=0):
    """BFM_UV.mat for a synthetic BFM09, in the format the repository ships.

    The front vertices are laid out by their mean-shape (x, y), centred and
    scaled into [0.05, 0.95]: the small model's grid keeps its left-right
    symmetry about u = 0.5 (the real layout's), and every triangle keeps its
    orientation. The other vertices get random coordinates.

    Args:
      bfm_dir: the folder `write_bfm09` wrote (its select_vertex_id.mat).
      written: `write_bfm09`'s result (n_bfm_vertices, front_positions).

    Returns:
      [N, 2] the front vertices' (u, v), in the front model's order.
    """
    import scipy.io

    bfm_dir = pathlib.Path(bfm_dir)
    select = scipy.io.loadmat(str(bfm_dir / "select_vertex_id.mat"))["select_id"]
    select = select.ravel().astype(np.int64) - 1
    xy = np.asarray(written["front_positions"], np.float64)[:, :2]
    centre = (xy.min(axis=0) + xy.max(axis=0)) / 2.0
    half = np.abs(xy - centre).max(axis=0)
    front_uv = 0.5 + 0.45 * (xy - centre) / half
    uv = np.random.default_rng(seed).uniform(0.0, 1.0, (written["n_bfm_vertices"], 2))
    uv[select] = front_uv
    _save_mat(bfm_dir / "BFM_UV.mat", {"UV": uv})
    return front_uv
