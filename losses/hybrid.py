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
                 predicted_landmarks=None, across_replicas=False):
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
          across_replicas: the batch is this replica's part of a global batch
            split over a `tf.distribute` strategy's replicas (call in a replica
            context). Each term is then this part's share of the global batch's
            term, so the replicas' terms, and their gradients, add up to the
            global batch's: the per-photo terms are weighted by this part's
            fraction of the photos, and the photometric term is divided by the
            mask summed over all replicas. On one device the values are the
            same as without it.

        Returns:
          (terms, outputs): terms maps "photo", "landmark", "identity" (when
          there is an identity network), "regularization", "reflectance",
          "gamma" and "total" to scalars; outputs holds "coeff" [B,257],
          "render" [B,224,224,4] (RGBA, unclipped) and "landmarks" [B,68,2].
        """
        face = self.face
        batch = tf.shape(coeff)[0]
        face.Reconstruction_Block(coeff, batch, render_images=False, xla_normals=True)
        # Read the decoder's results at once: `Face3D` keeps them as attributes, and
        # a mirrored strategy traces its replicas in turns, each pausing at an
        # all-reduce, when another replica's call would have replaced them.
        shape_t, colors, texture, gamma, landmarks_p = (
            face.face_shape_t, face.face_color, face.face_texture, face.gamma, face.landmark_p)
        rgb, alpha = face_decoder.render_colors(shape_t, colors, self.triangles)
        region = face_decoder.render_coverage(
            tf.gather(shape_t, self.region_vertices, axis=1), self.region_triangles)
        render_bgr = tf.reverse(rgb, axis=[-1])
        predicted = landmarks_p
        if predicted_landmarks is not None:
            predicted = predicted_landmarks(predicted)
        photo_mask = region * masks
        share, mask_total = 1.0, None
        if across_replicas:
            share, mask_total = _replica_share(batch, photo_mask)
        terms = {
            "photo": photo_loss(images, render_bgr, photo_mask, mask_total),
            "landmark": share * landmark_loss(predicted, landmarks, landmark_weights),
            "regularization": share * regularization_loss(coeff),
            "reflectance": share * reflectance_loss(texture, self.skin_weights),
            "gamma": share * gamma_loss(gamma),
        }
        if self.identity_net is not None:
            # As the release: the render on black, against the photo.
            terms["identity"] = share * identity_loss(self.identity_net(render_bgr),
                                                      self.identity_net(images))
        terms["total"] = total_loss(terms)
        render = tf.concat([rgb, alpha[..., None]], axis=-1)
        return terms, {"coeff": coeff, "render": render, "landmarks": landmarks_p}


def _replica_share(batch, photo_mask):
    """(this replica's fraction of the global batch's photos, the global mask sum).

    Both are sums over the replicas of the strategy in scope (with none, the
    fraction is exactly 1 and the sum this batch's own).
    """
    context = tf.distribute.get_replica_context()
    photos = tf.cast(batch, tf.float32)
    total_photos = context.all_reduce(tf.distribute.ReduceOp.SUM, photos)
    mask_total = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                    tf.stop_gradient(tf.reduce_sum(photo_mask)))
    return photos / total_photos, mask_total
