"""Each trainer's own export, one function per format: from a loaded big checkpoint to what
the trainer's export code would write (where, under which name, the object to save, and what
verification must find in it). The writing itself (temp file, fsync, publish) and the reading
are in ``janitor.torchio.extract``; the torch-free facts in ``janitor.core.smallmodel``.

Formats:
- ``applio``: Applio's ``<name>_<E>e_<S>s.pth`` in the run folder.
- ``rvc``: RVC WebUI's ``savee`` (``assets/weights/<exp>_e<E>_s<S>.pth``), or with
  ``--like extract`` its web UI's extraction (``assets/weights/<name>.pth``).
- ``release``: so-vits-svc 4.1 / Bert-VITS2 ``compress_model.py``
  (``<stem>_release[_half].pth`` beside the G).
- ``gpt-sovits``: GPT-SoVITS SoVITS weights (``SoVITS_weights_<ver>/<exp>_e<E>_s<S>.pth``) from
  a ``G_<step>.pth``, GPT weights (``GPT_weights_<ver>/<exp>-e<E>.ckpt``) from a Lightning
  ``epoch=<E-1>-step=<S>.ckpt``.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from janitor.core import smallmodel as sm
from janitor.core.smallmodel import Fact
from janitor.domain.errors import UsageError
from janitor.domain.paths import normpath
from janitor.domain.profile import TrainerProfile
from janitor.torchio.pickling import GPT_SOVITS_GLOBALS, PICKLE_MODULE, hparams

FORMATS = ("applio", "rvc", "release", "gpt-sovits")
LIKES = ("savee", "extract")


@dataclass(frozen=True)
class Expect:
    """What a verified small model holds, compared with its big checkpoint."""

    container: str = "weight"  # where the small file keeps the weights
    source: str = "model"  # where the big file keeps them
    half: bool = True
    drop_enc_q: bool = True
    meta: tuple[tuple[str, Any], ...] = ()  # fields that must hold these values
    header: bytes = b"PK"  # the file's first two bytes
    allow: tuple[tuple[type, str], ...] = ()  # names allow-listed to read it weights-only
    torch_free: bool = False  # verified from the bytes, without torch (Applio, RVC WebUI)


@dataclass(frozen=True)
class Facts:
    """What was decided and where it came from (``detected`` in JSON)."""

    items: tuple[tuple[str, Fact], ...]

    def as_dict(self) -> dict[str, Any]:
        return {k: {"value": f.value, "from": f.source} for k, f in self.items}


@dataclass
class Context:
    path: str
    run_dir: str
    profile: TrainerProfile
    ckpt: Mapping[str, Any]
    weights: Mapping[str, Any]  # the big file's state dict
    shapes: dict[str, tuple[int, ...]]
    epoch: int
    step: int
    step_from: str
    opts: Any  # extract.Options
    read_json: Callable[[str], dict | None]
    read_text: Callable[[str], str | None]
    is_dir: Callable[[str], bool]
    now: Callable[[], datetime]
    notes: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    format: str
    output: str  # where the trainer puts it (the caller may redirect to --output)
    name: str
    detected: Any  # .as_dict()
    build: Callable[[dict[str, Any]], Any]  # converted weights -> the object to save
    expect: Expect
    pickle_module: Any = None
    header: bytes | None = None  # replaces "PK" at the start of the file


def _in_weights_dir(ctx: Context, rels: tuple[str, ...], filename: str) -> str:
    """The first of the trainer's weights folders (relative to the run) that exists, else
    the run folder itself."""
    for rel in rels:
        folder = normpath(os.path.join(ctx.run_dir, rel))
        if ctx.is_dir(folder):
            return os.path.join(folder, filename)
    return os.path.join(ctx.run_dir, filename)


# ----------------------------------------------------------------- Applio, RVC WebUI


def _run_config(ctx: Context) -> dict | None:
    cfg = ctx.read_json(os.path.join(ctx.run_dir, "config.json"))
    if cfg is not None and not {"data", "model"} <= set(cfg):
        ctx.notes.append("config.json has no data/model sections: ignored")
        return None
    return cfg


def _detect_vits(ctx: Context, *, speakers_from_weights: bool) -> sm.Detected:
    o = ctx.opts
    detected = sm.detect(
        ctx.shapes, _run_config(ctx), sr=o.sr, version=o.version, f0=o.f0, vocoder=o.vocoder,
        where=os.path.join(ctx.run_dir, "config.json"),
        speakers_from_weights=speakers_from_weights,
    )  # fmt: skip
    ctx.notes.extend(detected.notes)
    return detected


def applio(ctx: Context) -> Prepared:
    detected = _detect_vits(ctx, speakers_from_weights=True)
    model_info = ctx.read_json(os.path.join(ctx.run_dir, "model_info.json"))
    if model_info is None:
        ctx.notes.append(
            "no model_info.json: dataset_length None, embedder_model 'contentvec', speakers_id 1"
        )
    info = model_info or {}
    name = ctx.opts.name or os.path.basename(ctx.run_dir)
    epoch, step = ctx.epoch, ctx.step
    config, sr, version = detected.config.value, detected.sr.value, detected.version.value

    def build(weight: dict[str, Any]) -> OrderedDict:
        out = OrderedDict(weight=weight)
        out["config"] = config
        out["epoch"] = epoch
        out["step"] = step
        out["sr"] = sr
        out["f0"] = bool(detected.f0.value)
        out["version"] = version
        out["creation_date"] = ctx.now().isoformat()
        out["model_hash"] = sm.model_hash(name, epoch, step, sr, version, config)
        out["dataset_length"] = info.get("total_dataset_duration")
        out["model_name"] = name
        out["author"] = ctx.opts.author
        out["embedder_model"] = info.get("embedder_model", "contentvec")
        out["speakers_id"] = info.get("speakers_id", 1)
        out["vocoder"] = detected.vocoder.value
        return out

    output = os.path.join(ctx.run_dir, sm.applio_name(name, epoch, step))
    return Prepared("applio", output, name, detected, build,
                    Expect(meta=(("epoch", epoch), ("step", step)), torch_free=True))  # fmt: skip


def _rvc_train_log(ctx: Context) -> dict[str, Any]:
    text = ctx.read_text(os.path.join(ctx.run_dir, "train.log"))
    return sm.rvc_train_facts(text.split("\n", 1)[0]) if text else {}


def rvc(ctx: Context) -> Prepared:
    """RVC WebUI: ``savee`` (training) or, with ``--like extract``, its web UI's extraction."""
    extract_like = ctx.opts.like == "extract"
    detected = _detect_vits(ctx, speakers_from_weights=False)
    logged = _rvc_train_log(ctx)
    name = ctx.opts.name or os.path.basename(ctx.run_dir)
    rate = detected.sr.value
    sr = Fact(sm.rvc_sr(rate), detected.sr.source)
    if isinstance(logged.get("sample_rate"), str) and not ctx.opts.sr:
        sr = Fact(logged["sample_rate"], "train.log (sample_rate)")
    f0 = Fact(int(detected.f0.value), detected.f0.source)
    version = detected.version
    if not extract_like:
        if logged.get("if_f0") in (0, 1) and ctx.opts.f0 is None:
            f0 = Fact(int(logged["if_f0"]), "train.log (if_f0)")
        if logged.get("version") in ("v1", "v2") and ctx.opts.version is None:
            version = Fact(logged["version"], "train.log (version)")
    for label, fact, weights in (("f0", f0, int(detected.f0.value)),
                                 ("version", version, detected.version.value)):  # fmt: skip
        if fact.value != weights:
            ctx.notes.append(f"{fact.source} says {label} {fact.value}, the weights {weights}")
    if extract_like:
        config = Fact(sm.rvc_extract_config(rate, version.value),
                      f"RVC WebUI's fixed list for {sm.rvc_sr(rate)} {version.value}")  # fmt: skip
        info = ctx.opts.info or sm.RVC_EXTRACT_INFO  # the web UI: "" means its default
    else:
        config = detected.config
        info = f"{ctx.epoch}epoch"
    facts = Facts((("sr", sr), ("version", version), ("f0", f0),
                   ("speakers", detected.speakers), ("config", config)))  # fmt: skip

    def build(weight: dict[str, Any]) -> OrderedDict:
        out = OrderedDict(weight=weight)
        out["config"] = config.value
        out["info"] = info
        if extract_like:
            out["version"] = version.value
        out["sr"] = sr.value
        out["f0"] = f0.value
        if not extract_like:
            out["version"] = version.value
        return out

    filename = f"{name}.pth" if extract_like else sm.rvc_name(name, ctx.epoch, ctx.step)
    output = _in_weights_dir(ctx, ctx.profile.small_model_dirs or _RVC_DIRS, filename)
    expect = Expect(meta=(("info", info),), torch_free=True)
    return Prepared("rvc", output, name, facts, build, expect)


_RVC_DIRS = (os.path.join("..", "..", "assets", "weights"),)


# ----------------------------------------------------------------- so-vits-svc, Bert-VITS2


def _release_config(ctx: Context) -> tuple[dict, str]:
    """The run config compress_model.py is given: so-vits-svc ``logs/44k/config.json``,
    Bert-VITS2 ``Data/<ds>/configs/config.json`` (or ``models/config.json``)."""
    for rel in ("config.json", os.path.join("..", "configs", "config.json")):
        where = normpath(os.path.join(ctx.run_dir, rel))
        cfg = ctx.read_json(where)
        if cfg is not None:
            return cfg, where
    raise UsageError(
        f"{ctx.path}: compress_model.py needs the run's config.json (train.learning_rate, "
        f"betas, eps); none in {ctx.run_dir} or ../configs/"
    )


def release(ctx: Context) -> Prepared:
    import torch

    cfg, where = _release_config(ctx)
    lr, betas, eps = sm.check_train_section(cfg, where)
    half = bool(ctx.opts.half)
    n = sum(1 for v in ctx.weights.values() if hasattr(v, "shape"))
    facts = Facts((
        ("dtype", Fact("float16" if half else "float32", "--half" if half else "default")),
        ("optim", Fact(f"fresh AdamW over {n} parameters, lr {lr}, betas {betas}, eps {eps}",
                           where)),
    ))  # fmt: skip

    def build(weight: dict[str, Any]) -> dict:
        # What the script gets from a fresh AdamW over the generator's N parameters: the
        # state_dict of the same optimizer over N empty parameters (its values do not matter).
        params = [torch.nn.Parameter(torch.empty(0)) for _ in range(n)]
        optimizer = torch.optim.AdamW(params, lr, betas=betas, eps=eps)
        return {
            "model": weight,
            "iteration": 0,
            "optimizer": optimizer.state_dict(),
            "learning_rate": sm.RELEASE_LEARNING_RATE,
        }

    stem = os.path.splitext(os.path.basename(ctx.path))[0]
    output = os.path.join(os.path.dirname(ctx.path), sm.release_name(stem, half))
    meta = (("iteration", 0), ("learning_rate", sm.RELEASE_LEARNING_RATE))
    expect = Expect(container="model", half=half, meta=meta)
    return Prepared("release", output, stem, facts, build, expect)


# ----------------------------------------------------------------- GPT-SoVITS

_VERSION_DIR = re.compile(r"^logs_s[12]_(?P<version>.+)$")


def _folder_version(folder: str) -> str | None:
    m = _VERSION_DIR.match(os.path.basename(folder.rstrip(os.sep)))
    return m["version"] if m else None


def sovits(ctx: Context) -> Prepared:
    """SoVITS weights as ``process_ckpt.savee`` writes them (v1, v2, v2Pro, v2ProPlus)."""
    exp_dir = os.path.dirname(ctx.run_dir)  # logs/<exp>
    where = os.path.join(exp_dir, "config.json")
    cfg = ctx.read_json(where)
    if cfg is None or not isinstance(cfg.get("model"), dict):
        raise UsageError(
            f"{ctx.path}: GPT-SoVITS writes the run's hyper-parameters into its weights; no "
            f"usable {where} (the web UI writes it when training starts)"
        )
    version = sm.sovits_version(ctx.shapes)
    said = cfg.get("version") or cfg["model"].get("version")
    if said and said != version.value:
        raise UsageError(f"{where} says version {said}, the weights are {version.value} "
                         f"({version.source})")  # fmt: skip
    if ctx.step_from.startswith("unknown"):
        raise UsageError(
            f"{ctx.path}: the latest-only file does not say its step, and GPT-SoVITS names "
            "and labels its weights by it; pass --step N"
        )
    name = ctx.opts.name or cfg.get("name") or os.path.basename(exp_dir)
    info = sm.sovits_info(ctx.epoch, ctx.step)
    config = hparams(cfg, pretrain=None, resume_step=None)
    header = sm.VERSION_HEADER.get(version.value)
    facts = Facts((
        ("version", version),
        ("config", Fact("utils.HParams", f"{where}, then pretrain None, resume_step None")),
        ("header", Fact((header or b"PK").decode(), f"version {version.value}")),
    ))  # fmt: skip

    def build(weight: dict[str, Any]) -> OrderedDict:
        return OrderedDict(weight=weight, config=config, info=info)

    folder = cfg.get("save_weight_dir") or sm.sovits_weights_dir(version.value)
    root = os.path.dirname(os.path.dirname(exp_dir))  # beside logs/
    output = _in_weights_dir(ctx, (os.path.relpath(os.path.join(root, folder), ctx.run_dir),),
                             f"{name}_e{ctx.epoch}_s{ctx.step}.pth")  # fmt: skip
    expect = Expect(meta=(("info", info),), header=header or b"PK", allow=GPT_SOVITS_GLOBALS)
    return Prepared("gpt-sovits", output, name, facts, build, expect, PICKLE_MODULE, header)


def gpt(ctx: Context) -> Prepared:
    """GPT weights as the ``s1_train.py`` checkpoint callback writes them, from the
    Lightning checkpoint of the same epoch."""
    hyper = ctx.ckpt.get("hyper_parameters")
    config = hyper.get("config") if isinstance(hyper, Mapping) else None
    if not isinstance(config, dict):
        raise UsageError(f"{ctx.path}: no hyper_parameters['config'] (not a GPT-SoVITS s1 "
                         "checkpoint)")  # fmt: skip
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    exp_dir = os.path.dirname(os.path.dirname(ctx.run_dir))  # logs/<exp>
    version = _folder_version(os.path.dirname(ctx.run_dir))
    vocab = (config.get("model") or {}).get("phoneme_vocab_size")
    if version is None:
        version = "v1" if vocab == 512 else "v2"
    name = ctx.opts.name or train.get("exp_name") or os.path.basename(exp_dir)
    epoch = ctx.epoch
    info = sm.gpt_info(epoch)
    facts = Facts((
        ("version", Fact(version, "folder name" if _folder_version(os.path.dirname(ctx.run_dir))
                         else f"phoneme_vocab_size {vocab}")),
        ("epoch", Fact(epoch, "Lightning epoch + 1")),
        ("config", Fact("s1 YAML", "hyper_parameters['config']")),
    ))  # fmt: skip

    def build(weight: dict[str, Any]) -> OrderedDict:
        return OrderedDict(weight=OrderedDict(weight), config=config, info=info)

    folder = train.get("half_weights_save_dir") or sm.gpt_weights_dir(version)
    root = os.path.dirname(os.path.dirname(exp_dir))
    output = _in_weights_dir(ctx, (os.path.relpath(os.path.join(root, folder), ctx.run_dir),),
                             sm.gpt_name(name, epoch))  # fmt: skip
    expect = Expect(source="state_dict", drop_enc_q=False, meta=(("info", info),))
    return Prepared("gpt-sovits", output, name, facts, build, expect)


PREPARERS: dict[str, Callable[[Context], Prepared]] = {
    "applio": applio,
    "rvc": rvc,
    "release": release,
    "gpt-sovits": sovits,
}
