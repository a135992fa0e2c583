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
    figures = state.parent / "rates-2026.toml"
    figures.write_text(RATES_2026, encoding="utf-8")
    code, text = _ssgate("--state", str(state), "declare", "rates", "--install", str(figures))
    assert code == 0, text
    assert "NOT VERIFIED" in text and "restart it" in text
    return state


def test_install_refuses_a_file_that_is_not_a_rates_file_and_keeps_the_live_one(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (state / "rates.toml").read_bytes()
    bad = tmp_path / "bad.toml"
    bad.write_text('[region.330682]\nrate = "x"\n', encoding="utf-8")
    code, _ = _ssgate("--state", str(state), "declare", "rates", "--install", str(bad))
    assert code == 2
    assert "bad.toml" in capsys.readouterr().err
    empty = tmp_path / "empty.toml"
    empty.write_text("# nothing\n", encoding="utf-8")
    code, _ = _ssgate("--state", str(state), "declare", "rates", "--install", str(empty))
    assert code == 2
    assert "no [region.CODE] figures" in capsys.readouterr().err
    code, _ = _ssgate("--state", str(state), "declare", "rates")
    assert code == 2
    assert (state / "rates.toml").read_bytes() == before


def test_rates_prints_the_year_s_interest_rate_and_marks_it_unverified(state: Path) -> None:
    code, text = _ssgate("--state", str(state), "declare", "rates", "2024-07")
    assert code == 1  # the test figures start in 2026
    code, text = _ssgate("--state", str(state), "declare", "rates", "2026-07")
    assert "记账利率 2026: not published yet: add the 2026 rate to" in text


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


def test_import_legacy_lists_refused_lines_writes_nothing_then_imports_a_good_file(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``import-legacy``: per-line results naming line numbers and columns (never the
    person), exit 1 and nothing written while any line is refused; a clean file (after
    ``--dry-run``) imports and is audited."""
    from tests.integration.declare_app.test_ledger import make_id
    from tests.integration.declare_app.test_legacy import legacy_file

    code, text = _ssgate(
        "--state", str(state), "units", "register", "12345678", "--name", "上虞测试厂",
        "--region", "330682",
    )  # fmt: skip
    assert code == 0, text
    id_number = make_id(141)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(legacy_file(id_number, "LG0001", "account,LG0002,,,,,,,,,,,,,,,,x"))
    code, text = _ssgate("--state", str(state), "declare", "import-legacy", str(bad))
    assert code == 1
    assert "line 6 (account): refused: " in text and "deemed_months" in text
    assert "nothing was imported" in capsys.readouterr().err
    assert id_number not in text
    good = tmp_path / "good.csv"
    good.write_bytes(legacy_file(id_number))
    code, text = _ssgate("--state", str(state), "declare", "import-legacy", "--dry-run", str(good))
    assert code == 0, text
    assert "nothing written" in text
    code, text = _ssgate("--state", str(state), "declare", "import-legacy", str(good))
    assert code == 0, text
    assert "1 persons, 1 enrolments, 1 contributions, 1 accounts" in text
    code, text = _ssgate("--state", str(state), "declare", "import-legacy", str(good))
    assert code == 1  # a second time: every line is there already
    code, text = _ssgate("--state", str(state), "audit", "actions", "--format", "json")
    assert '"declare.import-legacy"' in text


def test_import_legacy_of_a_file_that_is_no_table_is_exit_2(
    state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.csv"
    junk.write_text("hello,world\n1,2\n", encoding="utf-8")
    code, _ = _ssgate("--state", str(state), "declare", "import-legacy", str(junk))
    assert code == 2
    assert "unknown column 'hello'" in capsys.readouterr().err
