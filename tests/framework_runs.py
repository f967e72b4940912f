"""Real training runs written by the frameworks themselves on tiny randomly initialised
models (no downloads): a Hugging Face Trainer output_dir and a Lightning ModelCheckpoint
folder. Imported only by the tests that need them (transformers and lightning are dev
extras, never needed by janitor at run time)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    return GPT2LMHeadModel(cfg)


class _Tokens:
    """A dataset of fixed random token rows (labels = inputs)."""

    def __init__(self, n: int, seed: int) -> None:
        import torch

        g = torch.Generator().manual_seed(seed)
        self.rows = torch.randint(0, 64, (n, 8), generator=g)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


def hf_args(out: Path, max_steps: int, **kw):
    from transformers import TrainingArguments

    base = dict(
        output_dir=str(out), max_steps=max_steps, per_device_train_batch_size=4,
        per_device_eval_batch_size=4, learning_rate=5e-3, save_steps=2, eval_steps=2,
        eval_strategy="steps", save_strategy="steps", logging_steps=1, report_to="none",
        use_cpu=True, seed=0, disable_tqdm=True, dataloader_num_workers=0,
        load_best_model_at_end=True, metric_for_best_model="eval_loss", greater_is_better=False,
    )  # fmt: skip
    base.update(kw)
    return TrainingArguments(**base)


def hf_trainer(out: Path, max_steps: int, eval_seed: int = 1, **kw):
    import torch
    from transformers import Trainer, set_seed

    set_seed(0)
    torch.manual_seed(0)
    model = tiny_gpt2()
    return Trainer(
        model=model,
        args=hf_args(out, max_steps, **kw),
        train_dataset=_Tokens(16, 0),
        eval_dataset=_Tokens(8, eval_seed),
    )


def hf_run(out: Path, max_steps: int = 10) -> Path:
    """output_dir with checkpoint-2 ... checkpoint-<max_steps>, each evaluated."""
    hf_trainer(out, max_steps).train()
    return out


def lightning_module_cls():
    import lightning as L
    import torch

    class Tiny(L.LightningModule):
        def __init__(self, width: int = 8) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(width, 1)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Tiny


def _loader(seed: int):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 8, generator=g)
    return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=4)


def lightning_trainer(dirpath: Path, max_epochs: int, save_last="link"):
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint

    ckpt = ModelCheckpoint(
        dirpath=str(dirpath), filename="{epoch}-{step}-{val_loss:.4f}", monitor="val_loss",
        save_top_k=-1, save_last=save_last, every_n_epochs=1,
    )  # fmt: skip
    return L.Trainer(
        max_epochs=max_epochs, callbacks=[ckpt], logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(dirpath.parent), accelerator="cpu",
        devices=1, num_sanity_val_steps=0,
    )  # fmt: skip


def lightning_fit(dirpath: Path, max_epochs: int, ckpt_path=None, save_last="link"):
    import lightning as L

    L.seed_everything(0, verbose=False)
    model = lightning_module_cls()()
    trainer = lightning_trainer(dirpath, max_epochs, save_last)
    trainer.fit(model, _loader(0), _loader(1), ckpt_path=ckpt_path)
    return trainer


def fake_hf_checkpoint(out: Path, step: int, best: int | None = None, mtime: float | None = None):
    """A checkpoint-<step>/ folder in the Trainer's layout without transformers (for tests
    that need many or need no framework): config, a real safetensors file, torch-zip
    training state, trainer_state.json last."""
    import json
    import struct

    from tests.conftest import fake_ckpt

    folder = out / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    header += b" " * (-len(header) % 8)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(16))
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin"):
        fake_ckpt(folder / name)
    state = {"global_step": step, "log_history": [{"step": step, "eval_loss": 1.0 / step}]}
    if best is not None:
        state["best_model_checkpoint"] = str(out / f"checkpoint-{best}")
    (folder / "trainer_state.json").write_text(json.dumps(state))
    if mtime is not None:
        for p in [*folder.iterdir(), folder]:
            os.utime(p, (mtime, mtime))
    return folder
