"""The network and the face decoder in one TensorFlow graph: crops in, faces out.

This is the release's inference graph: the frozen R-Net is imported with
`tf.import_graph_def(graph_def, name='resnet', input_map={'input_imgs:0':
images})`, its `resnet/coeff:0` output goes through `Face3D`, and one session
run returns coefficients, mesh, colours, landmarks and the render for a batch.
The PyTorch release's R-Net (`networks.pytorch_rnet`) takes the same crops
and gives the same 257 coefficients; it is built into the same graph in the
frozen graph's place (`networks.files.load_network` reads either).

The decoder's input can also be fed directly (`decode`): coefficients that
a fit refined go through the same graph without running the network, and
without a network at all (`graph_def=None`) the graph is the decoder alone.
"""
import numpy as np
import tensorflow as tf

from assets import frozen_graph
from assets.catalog import SOURCE_NETWORK
from face_decoder import Face3D
from facemodel.coefficients import ACCEPTED_LENGTHS, LENGTH, LENGTH_2020


class Reconstructor:
    """Runs the R-Net and the face decoder on batches of aligned crops.

    Args:
      network: the R-Net: a frozen graph, `tf.compat.v1.GraphDef` with the
        input placeholder `input_imgs` and the output tensor `coeff` (see
        `load_data.load_graph`); or a callable building the coefficients
        from the crops' tensor (`networks.pytorch_rnet.PyTorchRNet`); or
        None for the decoder alone (257 coefficients in, through `decode`).
      front_model_path: path of `BFM_model_front.mat`.
      model_name: the file the graph came from, for error messages.
      render: also render the face over the crop (`recon_img`); False skips
        the renderer.
      mesh: also return the mesh (`face_shape`, `face_texture`, `face_color`;
        default: as `render`). With neither, only `coeff` and `lm_68p` come back
        (what video extraction needs), and only the 68 landmark vertices are
        computed (`Face3D.landmarks`).
      threads: CPU threads for the session's operations, or None for
        TensorFlow's default (all cores).
      texture: also return what UV textures need (`texture.bake`): the
        rotated normals `face_norm` [B,N,3] and the renderer's `depth`
        [B,224,224,2], the depth of the surface each pixel shows (its
        distance from the camera along the camera's axis, decimetres) and
        the pixel's coverage; implies `mesh`.

    Raises:
      AssetError: the graph does not import with the release's tensor names
        and types.
      ValueError: the network's output length is not 239, 257 or 258.
    """

    def __init__(self, network, front_model_path, model_name="network", render=True,
                 threads=None, mesh=None, texture=False):
        self.model_name = model_name
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.compat.v1.placeholder(
                tf.float32, [None, 224, 224, 3], name="input_imgs")
            if network is None:
                self.network_coeff = None
                coeff = tf.compat.v1.placeholder(tf.float32, [None, LENGTH], name="coeff")
            else:
                self.network_coeff = self._network(network)
                length = self.network_coeff.shape[-1]
                if length not in ACCEPTED_LENGTHS:
                    raise ValueError(f"{model_name}: output 'coeff' has length {length}, "
                                     f"expected one of {ACCEPTED_LENGTHS}")
                # The 2020.6 network's 258th value is an unused focal-length head.
                coeff = (self.network_coeff[:, :LENGTH] if length == LENGTH_2020
                         else self.network_coeff)
            self.coeff = coeff
            self.coeff_length = int(coeff.shape[-1])
            face = Face3D(front_model_path)
            mesh = (render if mesh is None else mesh) or texture
            if not (render or mesh):   # The 68 landmarks only: no mesh is computed.
                self.fetches = {"coeff": coeff, "lm_68p": face.landmarks(coeff)}
            else:
                face.Reconstruction_Block(coeff, tf.shape(coeff)[0], render_images=render)
                self.fetches = {"coeff": coeff, "lm_68p": face.landmark_p}
            if render:
                self.fetches["recon_img"] = face.render_imgs
            if mesh:
                self.fetches.update({
                    "face_shape": face.face_shape_t,
                    "face_texture": face.face_texture,
                    "face_color": face.face_color,
                })
            if texture:
                self.fetches.update({"face_norm": face.face_norm,
                                     "depth": _depth_image(face)})
        config = None
        if threads:
            config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=threads,
                                              inter_op_parallelism_threads=threads)
        self.session = tf.compat.v1.Session(graph=self.graph, config=config)

    def _network(self, network):
        """The network's coefficients tensor, built in this graph on `self.images`."""
        if callable(network):
            with tf.name_scope("resnet"):
                return tf.identity(network(self.images), name="coeff")
        with frozen_graph.importing(self.model_name, SOURCE_NETWORK, "an R-Net"):
            tf.import_graph_def(network, name="resnet", input_map={"input_imgs:0": self.images})
            return self.graph.get_tensor_by_name("resnet/coeff:0")

    def __call__(self, images):
        """Reconstructs a batch.

        Args:
          images: [B, 224, 224, 3] float32 aligned crops, BGR, 0-255.

        Returns:
          A dict of NumPy arrays, first dimension B: `coeff` [B,L] (L = 257,
          or 239 for a white-light network), `lm_68p` [B,68,2] (crop pixels,
          y down) and, when rendering, `face_shape` [B,N,3] (posed),
          `face_texture` [B,N,3], `face_color` [B,N,3], `recon_img`
          [B,224,224,4] (RGBA, 0-255).
        """
        return self.session.run(self.fetches, {self.images: np.asarray(images, np.float32)})

    def network_only(self, images):
        """Runs the R-Net alone: [B,224,224,3] -> [B, length] (length as the network's)."""
        return self.session.run(self.network_coeff, {self.images: np.asarray(images, np.float32)})

    def decode(self, coeff):
        """The decoder (and renderer) on given coefficients, without the network.

        Args:
          coeff: [B, L] coefficients, L the length the decoder takes (257, or
            239 for a white-light network; 257 without a network).

        Returns:
          The dict of `__call__`, for these coefficients.
        """
        coeff = np.asarray(coeff, np.float32)
        if coeff.shape[-1] != self.coeff_length:
            raise ValueError(f"the decoder takes {self.coeff_length} coefficients, "
                             f"got {coeff.shape[-1]}")
        return self.session.run(self.fetches, {self.coeff: coeff})

    def close(self):
        self.session.close()


def _depth_image(face):
    """[B, 224, 224, 2]: the depth of the surface each pixel shows (the renderer's winning
    triangle's, interpolated as colours are) and the pixel's coverage.

    The depth (CAMERA_DISTANCE - z) is positive in front of the camera, as the
    renderer needs its colours to be (it takes a negative one for background).
    """
    import face_decoder
    from facemodel.camera import CAMERA_DISTANCE

    shape = face.face_shape_t
    depth = tf.tile(CAMERA_DISTANCE - shape[..., 2:3], [1, 1, 3])
    image = face_decoder.render(shape, face.face_norm, depth,
                                tf.constant(face.facemodel.face_buf - 1), clip=False)
    return tf.stack([image[..., 0], image[..., 3]], axis=-1)
