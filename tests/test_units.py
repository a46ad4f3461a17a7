"""rlscale.units: size labels, JSON keys and CLI parsing agree; C = 6 N T in one place."""

import numpy as np
import pytest

from rlscale import units
from rlscale.laws import format_size as laws_format_size
from rlscale.laws.base import size_key as laws_size_key
from rlscale.report.curves import format_size as report_format_size

SIZES = [5e8, 1.5e9, 7e9, 72e9, 3e6, 1.2e6, 4e5, 2.5e3, 800.0, 1.5e12]


@pytest.mark.parametrize("N", SIZES)
def test_label_parses_back(N):
    assert units.parse_size(units.format_size(N)) == pytest.approx(N, rel=1e-12)
    assert units.parse_size(report_format_size(N)) == pytest.approx(N, rel=1e-12)


def test_labels():
    assert [units.format_size(n) for n in (5e8, 1.2e6, 7e9, 2.5e3, 800, 1.5e12)] == [
        "500M", "1.2M", "7B", "2.5K", "800", "1.5T"]
    assert units.format_size(1.2345e9) == "1.234B"  # 4 digits: the CLI and the laws' messages
    assert report_format_size(1.2345e9) == "1.23B"  # 3 digits: the report's labels
    assert laws_format_size is units.format_size and laws_size_key is units.size_key


def test_size_key_is_exact_json_key():
    assert units.size_key(5e8) == "500000000.0" and units.size_key(7) == "7.0"
    assert float(units.size_key(1.2345678901e9)) == 1.2345678901e9


def test_parse_sizes():
    assert units.parse_sizes("0.5B, 1.5b,3e9,,4M,2K,1T") == [5e8, 1.5e9, 3e9, 4e6, 2e3, 1e12]
    assert units.parse_sizes(None) is None and units.parse_sizes("") is None
    sizes = [5e8, 7e9, 3e6]
    assert units.parse_sizes(",".join(units.format_size(n) for n in sizes)) == sizes
    with pytest.raises(ValueError, match="size 'sevenB' is not a number"):
        units.parse_sizes("0.5B,sevenB")


def test_cli_parse_sizes_is_a_bad_parameter():
    import typer

    from rlscale.commands.fit import parse_sizes

    assert parse_sizes("0.5B,7B") == [5e8, 7e9]
    with pytest.raises(typer.BadParameter, match="e.g. 5e8 or 0.5B"):
        parse_sizes("x")


def test_training_flops_is_six_n_t():
    assert units.training_flops(1.5e9, 1e6) == 6 * 1.5e9 * 1e6
    assert units.training_flops(2, 3) == 36 and isinstance(units.training_flops(2, 3), int)
    tokens = np.array([1e3, 2e3])
    assert units.training_flops(1e6, tokens).tolist() == (6.0 * 1e6 * tokens).tolist()
    assert units.training_tokens(1e6, units.training_flops(1e6, 5e4)) == pytest.approx(5e4)


def test_callers_share_training_flops():
    from rlscale.laws.synthetic import recipe_axes
    from rlscale.models.flops import paper_compute

    axes = recipe_axes(1e8, np.arange(1, 4))
    assert axes["C"].tolist() == units.training_flops(1e8, axes["T"]).tolist()
    assert paper_compute(7e9, 1234) == units.training_flops(7e9, 1234)
