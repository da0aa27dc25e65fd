"""The texture package's parts on the UV layout the repository ships (BFM/BFM_UV.mat).

The front mesh is the release's own (facemodel_info.mat's triangles), so
these tests see the real layout's islands, seams and symmetry.
"""
import numpy as np
import pytest
import scipy.io

from assets import catalog

SIZE = 256


@pytest.fixture(scope="module")
def texel_map():
    from texture.atlas import Atlas, load_uv

    triangles = scipy.io.loadmat(str(catalog.BFM_DIR / catalog.INFO_NAME))["tri"]
    atlas = Atlas(load_uv(catalog.BFM_DIR), np.asarray(triangles, np.int64) - 1)
    return atlas.texel_map(SIZE)


def test_real_layout_is_symmetric_and_one_per_front_vertex():
    from texture.atlas import load_uv

    uv = load_uv(catalog.BFM_DIR, n_front=35709)
    assert uv.shape == (35709, 2)
    # The mirror rule (u -> 1 - u) holds: every vertex has a twin across u = 0.5.
    from scipy.spatial import cKDTree

    distance, _ = cKDTree(uv).query(np.stack([1.0 - uv[:, 0], uv[:, 1]], axis=1))
    assert np.percentile(distance, 99) < 1e-6


def test_texel_weights_reproduce_the_texel_centre(texel_map):
    """Each texel's triangle and weights, applied to the vertices' (u, v), give its centre."""
    from texture.atlas import load_uv

    uv = load_uv(catalog.BFM_DIR)
    at = np.einsum("tk,tkc->tc", texel_map.weights, uv[texel_map.vertices])
    row, col = np.divmod(texel_map.texels, SIZE)
    centre = np.stack([(col + 0.5) / SIZE, 1.0 - (row + 0.5) / SIZE], axis=1)
    np.testing.assert_allclose(at, centre, atol=1e-4)
    assert np.all(texel_map.weights >= 0) and 0.3 < len(texel_map) / SIZE ** 2 < 0.9
    np.testing.assert_allclose(texel_map.interpolate(uv), at, atol=1e-5)


def test_one_colour_fills_the_whole_image_so_no_seam_shows_another(texel_map):
    from texture.bake import SEEN, TextureSum

    total = TextureSum(texel_map)
    count = len(texel_map)
    total.add(np.tile(np.float32([200, 100, 50]), (count, 1)), np.ones(count, np.float32),
              np.zeros((count, 3), np.float32))
    texture, mask = total.finish()
    # Every texel, inside the islands or out: a filter at a seam mixes nothing else in.
    assert np.all(texture == [200, 100, 50]) and np.all(mask == SEEN)


def test_unseen_texels_take_their_mirror_else_the_model(texel_map):
    from texture.bake import MIRRORED, MODEL, SEEN, TextureSum

    rng = np.random.default_rng(0)
    count = len(texel_map)
    colours = rng.uniform(0, 255, (count, 3)).astype(np.float32)
    row, col = np.divmod(texel_map.texels, SIZE)
    weights = np.where(col < SIZE // 2, 0.5, 0.0).astype(np.float32)   # the left half seen
    weights[row < SIZE // 4] = 0.0                                        # ... below a line
    model = np.full((count, 3), 90.0, np.float32)
    total = TextureSum(texel_map)
    total.add(colours, weights, model)
    total.add(colours, np.zeros(count, np.float32), model + 20.0)  # a photo seeing nothing
    texture, mask = total.finish()
    image = np.zeros((SIZE, SIZE, 3), np.float32)
    image[row, col] = colours
    covered = np.zeros((SIZE, SIZE), bool)
    covered[row, col] = True
    left = covered & (np.arange(SIZE) < SIZE // 2)[None, :] & \
        (np.arange(SIZE) >= SIZE // 4)[:, None]
    np.testing.assert_array_equal(mask[left], SEEN)
    np.testing.assert_allclose(texture[left], np.rint(image[left]), atol=0.51)
    # Right half: the mirrored left texel (image flipped left to right), where it is covered.
    right = left[:, ::-1] & covered
    assert right.sum() > 0.9 * left.sum()
    np.testing.assert_array_equal(mask[right], MIRRORED)
    np.testing.assert_allclose(texture[right], np.rint(image[:, ::-1][right]), atol=0.51)
    # Above the line neither side was seen: the model's colour, the mean over both photos.
    top = covered & (np.arange(SIZE) < SIZE // 4)[:, None]
    np.testing.assert_array_equal(mask[top], MODEL)
    assert np.all(texture[top] == 100)


def test_bake_sees_only_what_faces_the_camera_inside_the_photo(texel_map):
    """A flat sheet at z = 0 facing the camera: every texel inside the crop and photo is seen,
    with the cosine of its direction to the camera; turned away, none is."""
    from facemodel import camera
    from preprocess_img import map_to_original
    from texture.atlas import load_uv
    from texture.bake import bake_photo

    uv = load_uv(catalog.BFM_DIR)
    posed = np.concatenate([(uv - 0.5) * 3.0, np.zeros((len(uv), 1))], axis=1)   # decimetres
    normals = np.tile([0.0, 0.0, 1.0], (len(uv), 1))
    depth = np.stack([np.full((224, 224), camera.CAMERA_DISTANCE), np.ones((224, 224))], -1)
    photo = np.random.default_rng(1).integers(0, 255, (300, 260, 3), dtype=np.uint8)
    params = np.array([260.0, 300.0, 1.3, 120.0, 150.0])
    lit = np.full((len(uv), 3), 300.0)
    colours, weights, model = bake_photo(texel_map, photo, params, posed, normals, depth, lit)
    assert np.all(model == 255.0)                                         # clipped
    points = texel_map.interpolate(posed)
    x = camera.FOCAL * points[:, 0] / camera.CAMERA_DISTANCE + camera.CENTER
    y = camera.LAST_ROW - (camera.FOCAL * points[:, 1] / camera.CAMERA_DISTANCE + camera.CENTER)
    in_photo = map_to_original(np.stack([x, y], axis=1).astype(np.float64), params)
    inside = (np.rint(x) >= 0) & (np.rint(x) < 224) & (np.rint(y) >= 0) & (np.rint(y) < 224) \
        & np.all((in_photo >= 0) & (in_photo <= [259, 299]), axis=1)
    assert 0.2 < inside.mean() < 1.0
    np.testing.assert_array_equal(weights > 0, inside)
    to_camera = np.array([0.0, 0.0, camera.CAMERA_DISTANCE]) - points
    cosine = to_camera[:, 2] / np.linalg.norm(to_camera, axis=1)
    np.testing.assert_allclose(weights[inside], cosine[inside], rtol=1e-5)
    # The photo's colour at the texel's point, by OpenCV-independent bilinear sampling.
    from scipy.ndimage import map_coordinates

    expected = np.stack([map_coordinates(photo[..., c].astype(np.float64),
                                         [in_photo[inside, 1], in_photo[inside, 0]], order=1)
                         for c in range(3)], axis=1)
    np.testing.assert_allclose(colours[inside], expected, atol=0.6)
    _, away, _ = bake_photo(texel_map, photo, params, posed, -normals, depth, lit)
    assert not away.any()
    # Something in front of the sheet hides it.
    _, hidden, _ = bake_photo(texel_map, photo, params, posed, normals,
                              depth - [0.1, 0.0], lit)
    assert not hidden.any()
