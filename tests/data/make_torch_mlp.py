"""Write the PyTorch reference files that tests/test_safetensors_torch.py loads (needs torch; CI does not).

Run from the repository root (torch==2.13.0, CPU):  python tests/data/make_torch_mlp.py

Two ``nn.Sequential`` MLPs with seeded random weights are saved with ``safetensors.torch.save_file``:

- ``torch_mlp.safetensors``: Linear(8, 16), ReLU, Linear(16, 16), ReLU, Linear(16, 3)
  (jaxnet: ``MLP([16, 16, 3])``);
- ``torch_mlp_bn.safetensors``: Linear(8, 16), BatchNorm1d(16), PReLU(), Linear(16, 3)
  (jaxnet: ``MLP([16, 3], activation="prelu", batchnorm=True)``); a few training-mode forward
  passes move BatchNorm's running statistics away from 0 and 1, its scale and shift are drawn at
  random, and PReLU's slope is set to 0.1, so the test sees whether the state and the slope were mapped.

``torch_mlp_outputs.npz`` (plain arrays, no pickle) holds fixed inputs ``x`` [5, 8] and both
models' evaluation-mode outputs ``y_plain``, ``y_bn`` [5, 3], all float32, and ``torch_version``.
"""

import os

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    bn = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.PReLU(), nn.Linear(16, 3))
    with torch.no_grad():
        bn[1].weight.uniform_(0.5, 1.5)
        bn[1].bias.uniform_(-0.5, 0.5)
        bn[2].weight.fill_(0.1)
        bn.train()
        for _ in range(5):
            bn(torch.randn(32, 8) * 2.0 + 0.5)
    plain.eval()
    bn.eval()
    x = torch.randn(5, 8)
    with torch.no_grad():
        y_plain, y_bn = plain(x), bn(x)
    save_file(plain.state_dict(), os.path.join(HERE, "torch_mlp.safetensors"), metadata={"format": "pt"})
    save_file(bn.state_dict(), os.path.join(HERE, "torch_mlp_bn.safetensors"), metadata={"format": "pt"})
    np.savez(
        os.path.join(HERE, "torch_mlp_outputs.npz"),
        x=x.numpy(),
        y_plain=y_plain.numpy(),
        y_bn=y_bn.numpy(),
        torch_version=np.array(torch.__version__),
    )


if __name__ == "__main__":
    main()
