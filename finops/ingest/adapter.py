"""What a source adapter is: how one source's records map onto a canonical target.

An adapter never loops over records. It gives SQL expressions over the columns of the input
(JSON keys, CSV headers, Parquet columns) for each canonical field; the engine checks and loads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from finops.ingest.files import Format, InputFile
from finops.ingest.targets import Target

__all__ = ["Adapter", "Mapping_", "identity_mapping"]

# canonical field -> SQL expression over the input columns (absent fields are NULL)
Mapping_ = Mapping[str, str]


def identity_mapping(names: tuple[str, ...], columns: frozenset[str]) -> dict[str, str]:
    """Each canonical field read from the input column of the same name, where the input has it."""
    return {n: f'"{n}"' for n in names if n in columns}


@dataclass(frozen=True)
class Adapter:
    """One source: its formats, its input keys, and its mapping onto a target."""

    name: str
    description: str
    formats: frozenset[Format]
    target: Target
    # top-level input keys the adapter reads from JSON records, with the type to read them as
    # ("JSON" keeps the value's JSON text so its type can be checked; "VARCHAR" reads text)
    input_fields: Mapping[str, str]
    mapping: Callable[[Format, frozenset[str]], Mapping_]
    # keys that are known but deliberately not kept (e.g. full prompts in a LiteLLM payload)
    ignored_fields: frozenset[str] = frozenset()
    # required target fields this source may lack (e.g. `model` of an ungrouped usage bucket)
    optional: frozenset[str] = frozenset()
    # SQL turning a JSON document (`_doc`, numbered `_doc_no`) into records (`_ordinal`, `_path`, `_json`);
    # None: a document is an array of records, or one record
    flatten: str | None = None
    # does this file look like this source? (for --source auto)
    recognise: Callable[[InputFile], bool] = field(default=lambda f: False)
    # choose the target by the file's shape (the gpu source holds jobs or capacity)
    choose_target: Callable[[InputFile], Target] | None = None
    # a zone naive timestamps of this source are in, when the source documents one (else --timezone)
    default_zone: str | None = None
    # how the input names a field that its mapping computes from an expression (a reject message says
    # `prompt_tokens is -5`, not `input_tokens is -5`); a field mapped from one column is named by it
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def known_fields(self) -> frozenset[str]:
        return frozenset(self.input_fields) | self.ignored_fields

    def target_for(self, file: InputFile) -> Target:
        target = self.choose_target(file) if self.choose_target else self.target
        return target.with_optional(self.optional)
