"""The naive baseline for `make bench`: what a user script does without janitor.

Full torch.load of the big G file (optimizer state included), drop enc_q, .half(), torch.save.
"""

import sys

import torch


def main(src: str, dst: str) -> None:
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    weight = {k: v.half() for k, v in ckpt["model"].items() if "enc_q" not in k}
    torch.save({"weight": weight}, dst)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
