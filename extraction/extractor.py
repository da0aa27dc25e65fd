"""`Extractor`: loaded once, called on batches of videos; what both engines run.

Its shape is that of a Ray Data batch-inference class: the constructor loads
the network, the face model and the landmark detector; each call takes a
batch {"path": [relative paths]} and returns one row per video saying what
happened. Each video's outputs are written by the call itself, atomically, so
a worker that dies loses at most the videos it was working on.
"""
import dataclasses
import pathlib
import time

import numpy as np

from extraction import outputs, postprocess
from extraction.inputs import is_done, output_path, preview_path, texture_paths
from extraction.video import reconstruct_video
from fileio.errors import InputError
from fileio.video import is_video
from fitting import FitFailed
from landmarks.files import read_landmarks
from networks.files import model_record


@dataclasses.dataclass
class ExtractOptions:
    """Everything a worker needs to process videos (plain values: it is pickled to Ray).

    Attributes:
      input_root, output_root: folders; inputs are named relative to the first.
      bfm_dir, model_path: the assets.
      batch_size: frames per network run.
      landmarks: "track" (MTCNN, then the 68-point predictor from frame to
        frame) or "detect" (MTCNN on every frame).
      redetect_every: with "track", check the track with MTCNN at least
        every this many frames.
      smooth: Savitzky-Golay window in frames for pose, translation and
        expression (0: none).
      identity: "frame" (per-frame identity only) or "video" (also one mean
        identity and albedo per video).
      every: process every `every`-th frame.
      preview: also write NAME_preview.mp4 (crop, render over it, landmarks).
      output_format: "mat" or "npz".
      overwrite: redo videos whose output exists.
      threads: CPU threads for the network (None: all cores).
      refine: Adam steps of the fit after the network (`fitting.video_fit`;
        0: no fit).
      uv: the side of the video's UV texture, texels (0: none; `--uv`).
    """
    input_root: str
    output_root: str
    bfm_dir: str
    model_path: str
    batch_size: int = 8
    landmarks: str = "track"
    redetect_every: int = 30
    smooth: int = 0
    identity: str = "frame"
    every: int = 1
    preview: bool = False
    output_format: str = "mat"
    overwrite: bool = False
    threads: object = None
    refine: int = 0
    uv: int = 0

    def record(self, **per_video):
        """The options that shape the numbers, as written into each output file.

        Args:
          **per_video: what the video itself decided (its rotation, damage),
            added as they are.
        """
        return {**model_record(self.model_path), "batch_size": self.batch_size,
                "landmarks": self.landmarks, "redetect_every": self.redetect_every,
                "smooth": self.smooth, "identity": self.identity, "every": self.every,
                "refine": self.refine, "uv": self.uv, **per_video}


class Extractor:
    """Reconstructs videos and writes their results.

    Args:
      options: an `ExtractOptions`.

    Raises:
      assets.catalog.AssetError: an asset is missing or broken.
      ValueError: the network's output length is not 239, 257 or 258.
    """

    def __init__(self, options):
        from fitting.objective import TEMPORAL_WEIGHT
        from reconstruction.tools import load_tools

        self.options = options
        self.tools = load_tools(options.bfm_dir, options.model_path, render=options.preview,
                                mesh=options.preview, refine=options.refine,
                                temporal_weight=TEMPORAL_WEIGHT, threads=options.threads,
                                five="detect", need_68=True, texture=bool(options.uv))
        self.lm3d = self.tools.lm3d
        self.reconstructor = self.tools.reconstructor
        self.detector = self.tools.landmarks.detector
        self.predictor = self.tools.landmarks.predictor
        self.fitter = self.tools.fitter

    def __call__(self, batch, on_frames=None, on_refined=None):
        """Processes a batch of videos, writing each one's outputs.

        Args:
          batch: {"path": sequence of input paths relative to input_root}.
          on_frames: optional callable(n) told of every n frames finished.
          on_refined: optional callable(n, loss) told of every n frames fitted
            and their batch's final loss.

        Returns:
          dict of equal-length arrays, one entry per video: path (str),
          status ("done", "damaged" (written, but the video broke off),
          "skipped" or "failed"), message (the one-line reason of a failure
          or of the damage, else ""), frames (processed), valid_frames,
          detector_calls, seconds (the video's total), network_seconds.
        """
        rows = [self._one(str(relative), on_frames, on_refined) for relative in batch["path"]]
        return {key: np.array([row[key] for row in rows]) for key in rows[0]} if rows else {}

    def _one(self, relative, on_frames, on_refined=None):
        options = self.options
        row = {"path": relative, "status": "done", "message": "", "frames": 0,
               "valid_frames": 0, "detector_calls": 0, "seconds": 0.0, "network_seconds": 0.0}
        target = output_path(options.output_root, relative, options.output_format)
        if is_done(options.output_root, relative, options.output_format, bool(options.uv)) \
                and not options.overwrite:
            row["status"] = "skipped"
            return row
        start = time.perf_counter()
        source = pathlib.Path(options.input_root) / relative
        preview = None
        try:
            detect, from_file = self._detector_for(source)
            watchers = []
            if options.preview:
                preview = _Preview(preview_path(options.output_root, relative))
                watchers.append(preview.add)
            texture = None
            if options.uv:
                texture = _Texture(texture_paths(options.output_root, relative),
                                   self.tools.atlas, options.uv)
                watchers.append(texture.add)
            results = reconstruct_video(
                source, self.reconstructor, self.lm3d, detect, self.predictor.from_points,
                batch_size=options.batch_size, every=options.every,
                always_detect=from_file or options.landmarks == "detect",
                redetect_every=options.redetect_every, on_frames=on_frames,
                on_batch=(lambda *batch: [watch(*batch) for watch in watchers])
                if watchers else None, keep_frames=texture is not None)
            extra = {}
            coeff = results.coeff
            if self.fitter is not None:
                from fitting.video_fit import refine_video

                extra["coeff_network"] = results.coeff
                coeff, _, extra["fit_loss"] = refine_video(
                    source, results, self.fitter, self.lm3d, options.refine,
                    batch_size=options.batch_size, every=options.every,
                    progress=None if on_refined is None
                    else lambda n, total, loss: on_refined(n, loss))
            coeff = postprocess.hold_last_valid(coeff, results.valid)
            if options.smooth:
                coeff = postprocess.smooth_motion(coeff, options.smooth)
            identity = None
            if options.identity == "video":
                identity = postprocess.video_identity(coeff, results.valid)
            filled = dataclasses.replace(results, **{
                key: postprocess.hold_last_valid(getattr(results, key), results.valid)
                for key in ("lm68", "lm68_detected", "lm5", "transform_params")})
            per_video = {"rotation": results.rotation}
            if results.damage:
                per_video["damaged"] = results.damage
            arrays = outputs.result_arrays(filled, coeff, options.record(**per_video), identity,
                                           extra)
            if preview is not None:
                preview.finish()
                preview = None
            if texture is not None:
                texture.finish(postprocess.video_identity(coeff, results.valid)[0],
                               self.tools.front_model)
            outputs.write_result(target, arrays, options.output_format)
        except InputError as error:
            row.update(status="failed", message=str(error))
        except FitFailed as error:
            row.update(status="failed", message=f"{source}: {error}; nothing written")
        except Exception as error:  # One odd video must never stop the others.
            row.update(status="failed", message=f"{source}: {type(error).__name__}: {error}")
        else:
            row.update(frames=int(results.valid.size), valid_frames=int(results.valid.sum()),
                       detector_calls=results.detector_calls,
                       network_seconds=results.seconds["network"])
            if results.damage:
                row.update(status="damaged", message=f"{source}: damaged: {results.damage}")
        finally:
            if preview is not None:
                preview.discard()
        row["seconds"] = time.perf_counter() - start
        return row

    def _detector_for(self, source):
        """The 5-point source, and whether it is a file whose points align the photo.

        NAME.txt beside a photo when present (its points align the photo, as
        in demo.py), else MTCNN.
        """
        landmark_file = source.with_suffix(".txt")
        if not is_video(source) and landmark_file.exists():
            def from_file(frame):
                return read_landmarks(landmark_file, (frame.shape[1], frame.shape[0]))
            return from_file, True

        def detect(frame):
            return self.detector(frame, name=str(source))
        return detect, False

    def close(self):
        self.tools.close()


class _Preview:
    """Collects a video's preview panels, then writes them as a video.

    Frames are encoded as they come (nothing is held), into a file renamed
    into place by `finish`.
    """

    def __init__(self, path):
        self.path = path
        self.writer = None

    def add(self, alignments, results, fps):
        from fileio.preview import side_by_side

        for i, aligned in enumerate(alignments):
            crop_rgb = np.clip(aligned.crop_bgr[:, :, ::-1], 0, 255).astype(np.uint8)
            panel = side_by_side(crop_rgb, results["recon_img"][i], results["lm_68p"][i],
                                 aligned.lm5_crop)
            if self.writer is None:
                self.writer = outputs.PreviewWriter(self.path, fps,
                                                    (panel.shape[1], panel.shape[0]))
            self.writer.write(panel)

    def finish(self):
        if self.writer is not None:
            self.writer.close(keep=True)

    def discard(self):
        if self.writer is not None:
            self.writer.close(keep=False)


class _Texture:
    """A video's UV texture, merged over its frames as they come (no frame is kept).

    Each frame's colours and weights (`texture.bake.bake_photo`, sampled in
    the frame itself) are added to one `TextureSum`; `finish` writes the
    texture, its mask and the textured mesh of the video's identity with a
    neutral expression.
    """

    def __init__(self, paths, atlas, size):
        from texture.bake import TextureSum

        self.paths = paths
        self.atlas = atlas
        self.texel_map = atlas.texel_map(size)
        self.total = TextureSum(self.texel_map)

    def add(self, alignments, results, fps):
        from texture.bake import bake_photo

        for i, aligned in enumerate(alignments):
            self.total.add(*bake_photo(
                self.texel_map, aligned.frame, aligned.trans_params, results["face_shape"][i],
                results["face_norm"][i], results["depth"][i], results["face_color"][i]))

    def finish(self, id_coeff, front_model):
        from texture.files import neutral_shape, write_texture, write_textured_mesh

        texture_path, mask_path, material_path, mesh_path = self.paths
        texture_path.parent.mkdir(parents=True, exist_ok=True)
        write_texture(texture_path, mask_path, self.total)
        write_textured_mesh(material_path, mesh_path, texture_path.name,
                            neutral_shape(front_model, id_coeff), self.atlas.uv,
                            np.asarray(front_model["tri"], np.int64))
