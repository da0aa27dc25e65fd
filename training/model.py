"""The training model: the R-Net in front of the release's hybrid loss.

The loss (`losses.hybrid.HybridLoss`: coefficients -> face decoder ->
renderer -> the loss terms) is the one fitting minimises too; here the
coefficients come from the network being trained.
"""
from losses.hybrid import HybridLoss


class TrainingModel:
    """The R-Net in front of the hybrid loss: photos in, loss terms out.

    Args:
      rnet: the Keras R-Net (`training.rnet.build_rnet`).
      face: a `face_decoder.Face3D`.
      identity_net: an `IdentityNetwork`, or None to drop the identity term.
    """

    def __init__(self, rnet, face, identity_net=None):
        self.rnet = rnet
        self.face = face
        self.loss = HybridLoss(face, identity_net)

    def __call__(self, images, landmarks, masks, training=True):
        """The loss terms of a batch (see `HybridLoss.__call__`).

        Args:
          images: [B,224,224,3] float32 aligned crops, BGR 0-255.
          landmarks: [B,68,2] float32 target landmarks, crop pixels, y down.
          masks: [B,224,224] float32 skin masks, 0-255.
          training: batch-norm mode of the R-Net (batch statistics, and their
            moving averages updated, when True).

        Call it in a replica context (on one device, anywhere): the terms are
        this replica's shares of the global batch's (`HybridLoss`'s `across_replicas`).
        """
        coeff = self.rnet(images, training=training)
        # Under a tf.distribute strategy each replica's terms are its share of the
        # global batch's (on one device they are the batch's own).
        return self.loss(coeff, images, landmarks, masks, across_replicas=True)
