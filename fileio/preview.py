"""Pictures to check a reconstruction at a glance.

`side_by_side` puts three 224x224 panels in a row: the aligned crop, the
rendered face over it, and the crop with the 68 reconstructed landmarks
(green) and the 5 alignment points (red). demo.py saves it as NAME_vis.png;
extract.py --preview strings one per frame into a video.
"""
import numpy as np


def side_by_side(crop_rgb, render_rgba, lm68, lm5):
    """Three panels side by side: the crop, the render over it, the landmarks.

    Args:
      crop_rgb: [224, 224, 3] uint8 RGB aligned crop.
      render_rgba: [224, 224, 4] float render, RGB 0-255 and coverage A in [0, 1].
      lm68: [68, 2] reconstructed landmarks, crop pixels (x right, y down).
      lm5: [5, 2] alignment points, crop pixels.

    Returns:
      [224, 672, 3] uint8 RGB image.
    """
    import cv2

    covered = render_rgba[:, :, 3:4] > 0.5
    overlay = np.where(covered, np.clip(render_rgba[:, :, :3], 0, 255), crop_rgb)
    marked = np.ascontiguousarray(crop_rgb.copy())
    for x, y in lm68:
        cv2.circle(marked, (int(round(x)), int(round(y))), 2, (0, 255, 0), -1, cv2.LINE_AA)
    for x, y in lm5:
        cv2.circle(marked, (int(round(x)), int(round(y))), 3, (255, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([crop_rgb, overlay.astype(np.uint8), marked], axis=1)
