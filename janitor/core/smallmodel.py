"""Small (inference) model formats, as the trainers write them. Torch-free: these functions
work on key names, shapes and config dicts, so detection is testable without tensors.

Facts (see fixtures/formats and the trainers' own extraction code):
- Applio: OrderedDict ``weight`` (G state dict minus ``enc_q`` keys, fp16), ``config`` (18
  items from config.json), ``epoch``, ``step``, ``sr`` (int), ``f0`` (bool), ``version``,
  ``creation_date``, ``model_hash`` (sha256 of
  ``f"{name}-{epoch}-{step}-{sr}-{version}-{config}"``), ``dataset_length``, ``model_name``,
  ``author``, ``embedder_model``, ``speakers_id``, ``vocoder``.
- RVC WebUI: OrderedDict ``weight``, ``config``, ``info`` ("<epoch>epoch"), ``sr`` ("40k"),
  ``f0`` (int), ``version``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from janitor.domain.errors import UsageError

VOCODERS = ("HiFi-GAN", "MRF HiFi-GAN", "RefineGAN")
SAMPLE_RATES = (24000, 32000, 40000, 48000)

# (spectrogram channels, upsample kernel sizes) -> (sample rate, upsample rates): the
# trainers' shipped layouts. Rates (strides) are not stored in the weights; kernels are.
KNOWN_LAYOUTS: dict[tuple[int, tuple[int, ...]], tuple[int, list[int]]] = {
    (1025, (16, 16, 4, 4)): (40000, [10, 10, 2, 2]),
    (1025, (24, 20, 4, 4)): (48000, [12, 10, 2, 2]),
    (513, (20, 16, 4, 4)): (32000, [10, 8, 2, 2]),
    (513, (20, 12, 4, 4)): (24000, [10, 6, 2, 2]),
}


@cache
def applio_default_config(sr: int) -> dict[str, Any]:
    """Applio's shipped config.json (data + model sections) for a sample rate."""
    text = resources.files("janitor").joinpath("data/applio_configs.json").read_text()
    table = json.loads(text)
    if str(sr) not in table:
        raise UsageError(f"--sr must be one of {', '.join(map(str, SAMPLE_RATES))}, got {sr}")
    return table[str(sr)]


# The model section's keys in the order items 2..16 of the ``config`` list hold them (item 0 is
# data.filter_length // 2 + 1, item 1 the constant 32, item 17 data.sample_rate).
MODEL_KEYS = (
    "inter_channels", "hidden_channels", "filter_channels", "n_heads", "n_layers", "kernel_size",
    "p_dropout", "resblock", "resblock_kernel_sizes", "resblock_dilation_sizes",
    "upsample_rates", "upsample_initial_channel", "upsample_kernel_sizes", "spk_embed_dim",
    "gin_channels",
)  # fmt: skip


def check_config(cfg: Mapping[str, Any], where: str = "config.json") -> None:
    """Every key the ``config`` list reads is there: else a usage error naming file and key."""
    needed = [("data", "filter_length"), *(("model", k) for k in MODEL_KEYS)]
    for section, key in [*needed, ("data", "sample_rate")]:
        if not isinstance(cfg.get(section), Mapping) or key not in cfg[section]:
            raise UsageError(f"{where}: no {section}.{key}")
    length = cfg["data"]["filter_length"]
    if not isinstance(length, int) or isinstance(length, bool) or length <= 0:
        raise UsageError(f"{where}: data.filter_length must be a positive whole number")


def config_list(cfg: Mapping[str, Any]) -> list[Any]:
    """The 18-item ``config`` list, values and Python types as in config.json."""
    d, m = cfg["data"], cfg["model"]
    return [d["filter_length"] // 2 + 1, 32, *(m[k] for k in MODEL_KEYS), d["sample_rate"]]


def model_hash(name: str, epoch: int, step: int, sr: int, version: str, config: list) -> str:
    return hashlib.sha256(f"{name}-{epoch}-{step}-{sr}-{version}-{config}".encode()).hexdigest()


def applio_name(name: str, epoch: int, step: int) -> str:
    return f"{name}_{epoch}e_{step}s.pth"


def rvc_name(name: str, epoch: int, step: int) -> str:
    return f"{name}_e{epoch}_s{step}.pth"


def rvc_sr(sr: int) -> str:
    return f"{sr // 1000}k"


@dataclass(frozen=True)
class Fact:
    value: Any
    source: str  # where it came from: "flag", "config.json", "checkpoint: <key> ..."


@dataclass(frozen=True)
class Detected:
    version: Fact
    f0: Fact
    vocoder: Fact
    speakers: Fact
    sr: Fact
    config: Fact  # the 18-item list
    notes: tuple[str, ...] = ()  # what was decided against config.json, and why

    def as_dict(self) -> dict[str, Any]:
        return {
            name: {"value": getattr(self, name).value, "from": getattr(self, name).source}
            for name in ("sr", "version", "f0", "vocoder", "speakers", "config")
        }


Shapes = Mapping[str, Sequence[int]]


def is_generator(shapes: Shapes) -> bool:
    return "enc_p.emb_phone.weight" in shapes and any(k.startswith("dec.") for k in shapes)


def detect_version(shapes: Shapes) -> Fact | None:
    """v1/v2 from the text-encoder width; None for a width no trainer ships."""
    width = shapes["enc_p.emb_phone.weight"][1]
    if width == 768:
        return Fact("v2", "checkpoint: enc_p.emb_phone.weight is [*, 768]")
    if width == 256:
        return Fact("v1", "checkpoint: enc_p.emb_phone.weight is [*, 256]")
    return None


def detect_f0(shapes: Shapes) -> Fact:
    if "enc_p.emb_pitch.weight" in shapes or any(k.startswith("dec.m_source.") for k in shapes):
        return Fact(True, "checkpoint: pitch embedding / NSF source keys present")
    return Fact(False, "checkpoint: no pitch embedding or NSF source keys")


def detect_vocoder(shapes: Shapes) -> Fact:
    if any(k.startswith("dec.upsample_conv_blocks.") for k in shapes):
        return Fact("RefineGAN", "checkpoint: dec.upsample_conv_blocks.* keys")
    if any(k.startswith("dec.mrfs.") for k in shapes):
        return Fact("MRF HiFi-GAN", "checkpoint: dec.mrfs.* keys")
    return Fact("HiFi-GAN", "checkpoint: dec.ups.* / dec.resblocks.* keys")


def _numbered(shapes: Shapes, prefix: str, suffix: str) -> list[Sequence[int]]:
    out = []
    i = 0
    while f"{prefix}{i}{suffix}" in shapes:
        out.append(shapes[f"{prefix}{i}{suffix}"])
        i += 1
    return out


def ups_kernels(shapes: Shapes) -> tuple[int, ...]:
    for prefix in ("dec.ups.", "dec.upsamples."):
        for suffix in (".weight_v", ".weight"):
            found = _numbered(shapes, prefix, suffix)
            if found:
                return tuple(s[2] for s in found)
    return ()


def spec_channels(shapes: Shapes) -> int | None:
    s = shapes.get("enc_q.pre.weight")
    return s[1] if s else None


def config_from_shapes(shapes: Shapes, sr: int | None) -> tuple[dict[str, Any], str]:
    """config.json's data/model sections rebuilt from tensor shapes, with Applio's defaults for
    what weights cannot tell (dropout, dilations, strides). Returns (config, how)."""
    kernels = ups_kernels(shapes)
    spec = spec_channels(shapes)
    layout = KNOWN_LAYOUTS.get((spec, kernels)) if spec else None
    how = ""
    rates = None
    if sr is None:
        if layout is None:
            raise UsageError(
                "cannot tell the sample rate: no config.json beside the checkpoint and no known "
                "upsample layout; pass --sr 24000|32000|40000|48000"
            )
        sr, rates = layout
        how = f"sample rate from the upsample layout (kernels {list(kernels)})"
    elif layout is not None and layout[0] != sr:
        raise UsageError(
            f"--sr {sr} contradicts the weights, which say sample rate {layout[0]} "
            f"(upsample layout: {spec} spectrogram channels, kernels {list(kernels)})"
        )
    elif layout is not None:
        rates = layout[1]
    base = applio_default_config(sr)
    data, model = dict(base["data"]), dict(base["model"])
    hidden = shapes["enc_p.emb_phone.weight"][0]
    model["hidden_channels"] = hidden
    if "enc_p.proj.weight" in shapes:
        model["inter_channels"] = shapes["enc_p.proj.weight"][0] // 2
    ffn = shapes.get("enc_p.encoder.ffn_layers.0.conv_1.weight")
    if ffn:
        model["filter_channels"], model["kernel_size"] = ffn[0], ffn[2]
    model["n_layers"] = len(_numbered(shapes, "enc_p.encoder.attn_layers.", ".emb_rel_k"))
    rel = shapes.get("enc_p.encoder.attn_layers.0.emb_rel_k")
    if rel and rel[2] and hidden % rel[2] == 0:
        model["n_heads"] = hidden // rel[2]
    res = _numbered(shapes, "dec.resblocks.", ".convs1.0.weight_v")
    if res and kernels and len(res) % len(kernels) == 0:
        # one resblock per (upsample stage, kernel size): the first stage lists the sizes
        model["resblock_kernel_sizes"] = [s[2] for s in res[: len(res) // len(kernels)]]
    pre = shapes.get("dec.conv_pre.weight_v") or shapes.get("dec.conv_pre.weight")
    if pre:
        model["upsample_initial_channel"] = pre[0]
    if kernels:
        model["upsample_kernel_sizes"] = list(kernels)
    if rates is not None:
        model["upsample_rates"] = rates
    emb_g = shapes.get("emb_g.weight")
    if emb_g:
        model["spk_embed_dim"], model["gin_channels"] = emb_g[0], emb_g[1]
    if spec:
        data["filter_length"] = (spec - 1) * 2
    data["sample_rate"] = sr
    source = "checkpoint shapes + Applio defaults"
    return {"data": data, "model": model}, f"{source}; {how}" if how else source


def check_overrides(
    sr: int | None = None, version: str | None = None, vocoder: str | None = None
) -> None:
    """The values the override flags may take at all (torch-free, before any file is read)."""
    if sr is not None and (isinstance(sr, bool) or sr not in SAMPLE_RATES):
        raise UsageError(f"--sr must be one of {', '.join(map(str, SAMPLE_RATES))}, got {sr!r}")
    if version is not None and version not in ("v1", "v2"):
        raise UsageError(f"--version must be v1 or v2, got {version!r}")
    if vocoder is not None and vocoder not in VOCODERS:
        raise UsageError(f"--vocoder must be one of {', '.join(VOCODERS)}, got {vocoder!r}")


def _override(flag: str, what: str, value: Any, found: Fact | None) -> Fact:
    """A flag may say what the weights cannot tell, or repeat what they say; never more."""
    if found is None:
        return Fact(value, "flag")
    if value is None:
        return found
    if value != found.value:
        raise UsageError(
            f"{flag} contradicts the weights, which say {what} {found.value} ({found.source})"
        )
    return Fact(value, f"flag (agrees with {found.source})")


def _speakers_from_weights(
    cfg: Mapping[str, Any], rows: int | None, where: str
) -> tuple[Mapping[str, Any], str | None]:
    """config.json's spk_embed_dim, unless the generator's emb_g says otherwise: then the
    weights win, as in the trainer's own extraction (Applio sets spk_embed_dim from the G's
    emb_g rows before it builds the model, and passes that config to extract_model;
    config.json keeps the value from preprocessing, e.g. 109 on a run trained without a
    pretrained model whose G has 1 speaker)."""
    said = cfg["model"]["spk_embed_dim"]
    if rows is None or said == rows:
        return cfg, None
    note = (
        f"{where} says spk_embed_dim {said}, the weights have {rows} speaker(s) (emb_g.weight "
        f"rows): using {rows}, as the trainer's own extraction does"
    )
    return {**cfg, "model": {**cfg["model"], "spk_embed_dim": rows}}, note


def detect(
    shapes: Shapes,
    run_config: Mapping[str, Any] | None,
    *,
    sr: int | None = None,
    version: str | None = None,
    f0: bool | None = None,
    vocoder: str | None = None,
    where: str = "config.json",
) -> Detected:
    """Everything a small model needs that the G file does not state outright. The override
    flags only fill in what the weights cannot tell; one that contradicts them is refused.
    ``where``: how to name the run's config.json in messages."""
    check_overrides(sr, version, vocoder)
    emb_g = shapes.get("emb_g.weight")
    rows = emb_g[0] if emb_g else None
    notes: list[str] = []
    if run_config is not None:
        check_config(run_config, where)
        cfg, note = _speakers_from_weights(run_config, rows, where)
        cfg_from = "config.json"
        if note:
            notes.append(note)
            cfg_from = "config.json, spk_embed_dim from the weights (emb_g.weight rows)"
        if sr is not None and cfg["data"]["sample_rate"] != sr:
            raise UsageError(
                f"--sr {sr} contradicts config.json (sample_rate {cfg['data']['sample_rate']})"
            )
        sr_fact = Fact(cfg["data"]["sample_rate"], "config.json")
    else:
        cfg, cfg_from = config_from_shapes(shapes, sr)
        sr_fact = Fact(cfg["data"]["sample_rate"], "flag" if sr is not None else cfg_from)
    version_fact = _override(f"--version {version}", "version", version, detect_version(shapes))
    if version_fact.value is None:
        width = shapes["enc_p.emb_phone.weight"][1]
        raise UsageError(f"unknown text-encoder width {width}: pass --version v1|v2")
    f0_flag = "--f0" if f0 else "--no-f0"
    return Detected(
        version=version_fact,
        f0=_override(f0_flag, "f0", f0, detect_f0(shapes)),
        vocoder=_override(f"--vocoder {vocoder}", "vocoder", vocoder, detect_vocoder(shapes)),
        speakers=Fact(rows, "checkpoint: emb_g.weight rows"),
        sr=sr_fact,
        config=Fact(config_list(cfg), cfg_from),
        notes=tuple(notes),
    )
