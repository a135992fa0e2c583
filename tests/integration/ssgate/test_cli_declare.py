"""``ssgate declare rates`` and ``ssgate declare close-month`` on a real state directory
(SQLite): figures in force with their sources, a month without figures refused naming
the year and the file, the close idempotent, bad months exit 2."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ssgate import cli
from tests.integration.declare_app.test_ledger import RATES_2026


def _ssgate(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    state = tmp_path_factory.mktemp("cli-declare") / "state"
    code, text = _ssgate("--state", str(state), "init", "--hostname", "localhost")
    assert code == 0, text
    (state / "rates.toml").write_text(RATES_2026, encoding="utf-8")
    return state


def test_rates_prints_the_figures_in_force_and_their_sources(state: Path) -> None:
    code, text = _ssgate("--state", str(state), "declare", "rates", "2026-07")
    assert code == 0, text
    assert "110 企业职工基本养老保险: employer 0.16, employee 0.08, to account 0.08" in text
    assert "source: test: pension" in text
    assert "floor 4812, ceiling 24930" in text
    assert "NOT VERIFIED" in text  # no figure of the file says verified = true


def test_a_month_without_figures_is_refused_naming_the_year_and_the_file(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _ssgate("--state", str(state), "declare", "rates", "2027-01")
    assert code == 1
    error = capsys.readouterr().err
    assert "add the 2027 figures to" in error and "rates.toml" in error
    code, _ = _ssgate("--state", str(state), "declare", "close-month", "2027-01")
    assert code == 1  # 2027-01 has not begun, or (later) has no figures: refused either way


def test_close_month_is_idempotent(state: Path) -> None:
    code, text = _ssgate("--state", str(state), "declare", "close-month", "2026-07")
    assert code == 0, text
    assert text.startswith("2026-07 closed: 0 lines")
    code, text = _ssgate("--state", str(state), "declare", "close-month", "2026-07")
    assert code == 0, text
    assert text.startswith("2026-07 was closed already")


@pytest.mark.parametrize("month", ["2026-13", "2026-7", "july", "1899-01"])
def test_a_bad_month_is_exit_2(state: Path, month: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        _ssgate("--state", str(state), "declare", "close-month", month)
    assert exited.value.code == 2
    assert "write it as YYYY-MM" in capsys.readouterr().err


def test_a_future_month_is_not_closed_and_the_refusal_is_audited(
    state: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _ssgate("--state", str(state), "declare", "close-month", "2199-01")
    assert code == 1
    assert "has not begun" in capsys.readouterr().err
    code, text = _ssgate(
        "--state", str(state), "audit", "actions", "--format", "json"
    )  # fmt: skip
    assert code == 0, text
    assert '"declare.close-month"' in text and '"refused"' in text
