"""Differentiable triangle-mesh rendering with TensorFlow ops only.

A pure-TensorFlow replacement for google/tf_mesh_renderer (whose C++ op no
longer builds) with the same public API and the same pixels:

  mesh_renderer.mesh_renderer(...)         Phong-shaded RGBA renders.
  mesh_renderer.phong_shader(...)          Shading of rasterized buffers.
  mesh_renderer.tone_mapper(image, gamma)  Gamma tone mapping.
  mesh_renderer.rasterize_triangles        rasterize, rasterize_clip_space.
  mesh_renderer.camera_utils               perspective, look_at,
                                           euler_matrices,
                                           transform_homogeneous.

Runs eagerly, inside tf.function and in TF1-style graphs (sessions), on CPU
and GPU, and is differentiable with respect to vertex positions, normals and
colours. The contract is shared/spec/renderer.md; the algorithm is described
in mesh_renderer/_visibility.py and mesh_renderer/rasterize_triangles.py.
"""

from mesh_renderer import camera_utils, rasterize_triangles
from mesh_renderer.render import mesh_renderer, phong_shader, tone_mapper

__all__ = ['mesh_renderer', 'phong_shader', 'tone_mapper', 'camera_utils',
           'rasterize_triangles']
