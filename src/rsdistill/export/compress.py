"""Low-rank compression of a checkpoint's first weight layer into a new run directory.

The first layer W₁ is the one the study's nuclear-norm penalty pushes towards low
rank, so it is the layer whose truncation costs least accuracy. The new run holds
``model.pt`` (with ``meta["low_rank"]``, which ``load_model`` uses to rebuild the
two-layer structure), a copy of ``config.yaml`` (so evaluate/export find the data)
and ``metrics.json`` of the compressed model plus a ``compression`` record.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import torch

from rsdistill.data.module import DataConfig, prepare_data
from rsdistill.runtime.rundir import MODEL_FILE
from rsdistill.models import load_model
from rsdistill.runtime.checkpoint import save_model
from rsdistill.runtime.precision import Precision, resolve_precision
from rsdistill.runtime.locks import clear_project_files, run_dir_lock
from rsdistill.runtime.rundir import CONFIG_FILE, METRICS_FILE, describe_entries, other_entries
from rsdistill.evaluation.evaluate import evaluate_model
from rsdistill.errors import CheckpointError, ConfigError
from rsdistill.evaluation import predict
from rsdistill.io import atomic_write_bytes, write_json
from rsdistill.losses import singular_values
from rsdistill.models import count_flops, count_parameters, first_weight_layer
from rsdistill.models.lowrank import (batchnorm_scale, check_energy, factorise, following_batchnorm,
                                      full_rank, input_statistics, rank_for_energy, weighted_singular_values)


# How the truncation weighs W₁'s outputs (``--weighting``).
# data: the following BatchNorm's scale and the training patches' mean and covariance;
# batchnorm: the scale only; none: the plain SVD of W₁.
WEIGHTINGS = ("data", "batchnorm", "none")


@dataclasses.dataclass
class CompressRequest:
    rank: int | None = None
    energy: float | None = None
    weighting: str = "data"

    def __post_init__(self) -> None:
        # Checked on construction, before any checkpoint or data is read.
        if (self.rank is None) == (self.energy is None):
            raise ConfigError("pass exactly one of --rank R or --energy E")
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"--weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if self.energy is not None:
            check_energy(self.energy)

    def resolve(self, s: torch.Tensor, limit: int) -> int:
        """The rank to keep, from ``--rank`` or ``--energy``."""
        if self.energy is not None:
            return rank_for_energy(s, self.energy)
        if not 1 <= self.rank <= limit:
            raise ConfigError(f"--rank must be in [1, {limit}] (the full rank of the first layer), "
                              f"got {self.rank}")
        return self.rank


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _accuracy(model: torch.nn.Module, data, precision: Precision) -> float:
    idx = data.split["test"]
    logits = predict(precision.prepare_model(model), data.dataset.images[idx], data.normalizer, precision)
    return float((logits.argmax(1) == data.dataset.labels[idx]).float().mean())


def _training_input_stats(model: torch.nn.Module, layer: torch.nn.Module, data) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and covariance of the patches ``layer`` sees on (up to 2,048) training images, fp32, no augmentation."""
    idx = data.split["train"][:2048]
    seen: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().float().cpu()))
    try:
        predict(model, data.dataset.images[idx], data.normalizer, resolve_precision("fp32", "cpu"))
    finally:
        handle.remove()
    return input_statistics(layer, torch.cat(seen))


def _break_even(layer: torch.nn.Module) -> int:
    out_dim, patch = layer.weight.shape[0], layer.weight[0].numel()
    return -(-out_dim * patch // (patch + out_dim))  # ceil: ranks below it save weights


def default_out(model_file: Path, rank: int) -> Path:
    return model_file.parent.with_name(f"{model_file.parent.name}-rank{rank}")


def claim_out(out: Path, overwrite: bool) -> None:
    """The compressed run goes into an empty directory, or one ``--overwrite`` clears of
    what rsdistill wrote (a training run there is never silently mixed with it)."""
    if overwrite:
        clear_project_files(out)
    elif other_entries(out):
        raise ConfigError(f"{out} is not empty ({describe_entries(other_entries(out), out)}); "
                          "choose another --out, or pass --overwrite to replace the rsdistill "
                          "files in it (other files stay)")


def compress_checkpoint(model_file: Path, request: CompressRequest, data_cfg: DataConfig,
                        precision: Precision, timing: Precision, latency_runs: int,
                        threads: int, out: Path | None = None, overwrite: bool = False) -> dict:
    model, meta = load_model(model_file)
    if meta.get("low_rank"):
        raise CheckpointError(f"{model_file} is already compressed ({meta['low_rank']}); "
                              "compress the original checkpoint instead")
    model = model.float().eval()
    name, layer = first_weight_layer(model)
    size = int(meta["image_size"])
    found = following_batchnorm(model, name, size) if request.weighting != "none" else None
    row_scale = batchnorm_scale(found[1]) if found else None
    data = prepare_data(dataclasses.replace(data_cfg, image_size=size), progress=False)
    if list(data.classes) != list(meta["classes"]):
        raise ConfigError(f"{model_file} was trained on other classes than {data_cfg.dataset} provides here")
    stats = _training_input_stats(model, layer, data) if request.weighting == "data" else None
    # The rank comes from W₁'s own spectrum, the one the nuclear norm shrinks and the
    # reports' effective rank reads; the weighting only chooses the best factors for it.
    s = singular_values(layer.weight.detach())
    rank = request.resolve(s, full_rank(layer))
    sw2 = weighted_singular_values(layer.weight, row_scale, stats[1] if stats else None).square()
    out = Path(out) if out is not None else default_out(model_file, rank)
    with run_dir_lock(out) as out:
        claim_out(out, overwrite)
        pair = factorise(layer, rank, row_scale, stats)
        compressed = copy.deepcopy(model)
        compressed.set_submodule(name, pair)
        s2 = s.double().square()
        record = {
            "source": str(model_file), "layer": name, "layer_type": type(layer).__name__,
            "weight_shape": list(layer.weight.shape),
            "weighting": request.weighting, "weighted_by": found[0] if found else None,
            "rank": rank, "full_rank": full_rank(layer),
            "energy_requested": request.energy, "energy_kept": float(s2[:rank].sum() / s2.sum()),
            # ‖W − W_R‖_F / ‖W‖_F for the plain SVD (Eckart–Young).
            "relative_error": float((s2[rank:].sum() / s2.sum()).sqrt()),
            # What the weighting minimised: ‖D(W − W_R)Σ^½‖_F / ‖DWΣ^½‖_F (D, Σ identity
            # under "none", so then it equals relative_error).
            "relative_output_error": float((sw2[rank:].sum() / sw2.sum()).sqrt()),
            "layer_params_before": _params(layer), "layer_params_after": _params(pair),
            # Below this rank the pair holds fewer weights than W₁: R·(in·k·k + out) < out·in·k·k.
            "break_even_rank": _break_even(layer),
            "params_before": count_parameters(model), "params_after": count_parameters(compressed),
            "flops_before": count_flops(model, size), "flops_after": count_flops(compressed, size),
            "accuracy_before": _accuracy(copy.deepcopy(model), data, precision),
        }
        new_meta = {**meta, "low_rank": {"layer": name, "rank": rank, "bias": pair[1].bias is not None}}
        metrics = evaluate_model(compressed, new_meta, data, "test", precision, timing, latency_runs, threads)
        record["accuracy_after"] = metrics["accuracy"]
        metrics["checkpoint"] = MODEL_FILE
        metrics["compression"] = record
        save_model(out / MODEL_FILE, compressed, new_meta)
        if (model_file.parent / CONFIG_FILE).is_file():
            atomic_write_bytes(out / CONFIG_FILE, (model_file.parent / CONFIG_FILE).read_bytes())
        write_json(out / METRICS_FILE, metrics)
        return {**record, "out": str(out)}
