"""Edge cases of mesh_renderer (renderer.md): empty scenes, w = 0, degenerate and
non-finite triangles, wrong shapes. References: the NumPy rasterizer of
renderer_reference and direct reasoning about each scene."""
import numpy as np
import pytest
import tensorflow as tf

import mesh_renderer
from mesh_renderer import rasterize_triangles
from tests.renderer_reference import (
    CUBE,
    CUBE_TRIANGLES,
    DIFFUSE,
    assert_matches_reference,
    numpy_rasterize,
    render_ids,
)

# 7. Edge cases
# ----------------------------------------------------------------------------

def _raster(clip, triangles, size=(20, 16), attrs=None):
    clip = tf.convert_to_tensor(clip, tf.float32)
    if attrs is None:
        attrs = np.ones(tuple(clip.shape[:2]) + (1,), np.float32)
    return rasterize_triangles.rasterize_clip_space(
        clip, attrs, np.asarray(triangles, np.int32).reshape(-1, 3), size[0],
        size[1], [-1.0] * attrs.shape[2])


def test_no_triangles():
    out = _raster(np.zeros((2, 3, 4)), np.zeros((0, 3))).numpy()
    assert out.shape == (2, 16, 20, 1) and np.all(out == -1.0)


def test_all_triangles_behind_camera():
    clip = np.array([[[-1, -1, 0.5, -1], [1, -1, 0.5, -2], [0, 1, 0.5, -1.5]]])
    assert np.all(_raster(clip, [[0, 1, 2]]).numpy() == -1.0)


def test_triangles_crossing_w_zero_match_reference():
    clip = np.array([[[-0.6, -0.5, 0.2, 1.0], [0.7, -0.4, -0.3, -0.5],
                      [0.1, 0.8, 0.4, 0.8], [0.5, 0.5, 0.1, 0.9],
                      [-0.9, 0.2, 0.3, -0.2], [0.2, -0.9, 0.0, 0.1]]])
    triangles = np.array([[0, 1, 2], [3, 4, 5]])
    ids, _ = numpy_rasterize(clip[0], triangles, 31, 23)[:2]
    assert np.any(ids >= 0)
    assert_matches_reference(clip.astype(np.float32), triangles, 31, 23)


def test_one_triangle_covering_the_whole_image():
    clip = np.array([[[-50.0, -50.0, 0.0, 1.0], [50.0, -50.0, 0.0, 1.0],
                      [0.0, 60.0, 0.0, 1.0]]], np.float32)
    ours_ids, _ = render_ids(clip, [[0, 1, 2]], 300, 200)
    assert np.all(ours_ids == 0)
    assert_matches_reference(clip, np.array([[0, 1, 2]]), 30, 20)


def test_zero_area_triangles_are_not_drawn():
    clip = np.array([[[-0.5, -0.5, 0.0, 1.0], [0.5, 0.5, 0.0, 1.0],
                      [0.0, 0.0, 0.0, 1.0], [0.2, 0.3, 0.0, 1.0]]], np.float32)
    out = _raster(clip, [[0, 1, 2], [3, 3, 3], [0, 0, 1]]).numpy()
    assert np.all(out == -1.0)
    with tf.GradientTape() as tape:
        c = tf.constant(clip)
        tape.watch(c)
        value = tf.reduce_sum(_raster(c, [[0, 1, 2], [3, 3, 3]]))
    assert np.all(np.isfinite(tape.gradient(value, c).numpy()))


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf, 1e30])
def test_non_finite_vertices_only_drop_their_triangles(bad):
    clip = np.array([[[-0.9, -0.9, 0.0, 1.0], [-0.1, -0.9, 0.0, 1.0],
                      [-0.5, 0.9, 0.0, 1.0], [0.1, -0.9, 0.0, 1.0],
                      [0.9, -0.9, 0.0, 1.0], [0.5, 0.9, 0.0, 1.0]]],
                    np.float32)
    clean = render_ids(clip, [[0, 1, 2], [3, 4, 5]], 20, 16)[0]
    clip[0, 4, 0] = bad
    attrs = np.ones((1, 6, 2), np.float32)
    if not np.isfinite(bad):
        attrs[0, 4] = np.nan       # attributes of the dropped triangle
    c = tf.constant(clip)
    with tf.GradientTape() as tape:
        tape.watch(c)
        out = _raster(c, [[0, 1, 2], [3, 4, 5]], attrs=attrs)
        value = tf.reduce_sum(out)
    out = out.numpy()[0, ..., 0]
    assert np.all(np.isfinite(out))
    assert np.all(np.isfinite(tape.gradient(value, c).numpy()))
    if np.isfinite(bad):
        # A huge but finite vertex is legitimate geometry: a long sliver.
        assert np.all(out[clean[0] == 0] > 0.99)
    else:
        # Non-finite: the triangle using the vertex is not drawn.
        np.testing.assert_array_equal(out > 0.99, clean[0] == 0)


@pytest.mark.parametrize('name', [
    'vertices', 'triangles', 'normals', 'diffuse_colors', 'camera_position',
    'light_positions', 'light_intensities', 'ambient_color', 'fov_y',
    'image_width', 'specular_colors'])
def test_wrong_shapes_raise_value_error_naming_the_argument(name):
    args = dict(vertices=CUBE[None], triangles=CUBE_TRIANGLES,
                normals=CUBE[None], diffuse_colors=DIFFUSE[None],
                camera_position=[0.0, 0.0, 6.0], camera_lookat=[0.0, 0.0, 0.0],
                camera_up=[0.0, 1.0, 0.0],
                light_positions=np.zeros((1, 1, 3), np.float32),
                light_intensities=np.ones((1, 1, 3), np.float32),
                image_width=8, image_height=6,
                ambient_color=np.zeros((1, 3), np.float32))
    bad = {'vertices': CUBE, 'triangles': CUBE_TRIANGLES[:, :2],
           'normals': CUBE[None, :, :2], 'diffuse_colors': DIFFUSE,
           'camera_position': np.zeros((1, 4), np.float32),
           'light_positions': np.zeros((1, 3), np.float32),
           'light_intensities': np.zeros((1, 1, 2), np.float32),
           'ambient_color': np.zeros((3, 3), np.float32),
           'fov_y': np.ones((1, 1), np.float32), 'image_width': 0,
           'specular_colors': DIFFUSE}
    args[name] = bad[name]
    if name == 'specular_colors':
        args['shininess_coefficients'] = 6.0
    with pytest.raises(ValueError, match=name):
        mesh_renderer.mesh_renderer(**args)


@pytest.mark.parametrize('name', ['clip_space_vertices', 'attributes',
                                  'triangles', 'background_value',
                                  'image_height'])
def test_rasterize_wrong_shapes_raise_value_error(name):
    args = dict(clip_space_vertices=np.zeros((1, 3, 4), np.float32),
                attributes=np.zeros((1, 3, 2), np.float32),
                triangles=[[0, 1, 2]], image_width=4, image_height=4,
                background_value=[0.0, 0.0])
    bad = {'clip_space_vertices': np.zeros((1, 3, 3), np.float32),
           'attributes': np.zeros((1, 4, 2), np.float32),
           'triangles': [0, 1, 2], 'background_value': [0.0],
           'image_height': -2}
    args[name] = bad[name]
    with pytest.raises(ValueError, match=name):
        rasterize_triangles.rasterize_clip_space(**args)


def test_depth_order_keeps_the_order_of_depths_and_equates_signed_zeros():
    # The depth test compares integers; their order must be the order of the
    # float32 depths, with -0 and +0 equal (so that an exact tie at depth 0
    # goes to the later triangle, as for any other depth).
    from mesh_renderer import _edges

    tiny = np.finfo(np.float32).tiny
    depths = np.array([-1.0, -0.5, -1e-30, -tiny, -tiny / 4, -0.0, 0.0,
                       tiny / 4, tiny, 1e-30, 0.25, 0.9999999, 1.0],
                      np.float32)
    depths = np.concatenate([depths, np.random.default_rng(5).uniform(
        -1.0, 1.0, 200).astype(np.float32)])
    order = _edges.depth_order(tf.constant(depths)).numpy()
    for i in range(len(depths)):
        for j in range(len(depths)):
            assert (order[i] < order[j]) == (depths[i] < depths[j])
            assert (order[i] == order[j]) == (depths[i] == depths[j])
