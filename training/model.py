"""The training model: R-Net -> face decoder -> renderer -> the hybrid loss terms.

The decoder is `face_decoder`'s, as in inference, and the renderer our
`mesh_renderer`. As in the release's training graph, the render is not
clipped to [0, 255], and a second render of the small face region
(`tri_mask2` over the `frontmask2_idx` vertices) gives the photometric
loss's region mask, which multiplies the skin mask.
"""
import tensorflow as tf

import face_decoder
from training import losses


class TrainingModel:
    """Computes every loss term of a batch.

    Args:
      rnet: the Keras R-Net (`training.rnet.build_rnet`).
      face: a `face_decoder.Face3D`.
      identity_net: an `IdentityNetwork`, or None to drop the identity term.
    """

    def __init__(self, rnet, face, identity_net=None):
        self.rnet = rnet
        self.face = face
        self.identity_net = identity_net
        model = face.facemodel
        self.triangles = tf.constant(model.face_buf - 1)
        self.region_vertices = tf.constant(model.front_mask_render - 1)
        self.region_triangles = tf.constant(model.mask_face_buf - 1)
        self.skin_weights = tf.constant(model.skin_mask)

    def __call__(self, images, landmarks, masks, training=True):
        """The loss terms of a batch.

        Args:
          images: [B,224,224,3] float32 aligned crops, BGR 0-255.
          landmarks: [B,68,2] float32 target landmarks, crop pixels, y down.
          masks: [B,224,224] float32 skin masks, 0-255.
          training: batch-norm mode of the R-Net (batch statistics, and their
            moving averages updated, when True).

        Returns:
          (terms, outputs): terms maps "photo", "landmark", "identity" (when
          there is an identity network), "regularization", "reflectance",
          "gamma" and "total" to scalars; outputs holds "coeff" [B,257],
          "render" [B,224,224,4] (RGBA, unclipped) and "landmarks" [B,68,2].
        """
        face = self.face
        coeff = self.rnet(images, training=training)
        batch = tf.shape(coeff)[0]
        face.Reconstruction_Block(coeff, batch, render_images=False)
        render = face_decoder.render(face.face_shape_t, face.face_norm, face.face_color,
                                     self.triangles, clip=False)
        region = face_decoder.render(
            tf.gather(face.face_shape_t, self.region_vertices, axis=1),
            tf.gather(face.face_norm, self.region_vertices, axis=1),
            tf.ones_like(tf.gather(face.face_color, self.region_vertices, axis=1)),
            self.region_triangles, clip=False)[..., 3]
        render_bgr = tf.reverse(render[..., :3], axis=[-1])
        terms = {
            "photo": losses.photo_loss(images, render_bgr, region * masks),
            "landmark": losses.landmark_loss(face.landmark_p, landmarks),
            "regularization": losses.regularization_loss(coeff),
            "reflectance": losses.reflectance_loss(face.face_texture, self.skin_weights),
            "gamma": losses.gamma_loss(face.gamma),
        }
        if self.identity_net is not None:
            # As the release: the render on black, against the photo.
            terms["identity"] = losses.identity_loss(self.identity_net(render_bgr),
                                                     self.identity_net(images))
        terms["total"] = losses.total_loss(terms)
        return terms, {"coeff": coeff, "render": render, "landmarks": face.landmark_p}
