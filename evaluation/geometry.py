"""The geometry the shape benchmarks share: closest points, similarities, scaled ICP.

Both shape benchmarks measure a scan against a predicted mesh after a
similarity (scale, rotation, translation) has put the mesh on the scan:
NoW from 7 landmark pairs then by lowering the scan-to-mesh distance,
MICC Florence by scaled ICP alone. Here:

- `closest_points`: each scan point's closest point on the mesh's surface,
  exactly (point to triangle, not to vertex), with point-cloud-utils'
  query on an AABB tree of the triangles (libigl's, in C++): 120,000 points
  against the 70,789 triangles of the BFM front mesh in about 0.9 s on one
  core, where trimesh's R-tree query took about 80 us a point (the same
  distances, to 1e-12).
- `similarity`: the least-squares similarity between point pairs, without
  reflection (Umeyama, 1991).
- `refine_similarity`: the similarity that lowers the sum of squared
  scan-to-mesh distances, by alternating closest points and `similarity`
  (ICP with scale; each round cannot raise the sum). The scan is moved
  into the mesh's frame by the inverse similarity, so that the mesh stays
  as given: a distance in the mesh's frame times the scale is the distance
  in the scan's.
"""
import numpy as np


class Surface:
    """A triangle mesh for closest-point queries.

    Args:
      vertices: [V, 3].
      triangles: [F, 3] 0-based.

    Attributes:
      vertices [V, 3] float64, triangles [F, 3] int64, corners [F, 3, 3],
      face_normals [F, 3] (unit; zero for a degenerate triangle).
    """

    def __init__(self, vertices, triangles):
        self.vertices = np.ascontiguousarray(vertices, np.float64)
        self.triangles = np.ascontiguousarray(triangles, np.int64)
        self.corners = self.vertices[self.triangles]
        normals = np.cross(self.corners[:, 1] - self.corners[:, 0],
                           self.corners[:, 2] - self.corners[:, 0])
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        self.face_normals = normals / np.where(length > 0, length, 1.0)


def mesh(vertices, triangles):
    """A `Surface` of vertices and 0-based triangles (kept as given)."""
    return Surface(vertices, triangles)


def closest_points(surface, points):
    """Closest points on a mesh's surface, exactly (point to triangle, not to vertex).

    Args:
      surface: a `Surface`.
      points: [N, 3] query points, the mesh's units.

    Returns:
      (closest [N, 3], distance [N], triangle [N] int): the closest point on
      the surface, its distance, and the triangle it lies on.
    """
    import point_cloud_utils

    points = np.ascontiguousarray(points, np.float64)
    distance, triangle, barycentric = point_cloud_utils.closest_points_on_mesh(
        points, surface.vertices, surface.triangles)
    triangle = np.asarray(triangle, np.int64)
    closest = np.einsum("nk,nkd->nd", np.asarray(barycentric, np.float64),
                        surface.corners[triangle])
    return closest, np.asarray(distance, np.float64), triangle


def similarity(source, target, scale=True):
    """The similarity that maps `source` points onto `target` points best (least squares).

    Args:
      source, target: [N, 3] corresponding points (N >= 3, not collinear).
      scale: also fit a scale (else it is 1).

    Returns:
      (s, R [3, 3], t [3]) with target ~ s R source + t; R a proper rotation.
    """
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    mean_s, mean_t = source.mean(axis=0), target.mean(axis=0)
    a, b = source - mean_s, target - mean_t
    u, singular, vt = np.linalg.svd(b.T @ a / len(source))
    sign = np.ones(3)
    sign[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag(sign) @ vt
    s = (singular * sign).sum() / (a ** 2).sum(axis=1).mean() if scale else 1.0
    return float(s), rotation, mean_t - s * rotation @ mean_s


def apply(transform, points):
    """s R p + t for [N, 3] points."""
    s, rotation, t = transform
    return s * np.asarray(points, np.float64) @ rotation.T + t


def invert(transform, points):
    """R^T (p - t) / s for [N, 3] points: the inverse of `apply`."""
    s, rotation, t = transform
    return (np.asarray(points, np.float64) - t) @ rotation / s


def refine_similarity(surface, scan, start, rounds=50, tolerance=1e-6):
    """Lowers the scan-to-mesh distance over the similarity that places the mesh.

    Args:
      surface: the predicted `mesh`, in its own frame.
      scan: [N, 3] scan points.
      start: (s, R, t) placing the mesh on the scan (`similarity`).
      rounds: at most this many rounds of closest points and `similarity`.
      tolerance: stop when the mean squared distance falls by less than this
        fraction in a round.

    Returns:
      ((s, R, t), mean squared distance, rounds run).
    """
    transform = start
    previous = np.inf
    for count in range(1, rounds + 1):
        local = invert(transform, scan)
        closest, distance, _ = closest_points(surface, local)
        error = float(np.mean((transform[0] * distance) ** 2))
        if np.isfinite(previous) and previous - error <= tolerance * previous:
            return transform, error, count
        previous = error
        transform = similarity(closest, scan)
    return transform, previous, rounds


def distances(surface, transform, scan):
    """Each scan point's distance to the placed mesh's surface, the scan's units."""
    _, distance, _ = closest_points(surface, invert(transform, scan))
    return transform[0] * distance


def point_to_plane(surface, transform, scan):
    """Each scan point's distance to the plane of its closest triangle on the placed mesh.

    Returns:
      [N] |(p - q) . n| with q the closest point on the surface and n the
      unit normal of its triangle (the scan's units).
    """
    local = invert(transform, scan)
    closest, _, triangle = closest_points(surface, local)
    normals = surface.face_normals[triangle]
    return transform[0] * np.abs(((local - closest) * normals).sum(axis=1))
