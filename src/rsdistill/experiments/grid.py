"""The α × β grid of a sweep: its config, the members it trains and how they are named."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from rsdistill.config import option
from rsdistill.errors import ConfigError
from rsdistill.experiments.records import DistillConfig
from rsdistill.losses import DEFAULT_ALPHA, MethodConfig, check_alpha, resolve_beta

# The α grid when a sweep or study gives none: the one place it is written.
DEFAULT_ALPHAS = "0:0.5:0.1"
# The grid sets these per member; the sweep's method section holds everything else.
GRID_KEYS = ("alpha", "nuclear_beta")


def parse_alphas(text: str) -> list[float]:
    """``0,0.1,0.3`` or ``start:stop:step`` with an inclusive stop."""
    text = str(text).strip()
    try:
        if ":" in text:
            start, stop, step = (float(x) for x in text.split(":"))
            if step <= 0:
                raise ValueError
            n = int(math.floor((stop - start) / step + 1e-9)) + 1
            values = [round(start + i * step, 10) for i in range(max(n, 0))]
        else:
            values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--alphas must be a list like 0,0.1,0.3 or a range start:stop:step "
                          f"with step > 0, got {text!r}") from None
    if not values:
        raise ConfigError(f"--alphas {text!r} gives no values")
    for a in values:
        check_alpha(a)
    return list(dict.fromkeys(values))


def parse_betas(text: str) -> list[str]:
    """Comma-separated β settings, each a number or ``alpha``; kept as given for labels."""
    items = [x.strip() for x in str(text).split(",") if x.strip()]
    if not items:
        raise ConfigError("--nuclear-beta gives no values")
    for item in items:
        resolve_beta(item, DEFAULT_ALPHA)  # any α: a number or "alpha" is what is checked
    return list(dict.fromkeys(items))


def beta_label(spec: str) -> str:
    return "alpha" if spec.lower() == "alpha" else f"{float(spec):g}"


def member_name(alpha: float, beta: str) -> str:
    return f"alpha{alpha:.2f}_beta{beta_label(beta)}"


@dataclass
class SweepConfig:
    teacher: str = ""
    alphas: list[float] = field(default_factory=lambda: parse_alphas(DEFAULT_ALPHAS))
    betas: list[str] = field(default_factory=lambda: ["0"])
    seeds: int = option(1, help="seeds 0..N-1")
    # Every member's method settings; α and β come from the grid.
    method: MethodConfig = field(default_factory=MethodConfig)

    def member_config(self, alpha: float, beta: str) -> DistillConfig:
        """The ``distill`` section of one member's run, as a single run would record it."""
        m = self.method.with_weights(alpha, beta)
        return DistillConfig(**asdict(m), teacher=self.teacher)

    def validate(self) -> None:
        if self.seeds < 1:
            raise ConfigError(f"--seeds must be >= 1, got {self.seeds}")
        for b in self.betas:
            resolve_beta(b, DEFAULT_ALPHA)
        # Each member's settings (α included) checked as its own distill run checks them.
        for a in self.alphas:
            self.member_config(a, "0").validate()
        # A fused pass steps one student per member; a method that trains several models
        # per run (dml's peers, born-again's generations) cannot be one of them.
        procedure = self.member_config(self.alphas[0], "0").descriptor.procedure
        if procedure != "single":
            raise ConfigError(f"method {self.method.method!r} trains several models per run "
                              f"({procedure}), which a fused sweep cannot; run it with "
                              "'rsdistill distill' or 'rsdistill compare'")

    def record(self) -> dict:
        """The sweep's sections of sweep.yaml: the grid and the method (without α, β)."""
        grid = {k: v for k, v in asdict(self).items() if k != "method"}
        method = {k: v for k, v in asdict(self.method).items() if k not in GRID_KEYS}
        return {"sweep": grid, "method": method}

    def members(self) -> tuple[list[tuple[float, str]], dict[str, str]]:
        """The (α, β) members to train, and for every grid cell the member that trains it.

        Cells that resolve to the same settings (``β = alpha`` at ``α = 0`` is ``β = 0``)
        train once and are reported under both labels.
        """
        unique: dict[tuple[float, float], tuple[float, str]] = {}
        owner: dict[str, str] = {}
        for beta in self.betas:
            for alpha in self.alphas:
                key = (alpha, resolve_beta(beta, alpha))
                unique.setdefault(key, (alpha, beta))
                owner[member_name(alpha, beta)] = member_name(*unique[key])
        return list(unique.values()), owner


def upgrade_sweep_record(old: dict) -> dict:
    """A sweep.yaml written before the method had its own section, in today's layout."""
    if "method" in old or not isinstance(old.get("sweep"), dict):
        return old
    sweep = dict(old["sweep"])
    method = {k: sweep.pop(k) for k in ("method", "temperature", "method_options",
                                        "student_layers", "teacher_layers") if k in sweep}
    return {**old, "sweep": sweep, "method": method}
