import math

import pytest

from rsdistill.errors import ConfigError
from rsdistill.losses import (
    KDLoss,
    MethodConfig,
    NuclearNormPenalty,
    check_alpha,
    check_beta,
    check_temperature,
    effective_rank,
    resolve_beta,
)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, math.nan, "0.5", True, None])
def test_bad_alpha(alpha):
    with pytest.raises(ConfigError, match=r"alpha must be .*\[0, 1\]"):
        check_alpha(alpha)


@pytest.mark.parametrize("temperature", [0, -1.0, math.nan, math.inf])
def test_bad_temperature(temperature):
    with pytest.raises(ConfigError, match="temperature must be finite and > 0"):
        check_temperature(temperature)


@pytest.mark.parametrize("beta", [-1, math.nan, math.inf, "abc"])
def test_bad_beta(beta):
    with pytest.raises(ConfigError, match="beta must be"):
        check_beta(beta)
    with pytest.raises(ConfigError, match="beta must be"):
        resolve_beta(beta, 0.3)


def test_messages_are_one_line():
    for fn, bad in [(check_alpha, 1.5), (check_temperature, 0), (check_beta, -1)]:
        with pytest.raises(ConfigError) as info:
            fn(bad)
        assert "\n" not in str(info.value)


def test_good_values_pass_through_as_float():
    assert check_alpha(0) == 0.0 and check_alpha(1) == 1.0
    assert check_temperature(4) == 4.0
    assert check_beta(0) == 0.0


def test_resolve_beta():
    assert resolve_beta("alpha", 0.3) == 0.3
    assert resolve_beta(" Alpha ", 0.7) == 0.7
    assert resolve_beta("0.05", 0.3) == 0.05
    assert resolve_beta(2, 0.3) == 2.0
    with pytest.raises(ConfigError, match="alpha"):
        resolve_beta("alpha", 1.5)


def test_constructors_validate():
    with pytest.raises(ConfigError):
        MethodConfig(alpha=-0.1)
    with pytest.raises(ConfigError):
        KDLoss(temperature=0.0)
    with pytest.raises(ConfigError):
        NuclearNormPenalty(beta=-1)
    with pytest.raises(ConfigError):
        effective_rank(__import__("torch").eye(3), rel_threshold=1.5)
