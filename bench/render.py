"""Benchmark of mesh_renderer on a face-sized mesh; prints its figures.

Renders a procedural face mesh (35,721 vertices, 70,688 triangles, no
licensed data) the way the face pipeline does (camera at (0, 0, 10), fov
2*atan(112/1015) degrees, near 0.01, far 50, ambient light only) and reports
milliseconds per image for the forward pass and for forward + backward
(gradients with respect to vertices, normals and colours), at batch sizes 1
and 8, inside a `tf.function`. Every timed call renders a new scene (other
poses and colours), as a pipeline does with every batch of faces, so any
recompilation for new data shows in the figures. Also reports the process's
peak resident memory.

Usage:
  python bench/render.py                 # 224x224, batch 1 and 8
  python bench/render.py --size 1024 --batches 1 --repeats 2
"""

import argparse
import math
import os
import resource
import sys
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

import mesh_renderer  # pylint: disable=g-import-not-at-top
from tests.synthetic_assets import procedural_face  # pylint: disable=g-import-not-at-top


def face_scene(batch, seed=0):
  """A batch of face-sized meshes with small random poses and colours."""
  face = procedural_face(189, 189)
  vertices = face['vertices'].astype(np.float32)
  triangles = face['triangles'].astype(np.int32)
  rng = np.random.default_rng(seed)
  # Vertex normals from the triangle normals (area weighted).
  v0, v1, v2 = (vertices[triangles[:, k]] for k in range(3))
  face_normals = np.cross(v1 - v0, v2 - v0)
  normals = np.zeros_like(vertices)
  for k in range(3):
    np.add.at(normals, triangles[:, k], face_normals)
  normals /= np.linalg.norm(normals, axis=1, keepdims=True)
  all_vertices, all_normals = [], []
  for _ in range(batch):
    angle = rng.uniform(-0.2, 0.2, 3)
    cx, cy, cz = np.cos(angle)
    sx, sy, sz = np.sin(angle)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    rotation = (rz @ ry @ rx).astype(np.float32)
    shift = rng.uniform(-0.1, 0.1, 3).astype(np.float32)
    all_vertices.append(vertices @ rotation.T + shift)
    all_normals.append(normals @ rotation.T)
  colors = rng.uniform(100.0, 230.0, (batch,) + vertices.shape)
  return (np.stack(all_vertices), triangles, np.stack(all_normals),
          colors.astype(np.float32))


def make_render(size):
  fov = 2.0 * math.degrees(math.atan(112.0 / 1015.0))

  def render(vertices, triangles, normals, colors):
    batch = tf.shape(vertices)[0]
    return mesh_renderer.mesh_renderer(
        vertices, triangles, normals, colors,
        camera_position=tf.constant([0.0, 0.0, 10.0]),
        camera_lookat=tf.constant([0.0, 0.0, 0.0]),
        camera_up=tf.constant([0.0, 1.0, 0.0]),
        light_positions=tf.tile(tf.constant([[[0.0, 0.0, 1e5]]]),
                                [batch, 1, 1]),
        light_intensities=tf.zeros([batch, 1, 3]),
        image_width=size, image_height=size,
        ambient_color=tf.ones([batch, 3]),
        fov_y=fov, near_clip=0.01, far_clip=50.0)

  return render


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--size', type=int, default=224)
  parser.add_argument('--batches', type=int, nargs='+', default=[1, 8])
  parser.add_argument('--repeats', type=int, default=10)
  args = parser.parse_args()

  render = make_render(args.size)

  @tf.function
  def forward(vertices, triangles, normals, colors):
    return render(vertices, triangles, normals, colors)

  @tf.function
  def forward_backward(vertices, triangles, normals, colors, weights):
    with tf.GradientTape() as tape:
      tape.watch([vertices, normals, colors])
      image = render(vertices, triangles, normals, colors)
      loss = tf.reduce_sum(image * weights)
    return image, tape.gradient(loss, [vertices, normals, colors])

  print('mesh_renderer benchmark: face mesh 35,721 vertices / 70,688 '
        'triangles, %dx%d, %d CPU threads visible' %
        (args.size, args.size, os.cpu_count()))
  for batch in args.batches:
    # One warm-up scene, then a new scene for every timed call.
    scenes = [[tf.constant(a) for a in face_scene(batch, seed)]
              for seed in range(args.repeats + 1)]
    weights = tf.constant(np.random.default_rng(1).uniform(
        size=(batch, args.size, args.size, 4)).astype(np.float32))
    image = forward(*scenes[0])
    coverage = float(tf.reduce_mean(image[..., 3]))
    for name, fn, extra in (('forward', forward, ()),
                            ('forward+backward', forward_backward,
                             (weights,))):
      tf.nest.map_structure(lambda t: t.numpy(), fn(*scenes[0], *extra))
      times = []
      for scene in scenes[1:]:
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(*scene, *extra))
        times.append(time.perf_counter() - start)
      best = min(times) * 1e3 / batch
      median = float(np.median(times)) * 1e3 / batch
      worst = max(times) * 1e3 / batch
      print('batch %d  %-17s %8.2f ms/image (median %.2f, worst %.2f; '
            'coverage %.3f)' % (batch, name, best, median, worst, coverage))
  peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
  print('peak resident memory of the process: %.0f MiB' % peak_mib)


if __name__ == '__main__':
  main()
