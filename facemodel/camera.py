"""The release's camera and the render's settings, defined once (docs/model.md#camera).

A pinhole at (0, 0, CAMERA_DISTANCE) looks down -z with focal length FOCAL
(pixels) and principal point (CENTER, CENTER) in an IMAGE_SIZE x IMAGE_SIZE
image, which is also the aligned crop the network sees. A posed point
(x, y, z), decimetres, projects to u = FOCAL x / (CAMERA_DISTANCE - z) +
CENTER, v likewise with y, and to the image point (u, LAST_ROW - v), x right
and y down.
"""
import math

FOCAL = 1015.0
CENTER = 112.0
CAMERA_DISTANCE = 10.0
IMAGE_SIZE = 224
LAST_ROW = IMAGE_SIZE - 1.0            # y down = LAST_ROW - y up
FOV_Y = math.degrees(2.0 * math.atan(CENTER / FOCAL))  # about 12.5936 degrees

# The renderer's call: clip planes, one light that adds nothing (intensity
# 0, far away), and a white ambient colour, so a pixel's colour is the
# interpolated vertex colour.
NEAR_CLIP = 0.01
FAR_CLIP = 50.0
LIGHT_POSITION = (0.0, 0.0, 1e5)
LIGHT_INTENSITY = (0.0, 0.0, 0.0)
AMBIENT_COLOR = (1.0, 1.0, 1.0)
