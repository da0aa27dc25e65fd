"""The release's hybrid loss of coefficients against photos: what training and fitting minimise.

`HybridLoss` is coefficients -> face decoder -> renderer -> the loss terms
(`losses.terms`). The training model (`training.model`) puts the R-Net in
front of it; fitting (`fitting`) calls it on coefficients it optimises
directly; so every term is written once.

The decoder is `face_decoder`'s, as in inference, and the renderer our
`mesh_renderer`. As in the release's training graph, the render is not
clipped to [0, 255], and a second render of the small face region
(`tri_mask2` over the `frontmask2_idx` vertices) gives the photometric
loss's region mask, which multiplies the skin mask. Both renders are the
release's values by cheaper calls: the colours alone
(`face_decoder.render_colors`: the release's light adds nothing) and the
region's coverage alone (`face_decoder.render_coverage`: the loss stops its
gradient anyway).
"""
import tensorflow as tf

import face_decoder
from losses.terms import (
    gamma_loss,
    identity_loss,
    landmark_loss,
    photo_loss,
    reflectance_loss,
    regularization_loss,
    total_loss,
)


class HybridLoss:
    """Computes every loss term of a batch of coefficients against its photos.

    Args:
      face: a `face_decoder.Face3D`.
      identity_net: an `IdentityNetwork`, or None to drop the identity term.
    """

    def __init__(self, face, identity_net=None):
        self.face = face
        self.identity_net = identity_net
        model = face.facemodel
        self.triangles = tf.constant(model.face_buf - 1)
        self.region_vertices = tf.constant(model.front_mask_render - 1)
        self.region_triangles = tf.constant(model.mask_face_buf - 1)
        self.skin_weights = tf.constant(model.skin_mask)

    def __call__(self, coeff, images, landmarks, masks, landmark_weights=None,
                 predicted_landmarks=None):
        """The loss terms of a batch.

        Args:
          coeff: [B,257] float32 coefficients.
          images: [B,224,224,3] float32 aligned crops, BGR 0-255.
          landmarks: [B,K,2] float32 target landmarks, crop pixels, y down
            (K = 68, the iBUG order, unless `predicted_landmarks` says otherwise).
          masks: [B,224,224] float32 skin masks, 0-255.
          landmark_weights: optional [K] per-landmark weights of the landmark
            term (default the release's 68).
          predicted_landmarks: optional callable([B,68,2] reconstructed
            landmarks) -> [B,K,2], the points compared with `landmarks`
            (e.g. the 5 alignment points when only those are known).

        Returns:
          (terms, outputs): terms maps "photo", "landmark", "identity" (when
          there is an identity network), "regularization", "reflectance",
          "gamma" and "total" to scalars; outputs holds "coeff" [B,257],
          "render" [B,224,224,4] (RGBA, unclipped) and "landmarks" [B,68,2].
        """
        face = self.face
        batch = tf.shape(coeff)[0]
        face.Reconstruction_Block(coeff, batch, render_images=False, xla_normals=True)
        rgb, alpha = face_decoder.render_colors(face.face_shape_t, face.face_color,
                                                self.triangles)
        region = face_decoder.render_coverage(
            tf.gather(face.face_shape_t, self.region_vertices, axis=1), self.region_triangles)
        render_bgr = tf.reverse(rgb, axis=[-1])
        predicted = face.landmark_p
        if predicted_landmarks is not None:
            predicted = predicted_landmarks(predicted)
        terms = {
            "photo": photo_loss(images, render_bgr, region * masks),
            "landmark": landmark_loss(predicted, landmarks, landmark_weights),
            "regularization": regularization_loss(coeff),
            "reflectance": reflectance_loss(face.face_texture, self.skin_weights),
            "gamma": gamma_loss(face.gamma),
        }
        if self.identity_net is not None:
            # As the release: the render on black, against the photo.
            terms["identity"] = identity_loss(self.identity_net(render_bgr),
                                                     self.identity_net(images))
        terms["total"] = total_loss(terms)
        render = tf.concat([rgb, alpha[..., None]], axis=-1)
        return terms, {"coeff": coeff, "render": render, "landmarks": face.landmark_p}
