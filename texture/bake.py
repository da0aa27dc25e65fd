"""One photo's colours per texel, and textures finished from one photo or merged from many.

For each texel (`texture.atlas.TexelMap`) its point on the posed mesh is
the barycentric combination of its triangle's vertices. That point:
- projects through the release's camera into the aligned crop, and from the
  crop into the photo (`preprocess_img.map_to_original`), where the photo is
  sampled bilinearly: the texel takes the photo's colour at its own point,
  not an interpolation of per-vertex colours;
- is seen when the renderer's depth at its crop pixel (the surface of the
  triangle that wins that pixel, `networks.reconstructor`'s `depth`) is not
  in front of it by more than `DEPTH_TOLERANCE`, when it falls inside the
  photo, and when the surface faces the camera: the cosine between its
  normal and the direction to the camera is at least `MIN_COSINE`;
- weighs that cosine: how directly the photo sees it.

`TextureSum` adds photos up: each texel's colour is the weighted mean over
the photos that see it (one photo, an image set, a video's frames). A
finished texture fills the texels no photo saw: with the mirrored texel on
the other half of the face where that one was seen, else with the model's
lit colour (the mean over the photos of what the render shows there); its
mask says which: 255 seen, 128 mirrored, 0 the model's. Every texel outside
the layout's islands takes its nearest covered texel (`TexelMap.image`), so
no seam shows a background colour.
"""
import numpy as np

from facemodel import camera

DEPTH_TOLERANCE = 0.03         # decimetres (3 mm): depth the renderer's surface may lead by
MIN_COSINE = 0.1               # texels seen more obliquely are not taken from the photo
SEEN, MIRRORED, MODEL = 255, 128, 0


def _project(points, normals):
    """Texel points and normals, column-major [T, 3] float32, seen by the release's camera.

    Returns:
      (crop_x, crop_y, depth, cosine), each [T] float32: the crop position
      (pixels, x right, y down), the depth from the camera (decimetres) and
      the cosine between the normal and the direction to the camera.
    """
    x, y, z = points.T
    depth = camera.CAMERA_DISTANCE - z
    nx, ny, nz = normals.T
    dot = nz * depth - nx * x - ny * y
    length = (nx * nx + ny * ny + nz * nz) * (x * x + y * y + depth * depth)
    cosine = dot / np.maximum(np.sqrt(length), 1e-12)
    scale = camera.FOCAL / depth
    crop_x = x * scale
    crop_x += camera.CENTER
    crop_y = y * -scale
    crop_y += camera.LAST_ROW - camera.CENTER
    return crop_x, crop_y, depth, cosine


def crop_to_photo(trans_params):
    """The inverse alignment as an affine map: (matrix [2, 2], offset [2]).

    `preprocess_img.map_to_original` is affine in the crop position, so
    three points of it give the map, applied to every texel at once:
    photo = matrix @ crop + offset.
    """
    from preprocess_img import map_to_original

    corners = map_to_original(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), trans_params)
    return np.stack([corners[1] - corners[0], corners[2] - corners[0]], axis=1), corners[0]


def sample_image(image, x, y):
    """Bilinear samples of an RGB image at pixel positions x [T], y [T] (edges repeated).

    Returns:
      [T, 3] float32, column-major.
    """
    import cv2

    count, width = len(x), 1024                        # OpenCV's maps: rows of 1024
    rows = -(-count // width)
    height, columns = image.shape[:2]
    maps = np.zeros((2, rows * width), np.float32)
    np.clip(x, -1.0, columns, out=maps[0, :count])     # never a NaN or a far position
    np.clip(y, -1.0, height, out=maps[1, :count])
    sampled = cv2.remap(np.ascontiguousarray(image), maps[0].reshape(rows, width),
                        maps[1].reshape(rows, width), cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
    return cv2.transpose(sampled.reshape(-1, 3)[:count].astype(np.float32)).T


def bake_photo(texel_map, photo_rgb, trans_params, posed, normals, depth, lit):
    """One photo's colour and weight per texel.

    Args:
      texel_map: a `texture.atlas.TexelMap`.
      photo_rgb: [H, W, 3] uint8, the photo as read (`fileio.images.read_image`).
      trans_params: [5] its alignment (`preprocess_img.Preprocess`).
      posed: [N, 3] posed vertices (decimetres).
      normals: [N, 3] rotated normals.
      depth: [224, 224, 2] the renderer's depth of the visible surface (from
        the camera, decimetres) and its coverage (`Reconstructor`'s `depth`).
      lit: [N, 3] the lit vertex colours, RGB (the render's; `face_color`).

    Returns:
      (colours [T, 3] float32 RGB 0-255: the photo at each texel's point,
      meaningful where its weight is not 0; weights [T] float32: the cosine
      where seen, else 0; model [T, 3] float32: the lit colour).
    """
    at = texel_map.interpolate(np.concatenate([posed, normals, lit], axis=1))
    crop_x, crop_y, texel_depth, cosine = _project(at[:, :3], at[:, 3:6])
    model = np.clip(at[:, 6:], 0.0, 255.0)
    size = depth.shape[0]
    column = np.rint(crop_x).astype(np.int32)
    row = np.rint(crop_y).astype(np.int32)
    seen = (cosine >= MIN_COSINE) & (column >= 0) & (column < size) & (row >= 0) & (row < size)
    pixel = np.clip(row, 0, size - 1) * size + np.clip(column, 0, size - 1)
    surface = np.ascontiguousarray(depth[..., 0]).ravel().take(pixel)
    seen &= np.ascontiguousarray(depth[..., 1]).ravel().take(pixel) > 0.5
    seen &= texel_depth <= surface + DEPTH_TOLERANCE
    matrix, offset = crop_to_photo(trans_params)
    photo_x = crop_x * np.float32(matrix[0, 0]) + crop_y * np.float32(matrix[0, 1])
    photo_x += np.float32(offset[0])
    photo_y = crop_x * np.float32(matrix[1, 0]) + crop_y * np.float32(matrix[1, 1])
    photo_y += np.float32(offset[1])
    height, width = photo_rgb.shape[:2]
    seen &= (photo_x >= 0) & (photo_x <= width - 1) & (photo_y >= 0) & (photo_y <= height - 1)
    colours = sample_image(photo_rgb, photo_x, photo_y)
    weights = np.where(seen, cosine, np.float32(0.0))
    return colours, weights, model


class TextureSum:
    """Photos added up into one texture (see the module docstring).

    The sums are float32: a texel's sum of a video's weighted colours stays
    within a few hundredths of a level over ten thousand frames.

    Args:
      texel_map: a `texture.atlas.TexelMap`.
    """

    def __init__(self, texel_map):
        self.texel_map = texel_map
        count = len(texel_map)
        # Column-major [T, 3]: each channel contiguous, as `bake_photo` returns them.
        self.colour = np.zeros((3, count), np.float32).T
        self.weight = np.zeros(count, np.float32)
        self.model = np.zeros((3, count), np.float32).T
        self.photos = 0

    def add(self, colours, weights, model):
        """Adds one photo's `bake_photo` result."""
        self.colour += colours * weights[:, None]
        self.weight += weights
        self.model += model
        self.photos += 1

    def finish(self):
        """The texture and its mask.

        Returns:
          (texture [S, S, 3] uint8 RGB, mask [S, S] uint8: 255 seen, 128
          mirrored, 0 the model's colour).
        """
        seen = self.weight > 0
        colour = np.divide(self.colour, self.weight[:, None],
                           out=self.model * np.float32(1.0 / max(self.photos, 1)),
                           where=seen[:, None])
        mirror = self.texel_map.mirror
        mirrored = np.flatnonzero(~seen & seen[mirror])
        colour[mirrored] = colour[mirror[mirrored]]
        texel = np.empty((len(colour), 4), np.uint8)        # RGB and the mask
        texel[:, :3] = np.clip(colour + 0.5, 0.0, 255.0)
        texel[:, 3] = np.where(seen, SEEN, MODEL)
        texel[mirrored, 3] = MIRRORED
        image = self.texel_map.image(texel)
        return image[..., :3], image[..., 3]

    def coverage(self):
        """The fraction of the layout's texels seen by at least one photo."""
        return float(np.mean(self.weight > 0))


def albedo_texture(texel_map, albedo):
    """The model's albedo (unlit) in UV space: [S, S, 3] uint8 RGB."""
    values = np.clip(texel_map.interpolate(albedo) + 0.5, 0.0, 255.0).astype(np.uint8)
    return texel_map.image(values)
