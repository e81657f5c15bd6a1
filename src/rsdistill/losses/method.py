"""Distillation methods by name: what each one is, needs and takes, and the one config of it.

A :class:`Method` describes a method to the rest of the package: the factory that builds
what it trains with (a per-step :class:`~rsdistill.losses.base.DistillationLoss`, or a
plan for a method that trains several runs), the procedure that trains a run of it, its
default temperature and a one-line summary for help texts. Each method's module
registers its descriptor in :data:`METHODS`, so adding a method is one new file: no
name appears in a list anywhere else.

:class:`MethodConfig` is the one set of method settings (method, α, T, β, options,
layers) that every run, sweep, comparison and study config embeds.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from rsdistill.config import option
from rsdistill.errors import ConfigError
from rsdistill.losses.base import check_alpha, check_temperature, reads_teacher
from rsdistill.losses.nuclear import resolve_beta
from rsdistill.registry import Registry

DEFAULT_TEMPERATURE = 4.0
# The weight of the method's loss when a run gives none: the one place it is written.
DEFAULT_ALPHA = 0.5
# Settings every method may use, each set by its own command-line flag and config key;
# the layer lists are read by the distiller, not by a factory.
SHARED_SETTINGS = ("alpha", "temperature", "label_smoothing")
_OWN_FLAGS = (*SHARED_SETTINGS, "student_layers", "teacher_layers")
# The option that picks a method's variant (``self``: born_again or teacher_free).
VARIANT_OPTION = "variant"


@dataclass(frozen=True)
class Method:
    """One distillation method.

    ``factory``'s keyword parameters are the method's options (shared settings
    included where it uses them); it returns a per-step loss, or for a method whose
    ``procedure`` is not ``"single"``/``"mutual"`` the plan that procedure reads.
    ``procedure`` names the entry of ``experiments.procedures.PROCEDURES`` that trains a
    run: ``"single"`` (one student, the loss per step), ``"mutual"`` (peers trained
    together), ``"generations"`` (born-again). ``teacher``: whether the method distils
    from a trained teacher at all. A method with ``variants`` picks one of them with
    ``--method-option variant=NAME``.
    """

    name: str
    summary: str
    factory: Callable[..., Any] | None = None
    procedure: str = "single"
    default_temperature: float = DEFAULT_TEMPERATURE
    teacher: bool = True
    variants: "Registry[Method] | None" = None
    default_variant: str | None = None

    def option_names(self) -> list[str]:
        """The options only ``--method-option`` sets (``variant`` and every variant's)."""
        if self.variants is not None:
            names = [VARIANT_OPTION]
            for v in self.variants:
                names += [n for n in self.variants.get(v).option_names() if n not in names]
            return names
        params = inspect.signature(self.factory).parameters
        return [p for p, v in params.items() if v.kind is not v.VAR_KEYWORD and p not in _OWN_FLAGS]

    def resolve(self, options: dict[str, object]) -> tuple["Method", dict[str, object]]:
        """The variant ``options`` pick (or this method) and the options left for it."""
        if self.variants is None:
            return self, dict(options)
        rest = dict(options)
        variant = rest.pop(VARIANT_OPTION, self.default_variant)
        if not isinstance(variant, str) or variant not in self.variants:
            raise ConfigError(f"{self.name}: variant must be one of "
                              f"{', '.join(self.variants.names())}, got {variant!r}")
        chosen = self.variants.get(variant)
        misplaced = sorted(set(rest) - set(chosen.option_names()))
        if misplaced:
            owners = [v for v in self.variants
                      if set(misplaced) <= set(self.variants.get(v).option_names())]
            hint = f"; they are options of variant={owners[0]}" if owners else ""
            raise ConfigError(f"option(s) {', '.join(misplaced)} do not apply to {self.name} "
                              f"variant={variant}{hint}")
        return chosen, rest


METHODS: Registry[Method] = Registry("distillation method")


def register_method(method: Method) -> Method:
    METHODS.add(method.name, method)
    return method


def _check_options(method: Method, label: str, options: dict[str, object]) -> None:
    own = sorted(set(options) & set(_OWN_FLAGS))
    if own:
        raise ConfigError(f"{own[0]} is not a --method-option; set it with "
                          f"--{own[0].replace('_', '-')}")
    accepted = method.option_names()
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = (f"its --method-option keys: {', '.join(accepted)}" if accepted
                 else "it takes no --method-option")
        raise ConfigError(f"{METHODS.kind} {label!r} has no option(s) {', '.join(unknown)}; "
                          f"{takes}")


def build_method(name: str, *, alpha: float = DEFAULT_ALPHA, temperature: float | None = None,
                 label_smoothing: float = 0.0, options: dict[str, object] | None = None) -> Any:
    """What method ``name`` trains with, from the run's shared settings and its ``options``.

    A shared setting the method does not take is left out (``--temperature`` means nothing
    to FitNet, as the layer flags mean nothing to KD), so one config section serves every
    method. ``options`` are strict: an unknown key, or one that has its own flag, is a
    :class:`ConfigError` naming the keys the method does take.
    """
    top = METHODS.get(name)
    options = dict(options or {})
    if temperature is None:
        temperature = top.default_temperature
    _check_options(top, name, options)
    method, options = top.resolve(options)
    params = inspect.signature(method.factory).parameters
    missing = [p for p, v in params.items() if v.default is v.empty and p not in SHARED_SETTINGS
               and p not in options]
    if missing:
        raise ConfigError(f"{METHODS.kind} {name!r} needs option(s): {', '.join(missing)}")
    shared = {k: v for k, v in (("alpha", alpha), ("temperature", temperature),
                                ("label_smoothing", label_smoothing)) if k in params}
    return method.factory(**shared, **options)


def method_descriptor(name: str, options: dict[str, object] | None = None) -> Method:
    """The descriptor that trains method ``name`` with ``options`` (its variant, if any)."""
    return METHODS.get(name).resolve(dict(options or {}))[0]


def method_option_names(name: str) -> list[str]:
    """The options of method ``name`` that only ``--method-option`` sets."""
    return METHODS.get(name).option_names()


def default_temperature(name: str) -> float:
    """The ``T`` of method ``name`` when a run gives none (1 for dml, as in its paper)."""
    return float(METHODS.get(name).default_temperature)


def methods_help() -> str:
    """``name (options: ...)`` for every registered method, for ``--help`` texts."""
    parts = []
    for name in METHODS:
        options = method_option_names(name)
        parts.append(f"{name}" + (f" [{', '.join(options)}]" if options else ""))
    return "; ".join(parts)


def _temperature_shown() -> str:
    others = ", ".join(f"{default_temperature(n):g} for {n}" for n in METHODS
                       if default_temperature(n) != DEFAULT_TEMPERATURE)
    return f"the method's own: {others + ', ' if others else ''}{DEFAULT_TEMPERATURE:g} for the others"


@dataclass
class MethodConfig:
    """How a student learns: the method, its weights α and β, T, options and tapped layers.

    Embedded in every config that trains students (distill runs, sweeps, comparisons,
    studies), so the settings are defined, checked and recorded in one place.
    """

    method: str = option("kd", help=lambda: f"distillation method: {', '.join(METHODS.names())}")
    alpha: float = option(DEFAULT_ALPHA, help="weight of the method's loss; (1-α) weighs the "
                          "hard loss, 0..1")
    # None = the method's own default (1 for dml, 4 otherwise), filled in at construction
    # so config.yaml always records the number a run used.
    temperature: float | None = option(None, flag=("--temperature", "-T"),
                                       help="softmax temperature", shown=_temperature_shown)
    nuclear_beta: float | str = 0.0
    # The method's own options (--method-option KEY=VALUE), checked against its factory.
    method_options: dict = field(default_factory=dict)
    # Tapped layers of a feature-based method; None = the method's pick among the
    # model's declared stages. Methods on logits ignore them.
    # The command line gives them as A,B (parsed by the command, checked by validate()).
    student_layers: list[str] | None = option(
        None, type=str, metavar="A,B", shown="the method's pick among the model's stages",
        help="student modules tapped by fitnet/at")
    teacher_layers: list[str] | None = option(
        None, type=str, metavar="A,B", shown="the method's pick among the teacher's stages",
        help="teacher modules, paired with --student-layers in order")

    def __post_init__(self) -> None:
        # α is checked once, here: every run, sweep member, comparison and study builds
        # its method settings through this class.
        self.alpha = check_alpha(self.alpha)
        # An unknown method keeps None here; validate() then names the valid ones.
        if self.temperature is None and self.method in METHODS:
            self.temperature = default_temperature(self.method)

    def method_settings(self) -> "MethodConfig":
        """Just the method settings (a subclass's other fields dropped), as a copy."""
        return MethodConfig(self.method, self.alpha, self.temperature, self.nuclear_beta,
                            dict(self.method_options), self.student_layers, self.teacher_layers)

    def with_weights(self, alpha: float, nuclear_beta: float | str) -> "MethodConfig":
        return replace(self, alpha=alpha, nuclear_beta=nuclear_beta,
                       method_options=dict(self.method_options))

    @property
    def descriptor(self) -> Method:
        return method_descriptor(self.method, self.method_options)

    def beta(self) -> float:
        return resolve_beta(self.nuclear_beta, self.alpha)

    def build(self, label_smoothing: float = 0.0) -> Any:
        """The loss (or plan) this method trains with."""
        return build_method(self.method, alpha=self.alpha, temperature=self.temperature,
                            label_smoothing=label_smoothing, options=self.method_options)

    def validate(self, label_smoothing: float = 0.0) -> Any:
        """Checks every setting before any data is decoded; returns the loss (or plan).

        Building it is the check of the options (an unknown option or value fails here),
        so a run keeps what this returns and trains with it: the loss is built once.
        """
        METHODS.get(self.method)
        check_temperature(self.temperature)
        check_layers("--student-layers", self.student_layers)
        check_layers("--teacher-layers", self.teacher_layers)
        built = self.build(label_smoothing)
        self.beta()
        return built

    def needs_teacher(self, built: Any = None) -> bool:
        """Whether this run's loss (``built``, or one built here) reads a teacher: kd,
        dkd, fitnet and at with α > 0."""
        return reads_teacher(self.build() if built is None else built, self.alpha)

    def check_teacher(self, teacher: str, built: Any = None) -> None:
        """A method whose loss reads a teacher is refused without one."""
        if self.needs_teacher(built) and not teacher:
            raise ConfigError(f"method {self.method!r} distils from a teacher; pass --teacher "
                              "(a run directory or model.pt)")


def check_layers(flag: str, layers: list[str] | None) -> None:
    """``None`` (the model's default stages) or a non-empty list of non-empty names."""
    if layers is None:
        return
    if not layers or not all(isinstance(n, str) and n.strip() for n in layers):
        raise ConfigError(f"{flag} must name one or more layers, e.g. layer2 or "
                          f"layer1,layer2,layer3; got {layers!r}")


def soft_label_methods() -> list[str]:
    """Methods whose loss (at default options) takes label distributions (Mixup/CutMix)."""
    names = []
    for name in METHODS:
        try:
            built = build_method(name, temperature=default_temperature(name))
        except ConfigError:  # a method that needs options to be built at all
            continue
        if getattr(built, "soft_labels", False) and name != "none":
            names.append(name)
    return names
