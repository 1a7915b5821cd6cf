"""Ownership rules: the record's own team/feature first, then api_key, project, tag, key and model globs."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from finops.attribute.owners import RULE_SCHEMA, assign_owner, read_rules
from finops.errors import InputError
from tests.helpers import write_file

DAY = date(2026, 10, 1)
COLUMNS = ("team", "feature", "api_key", "project", "model", "tags")


def usage(*rows: tuple[str | None, ...], day: date = DAY) -> pl.LazyFrame:
    return (
        pl.DataFrame([dict(zip(COLUMNS, r, strict=True)) for r in rows], schema={c: pl.String() for c in COLUMNS})
        .with_columns(charge_day=pl.lit(day))
        .lazy()
    )


def rules(*rows: tuple[object, ...]) -> pl.LazyFrame:
    return pl.DataFrame(
        [(*r, f"owners.csv line {i + 2}") for i, r in enumerate(rows)], schema=RULE_SCHEMA, orient="row"
    ).lazy()


def owners(result: pl.LazyFrame) -> pl.DataFrame:
    return result.select("team", "feature", "attribution").collect()


def test_record_own_team_and_feature_win_over_rules() -> None:
    result = assign_owner(
        usage(("support", "summarise", "k1", None, "gpt-4o", None)),
        rules(("api_key", "k1", "search", "rerank", None, None)),
    )

    assert_frame_equal(
        owners(result),
        pl.DataFrame({"team": ["support"], "feature": ["summarise"], "attribution": ["team=record; feature=record"]}),
    )


def test_rules_apply_in_documented_order_team_and_feature_decided_apart() -> None:
    result = assign_owner(
        usage((None, None, "k1", "proj-a", "text-embedding-3-small", '{"app": "search-ui"}')),
        rules(
            ("model_pattern", "text-embedding-*", "ml", "embeddings", None, None),
            ("tag", "app=search-ui", None, "search-ui", None, None),
            ("project", "proj-a", "search", None, None, None),
            ("api_key", "k1", "platform", None, None, None),
        ),
    )

    assert_frame_equal(
        owners(result),
        pl.DataFrame(
            {
                "team": ["platform"],
                "feature": ["search-ui"],
                "attribution": ["team=api_key:k1; feature=tag:app=search-ui"],
            }
        ),
    )


def test_a_team_only_rule_does_not_hide_a_later_feature_rule_of_the_same_kind() -> None:
    # hunt H 1: one tag names the team, another the feature; one key rule the team, a later one the feature
    result = assign_owner(
        usage(
            (None, None, None, None, "gpt-4o-mini", '{"team": "search", "app": "reply-draft"}'),
            (None, None, "key-search-7", None, "gpt-4o-mini", None),
            (None, None, "key-search-1", None, "gpt-4o-mini", None),
        ),
        rules(
            ("tag", "team=search", "search", None, None, None),
            ("tag", "app=reply-draft", None, "reply-draft", None, None),
            ("api_key", "key-search-7", "search", None, None, None),
            ("api_key", "key-search-7", None, "rerank", None, None),
            ("api_key_pattern", "key-*", "anykey", None, None, None),
            ("api_key_pattern", "key-search-*", "search", "rerank", None, None),
        ),
    )

    assert sorted(owners(result).rows()) == [
        ("anykey", "rerank", "team=api_key_pattern:key-*; feature=api_key_pattern:key-search-*"),
        ("search", "reply-draft", "team=tag:team=search; feature=tag:app=reply-draft"),
        ("search", "rerank", "team=api_key:key-search-7; feature=api_key:key-search-7"),
    ]


def test_a_dotted_tag_key_is_one_flat_key_not_a_path() -> None:
    # hunt H 2: `app.name=billing` matched {"app": {"name": ...}} and never the flat OpenTelemetry-style key
    result = assign_owner(
        usage(
            (None, None, None, None, "m", '{"app.name": "billing"}'),
            (None, None, None, None, "m", '{"app": {"name": "billing"}}'),
        ),
        rules(("tag", "app.name=billing", "billing", None, None, None)),
    )

    assert dict(result.select("tags", "team").collect().rows()) == {
        '{"app.name": "billing"}': "billing",
        '{"app": {"name": "billing"}}': "__unattributed__",
    }


def test_patterns_and_unattributed_bucket() -> None:
    result = assign_owner(
        usage((None, None, "svc-search-7", None, "gpt-4o", None), (None, None, "other", None, "o3", None)),
        rules(("api_key_pattern", "svc-search-*", "search", None, None, None)),
    ).sort("api_key")

    assert_frame_equal(
        owners(result),
        pl.DataFrame(
            {
                "team": ["__unattributed__", "search"],
                "feature": ["__unattributed__", "__unattributed__"],
                "attribution": ["team=none; feature=none", "team=api_key_pattern:svc-search-*; feature=none"],
            }
        ),
    )


def test_rule_validity_dates_move_a_key_between_teams() -> None:
    moved = rules(
        ("api_key", "k1", "old-team", None, None, date(2026, 10, 1)),
        ("api_key", "k1", "new-team", None, date(2026, 10, 1), None),
    )

    before = assign_owner(usage((None, None, "k1", None, "gpt-4o", None), day=date(2026, 9, 30)), moved)
    after = assign_owner(usage((None, None, "k1", None, "gpt-4o", None), day=DAY), moved)

    assert owners(before)["team"].to_list() == ["old-team"]
    assert owners(after)["team"].to_list() == ["new-team"]


def test_one_line_out_per_record_in() -> None:
    records = usage(*[(None, None, f"k{i % 3}", "p", "gpt-4o", None) for i in range(50)])
    result = assign_owner(
        records, rules(("api_key", "k1", "a", None, None, None), ("project", "p", "b", "f", None, None))
    )

    assert result.collect().height == 50


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("kind,match,team,feature\napikey,k1,a,\n", "line 2: kind is 'apikey'; expected one of api_key, project"),
        ("kind,match,team,feature\napi_key,,a,\n", "line 2: match is empty"),
        ("kind,match,team,feature\ntag,app,a,\n", "line 2: match is 'app'; a tag rule matches key=value"),
        ("kind,match,team,feature\napi_key,k1,,\n", "line 2: the rule names neither a team nor a feature"),
        ("kind,match,team,feature,valid_from\napi_key,k1,a,,01/10/2026\n", "valid_from is '01/10/2026'"),
        ("match,team\nk1,a\n", "line 1: the header lacks kind"),
        ("kind,match,team,feautre\napi_key,k1,a,chat\n", "line 1: unknown column 'feautre'; expected columns kind,"),
        (
            "kind,match,team,feature,valid_from,valid_to\napi_key,k,t,f,2026-10-05,2026-10-01\n",
            "line 2: valid_to 2026-10-01 is not after valid_from 2026-10-05.",
        ),
        (
            "kind,match,team,feature,valid_from,valid_to\napi_key,k,t,f,2026-10-01,2026-10-01\n",
            "line 2: valid_to 2026-10-01 is not after valid_from 2026-10-01.",
        ),
        ("kind,match,team,feature\n\n\napikey,k1,a,\n", "line 4: kind is 'apikey'"),
        ('kind,match,team,feature,note\napi_key,k1,a,,"two\nlines"\napikey,k1,a,,\n', "line 4: kind is 'apikey'"),
        ("kind,match,team,feature,note\napi_key,k1,a,,form\x0cfeed\napikey,k1,a,,\n", "line 3: kind is 'apikey'"),
        (
            "kind,match,team,feature,note\napi_key,k1,a,," + "x" * 200_000 + "\n",
            "line 2: cannot read the ownership rules as CSV (field larger than field limit (131072)).",
        ),
    ],
)
def test_bad_rules_file_names_line_and_field(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_rules(write_file(tmp_path, "owners.csv", content))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"kind,match,team,feature,valid_from,valid_to,note\napi_key,key-z,z\xfcrich,f,,,\n",
            "line 2: byte 0xFC at offset 64 is not UTF-8 (Latin-1 or Windows-1252 text?); expected a UTF-8 file "
            "(in Excel, save as 'CSV UTF-8').",
        ),
        (
            "kind,match,team,feature\napi_key,k1,a,\n".encode("utf-16"),
            "line 1: the file is UTF-16 text (Excel's 'Unicode Text'); expected UTF-8 (in Excel, save as 'CSV UTF-8').",
        ),
        (
            "kind,match,team,feature\napi_key,k1,a,\n".encode("utf-16-be"),
            "line 1: the file contains NUL bytes (UTF-16 text?); expected UTF-8 text.",
        ),
    ],
    ids=["latin-1", "utf-16", "utf-16-without-bom"],
)
def test_rules_file_not_utf8_names_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = write_file(tmp_path, "owners.csv", content)

    with pytest.raises(InputError, match=re.escape(f"{path} {message}")):
        read_rules(path)


def test_rules_file_with_utf8_byte_order_mark_reads(tmp_path: Path) -> None:
    path = write_file(tmp_path, "owners.csv", "\ufeffkind,match,team,feature\napi_key,k1,z\u00fcrich,\n")

    assert read_rules(path).select("rule_kind", "team").rows() == [("api_key", "z\u00fcrich")]


def test_rule_source_names_the_line_it_is_on(tmp_path: Path) -> None:
    path = write_file(tmp_path, "owners.csv", "kind,match,team,feature\n\napi_key,k1,a,\n")

    assert read_rules(path)["source"].to_list() == ["owners.csv line 3"]


def test_committed_example_rules_file_reads(fixtures_dir: Path) -> None:
    table = read_rules(fixtures_dir / "owners.csv")

    assert table.height > 0 and set(table["rule_kind"]) <= {
        "api_key",
        "project",
        "tag",
        "api_key_pattern",
        "model_pattern",
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "api_key,key-exact,payments,checkout,,,main key,2026-11-01,oops shifted cells\n",
            "line 2: 9 cells; expected 7 (kind, match, team, feature, valid_from, valid_to, note), one per header "
            "column (quote a value that contains a comma).",
        ),
        ("api_key,key-exact,payments\n", "line 2: 3 cells; expected 7 (kind, match, team, feature,"),
        ("api_key,k1,a,,,,\n\napi_key,k2,b,,,,,\n", "line 4: 8 cells; expected 7"),
        (
            "api_key_pattern,key-[,t1,,,,\n",
            "line 2: match is 'key-['; expected a glob that can match: the '[' at character 5 is never closed "
            "(a literal '[' is written [[]).",
        ),
        (
            "model_pattern,gpt-[z-a]*,t1,,,,\n",
            "line 2: match is 'gpt-[z-a]*'; expected a glob that can match: a [...] class in it holds no character.",
        ),
        (
            "tag,app=,t1,,,,\n",
            "line 2: match is 'app='; a tag rule matches key=value (key: letters, digits, _.-; value: not empty).",
        ),
        ("tag,=ui,t1,,,,\n", "line 2: match is '=ui'; a tag rule matches key=value"),
    ],
    ids=["more-cells", "fewer-cells", "line-after-blank", "unclosed-bracket", "empty-class", "empty-value", "no-key"],
)
def test_silently_ignored_rule_mistakes_are_refused_13(tmp_path: Path, body: str, message: str) -> None:
    path = write_file(tmp_path, "owners.csv", "kind,match,team,feature,valid_from,valid_to,note\n" + body)

    with pytest.raises(InputError, match=re.escape(f"{path} {message}")):
        read_rules(path)


def test_sound_globs_and_quoted_commas_are_accepted_13(tmp_path: Path) -> None:
    path = write_file(
        tmp_path,
        "owners.csv",
        "kind,match,team,feature,valid_from,valid_to,note\n"
        'api_key_pattern,key-[[]*,t1,,,,"a literal [, quoted"\n'
        "model_pattern,gpt-[!a-c]?,t2,,,,\n",
    )

    assert read_rules(path).select("match_value", "team").rows() == [("key-[[]*", "t1"), ("gpt-[!a-c]?", "t2")]
