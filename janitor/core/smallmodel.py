"""Small (inference) model formats, as the trainers write them. Torch-free: these functions
work on key names, shapes and config dicts, so detection is testable without tensors.

Facts (see fixtures/formats and the trainers' own extraction code):
- Applio: OrderedDict ``weight`` (G state dict minus ``enc_q`` keys, fp16), ``config`` (18
  items from config.json), ``epoch``, ``step``, ``sr`` (int), ``f0`` (bool), ``version``,
  ``creation_date``, ``model_hash`` (sha256 of
  ``f"{name}-{epoch}-{step}-{sr}-{version}-{config}"``), ``dataset_length``, ``model_name``,
  ``author``, ``embedder_model``, ``speakers_id``, ``vocoder``.
- RVC WebUI: OrderedDict ``weight``, ``config``, ``info`` ("<epoch>epoch"), ``sr`` ("40k"),
  ``f0`` (int), ``version`` (``savee``); the web UI's extraction: ``weight``, ``config`` (fixed per
  rate and version), ``info`` (the user's text), ``version``, ``sr``, ``f0``.
- so-vits-svc 4.1 / Bert-VITS2 ``compress_model.py``: dict ``model`` (G minus ``enc_q``, fp32 or
  fp16), ``iteration`` 0, ``optimizer`` (a fresh AdamW's state_dict over all N parameters),
  ``learning_rate`` 0.0001; ``<stem>_release[_half].pth`` beside the G.
- GPT-SoVITS: SoVITS weights OrderedDict ``weight`` (fp16, no ``enc_q``), ``config`` (the run's
  ``utils.HParams``), ``info`` ("<E>epoch_<S>iteration"); v2Pro/v2ProPlus files start with
  ``05``/``06`` instead of ``PK``. GPT weights: OrderedDict ``weight`` (the Lightning state dict,
  fp16), ``config`` (the s1 YAML dict), ``info`` ("GPT-e<E>").
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


def rate_key(cfg: Mapping[str, Any]) -> str:
    """Applio's config.json names the rate ``data.sample_rate``, RVC WebUI's
    ``data.sampling_rate``."""
    data = cfg.get("data")
    if isinstance(data, Mapping) and "sample_rate" not in data and "sampling_rate" in data:
        return "sampling_rate"
    return "sample_rate"


def sample_rate(cfg: Mapping[str, Any]) -> Any:
    return cfg["data"][rate_key(cfg)]


def check_config(cfg: Mapping[str, Any], where: str = "config.json") -> None:
    """Every key the ``config`` list reads is there: else a usage error naming file and key."""
    needed = [("data", "filter_length"), *(("model", k) for k in MODEL_KEYS)]
    for section, key in [*needed, ("data", rate_key(cfg))]:
        if not isinstance(cfg.get(section), Mapping) or key not in cfg[section]:
            raise UsageError(f"{where}: no {section}.{key}")
    length = cfg["data"]["filter_length"]
    if not isinstance(length, int) or isinstance(length, bool) or length <= 0:
        raise UsageError(f"{where}: data.filter_length must be a positive whole number")


def config_list(cfg: Mapping[str, Any]) -> list[Any]:
    """The 18-item ``config`` list, values and Python types as in config.json."""
    d, m = cfg["data"], cfg["model"]
    return [d["filter_length"] // 2 + 1, 32, *(m[k] for k in MODEL_KEYS), sample_rate(cfg)]


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
    """An RVC-family (Applio, RVC WebUI) generator."""
    return "enc_p.emb_phone.weight" in shapes and any(k.startswith("dec.") for k in shapes)


def is_vits_generator(shapes: Shapes) -> bool:
    """Any VITS generator: a text/content encoder and a decoder (so-vits-svc, Bert-VITS2)."""
    return any(k.startswith("enc_p.") for k in shapes) and any(k.startswith("dec.") for k in shapes)


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
    speakers_from_weights: bool = True,
) -> Detected:
    """Everything a small model needs that the G file does not state outright. The override
    flags only fill in what the weights cannot tell; one that contradicts them is refused.
    ``where``: how to name the run's config.json in messages. ``speakers_from_weights``: Applio
    takes spk_embed_dim from the G's emb_g; RVC WebUI's ``savee`` from config.json as it is."""
    check_overrides(sr, version, vocoder)
    emb_g = shapes.get("emb_g.weight")
    rows = emb_g[0] if emb_g else None
    notes: list[str] = []
    if run_config is not None:
        check_config(run_config, where)
        rows_said = rows if speakers_from_weights else None
        cfg, note = _speakers_from_weights(run_config, rows_said, where)
        cfg_from = "config.json"
        if note:
            notes.append(note)
            cfg_from = "config.json, spk_embed_dim from the weights (emb_g.weight rows)"
        if sr is not None and sample_rate(cfg) != sr:
            raise UsageError(
                f"--sr {sr} contradicts config.json ({rate_key(cfg)} {sample_rate(cfg)})"
            )
        sr_fact = Fact(sample_rate(cfg), "config.json")
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


# ----------------------------------------------------------------- RVC WebUI

# The web UI's "ckpt_extract" (``extract_small_model``) ignores config.json: one fixed list per
# (sample rate, version), equal to the shipped default configs.
_RVC_UPSAMPLES = {
    (40000, "v1"): ([10, 10, 2, 2], [16, 16, 4, 4]),
    (40000, "v2"): ([10, 10, 2, 2], [16, 16, 4, 4]),
    (48000, "v1"): ([10, 6, 2, 2, 2], [16, 16, 4, 4, 4]),
    (48000, "v2"): ([12, 10, 2, 2], [24, 20, 4, 4]),
    (32000, "v1"): ([10, 4, 2, 2, 2], [16, 16, 4, 4, 4]),
    (32000, "v2"): ([10, 8, 2, 2], [20, 16, 4, 4]),
}
RVC_EXTRACT_INFO = "Extracted model."  # the web UI's default text (branch 20240604)


def rvc_extract_config(sr: int, version: str) -> list[Any]:
    """The 18-item list RVC WebUI's own extraction writes for this rate and version."""
    if (sr, version) not in _RVC_UPSAMPLES:
        raise UsageError(f"RVC WebUI extracts 32k, 40k and 48k models only, not {sr} Hz")
    rates, kernels = _RVC_UPSAMPLES[(sr, version)]
    first = 513 if sr == 32000 else 1025
    dilations = [[1, 3, 5], [1, 3, 5], [1, 3, 5]]
    return [first, 32, 192, 192, 768, 2, 6, 3, 0, "1", [3, 7, 11], dilations, rates, 512,
            kernels, 109, 256, sr]  # fmt: skip


def rvc_train_facts(first_line: str) -> dict[str, Any]:
    """``sample_rate`` ("40k"), ``if_f0`` (1/0) and ``version`` from the first line of RVC
    WebUI's ``train.log`` (the run's hparams, logged as a Python dict literal)."""
    import ast

    start = first_line.find("{")
    if start < 0:
        return {}
    try:
        hparams = ast.literal_eval(first_line[start:].strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return {}
    if not isinstance(hparams, dict):
        return {}
    return {k: hparams[k] for k in ("sample_rate", "if_f0", "version") if k in hparams}


# ----------------------------------------------------------------- so-vits-svc, Bert-VITS2

RELEASE_LEARNING_RATE = 0.0001  # compress_model.py writes this constant, whatever the config


def release_name(stem: str, half: bool) -> str:
    """compress_model.py's default output name for ``<stem>.pth``."""
    return f"{stem}_release{'_half' if half else ''}.pth"


def check_train_section(cfg: Any, where: str) -> tuple[float, list[float], float]:
    """(learning_rate, betas, eps) of a run config's ``train`` section, as the script reads
    them; a usage error naming the file and key when one is missing."""
    train = cfg.get("train") if isinstance(cfg, Mapping) else None
    if not isinstance(train, Mapping):
        raise UsageError(f"{where}: no train section")
    for key in ("learning_rate", "betas", "eps"):
        if key not in train:
            raise UsageError(f"{where}: no train.{key}")
    return train["learning_rate"], train["betas"], train["eps"]


# ----------------------------------------------------------------- GPT-SoVITS

SOVITS_VERSIONS = ("v1", "v2", "v2Pro", "v2ProPlus")
# The two bytes GPT-SoVITS writes instead of "PK" (process_ckpt.model_version2byte) and what
# its loader reads from them (head2version).
VERSION_HEADER = {"v2Pro": b"05", "v2ProPlus": b"06"}
HEADER_VERSION = {
    b"00": "v1", b"01": "v2", b"02": "v3", b"03": "v3 LoRA", b"04": "v4 LoRA",
    b"05": "v2Pro", b"06": "v2ProPlus",
}  # fmt: skip
UNSUPPORTED_SOVITS = (
    "v3 and v4 SoVITS runs train LoRA adapters on a frozen base (s2_train_v3_lora.py); janitor "
    "extracts v1, v2, v2Pro and v2ProPlus SoVITS weights only"
)


def sovits_weights_dir(version: str) -> str:
    return "SoVITS_weights" if version == "v1" else f"SoVITS_weights_{version}"


def gpt_weights_dir(version: str) -> str:
    return "GPT_weights" if version == "v1" else f"GPT_weights_{version}"


def sovits_info(epoch: int, step: int) -> str:
    return f"{epoch}epoch_{step}iteration"


def gpt_name(exp: str, epoch: int) -> str:
    return f"{exp}-e{epoch}.ckpt"


def gpt_info(epoch: int) -> str:
    return f"GPT-e{epoch}"


def sovits_version(shapes: Shapes) -> Fact:
    """v1/v2/v2Pro/v2ProPlus from a SoVITS generator's weights: v2Pro adds a speaker-
    verification projection (``sv_emb``), v2ProPlus widens the decoder (conv_pre 768 out);
    v1's text embedding has 322 symbols (v2: 732)."""
    if "sv_emb.weight" in shapes:
        pre = shapes.get("dec.conv_pre.weight") or shapes.get("dec.conv_pre.weight_v") or (0,)
        if pre[0] == 768:
            return Fact("v2ProPlus", "checkpoint: sv_emb present, dec.conv_pre has 768 channels")
        return Fact("v2Pro", "checkpoint: sv_emb present, dec.conv_pre has 512 channels")
    if any("lora" in k for k in shapes) or any(k.startswith("cfm.") for k in shapes):
        raise UsageError(UNSUPPORTED_SOVITS)
    rows = (shapes.get("enc_p.text_embedding.weight") or (0,))[0]
    if rows == 322:
        return Fact("v1", "checkpoint: enc_p.text_embedding.weight has 322 rows")
    return Fact("v2", f"checkpoint: enc_p.text_embedding.weight has {rows} rows")


def is_sovits_generator(shapes: Shapes) -> bool:
    return "enc_p.text_embedding.weight" in shapes and "quantizer.vq.layers.0._codebook.embed" in (
        shapes
    )
