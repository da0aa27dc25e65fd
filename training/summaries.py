"""TensorBoard logs of a training run: every loss term, and pictures to look at.

Image panels (up to 4 photos of the batch): the photo, the render over the
photo, and the photo with the predicted 68 landmarks (green) and the target
ones (red).
"""
import numpy as np
import tensorflow as tf

_PANELS = 4


def write_scalars(writer, step, terms, learning_rate, steps_per_second):
    """Logs each loss term (loss/NAME), the learning rate and the speed."""
    with writer.as_default(step=step):
        for name, value in terms.items():
            tf.summary.scalar(f"loss/{name}", float(value))
        tf.summary.scalar("learning_rate", learning_rate)
        tf.summary.scalar("steps_per_second", steps_per_second)


def panels(images_bgr, render_rgba, predicted, target):
    """The pictures of a batch.

    Args:
      images_bgr: [B,224,224,3] BGR 0-255 photos.
      render_rgba: [B,224,224,4] renders (RGB 0-255, A coverage).
      predicted, target: [B,68,2] landmarks, crop pixels, y down.

    Returns:
      dict name -> [min(B,4),224,224,3] uint8 RGB: photo, render_over_photo,
      landmarks.
    """
    import cv2

    count = min(len(images_bgr), _PANELS)
    photo = np.clip(np.asarray(images_bgr[:count])[..., ::-1], 0, 255)
    render = np.asarray(render_rgba[:count])
    alpha = np.clip(render[..., 3:4], 0, 1)
    over = np.clip(render[..., :3], 0, 255) * alpha + photo * (1 - alpha)
    marked = []
    for i in range(count):
        canvas = np.ascontiguousarray(photo[i].astype(np.uint8))
        for points, colour in ((target[i], (255, 0, 0)), (predicted[i], (0, 255, 0))):
            for x, y in np.asarray(points):
                if np.isfinite(x) and np.isfinite(y):
                    cv2.circle(canvas, (int(round(x)), int(round(y))), 2, colour, -1,
                               cv2.LINE_AA)
        marked.append(canvas)
    return {"photo": photo.astype(np.uint8), "render_over_photo": over.astype(np.uint8),
            "landmarks": np.stack(marked)}


def write_images(writer, step, batch, outputs):
    """Logs the pictures of `panels` for a batch and its outputs (tensors or arrays)."""
    pictures = panels(batch["images"], np.asarray(outputs["render"]),
                      np.asarray(outputs["landmarks"]), batch["landmarks"])
    with writer.as_default(step=step):
        for name, picture in pictures.items():
            tf.summary.image(name, picture, max_outputs=_PANELS)
