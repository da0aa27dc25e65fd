"""A video's results on disk: one .mat or .npz file, and an optional preview video.

The keys `coeff` [N,257] and `transform_params` [N,5] are those the release's
users (PIRenderer and others) read; the other keys add what a dataset needs
to be checked and reused. Files are written atomically: a file that exists is
complete.
"""
import io
import json
import os
import pathlib
import threading

import numpy as np

from fileio import result_files


def result_arrays(results, coeff, options, identity=None, extra=None):
    """The arrays written for one video.

    Args:
      results: the video's `video.FrameResults`.
      coeff: [N, L] float32 final coefficients (filled, maybe smoothed).
      options: dict of the options used (written as JSON text).
      identity: optional (id [80], tex [80]) per-video identity and albedo.
      extra: optional {key: [N, ...] per-frame array} written as they are
        (a fit's `coeff_network` and `fit_loss`).

    Returns:
      dict: coeff [N,L] float32, transform_params [N,5] float64, lm68
      [N,68,2] float32, lm68_detected [N,68,2] float32, lm5 [N,5,2] float32
      (frame pixels), frame_index [N] int64, time [N] float64 (seconds),
      valid [N] bool, fps float64, options str, and with `identity`
      video_id_coeff [80] and video_tex_coeff [80] float32; with `extra`,
      its arrays.
    """
    arrays = {
        "coeff": np.asarray(coeff, np.float32),
        "transform_params": np.asarray(results.transform_params, np.float64),
        "lm68": np.asarray(results.lm68, np.float32),
        "lm68_detected": np.asarray(results.lm68_detected, np.float32),
        "lm5": np.asarray(results.lm5, np.float32),
        "frame_index": np.asarray(results.frame_index, np.int64),
        "time": np.asarray(results.time, np.float64),
        "valid": np.asarray(results.valid, bool),
        "fps": np.float64(results.fps),
        "options": json.dumps(options, sort_keys=True),
    }
    if identity is not None:
        arrays["video_id_coeff"], arrays["video_tex_coeff"] = identity
    for key, value in (extra or {}).items():
        arrays[key] = np.asarray(value, np.float32)
    return arrays


def write_result(path, arrays, output_format="mat"):
    """Writes a video's arrays atomically as .mat or .npz.

    In a .mat file, 1-D per-frame arrays (frame_index, time, valid, fit_loss) are stored as
    [N, 1] columns, `valid` as uint8, and `fps` as a 1x1 matrix (MATLAB has
    no 1-D arrays or booleans); .npz keeps every shape and dtype.

    Args:
      path: the output file.
      arrays: from `result_arrays`.
      output_format: "mat" or "npz".
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if output_format == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        result_files.write_atomically(path, buffer.getbuffer())
        return
    variables = dict(arrays)
    for name, dtype in (("frame_index", np.int64), ("time", np.float64), ("valid", np.uint8),
                        ("fit_loss", np.float32)):
        if name in variables:
            variables[name] = variables[name].astype(dtype).reshape(-1, 1)
    for name in ("video_id_coeff", "video_tex_coeff"):
        if name in variables:
            variables[name] = variables[name].reshape(1, -1)
    result_files.write_mat(path, variables)


class PreviewWriter:
    """Writes a preview video frame by frame, renamed into place when complete.

    Args:
      path: the .mp4 file.
      fps: frames per second (the video's own, 25 when unknown).
      size: (width, height) of the frames.
    """

    def __init__(self, path, fps, size):
        import av

        self.path = pathlib.Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(
            f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp.mp4")
        self._container = av.open(str(self._tmp), "w")
        rate = round(fps) if fps and fps > 0 else 25
        self._stream = self._container.add_stream("mpeg4", rate=rate)
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        # A fixed quantiser of 3 (FFmpeg's global_quality is in lambda units, 118 a step).
        self._stream.options = {"flags": "+qscale", "global_quality": str(3 * 118)}
        self._av = av

    def write(self, rgb):
        """Appends one [H, W, 3] uint8 RGB frame."""
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self, keep=True):
        """Finishes the file; `keep=False` discards it (the video failed)."""
        if self._container is None:
            return
        try:
            if keep:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
            if keep:
                os.replace(self._tmp, self.path)
        finally:
            self._container = None
            if self._tmp.exists():
                self._tmp.unlink()
