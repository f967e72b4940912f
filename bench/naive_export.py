"""The naive baseline of `make bench` section 2b: what a user script does without janitor,
for each trainer's export: a full torch.load of the big file (optimizer state included), the
same object built in memory, torch.save (GPT-SoVITS v2Pro: the header bytes patched)."""

import io
import sys
from collections import OrderedDict

import torch


def main(fmt: str, src: str, dst: str) -> None:
    if fmt == "gpt":
        ckpt = torch.load(src, map_location="cpu", weights_only=False)
        weight = OrderedDict((k, v.half()) for k, v in ckpt["state_dict"].items())
        config = ckpt["hyper_parameters"]["config"]
        obj = OrderedDict(weight=weight, config=config, info=f"GPT-e{ckpt['epoch'] + 1}")
        torch.save(obj, dst)
        return
    ckpt = torch.load(src, map_location="cpu", weights_only=True)
    model = ckpt["model"]
    if fmt == "release":
        params = [torch.nn.Parameter(torch.empty(0)) for _ in model]
        optim = torch.optim.AdamW(params, 1e-4, betas=[0.8, 0.99], eps=1e-9)
        obj = {
            "model": {k: v for k, v in model.items() if "enc_q" not in k},
            "iteration": 0,
            "optimizer": optim.state_dict(),
            "learning_rate": 0.0001,
        }
        torch.save(obj, dst)
        return
    obj = OrderedDict(
        weight={k: v.half() for k, v in model.items() if "enc_q" not in k},
        config={},
        info=f"{ckpt['iteration']}epoch_0iteration",
    )
    buf = io.BytesIO()
    torch.save(obj, buf)
    with open(dst, "wb") as fh:
        fh.write(b"05" + buf.getvalue()[2:])


if __name__ == "__main__":
    main(*sys.argv[1:4])
