"""bnpaper: the code behind the bilingual companion book to Ioffe & Szegedy (2015), Batch Normalization.

Modules:
  functional  Alg. 1 forward, the backward pass (six steps and collapsed), the fast path, Alg. 2 maps
  autograd    torch.autograd.Functions using the hand-derived backward
  layers      the BatchNorm module (torch's argument names) and BatchNorm1d/2d/3d
  inference   Alg. 2 population statistics, folding BN into Linear / Conv layers
  theory      Sec. 3.3 scale identities, the closed-form BN Jacobian
"""

from bnpaper.autograd import batch_norm_train
from bnpaper.inference import estimate_population_statistics, fold_batchnorm
from bnpaper.layers import BatchNorm, BatchNorm1d, BatchNorm2d, BatchNorm3d

__version__ = "0.1.0"
PAPER = (
    "Ioffe, S. and Szegedy, C. (2015). Batch Normalization: Accelerating Deep Network Training by "
    "Reducing Internal Covariate Shift. ICML 2015, PMLR 37:448-456. arXiv:1502.03167"
)

__all__ = [
    "BatchNorm",
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "batch_norm_train",
    "estimate_population_statistics",
    "fold_batchnorm",
    "__version__",
]
