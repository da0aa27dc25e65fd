"""What a reconstruction run loads, once, and the step it runs on each batch.

Shared by every tool that reconstructs: `demo.py` (photos), `evaluate.py`
(a benchmark's images, as the demo reconstructs photos) and `extract.py`
(videos). `load_tools` converts BFM09 on first use and loads the frozen
network with the decoder (`networks.reconstructor.Reconstructor`, or the
decoder alone without a network), the front model's triangles, the mean
face's 5 points and the landmark sources (`landmarks.sources`); with a fit,
the `fitting.optimize.Fitter` (and the identity network of its identity
term). `reconstruction_step` is the batch step of
`reconstruction.pipeline.run_folder`: the network alone, or the network and
a fit.
"""
import functools
import pathlib

import numpy as np


class Tools:
    """What `load_tools` loaded.

    Attributes:
      reconstructor: a `networks.reconstructor.Reconstructor`.
      front_model_path: BFM_model_front.mat.
      lm3d: [5, 3] the mean face's 5 points (`load_data.load_lm3d`).
      landmarks: a `landmarks.sources.PhotoLandmarks`.
      fitter: a `fitting.optimize.Fitter`, or None without a fit.
      model: `networks.files.model_record` of the network, written into
        every output file.
      triangles: [F, 3] 1-based int64 triangles of the front model (read
        on first use: a tool that writes no mesh never reads them).
      atlas: the UV layout of UV textures (`texture.atlas.Atlas`), read on
        first use.
    """

    def __init__(self, reconstructor, front_model_path, lm3d, landmarks, fitter=None,
                 model=None):
        self.reconstructor = reconstructor
        self.bfm_dir = pathlib.Path(front_model_path).parent
        self.model = model or {"model": "none", "model_kind": "none"}
        self.front_model_path = pathlib.Path(front_model_path)
        self.lm3d = lm3d
        self.landmarks = landmarks
        self.fitter = fitter

    @functools.cached_property
    def front_model(self):
        """The front model's arrays (`load_data.load_front_model`), read on first use."""
        import load_data

        return load_data.load_front_model(self.front_model_path)

    @functools.cached_property
    def triangles(self):
        return self.front_model["tri"].astype(np.int64)

    @functools.cached_property
    def atlas(self):
        """The UV layout (`texture.atlas.Atlas`), read on first use.

        Raises:
          AssetError: BFM_UV.mat or select_vertex_id.mat is missing or malformed.
        """
        from texture.atlas import Atlas

        return Atlas.load(self.bfm_dir, self.front_model)

    def close(self):
        self.reconstructor.close()
        self.landmarks.close()


def load_tools(bfm_dir, network, render=True, mesh=True, refine=0, id_net=None,
               temporal_weight=0.0, threads=None, five="auto", need_68=False,
               on_no_predictor=None, texture=False):
    """Loads what a run needs, converting BFM09 on first use.

    Args:
      bfm_dir: the face model's folder.
      network: the R-Net's file (a frozen graph, or the PyTorch release's
        weights: `networks.files`), or None (the decoder alone).
      render: render the face over the crop (`recon_img`).
      mesh: return the mesh (the decoder's `face_shape`, colours).
      refine: Adam steps of a fit (0: no fit, no fitter).
      id_net: with a fit, a face-recognition graph for the identity term, or None.
      temporal_weight: with a fit, the weight of its temporal term (videos).
      threads: CPU threads of the network's session (None: all cores).
      five: where the photos' 5 points come from (`landmarks.sources.FIVE_SOURCES`).
      need_68: the run needs 68 points of photos without NAME_lm68.txt
        (a fit does): dlib's predictor is loaded.
      on_no_predictor: callable(error) told when dlib's predictor is needed and
        not installed (the run goes on without it); None: the error is raised.
      texture: the reconstruction also returns what UV textures need
        (`networks.reconstructor.Reconstructor`'s `texture`).

    Returns:
      A `Tools`.

    Raises:
      assets.catalog.AssetError: an asset is missing or broken (also when
        dlib's predictor is needed, absent, and `on_no_predictor` is None).
      ValueError: the network's output length is not 239, 257 or 258, or
        not 257 or 258 with a fit.
    """
    import load_data
    from assets.catalog import FRONT_MODEL_NAME
    from landmarks import sources
    from networks.files import load_network, model_record
    from networks.reconstructor import Reconstructor

    front_model_path = pathlib.Path(bfm_dir) / FRONT_MODEL_NAME
    load_data.transferBFM09(bfm_dir)  # Skipped when BFM_model_front.mat is up to date.
    lm3d = load_data.load_lm3d(bfm_dir)
    reconstructor = Reconstructor(
        None if network is None else load_network(network), front_model_path,
        model_name=str(network), render=render, mesh=mesh, threads=threads, texture=texture)
    fitter = None
    if refine:
        from face_decoder import Face3D
        from fitting.optimize import Fitter
        from fitting.photo_fit import check_refinable

        check_refinable(reconstructor)     # before any photo is read
        identity_net = None
        if id_net:
            from networks.identity import IdentityNetwork
            identity_net = IdentityNetwork(id_net)
        fitter = Fitter(Face3D(front_model_path), identity_net, temporal_weight=temporal_weight)
    landmarks = sources.build(five, ("dlib",) if need_68 or refine else (),
                              on_unavailable=on_no_predictor)
    return Tools(reconstructor, front_model_path, lm3d, landmarks, fitter, model_record(network))


def reconstruction_step(tools, refine=0, shared=(), progress=None):
    """The step `reconstruction.pipeline.run_folder` runs on each batch.

    Args:
      tools: from `load_tools`.
      refine: Adam steps of the fit (0: the network and the decoder alone).
      shared: with a fit, blocks shared by the batch (image sets).
      progress: with a fit, `fitting.photo_fit.PhotoRefiner`'s progress.
    """
    from reconstruction.pipeline import network_step

    if not refine:
        return network_step(tools.reconstructor)
    from fitting.photo_fit import PhotoRefiner

    return PhotoRefiner(tools.reconstructor, tools.fitter, refine, shared=shared,
                        progress=progress)
