"""Batch files (declare_app._batch): CSV in UTF-8 (with or without BOM) and GB18030,
.xlsx read-only, headers by label or field name, bounded sizes, zip bombs refused,
templates that read back, and the results CSV."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from openpyxl import Workbook, load_workbook

from declare_app import _batch
from declare_app._batch import (
    MAX_CELL_CHARS,
    MAX_FILE_BYTES,
    MAX_LINES,
    BatchFileError,
    parse_batch,
    results_csv,
    template_csv,
    template_xlsx,
)
from declare_app.interfaces import DeclarationType, Finding, LineResult

ADD = DeclarationType.PERSON_ADD
BASE = DeclarationType.ANNUAL_BASE
HEADER = "个人编号,姓名,公民身份号码,上年度月平均工资"


def csv_bytes(text: str, encoding: str = "utf-8") -> bytes:
    return text.replace("\n", "\r\n").encode(encoding)


def xlsx_bytes(rows: list[list[object]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk"])
def test_csv_is_read_in_utf8_with_or_without_bom_and_in_gbk(encoding: str) -> None:
    data = csv_bytes(f"{HEADER}\n33068200000001,张三,330682199001151234,6500\n", encoding)
    (line,) = parse_batch(BASE, data)
    assert line.number == 2 and line.problem is None
    assert line.values == {
        "person_no": "33068200000001",
        "name": "张三",
        "id_number": "330682199001151234",
        "wage": "6500",
    }


def test_field_names_work_as_headers_and_a_star_and_spaces_are_ignored() -> None:
    data = csv_bytes("person_no, 姓名* ,id_number,wage,序号\n1,李四,2,3,99\n")
    (line,) = parse_batch(BASE, data)
    assert line.values == {"person_no": "1", "name": "李四", "id_number": "2", "wage": "3"}


def test_line_numbers_are_the_files_and_empty_lines_are_skipped() -> None:
    data = csv_bytes(f'{HEADER}\n\n1,"王\n五",2,3\n,,,\n4,赵六,5,6\n')
    lines = parse_batch(BASE, data)
    assert [(line.number, line.values["name"]) for line in lines] == [(3, "王\r\n五"), (6, "赵六")]


@pytest.mark.parametrize(
    ("text", "code", "needle"),
    [
        ("个人编号,姓名,公民身份号码,工资\n1,2,3,4\n", "bad-header", "工资"),
        ("个人编号,姓名,上年度月平均工资\n1,2,3\n", "bad-header", "公民身份号码"),
        ("姓名,姓名,个人编号,公民身份号码,wage\n1,2,3,4,5\n", "bad-header", "重复"),
        (f"{HEADER}\n", "no-lines", "没有数据行"),
        ("", "no-lines", "空"),
        ('个人编号,"姓名\n', "bad-file", "CSV"),
    ],
)
def test_bad_headers_and_files_are_refused_whole(text: str, code: str, needle: str) -> None:
    with pytest.raises(BatchFileError) as refused:
        parse_batch(BASE, csv_bytes(text))
    assert refused.value.code == code and needle in refused.value.message


def test_undecodable_binary_and_old_xls_are_refused() -> None:
    with pytest.raises(BatchFileError, match="编码"):
        parse_batch(BASE, b"\xff\xfe\xfa\xfb" * 10)
    with pytest.raises(BatchFileError, match="xls"):
        parse_batch(BASE, b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    with pytest.raises(BatchFileError, match="xlsx"):
        parse_batch(BASE, b"PK\x03\x04 not a zip at all")


def test_the_file_size_is_bounded() -> None:
    with pytest.raises(BatchFileError) as refused:
        parse_batch(BASE, b"a" * (MAX_FILE_BYTES + 1))
    assert refused.value.code == "too-large"


def test_10000_lines_are_read_and_one_more_is_refused_saying_the_limit() -> None:
    body = "".join(f"{i},n{i},{i},5000\n" for i in range(MAX_LINES))
    assert len(parse_batch(BASE, csv_bytes(HEADER + "\n" + body))) == MAX_LINES
    with pytest.raises(BatchFileError) as refused:
        parse_batch(BASE, csv_bytes(HEADER + "\n" + body + "x,y,z,1\n"))
    assert refused.value.code == "too-many-lines" and "10000" in refused.value.message


def test_a_long_cell_or_extra_cells_refuse_that_line_only() -> None:
    data = csv_bytes(f"{HEADER}\n1,{'长' * (MAX_CELL_CHARS + 1)},2,3\n1,a,2,3,extra\n1,b,2,3\n")
    long, extra, good = parse_batch(BASE, data)
    assert long.problem is not None and "过长" in long.problem
    assert extra.problem is not None and "列数" in extra.problem
    assert good.problem is None


def test_the_templates_example_line_is_refused_if_left_in() -> None:
    (line,) = parse_batch(BASE, template_csv(BASE))
    assert line.problem is not None and "示例" in line.problem


@pytest.mark.parametrize("type", [ADD, BASE])
def test_templates_have_the_labels_and_read_back(type: DeclarationType) -> None:
    header, example = _batch.template_rows(type)
    assert "姓名" in header and "公民身份号码" in header
    rows = list(csv.reader(io.StringIO(template_csv(type).decode("utf-8-sig"))))
    assert rows == [header, example]
    book = load_workbook(io.BytesIO(template_xlsx(type)))
    sheet = book.worksheets[0]
    assert [c.value for c in sheet[1]] == header
    assert sheet.cell(row=2, column=1).number_format == "@"
    assert len(parse_batch(type, template_xlsx(type))) == 1


def test_xlsx_cells_become_text_numbers_without_float_noise() -> None:
    from datetime import datetime

    data = xlsx_bytes(
        [
            [
                "姓名",
                "公民身份号码",
                "本单位入职日期",
                "参保（开始缴费）年月",
                "月缴费工资（基数）",
            ],
            ["张三", "330682199001151234", datetime(2025, 3, 1), datetime(2025, 3, 1), 6000.0],
            ["李四", 330682199001151234, "2025-03-01", "2025-03", 6000.5],
            [None, None, None, None, None],
        ]
    )
    # Required columns other than these are missing from this header: refused whole.
    with pytest.raises(BatchFileError, match="必填列"):
        parse_batch(ADD, data)
    data = xlsx_bytes(
        [
            ["个人编号", "姓名", "公民身份号码", "上年度月平均工资"],
            [33068200000001, "张三", "330682199001151234", 6000.0],
            ["2", "李四", "3", 6000.5],
        ]
    )
    first, second = parse_batch(BASE, data)
    assert first.values["person_no"] == "33068200000001"
    assert first.values["wage"] == "6000" and second.values["wage"] == "6000.5"


def test_xlsx_formulas_are_refused_per_line_not_evaluated() -> None:
    data = xlsx_bytes(
        [
            ["个人编号", "姓名", "公民身份号码", "上年度月平均工资"],
            ["1", "张三", "2", "=1000*6"],
            ["1", "李四", "2", "6000"],
        ]
    )
    formula, good = parse_batch(BASE, data)
    assert formula.problem is not None and "公式" in formula.problem
    assert good.problem is None


def test_an_xlsx_that_would_inflate_too_far_is_refused_before_parsing() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (_batch.MAX_XLSX_PART_BYTES + 1))
    data = out.getvalue()
    assert len(data) < MAX_FILE_BYTES  # small on the wire, a bomb once inflated
    with pytest.raises(BatchFileError, match="解压后过大"):
        parse_batch(BASE, data)


def test_results_csv_lists_every_line_and_defuses_formula_cells() -> None:
    results = [
        LineResult(2, True, (), "330682199001151234", "张三"),
        LineResult(
            3,
            False,
            (Finding("V-ID-03", "lines[1].id_number", "error", "第2行：校验码错误"),),
            "1",
            "=HYPERLINK()",
        ),
    ]
    rows = list(csv.reader(io.StringIO(results_csv(results).decode("utf-8-sig"))))
    assert rows[0] == ["行号", "结果", "公民身份号码", "姓名", "说明"]
    assert rows[1][:2] == ["2", "接受"]
    assert rows[2] == ["3", "拒绝", "1", "'=HYPERLINK()", "校验码错误"]
