"""What a reconstruction run loads, and the reconstruction step it runs on each batch.

Shared by `demo.py` and `evaluate.py` (which reconstructs a benchmark's
images as the demo does): the frozen network and the decoder
(`Reconstructor`, or the decoder alone without a network), the front
model's triangles and the mean face's 5 points; with a fit, the `Fitter`
and dlib's predictor for the photos' 68 landmarks.
"""
import pathlib

import load_data


def load_tools(bfm_dir, network, outputs=("mat", "obj", "lm5", "vis"), refine=0, id_net=None,
               log=print):
    """Loads what the run needs, converting BFM09 on first use.

    The render runs only when the outputs need it (.mat holds it, the preview
    shows it), and the mesh is fetched only for .mat and OBJ files. With
    --refine, the fitter (the decoder in TensorFlow's eager mode, the
    renderer, the release's loss) and dlib's predictor for the photos'
    68 landmarks (None when it is not installed: those photos are fitted on
    their 5 points).

    Args:
      bfm_dir: the face model's folder.
      network: the frozen R-Net's path, or None (the decoder alone).
      outputs: the files the run writes (see demo.py's --outputs).
      refine: Adam steps of the fit (0: no fit).
      id_net: a face-recognition graph for the identity term, or None.
      log: callable(line) for a notice (dlib not installed).

    Returns:
      dict: reconstructor, front_model_path, triangles [F,3] 1-based int64,
      lm3d [5,3], and
      with --refine fitter and predictor.

    Raises:
      load_data.AssetError: an asset is missing or broken.
      ValueError: the network's output length is not 239, 257 or 258, or
        not 257 or 258 with --refine.
    """
    import numpy as np

    from reconstructor import Reconstructor

    front_model_path = pathlib.Path(bfm_dir) / load_data.FRONT_MODEL_NAME
    load_data.transferBFM09(bfm_dir)  # Skipped when BFM_model_front.mat is up to date.
    tools = {
        "front_model_path": front_model_path,
        "triangles": load_data.load_front_model(front_model_path)["tri"].astype(np.int64),
        "lm3d": load_data.load_lm3d(bfm_dir),
        "reconstructor": Reconstructor(
            None if network is None else load_data.load_graph(network),
            front_model_path, model_name=str(network),
            render="mat" in outputs or "vis" in outputs,
            mesh="mat" in outputs or "obj" in outputs),
    }
    if refine:
        from face_decoder import Face3D
        from fitting.optimize import Fitter
        from fitting.photo_fit import check_refinable
        from landmark_predictor import Landmark68Predictor, PredictorUnavailable

        check_refinable(tools["reconstructor"])     # before any photo is read

        identity_net = None
        if id_net:
            from training.identity_net import IdentityNetwork
            identity_net = IdentityNetwork(id_net)
        tools["fitter"] = Fitter(Face3D(front_model_path), identity_net)
        tools["predictor"] = Landmark68Predictor()
        try:
            tools["predictor"].load()
        except PredictorUnavailable as error:
            log(f"{error}; photos without NAME_lm68.txt are fitted on their 5 points")
            tools["predictor"] = None
    return tools




def reconstruction_step(tools, refine=0, shared=(), progress=None):
    """The step `photos.pipeline.run_folder` runs on each batch.

    Args:
      tools: from `load_tools`.
      refine: Adam steps of the fit (0: the network and the decoder alone).
      shared: with a fit, blocks shared by the batch (image sets).
      progress: with a fit, `fitting.photo_fit.PhotoRefiner`'s progress.
    """
    from photos.pipeline import network_step

    if not refine:
        return network_step(tools["reconstructor"])
    from fitting.photo_fit import PhotoRefiner

    return PhotoRefiner(tools["reconstructor"], tools["fitter"], refine, shared=shared,
                        progress=progress)
