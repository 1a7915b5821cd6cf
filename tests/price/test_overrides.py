"""The price overrides file: every mistake is one sentence naming the file, line and field, never a wrong price."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from finops.cli import main
from finops.errors import InputError
from finops.price.overrides import read_overrides
from tests.helpers import write_file
from tests.ingest.test_bad_input import line

HEADER = (
    "kind,provider,model,valid_from,valid_to,discount_pct,input_mtok,cached_input_mtok,cache_write_mtok,"
    "output_mtok,gpu_type,cluster,hourly_usd,note\n"
)


def model_row(input_mtok: str, output_mtok: str = "0.4") -> str:
    return f"model,selfhosted,llama,2026-01-01,,,{input_mtok},,,{output_mtok},,,,\n"


def gpu_row(hourly_usd: str) -> str:
    return f"gpu,,,2026-01-01,,,,,,,H100,east,{hourly_usd},\n"


def discount_row(pct: str) -> str:
    return f"discount,openai,gpt-4o*,2026-01-01,,{pct},,,,,,,,\n"


def read(tmp_path: Path, body: str) -> Path:
    return write_file(tmp_path, "p.csv", HEADER + body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (model_row("1e20"), "input_mtok is '1e20'; expected a non-negative decimal number below 1,000,000 (USD per"),
        (model_row("1e14"), "input_mtok is '1e14'; expected a non-negative decimal number below 1,000,000"),
        (model_row("1e400"), "input_mtok is '1e400'; expected a non-negative decimal number below 1,000,000"),
        (model_row("1000000"), "input_mtok is '1000000'; expected a non-negative decimal number below 1,000,000"),
        (model_row("0.4", "2e6"), "output_mtok is '2e6'; expected a non-negative decimal number below 1,000,000"),
        (
            gpu_row("1e9"),
            "hourly_usd is '1e9'; expected a non-negative decimal number below 1,000,000 (USD per GPU-hour)",
        ),
        (discount_row("1e400"), "discount_pct is '1e400'; expected a percentage from 0 to 100"),
        (discount_row("100.5"), "discount_pct is '100.5'; expected a percentage from 0 to 100"),
    ],
)
def test_price_above_the_bound_is_refused_naming_line_and_field(tmp_path: Path, body: str, message: str) -> None:
    path = read(tmp_path, body)

    with pytest.raises(InputError, match=re.escape(f"{path} line 2: {message}")):
        read_overrides(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (model_row("0.1234567890123456789"), "input_mtok is '0.1234567890123456789'; expected at most 18 decimal"),
        (model_row("1e-19"), "input_mtok is '1e-19'; expected at most 18 decimal places"),
        (model_row("1e-1000000"), "input_mtok is '1e-1000000'; expected at most 18 decimal places"),
        (gpu_row("2.9500000000001"), "hourly_usd is '2.9500000000001'; expected at most 12 decimal places"),
        (discount_row("12.1234567"), "discount_pct is '12.1234567'; expected at most 6 decimal places"),
    ],
)
def test_more_decimals_than_stored_are_refused_not_rounded(tmp_path: Path, body: str, message: str) -> None:
    path = read(tmp_path, body)

    with pytest.raises(InputError, match=re.escape(f"{path} line 2: {message}")):
        read_overrides(path)


def test_prices_just_below_the_bound_and_at_full_precision_are_kept_exactly(tmp_path: Path) -> None:
    path = read(
        tmp_path,
        model_row("999999.999999999999999999", "0.400000000000000000000000")
        + gpu_row("999999.999999999999")
        + discount_row("99.999999"),
    )

    overrides = read_overrides(path)

    assert overrides.prices["input_mtok"].to_list()[0] == Decimal("999999.999999999999999999")
    assert overrides.prices["output_mtok"].to_list()[0] == Decimal("0.4")
    assert overrides.gpu_rates["hourly_usd"].to_list() == [Decimal("999999.999999999999")]
    assert overrides.discounts["discount_pct"].to_list() == [Decimal("99.999999")]


def test_zero_with_a_huge_exponent_is_zero(tmp_path: Path) -> None:
    overrides = read_overrides(read(tmp_path, model_row("0e999999")))

    assert overrides.prices["input_mtok"].to_list()[0] == Decimal(0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            HEADER.encode() + b"model,selfhosted,z\xfcrich,2026-01-01,,,0.4,,,0.4,,,,\n",
            "line 2: byte 0xFC at offset 162 is not UTF-8 (Latin-1 or Windows-1252 text?); expected a UTF-8 file",
        ),
        (HEADER.encode("utf-16"), "line 1: the file is UTF-16 text (Excel's 'Unicode Text'); expected UTF-8"),
        (HEADER.encode("utf-16-le"), "line 1: the file contains NUL bytes (UTF-16 text?); expected UTF-8 text"),
    ],
    ids=["latin-1", "utf-16", "utf-16-without-bom"],
)
def test_file_not_utf8_is_refused_naming_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = write_file(tmp_path, "p.csv", content)

    with pytest.raises(InputError, match=re.escape(f"{path} {message}")):
        read_overrides(path)


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = write_file(tmp_path, "p.csv", b"\xef\xbb\xbf" + (HEADER + model_row("0.4")).encode())

    assert read_overrides(path).prices["model_name"].to_list()[0] == "llama"


def test_line_numbers_count_blank_lines_and_quoted_line_breaks(tmp_path: Path) -> None:
    path = read(tmp_path, '\nmodel,selfhosted,a,2026-01-01,,,0.4,,,0.4,,,,"two\nlines"\n' + model_row("-0.4"))

    with pytest.raises(InputError, match=re.escape(f"{path} line 5: input_mtok is '-0.4'")):
        read_overrides(path)


def test_run_with_a_huge_price_exits_1_with_the_sentence_not_an_internal_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    db = str(tmp_path / "spend.duckdb")
    usage = write_file(
        tmp_path,
        "g.jsonl",
        line(model="llama", provider="selfhosted", input_tokens=1_000_000, output_tokens=1_000_000) + "\n",
    )
    prices = read(tmp_path, model_row("1e20"))
    main(["--db", db, "ingest", str(usage), "--source", "gateway"])
    capsys.readouterr()

    with pytest.raises(SystemExit) as exited:
        main(["--db", db, "run", "--prices", str(prices)])

    err = capsys.readouterr().err
    assert exited.value.code == 1
    assert err.startswith(f"error: {prices} line 2: input_mtok is '1e20'; expected a non-negative decimal number")


def test_a_misspelt_column_is_refused_not_read_as_empty(tmp_path: Path) -> None:
    # read as empty, `modle` would make this discount apply to every OpenAI model
    path = write_file(
        tmp_path, "p.csv", "kind,provider,modle,valid_from,discount_pct\ndiscount,openai,gpt-4o*,2026-01-01,50\n"
    )

    with pytest.raises(
        InputError, match=re.escape(f"{path} line 1: unknown column 'modle'; expected columns among kind,")
    ):
        read_overrides(path)


def test_a_row_with_a_cell_more_than_the_header_is_refused_13(tmp_path: Path) -> None:
    # `1,5` unquoted: the discount shifts every later cell one column to the right
    path = read(tmp_path, "discount,openai,gpt-4o*,2026-01-01,,1,5,,,,,,,,\n")

    with pytest.raises(InputError, match=re.escape(f"{path} line 2: 15 cells; expected 14 (kind, provider, model,")):
        read_overrides(path)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "model,selfhosted,llama-internal,2026-10-01,,25,1,,,2,,,,transfer price less 25%\n",
            "discount_pct is '25'; expected it empty, as a model row does not use it (a model row reads provider, "
            "model, valid_from, valid_to, input_mtok, cached_input_mtok, cache_write_mtok, output_mtok, "
            "reasoning_mtok, note).",
        ),
        (
            "model,selfhosted,llama,2026-10-01,,,1,,,2,H100,,,\n",
            "gpu_type is 'H100'; expected it empty, as a model row does not use it",
        ),
        ("model,selfhosted,llama,2026-10-01,,,1,,,2,,,3,\n", "hourly_usd is '3'; expected it empty, as a model row"),
        (
            "discount,openai,gpt-4o*,2026-01-01,,10,2.5,,,,,,,\n",
            "input_mtok is '2.5'; expected it empty, as a discount row does not use it (a discount row reads "
            "provider, model, valid_from, valid_to, discount_pct, note).",
        ),
        ("gpu,aws,,2025-01-01,,,,,,,L4,west,0.5,\n", "provider is 'aws'; expected it empty, as a gpu row does not"),
        ("gpu,,h100,2025-01-01,,,,,,,L4,west,0.5,\n", "model is 'h100'; expected it empty, as a gpu row does not"),
    ],
    ids=[
        "pct-on-model",
        "gpu-type-on-model",
        "hourly-on-model",
        "price-on-discount",
        "provider-on-gpu",
        "model-on-gpu",
    ],
)
def test_a_value_in_a_column_the_kind_does_not_use_is_refused_10(tmp_path: Path, body: str, message: str) -> None:
    path = read(tmp_path, body)

    with pytest.raises(InputError, match=re.escape(f"{path} line 2: {message}")):
        read_overrides(path)


def test_blank_and_whitespace_cells_of_unused_columns_are_fine_10(tmp_path: Path) -> None:
    path = read(tmp_path, "model,selfhosted,llama,2026-10-01,, ,1,,,2, ,,,a note\n")

    assert read_overrides(path).prices["source"].unique().to_list() == ["p.csv line 2"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "model,selfhosted,llama-internal,2026-10-01,,,5,,,5,,,,price A\n"
            "model,selfhosted,llama-internal,2026-10-01,,,1,,,2,,,,price B\n",
            "line 3: model selfhosted/llama-internal is also set by line 2 on overlapping days (line 2 from "
            "2026-10-01 on, line 3 from 2026-10-01 on), so which one applies is ambiguous; expected one row per "
            "day: remove one of them or give them dates that do not overlap.",
        ),
        (
            model_row("0.4") + model_row("0.4"),
            "line 3: model selfhosted/llama is also set by line 2 on overlapping days",
        ),
        (
            "model,,llama,,,,5,,,5,,,,\nmodel,,llama,2026-03-01,2026-04-01,,1,,,1,,,,\n",
            "line 3: model llama of any provider is also set by line 2 on overlapping days (line 2 from the start "
            "on, line 3 from 2026-03-01 to 2026-04-01), so which one applies is ambiguous; expected one row per "
            "day: give line 2 a valid_to of 2026-03-01.",
        ),
        (
            "discount,anthropic,claude-*,2026-07-01,,15,,,,,,,,\ndiscount,anthropic,claude-*,2026-01-01,,10,,,,,,,,\n",
            "line 3: the discount on anthropic models matching claude-* is also set by line 2 on overlapping days "
            "(line 2 from 2026-07-01 on, line 3 from 2026-01-01 on), so which one applies is ambiguous; expected "
            "one row per day: give line 3 a valid_to of 2026-07-01.",
        ),
        (
            "gpu,,,2025-01-01,2025-06-01,,,,,,L4,west,0.5,\ngpu,,,2025-05-01,,,,,,,L4,west,0.4,\n",
            "line 3: the L4 GPU rate of cluster west is also set by line 2 on overlapping days",
        ),
    ],
    ids=["same-dates", "identical-rows", "open-start", "discount", "gpu"],
)
def test_two_rows_for_the_same_thing_on_overlapping_days_are_refused_11(
    tmp_path: Path, body: str, message: str
) -> None:
    path = read(tmp_path, body)

    with pytest.raises(InputError, match=re.escape(f"{path} {message}")):
        read_overrides(path)


def test_rows_that_follow_each_other_or_price_different_things_are_accepted_11(tmp_path: Path) -> None:
    path = read(
        tmp_path,
        "model,selfhosted,llama,2026-01-01,2026-07-01,,1,,,1,,,,\n"
        "model,selfhosted,llama,2026-07-01,,,2,,,2,,,,\n"  # starts the day the first one ends
        "model,,llama,2026-01-01,,,3,,,3,,,,\n"  # any provider: another target than selfhosted's
        "discount,anthropic,claude-*,2026-01-01,,10,,,,,,,,\n"
        "discount,anthropic,claude-sonnet-*,2026-01-01,,15,,,,,,,,\n"
        "gpu,,,2025-01-01,,,,,,,L4,west,0.5,\n"
        "gpu,,,2025-01-01,,,,,,,L4,,0.6,\n"
        "gpu,,,2025-01-01,,,,,,,H100,west,2.5,\n",
    )

    overrides = read_overrides(path)

    assert (overrides.prices.height, overrides.discounts.height, overrides.gpu_rates.height) == (12, 2, 3)


def test_a_discount_glob_that_cannot_match_is_refused_13(tmp_path: Path) -> None:
    path = read(tmp_path, "discount,anthropic,claude-[sonnet,2026-01-01,,10,,,,,,,,\n")

    with pytest.raises(
        InputError,
        match=re.escape(f"{path} line 2: model is 'claude-[sonnet'; expected a glob that can match: the '[' at"),
    ):
        read_overrides(path)
