"""SimSiam: siamese networks with a stop-gradient and a predictor, from lightly's parts, as in SpaceSSL.

- Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021, https://arxiv.org/abs/2011.10566
- Smith et al., "SpaceSSL", JGR Space Physics 2024: ResNet-18, projection 512/512, prediction hidden 128.
"""

from __future__ import annotations

from lightly.loss import NegativeCosineSimilarity
from lightly.models.modules import SimSiamPredictionHead, SimSiamProjectionHead
from torch import Tensor, nn

from spacessl.models.base import SSLMethod


class SimSiam(SSLMethod):
    """SimSiam: encoder -> projection z -> prediction p; symmetric loss 0.5 (D(p0, sg(z1)) + D(p1, sg(z0))).

    D is lightly's NegativeCosineSimilarity (mean over the batch of -cos), sg the stop-gradient. The loss is -1 at
    its minimum. Collapse is monitored on z (the projection, as in the SimSiam paper, section 4.1).

    Args:
        encoder: backbone, (B, *sample_shape) -> (B, embed_dim).
        embed_dim: encoder output width.
        proj_hidden_dim: hidden width of the 3-layer projection MLP.
        proj_out_dim: projection width P.
        pred_hidden_dim: bottleneck width of the 2-layer prediction MLP.

    Shape: x0, x1 (B, *sample_shape) -> loss (), z (B, proj_out_dim).
    """

    name = "simsiam"

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int = 512,
        *,
        proj_hidden_dim: int = 512,
        proj_out_dim: int = 512,
        pred_hidden_dim: int = 128,
    ) -> None:
        super().__init__(encoder, embed_dim)
        self.projection_head = SimSiamProjectionHead(embed_dim, proj_hidden_dim, proj_out_dim)
        self.prediction_head = SimSiamPredictionHead(proj_out_dim, pred_hidden_dim, proj_out_dim)
        self.criterion = NegativeCosineSimilarity()

    def forward(self, x0: Tensor, x1: Tensor) -> dict[str, Tensor]:
        z0 = self.projection_head(self.encoder(x0))  # (B, P)
        z1 = self.projection_head(self.encoder(x1))  # (B, P)
        p0 = self.prediction_head(z0)  # (B, P)
        p1 = self.prediction_head(z1)  # (B, P)
        loss = 0.5 * (self.criterion(p0, z1.detach()) + self.criterion(p1, z0.detach()))
        return {"loss": loss, "z": z0.detach()}
